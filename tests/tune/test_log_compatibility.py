"""Which tuning logs fit a build (lncompile.tune.logdb.incompatibility): the same TVM version, and the same
target or one whose CPU has every SIMD extension of the CPU the log was tuned on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lncompile.tune import logdb
from tests.tune.models import shipped_logs_sharing_kernels

X86 = {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "num-cores": 2}


def manifest_for(target: dict[str, Any]) -> dict[str, Any]:
    return {"format": logdb.FORMAT, "versions": logdb.versions(), "target": {"tvm_target": target}}


def test_the_same_target_fits() -> None:
    target = {**X86, "mcpu": "znver4"}
    assert logdb.incompatibility(manifest_for(target), dict(target)) is None
    assert logdb.tuned_for_another_cpu(manifest_for(target), target) is None


@pytest.mark.parametrize(("logged", "build"), [("znver4", "znver5"), ("haswell", "znver4"), ("x86-64", "haswell"),
                                                ("skylake-avx512", "sapphirerapids")])
def test_a_log_from_a_cpu_whose_simd_extensions_the_build_cpu_has_fits(logged: str, build: str) -> None:
    manifest = manifest_for({**X86, "mcpu": logged})
    assert logdb.incompatibility(manifest, {**X86, "mcpu": build}) is None
    assert logdb.tuned_for_another_cpu(manifest, {**X86, "mcpu": build}) == logged


@pytest.mark.parametrize(("logged", "build", "lacking"), [
    ("znver4", "haswell", "avx512f"),  # AVX-512 schedules on an AVX2 machine
    ("znver4", "skylake-avx512", "avx512vnni"),
    ("haswell", "x86-64", "avx2"),
])
def test_a_log_from_a_cpu_with_simd_extensions_the_build_cpu_lacks_is_refused(logged: str, build: str,
                                                                              lacking: str) -> None:
    why = logdb.incompatibility(manifest_for({**X86, "mcpu": logged}), {**X86, "mcpu": build})
    assert why is not None and f"mcpu='{logged}' (log) vs '{build}'" in why
    assert "this CPU lacks" in why and lacking in why.split("lacks", 1)[1].split(", ")
    assert "sse4a" not in why and "fast-" not in why  # extensions no kernel uses and tuning flags do not count


def test_a_cpu_of_another_architecture_is_refused() -> None:
    why = logdb.incompatibility(manifest_for({**X86, "mcpu": "cortex-a72"}), {**X86, "mcpu": "znver4"})
    assert why is not None and "LLVM knows no CPU 'cortex-a72' for x86_64-linux-gnu" in why


@pytest.mark.parametrize(("key", "value"), [("num-cores", 4), ("mtriple", "aarch64-linux-gnu"), ("kind", "cuda")])
def test_any_other_difference_is_refused(key: str, value: Any) -> None:
    build = {**X86, "mcpu": "znver4"}
    why = logdb.incompatibility(manifest_for({**build, key: value}), build)
    assert why is not None and why.startswith("it was tuned for another target") and key in why
    assert "lacks" not in why


def test_a_log_from_another_tvm_version_is_refused() -> None:
    manifest = manifest_for({**X86, "mcpu": "znver4"})
    manifest["versions"] = {**manifest["versions"], "apache-tvm": "0.19.0"}
    assert logdb.incompatibility(manifest, {**X86, "mcpu": "znver4"}) == (
        f"it was tuned with TVM 0.19.0 and this is TVM {logdb.versions()['apache-tvm']}")


def test_adding_timings_to_a_log_needs_the_same_cpu() -> None:
    manifest = manifest_for({**X86, "mcpu": "znver4"})
    why = logdb.incompatibility(manifest, {**X86, "mcpu": "znver5"}, same_cpu=True)
    assert why is not None and "timings from two CPUs cannot share one log" in why
    assert logdb.incompatibility(manifest, {**X86, "mcpu": "znver4"}, same_cpu=True) is None


def test_a_kernels_record_from_the_builds_own_cpu_ranks_before_a_faster_one_from_another(tmp_path: Path) -> None:
    """Two shipped logs sharing kernels: whichever log is flagged as tuned on another CPU gives way on every
    shared kernel, even where its record is the faster (timings from two CPUs do not compare)."""
    from lncompile.backend import tvm_api

    logs, best, modules, shared = shipped_logs_sharing_kernels(tmp_path)
    for own in (0, 1):
        other = 1 - own
        assert any(best[other][key] < best[own][key] for key in shared), "no shared kernel where the other is faster"
        db = tvm_api.memory_database()
        counts = logdb.load_into(db, logs, wanted=set(shared), other_cpu=[n == other for n in range(2)])
        assert [applied for _, _, applied, _ in counts] == [len(shared) if n == own else 0 for n in range(2)]
        for key in shared:
            seconds, _ = tvm_api.best_record_seconds(db, tvm_api.workload_module_json(modules[key]))
            assert seconds == pytest.approx(best[own][key])
