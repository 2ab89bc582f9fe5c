"""The tuner's start-up fixes for MetaSchedule's processes (lncompile/tune/_worker_site/sitecustomize.py):
while tuning for a target, importing TVM's tensorization-intrinsics package registers that target's
intrinsics only, in a fresh worker process and in the tuner's own; afterwards the tuner's process gets the
whole package again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lncompile.backend import tvm_api
from lncompile.backend.build import resolve_target_json
from lncompile.targets import get as get_target
from lncompile.tune.tuner import measured_with_threads, worker_startup_fix
from lncompile.tune.worker_site import WORKER_SITE

PACKAGE = tvm_api.TENSOR_INTRINSICS_PACKAGE
# what a MetaSchedule worker does: import the package, then look for the modules it ran
WORKER = f"import sys, {PACKAGE}; print(sorted(m for m in sys.modules if m.startswith('{PACKAGE}.')))"


@pytest.mark.parametrize(("preset", "expected"), [("x86", ("x86",)), ("rpi4", ("arm_cpu",)), ("cuda", ("cuda",))])
def test_each_target_names_the_intrinsics_its_schedule_rules_use(preset: str, expected: tuple[str, ...]) -> None:
    assert tvm_api.tensor_intrinsic_modules(resolve_target_json(get_target(preset))) == expected


def test_an_unknown_target_kind_imports_all_intrinsics() -> None:
    assert tvm_api.tensor_intrinsic_modules({"kind": "rocm"}) is None


def test_a_worker_started_while_tuning_for_x86_registers_x86_intrinsics_only() -> None:
    with worker_startup_fix(resolve_target_json(get_target("x86"))):
        worker = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, env=dict(os.environ))
    assert worker.returncode == 0, worker.stderr[-2000:]
    imported = json.loads(worker.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert f"{PACKAGE}.x86" in imported and f"{PACKAGE}.cuda" not in imported


def test_a_worker_started_while_tuning_imports_tvm_without_torch() -> None:
    """tvm_ffi imports torch whenever it can, and that was most of a worker's start; workers never use it."""
    probe = "import sys, tvm; from tvm.s_tir import meta_schedule; print('torch' in sys.modules)"
    with worker_startup_fix(resolve_target_json(get_target("x86"))):
        worker = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=dict(os.environ))
        assert not any(getattr(f, "lncompile_no_torch", False) for f in sys.meta_path)  # the tuner keeps torch
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert worker.stdout.strip().splitlines()[-1] == "False"


def test_without_a_target_a_worker_imports_the_whole_package() -> None:
    with worker_startup_fix():
        worker = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, env=dict(os.environ))
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert f"{PACKAGE}.cuda" in worker.stdout


def test_the_tuners_process_gets_the_whole_package_after_tuning_for_one_target() -> None:
    script = f"""
import sys
from lncompile.tune.tuner import measured_with_threads, worker_startup_fix
from lncompile.tune.worker_site import WORKER_SITE
with worker_startup_fix({{"kind": "llvm", "mtriple": "x86_64-linux-gnu"}}):
    import {PACKAGE}
    inside = "{PACKAGE}.cuda" in sys.modules
import {PACKAGE}
print(inside, "{PACKAGE}.cuda" in sys.modules, "{PACKAGE}.x86" in sys.modules)
"""
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.split()[-3:] == ["False", "True", "True"]


def test_the_environment_is_restored_after_tuning_even_when_it_fails() -> None:
    before = {name: os.environ.get(name) for name in ("PYTHONPATH", "LNCOMPILE_IMPORT_ONLY", "TVM_NUM_THREADS")}
    x86 = {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}
    with pytest.raises(RuntimeError, match="stop"), worker_startup_fix(x86), measured_with_threads(3, force=True):
        assert os.environ["LNCOMPILE_IMPORT_ONLY"] == f"{PACKAGE}=x86"
        assert os.environ["TVM_NUM_THREADS"] == "3"
        assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(WORKER_SITE)
        raise RuntimeError("stop")
    assert {name: os.environ.get(name) for name in before} == before


def test_build_workers_serve_every_round_and_stop_when_closed() -> None:
    """TVM's LocalBuilder starts (and imports TVM in) fresh workers for every round; ours start once."""
    target_json = resolve_target_json(get_target("x86"))
    builder = tvm_api.ms_local_builder(None, timeout_s=120, max_workers=1)
    runner = tvm_api.local_runner(min_repeat_ms=0)
    try:
        assert builder.worker_pids() == set()
        with worker_startup_fix(target_json):
            first = tvm_api.ms_measure_vector_add(builder, runner, target_json)
            workers = builder.worker_pids()
            second = tvm_api.ms_measure_vector_add(builder, runner, target_json, n=8192)
        assert len(workers) == 1 and builder.worker_pids() == workers
        assert all(s > 0 for s in first + second)
    finally:
        builder.close()
    assert builder.worker_pids() == set()
    pid = workers.pop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
