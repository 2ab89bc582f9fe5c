"""MetaSchedule over RPC on loopback: a candidate linked on the host by metaschedule_cross_builder (a .so, so
the server compiles nothing) and measured by metaschedule_rpc_runner through the tracker."""

from __future__ import annotations

import shutil

import pytest

from lncompile import remote
from lncompile.backend import tvm_api
from tests.remote.test_rpc import free_port

pytestmark = pytest.mark.slow


def test_rpc_runner_measures_a_candidate_built_on_the_host() -> None:
    compiler = "g++"  # this machine's compiler stands in for a cross compiler: the server here is x86-64 too
    if shutil.which(compiler) is None:
        pytest.skip("g++ is not installed")
    with remote.running_tracker(port=free_port()) as tracker:
        address = f"127.0.0.1:{tracker.port}"
        with remote.running_server(port=free_port(), tracker=address, key="ms-loopback"):
            remote.wait_for_key(address, "ms-loopback", timeout_s=60)
            runner = remote.metaschedule_rpc_runner(address, "ms-loopback", number=2, repeat=2)
            builder = remote.metaschedule_cross_builder(compiler, max_workers=1)
            seconds = tvm_api.ms_measure_vector_add(builder, runner, {"kind": "llvm",
                                                                      "mtriple": "x86_64-linux-gnu"})
    assert len(seconds) == 2
    assert all(0 < s < 0.1 for s in seconds)  # adding 4096 floats: microseconds, not seconds


def test_cross_builder_needs_its_compiler() -> None:
    from lncompile.errors import ToolchainError

    with pytest.raises(ToolchainError, match="no-such-g\\+\\+ not found"):
        remote.metaschedule_cross_builder("no-such-g++")
