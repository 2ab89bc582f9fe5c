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


@pytest.mark.parametrize(("logged", "build", "fallback"), [
    ("znver4", "haswell", "avx512f"),  # refused above, but may fill in kernels no fitting log has
    ("haswell", "x86-64", "avx2"),
    ("haswell", "znver4", None),  # it fits: no fallback needed
    ("cortex-a72", "znver4", None),  # LLVM knows no such x86 CPU
])
def test_only_a_log_whose_cpu_has_more_extensions_serves_as_a_fallback(logged: str, build: str,
                                                                       fallback: str | None) -> None:
    why = logdb.fallback_only(manifest_for({**X86, "mcpu": logged}), {**X86, "mcpu": build})
    assert why is None if fallback is None else (why.startswith("this CPU lacks") and fallback in why)


@pytest.mark.parametrize(("key", "value"), [("num-cores", 4), ("mtriple", "aarch64-linux-gnu"), ("kind", "cuda")])
def test_a_log_differing_in_more_than_the_cpu_is_no_fallback(key: str, value: Any) -> None:
    manifest = manifest_for({**X86, "mcpu": "znver4", key: value})
    assert logdb.fallback_only(manifest, {**X86, "mcpu": "haswell"}) is None
    old_tvm = manifest_for({**X86, "mcpu": "znver4"})
    old_tvm["versions"] = {**old_tvm["versions"], "apache-tvm": "0.19.0"}
    assert logdb.fallback_only(old_tvm, {**X86, "mcpu": "haswell"}) is None


def test_a_fallback_log_fills_in_only_the_kernels_no_nearer_log_has(tmp_path: Path) -> None:
    """Ranks 0 and 2 (the build's CPU, a CPU with more extensions): on shared kernels the nearer log's records
    apply even where the fallback's are faster; the fallback's other kernels still get its records."""
    from lncompile.backend import tvm_api

    logs, best, modules, shared = shipped_logs_sharing_kernels(tmp_path)
    db = tvm_api.memory_database()
    counts = logdb.load_into(db, logs, ranks=[0, 2])
    assert [applied for _, _, applied, _ in counts] == [len(best[0]), len(set(best[1]) - set(best[0]))]
    for key in best[1]:
        seconds, _ = tvm_api.best_record_seconds(db, tvm_api.workload_module_json(modules[key]))
        assert seconds == pytest.approx(best[0][key] if key in shared else best[1][key])


@pytest.mark.parametrize("preset", ["x86", "x86-avx2"])
def test_shipped_logs_serve_a_cpu_without_their_extensions_as_fallbacks(preset: str) -> None:
    """The shipped x86 logs were tuned on AVX-512 CPUs; an AVX2-only build still applies them, as fallbacks
    (the x86 preset on a Haswell, or the x86-avx2 preset, which takes the x86 preset's logs)."""
    from lncompile.backend.build import resolve_target_json
    from lncompile.targets import get as get_target
    from lncompile.tune.apply import select_logs, shipped_log_dirs

    chosen = get_target(preset)
    target_json = {**resolve_target_json(chosen), "mcpu": "haswell"}
    selected = select_logs(chosen, target_json, None)
    assert selected is not None and not selected.not_applied
    assert [log.path for log in selected.usable] == shipped_log_dirs("x86") != []
    assert all(log.rank == 2 and log.fallback and "avx512f" in log.fallback for log in selected.usable)


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
        counts = logdb.load_into(db, logs, wanted=set(shared), ranks=[int(n == other) for n in range(2)])
        assert [applied for _, _, applied, _ in counts] == [len(shared) if n == own else 0 for n in range(2)]
        for key in shared:
            seconds, _ = tvm_api.best_record_seconds(db, tvm_api.workload_module_json(modules[key]))
            assert seconds == pytest.approx(best[own][key])


def test_a_build_says_how_many_kernels_a_fallback_log_supplied() -> None:
    from lncompile.tune.report import describe_tuning

    lacks = "this CPU lacks avx512bw, avx512cd, avx512dq, avx512f, avx512vl"
    logs = [{"path": "own", "shipped": True, "records": 9, "best_records": 7},
            {"path": "wide", "shipped": True, "records": 5, "best_records": 2, "tuned_on": "znver4",
             "fallback": lacks},
            {"path": "unused", "shipped": True, "records": 3, "best_records": 0, "tuned_on": "znver5",
             "fallback": lacks},
            {"path": "outranked", "shipped": True, "records": 1, "best_records": 0, "tuned_on": "znver3"}]
    (line,) = describe_tuning({"logs": logs, "kernels_tuned": 9, "kernels": 10})
    assert line.startswith("applied shipped tuning log own, wide (14 records; 2 more read, no record of theirs "
                           "applied): 9 of 10 kernels (tasks) tuned")
    assert line.endswith("; 2 of them with schedules tuned on znver4 for want of a log for this CPU (this CPU lacks "
                         "avx512bw, avx512cd, avx512dq and 2 more; `lncompile tune` tunes for it)")
    # a fallback log is not also reported as merely another CPU's, nor one whose records all gave way
    assert "a CPU other than this build's" not in line and "znver3" not in line and "znver5" not in line
