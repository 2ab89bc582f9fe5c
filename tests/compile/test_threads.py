"""TVM's CPU thread pool is sized as asked (not TVM's half-the-CPUs guess), and the benchmark's interleaving
keeps one engine's spinning threads out of the next engine's timing."""

from __future__ import annotations

import os
import subprocess
import sys

from lncompile.bench_cmd import interleaved, side_by_side


def _in_fresh_process(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                            timeout=120, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_set_runtime_threads_sizes_the_pool() -> None:
    # TVM's own default (config mode 0) capped the pool at half the logical CPUs: 1 on a 2-core machine.
    out = _in_fresh_process("import os; from lncompile.backend import tvm_api; tvm_api.set_runtime_threads(3); "
                            "print(tvm_api.runtime_threads(), os.environ['TVM_NUM_THREADS'])")
    assert out == "3 3"


def test_loading_a_library_uses_every_physical_core_by_default() -> None:
    out = _in_fresh_process("from lncompile.backend import tvm_api; tvm_api.default_runtime_threads(); "
                            "print(tvm_api.runtime_threads(), tvm_api.physical_cores())")
    pool, cores = out.split()
    assert pool == cores


def test_tvm_num_threads_from_the_user_wins() -> None:
    out = _in_fresh_process("from lncompile.backend import tvm_api; tvm_api.default_runtime_threads(); "
                            "print(tvm_api.runtime_threads())", TVM_NUM_THREADS="1")
    assert out == "1"


def test_interleaved_times_each_engine_in_settled_blocks_of_rotating_rounds() -> None:
    calls: list[str] = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    times = interleaved(runs, repeat=7, warmup=2, block=3, settle=1)
    assert {name: len(t) for name, t in times.items()} == {"a": 7, "b": 7, "c": 7}
    timed_part = calls[3 * 2:]  # after the warm-up: rounds of blocks (1 settle + up to 3 timed runs each)
    rounds = [timed_part[:12], timed_part[12:24], timed_part[24:]]
    assert rounds[0] == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert rounds[1] == ["b"] * 4 + ["c"] * 4 + ["a"] * 4  # rounds rotate which engine goes first
    assert rounds[2] == ["c"] * 2 + ["a"] * 2 + ["b"] * 2  # the last round times what is left: 1 run each


def test_side_by_side_times_torch_in_rounds_of_its_own() -> None:
    calls: list[str] = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("lncompile", "torch", "ort")}
    times = side_by_side(runs, repeat=3)
    assert {name: len(t) for name, t in times.items()} == {"lncompile": 3, "ort": 3, "torch": 3}
    first_torch = calls.index("torch")
    assert set(calls[:first_torch]) == {"lncompile", "ort"} and set(calls[first_torch:]) == {"torch"}
