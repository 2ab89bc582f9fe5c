"""TVM RPC on loopback: `lncompile rpc-tracker` / `rpc-server` as real processes, and benchmark_remote timing a
library on the server through the tracker. Every process is stopped in the fixture's finally."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from torch import nn

import lncompile
from lncompile import remote
from lncompile.errors import ModelFormatError, UsageError

pytestmark = pytest.mark.slow

KEY = "loopback-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str]) -> tuple[subprocess.Popen, str]:
    """Start an lncompile command; return it and its first line (it prints where it listens)."""
    proc = subprocess.Popen([sys.executable, "-m", "lncompile.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline().strip() if ready else ""
    if "listening on" not in line:
        _stop(proc)
        pytest.fail(f"`lncompile {args[0]}` did not start: {line!r}")
    return proc, line


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the command then terminates its TVM process); kill if it does not exit within 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listen_addresses(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses the process tree of ``pid`` listens on."""
    parent = psutil.Process(pid)
    pids = {pid, *(c.pid for c in parent.children(recursive=True))}
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp")
            if c.pid in pids and c.status == psutil.CONN_LISTEN}


@pytest.fixture(scope="module")
def rpc_setup() -> Iterator[dict]:
    """A tracker and a server registered under KEY, both started through the CLI on free loopback ports."""
    procs: list[subprocess.Popen] = []
    try:
        tracker, tracker_line = _start(["rpc-tracker", "--port", str(free_port()), "--stop-after", "600"])
        procs.append(tracker)
        address = tracker_line.rsplit(" ", 1)[-1]
        server, server_line = _start(["rpc-server", "--port", str(free_port()), "--tracker", address, "--key", KEY,
                                      "--stop-after", "600"])
        procs.append(server)
        remote.wait_for_key(address, KEY, timeout_s=60)
        children = [c.pid for p in procs for c in psutil.Process(p.pid).children(recursive=True)]
        yield {"tracker": address, "tracker_proc": tracker, "server_proc": server, "server_line": server_line,
               "children": children}
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_servers_bind_loopback_and_stop_with_their_command(rpc_setup: dict) -> None:
    assert rpc_setup["tracker"].startswith("127.0.0.1:")
    assert "listening on 127.0.0.1:" in rpc_setup["server_line"]
    for name in ("tracker_proc", "server_proc"):
        addresses = _listen_addresses(rpc_setup[name].pid)
        assert addresses, f"{name} listens nowhere"
        assert {ip for ip, _ in addresses} == {"127.0.0.1"}, addresses
    assert rpc_setup["children"], "the commands run TVM's tracker/server in child processes"


def test_benchmark_remote_times_the_library_on_the_server(rpc_setup: dict, tiny_block: nn.Module,
                                                          tiny_input: np.ndarray, tmp_path: Path) -> None:
    library = lncompile.compile(tiny_block, "x86", example_input=tiny_input).export(tmp_path / "tiny.so")
    result = remote.benchmark_remote(library, rpc_setup["tracker"], KEY, repeat=20, number=2)
    assert set(result) == {"median", "p90"}
    assert 0 < result["median"] <= result["p90"] < 1000  # milliseconds; the tiny block runs in well under 1 s

    with pytest.raises(remote.RemoteError, match="no RPC server registered under key 'absent'"):
        remote.benchmark_remote(library, rpc_setup["tracker"], "absent")
    with pytest.raises(UsageError, match="HOST:PORT"):
        remote.benchmark_remote(library, "localhost", KEY)
    with pytest.raises(remote.RemoteError, match="cannot reach the RPC tracker"):
        remote.benchmark_remote(library, f"127.0.0.1:{free_port()}", KEY)
    library.with_suffix(".json").unlink()
    with pytest.raises(ModelFormatError, match="manifest"):
        remote.benchmark_remote(library, rpc_setup["tracker"], KEY)


def test_commands_stop_by_themselves_and_leave_no_process() -> None:
    proc, _line = _start(["rpc-tracker", "--port", str(free_port()), "--stop-after", "3"])
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        _stop(proc)
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in children):
        assert time.monotonic() < deadline, "the tracker's TVM process outlived the command"
        time.sleep(0.2)


def test_server_rejects_key_without_tracker() -> None:
    run = subprocess.run([sys.executable, "-m", "lncompile.cli", "rpc-server", "--key", "x"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "--tracker" in run.stderr and "Traceback" not in run.stderr
