"""MetaSchedule tuning end to end on a two-kernel net: log directory, resume, applying logs, refusals, bench.

Tuning is real (MetaSchedule builds and measures candidates here) but tiny: 3 tasks, 2 trials each, the
`--quick` search. Most of the time goes into MetaSchedule's worker processes starting up.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile.tune import logdb
from lncompile.tune.curve import tuning_curve
from tests.conftest import cli_in_process, relative_error
from tests.tune.models import shipped_logs_sharing_kernels

pytestmark = pytest.mark.slow

TUNE_ARGS = ["--trials-per-task", "2", "--trials-per-iter", "2", "--quick", "--builder-timeout", "240"]


def lncompile_cli(*args: str) -> subprocess.CompletedProcess:
    """``lncompile tune``: in a process of its own, as users run it (the tuner sets up its worker processes)."""
    return subprocess.run([sys.executable, "-m", "lncompile.cli", *args], capture_output=True, text=True)


class TwoKernels(nn.Module):
    """conv3x3 + bias + ReLU (one fused kernel) and a global max (another; a global mean would be scheduled by
    hand in the x86 presets, no task)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)  # 8 channels: over 3 it would be a hand-scheduled stem, no task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).amax((2, 3))


@pytest.fixture(scope="module")
def model_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    module = TwoKernels().eval()
    path = tmp_path_factory.mktemp("model") / "twokernels.onnx"
    torch.onnx.export(module, (torch.randn(1, 8, 16, 16),), str(path), dynamo=False, opset_version=13,
                      input_names=["x"])
    return path, module


@pytest.fixture(scope="module")
def tuned(model_onnx: tuple[Path, nn.Module], tmp_path_factory: pytest.TempPathFactory) -> Path:
    log_dir = tmp_path_factory.mktemp("tune") / "log"
    result = lncompile_cli("tune", str(model_onnx[0]), "--log-dir", str(log_dir), *TUNE_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    # conv+relu and max; x86 presets are NHWC, so the NCHW input's layout change is a third kernel
    assert "3 tasks" in result.stderr and "6 trials" in result.stdout
    return log_dir


def _copy(log_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "log"
    shutil.copytree(log_dir, copy, ignore=shutil.ignore_patterns("logs"))
    return copy


def test_log_dir_holds_database_and_manifest(tuned: Path) -> None:
    records = (tuned / logdb.RECORDS).read_text().splitlines()
    workloads = (tuned / logdb.WORKLOADS).read_text().splitlines()
    assert len(workloads) == 3 and len(records) == 6
    manifest = json.loads((tuned / logdb.MANIFEST).read_text())
    assert set(manifest["versions"]) == {"apache-tvm", "apache-tvm-ffi", "llvm"}
    assert manifest["target"]["tvm_target"]["kind"] == "llvm" and manifest["trials"] == 6
    (model,) = manifest["models"].values()
    assert len(model["tasks"]) == 3 and all(t["best_ms"] > 0 and t["records"] == 2 for t in model["tasks"])
    assert {t["workload_hash"] for t in model["tasks"]} == {json.loads(w)[0] for w in workloads}
    curve = tuning_curve(tuned)
    assert curve and curve[-1][0] == 6 and curve[-1][1] == pytest.approx(model["estimated_ms"], rel=1e-3)


def test_build_applies_log_and_still_matches_pytorch(tuned: Path, model_onnx: tuple[Path, nn.Module],
                                                      tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    onnx_path, module = model_onnx
    code, lines, _ = cli_in_process(["build", onnx_path, "--tuning-log", tuned, "-o", tmp_path], capfd)
    assert code == 0, lines
    assert any(f"applied tuning log {tuned} (6 records): 3 of 3 kernels" in line for line in lines), lines
    library = tmp_path / "twokernels-x86.so"
    manifest = json.loads(library.with_suffix(".json").read_text())
    assert manifest["tuning"]["kernels_tuned"] == 3 and manifest["tuning"]["logs"][0]["records"] == 6
    x = np.random.default_rng(1).standard_normal((1, 8, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert relative_error(lncompile.load(library)(x), expected) <= 1e-4


def test_rerun_resumes_from_the_database(tuned: Path, model_onnx: tuple[Path, nn.Module], tmp_path: Path) -> None:
    log_dir = _copy(tuned, tmp_path)
    before = (log_dir / logdb.RECORDS).read_text().splitlines()
    result = lncompile_cli("tune", str(model_onnx[0]), "--log-dir", str(log_dir), "--trials", "2", *TUNE_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    after = (log_dir / logdb.RECORDS).read_text().splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + 2  # kept, then appended
    assert len((log_dir / logdb.WORKLOADS).read_text().splitlines()) == 3  # same workloads, not duplicated
    manifest = json.loads((log_dir / logdb.MANIFEST).read_text())
    (model,) = manifest["models"].values()
    assert manifest["trials"] == model["trials"] == 8 and [s["trials"] for s in model["sessions"]] == [6, 2]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("apache-tvm", "0.19.0", "tuned with TVM 0.19.0"),
    ("mcpu", "cortex-a72", "mcpu='cortex-a72' (log)"),
])
def test_log_for_another_tvm_or_target_is_refused(tuned: Path, model_onnx: tuple[Path, nn.Module], tmp_path: Path,
                                                  field: str, value: str, reason: str) -> None:
    log_dir = _copy(tuned, tmp_path)
    manifest = json.loads((log_dir / logdb.MANIFEST).read_text())
    if field == "apache-tvm":
        manifest["versions"][field] = value
    else:
        manifest["target"]["tvm_target"][field] = value
    (log_dir / logdb.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(logdb.TuningLogError, match=f"refusing tuning log .*{re.escape(reason)}") as info:
        lncompile.compile(str(model_onnx[0]), "x86", tuning_log=log_dir)
    assert "\n" not in str(info.value)


def test_log_tuned_on_a_cpu_with_fewer_simd_extensions_applies_and_says_so(
        tuned: Path, model_onnx: tuple[Path, nn.Module], tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from lncompile.backend import tvm_api

    if tvm_api.host_cpu_name() == "x86-64":
        pytest.skip("this host is LLVM's baseline x86-64: no other CPU with fewer extensions to pretend")
    log_dir = _copy(tuned, tmp_path)
    manifest = json.loads((log_dir / logdb.MANIFEST).read_text())
    manifest["target"]["tvm_target"]["mcpu"] = "x86-64"  # SSE2 only: every x86-64 CPU has its extensions
    (log_dir / logdb.MANIFEST).write_text(json.dumps(manifest))
    code, lines, _ = cli_in_process(["build", model_onnx[0], "--tuning-log", log_dir, "-o", tmp_path], capfd)
    assert code == 0, lines
    stderr = "\n".join(lines)
    assert "3 of 3 kernels (tasks) tuned" in stderr and "schedules tuned on x86-64" in stderr
    library = tmp_path / "twokernels-x86.so"
    assert json.loads(library.with_suffix(".json").read_text())["tuning"]["logs"][0]["tuned_on"] == "x86-64"
    x = np.random.default_rng(3).standard_normal((1, 8, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = model_onnx[1](torch.from_numpy(x)).numpy()
    assert relative_error(lncompile.load(library)(x), expected) <= 1e-4


def test_loading_a_log_decodes_only_each_workloads_best_record(tuned: Path, tmp_path: Path) -> None:
    from lncompile.backend import tvm_api

    log_dir = _copy(tuned, tmp_path)
    lines = (log_dir / logdb.RECORDS).read_text().splitlines()
    slowest = max(lines, key=lambda line: logdb.mean_run_secs(json.loads(line)[1]))
    index, body = json.loads(slowest)
    failed = [index, [body[0], [1e10], *body[2:]]]  # a candidate that failed to run: never the best
    (log_dir / logdb.RECORDS).write_text("\n".join([*lines, json.dumps(failed)]) + "\n")
    workloads = (log_dir / logdb.WORKLOADS).read_text().splitlines()
    db = tvm_api.memory_database()
    assert logdb.load_into(db, [log_dir]) == [(3, 6, 3, 0)]  # 3 workloads, 6 valid records, 3 applied
    assert logdb.load_into(tvm_api.memory_database(), [log_dir], wanted={json.loads(workloads[0])[0]})[0][:2] == (1, 2)
    best = {}
    for line in lines:
        index, body = json.loads(line)
        best[index] = min(best.get(index, float("inf")), logdb.mean_run_secs(body))
    for index, workload in enumerate(workloads):
        seconds, count = tvm_api.best_record_seconds(db, tvm_api.workload_module_json(json.loads(workload)))
        assert count == 1 and seconds == pytest.approx(best[index], rel=1e-9)


def test_corrupt_lines_are_skipped_with_a_warning(tuned: Path, model_onnx: tuple[Path, nn.Module],
                                                  tmp_path: Path) -> None:
    log_dir = _copy(tuned, tmp_path)
    lines = (log_dir / logdb.RECORDS).read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # a write cut short
    lines.append("not json at all")
    (log_dir / logdb.RECORDS).write_text("\n".join(lines) + "\n")
    with pytest.warns(logdb.TuningLogWarning, match="skipped 2 corrupt line"):
        compiled = lncompile.compile(str(model_onnx[0]), "x86", tuning_log=log_dir)
    assert compiled.manifest["tuning"]["logs"][0]["records"] == 5 and compiled.manifest["tuning"]["kernels_tuned"] == 3
    x = np.random.default_rng(2).standard_normal((1, 8, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = model_onnx[1](torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-4


def test_bench_json_shape(tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, lines, out = cli_in_process(["bench", "mobilenet_v1", "--width-mult", "0.25", "--resolution", "32",
                                       "--repeat", "3", "--threads", "1", "--json"], capfd)
    assert code == 0, lines
    report = json.loads(out)
    assert report["model"] == "mobilenet_v1" and report["target"] == "x86" and report["threads"] == 1
    assert set(report["latency_ms"]) == {"lncompile", "torch", "ort"}
    for stats in report["latency_ms"].values():
        assert set(stats) == {"median", "p90"} and 0 < stats["median"] <= stats["p90"]
    for engine in ("torch", "ort"):
        expected = report["latency_ms"]["lncompile"]["median"] / report["latency_ms"][engine]["median"]
        assert report["ratios"][f"lncompile/{engine}"] == pytest.approx(expected, rel=1e-2)


def test_a_kernel_two_shipped_logs_share_gets_the_faster_record_without_warnings(tmp_path: Path) -> None:
    """efficientnet_b0 and mnasnet_a1 share kernels (one hash) whose blocks carry each model's own variable
    names; each record must be replayed on its own log's module, so neither log's records are 'corrupt'."""
    import warnings

    from lncompile.backend import tvm_api

    logs, best, modules, shared = shipped_logs_sharing_kernels(tmp_path)
    db = tvm_api.memory_database()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counts = logdb.load_into(db, logs, wanted=set(shared))
    assert sum(applied for _, _, applied, _ in counts) == len(shared)
    for key in shared:
        seconds, _ = tvm_api.best_record_seconds(db, tvm_api.workload_module_json(modules[key]))
        assert seconds == pytest.approx(min(best[0][key], best[1][key]))


def test_rerank_remeasures_each_tasks_best_schedules_on_the_given_threads(
        tuned: Path, model_onnx: tuple[Path, nn.Module], tmp_path: Path) -> None:
    log_dir = _copy(tuned, tmp_path)
    before = [json.loads(line) for line in (log_dir / logdb.RECORDS).read_text().splitlines()]
    result = lncompile_cli("tune", str(model_onnx[0]), "--log-dir", str(log_dir), "--rerank", "1", "--threads", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "re-measured 3 schedules on 2 thread(s)" in result.stdout
    after = [json.loads(line) for line in (log_dir / logdb.RECORDS).read_text().splitlines()]
    assert after[:len(before)] == before and len(after) == len(before) + 3  # kept, then one per task appended
    for workload, record in after[len(before):]:
        old = [r for w, r in before if w == workload]
        best = min(old, key=lambda r: sum(r[1]) / len(r[1]))
        assert record[0] == best[0] and record[1] != best[1]  # the best trace, with new measurements
    manifest = json.loads((log_dir / logdb.MANIFEST).read_text())
    (model,) = manifest["models"].values()
    assert model["trials"] == 6  # re-measuring is not searching
    assert model["sessions"][-1] | {"reranked_top_k": 1, "measured_threads": 2} == model["sessions"][-1]


def test_rerank_from_a_log_of_another_cpu_starts_a_log_for_this_one(
        tuned: Path, model_onnx: tuple[Path, nn.Module], tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    def relabelled(cpu: str) -> tuple[Path, dict, list]:
        """A copy of the tuned log as if tuned on ``cpu``, timings and all."""
        log = Path(shutil.copytree(tuned, tmp_path / cpu))
        manifest = json.loads((log / logdb.MANIFEST).read_text())
        manifest["target"]["tvm_target"]["mcpu"] = manifest["target"]["tuning_target"]["mcpu"] = cpu
        (log / logdb.MANIFEST).write_text(json.dumps(manifest))
        lines = [json.loads(line) for line in (log / logdb.RECORDS).read_text().splitlines()]
        for _, record in lines:
            record[2]["mcpu"] = cpu
        (log / logdb.RECORDS).write_text("".join(json.dumps(line) + "\n" for line in lines))
        return log, manifest, lines

    this_cpu = json.loads((tuned / logdb.MANIFEST).read_text())["target"]["tvm_target"]["mcpu"]
    other, manifest, lines = relabelled("x86-64")  # LLVM's baseline: this CPU has all its extensions
    wider, _, _ = relabelled("diamondrapids")  # AMX, AVX10.2: extensions this CPU lacks, still a fine source
    ported = tmp_path / "ported"
    result = lncompile_cli("tune", str(model_onnx[0]), "--log-dir", str(ported), "--rerank", "1", "--from", str(other),
                           "--from", str(wider))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "re-measured 3 schedules" in result.stdout  # the same 3 schedules in both logs: measured once
    new = [json.loads(line) for line in (ported / logdb.RECORDS).read_text().splitlines()]
    assert len(new) == 3  # each task's best schedule of the other log, measured here
    best_traces = {json.dumps(min((r for w, r in lines if w == workload), key=lambda r: sum(r[1]))[0])
                   for workload in {w for w, _ in lines}}
    assert {json.dumps(record[0]) for _, record in new} == best_traces
    assert all(record[2]["mcpu"] == this_cpu for _, record in new)
    (model,) = json.loads((ported / logdb.MANIFEST).read_text())["models"].values()
    assert model["sessions"][-1]["from"] == [str(other), str(wider)] and model["trials"] == 0
    assert all(task["best_ms"] is not None for task in model["tasks"])
    assert not logdb.incompatibility(json.loads((ported / logdb.MANIFEST).read_text()),
                                     {**manifest["target"]["tvm_target"], "mcpu": this_cpu}, same_cpu=True)

    code, _, out = cli_in_process(["tune", model_onnx[0], "--log-dir", ported, "--rerank", "1", "--from", other], capfd)
    assert code == 0 and "re-measured 0 schedules" in out  # what the log holds is not measured again
    assert len((ported / logdb.RECORDS).read_text().splitlines()) == 3


def test_a_schedule_is_carried_to_another_log_only_onto_a_kernel_it_replays_on(tuned: Path) -> None:
    """rerank --from files each source schedule under the model's own kernel, and only if its trace replays
    there: the same kernel from another model names its blocks otherwise, and a database keeps one module per
    structure, so a record filed under the wrong copy could never be loaded (TVM refuses the whole log)."""
    from lncompile.backend import tvm_api

    source = tvm_api.json_database(str(tuned))
    modules = [tvm_api.workload_module_json(w) for w in logdb.parse_log(tuned).workloads]
    target = tvm_api.memory_database()
    for mod in modules:
        (record,) = [group[0] for group in tvm_api.distinct_top_records(source, mod, 1)]
        carried = tvm_api.replayed_on(target, record, mod)
        assert carried is not None and str(carried.trace) == str(record.trace)
        others = [m for m in modules if tvm_api.workload_hash(m) != tvm_api.workload_hash(mod)]
        assert all(tvm_api.replayed_on(target, record, other) is None for other in others)


@pytest.mark.parametrize("args, message", [
    (["--from", "{tmp}/none"], "goes with --rerank"),
    (["--rerank", "1", "--from", "{tmp}/none"], "no tuning log there"),
])
def test_rerank_from_fails_in_one_line(model_onnx: tuple[Path, nn.Module], tmp_path: Path,
                                       capfd: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    argv = ["tune", model_onnx[0], "--log-dir", tmp_path / "log", *(a.format(tmp=tmp_path) for a in args)]
    code, lines, _ = cli_in_process(argv, capfd)
    assert code != 0 and message in lines[-1]
    assert not (tmp_path / "log").exists()


def test_rerank_without_a_log_fails_in_one_line(model_onnx: tuple[Path, nn.Module], tmp_path: Path,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = cli_in_process(["tune", model_onnx[0], "--log-dir", tmp_path / "none", "--rerank", "4"], capfd)
    assert code != 0
    assert lines[-1].endswith("holds no tuning log to re-rank; tune first")
    assert not (tmp_path / "none").exists()
