"""In-situ selection (lncompile/tune/in_situ.py): per kernel, the schedule that runs fastest inside the model,
recorded in the log's in_situ.json and applied by builds while it is not stale.

A conv (3x3, bias, ReLU) and a classifier GEMV; tuning is real but tiny (3 trials per task, --quick).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lncompile.api import compile_imported
from lncompile.backend import tvm_api
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune import logdb
from lncompile.tune.in_situ import ranked_schedules, select_in_situ
from lncompile.tune.tasks import prepare
from tests.conftest import cli_in_process, relative_error
from tests.tune.models import export_conv_and_classifier, tuned_conv_and_classifier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    return export_conv_and_classifier(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tuned_conv_and_classifier(tmp_path_factory)


def _copy(log_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(log_dir, tmp_path / "log"))


def _ranked(log_dir: Path) -> dict[str, list]:
    ranked = ranked_schedules(logdb.parse_log(log_dir), 2)
    assert sum(len(bodies) == 2 for bodies in ranked.values()) >= 2, "tuning gave too few distinct schedules"
    return ranked


def _write_choices(log_dir: Path, kernels: dict[str, dict]) -> None:
    (log_dir / logdb.IN_SITU).write_text(json.dumps({"format": logdb.IN_SITU_FORMAT, "kernels": kernels}))


def _expected(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def test_a_build_applies_the_schedule_chosen_in_situ_not_the_fastest(
        tuned: Path, model: tuple[Path, nn.Module], tmp_path: Path) -> None:
    log_dir = _copy(tuned, tmp_path)
    ranked = {h: bodies for h, bodies in _ranked(log_dir).items() if len(bodies) == 2}
    _write_choices(log_dir, {h: {"chosen": logdb.schedule_id(b[1]), "candidates": [logdb.schedule_id(x) for x in b]}
                             for h, b in ranked.items()})
    db = tvm_api.memory_database()
    ((workloads, _, applied, in_situ),) = logdb.load_into(db, [log_dir])
    assert in_situ == len(ranked) and applied == workloads
    for workload in logdb.parse_log(log_dir).workloads:
        if workload[0] in ranked:  # the record applied is the second fastest, with its own measured time
            seconds, _ = tvm_api.best_record_seconds(db, tvm_api.workload_module_json(workload))
            assert seconds == pytest.approx(logdb.mean_run_secs(ranked[workload[0]][1]))
    compiled = compile_imported(import_model(str(model[0])), "x86", tuning_log=log_dir)
    (log,) = compiled.manifest["tuning"]["logs"]
    assert log["in_situ_records"] == len(ranked)
    x = np.random.default_rng(3).standard_normal((1, 8, 16, 16)).astype(np.float32)
    assert relative_error(compiled(x), _expected(model[1], x)) <= 1e-4


def test_a_stale_choice_gives_way_to_the_fastest_record(tuned: Path, tmp_path: Path) -> None:
    """The fastest record is not among the schedules the choice compared (tuned since): the choice is stale."""
    log_dir = _copy(tuned, tmp_path)
    ranked = {h: bodies for h, bodies in _ranked(log_dir).items() if len(bodies) == 2}
    _write_choices(log_dir, {h: {"chosen": logdb.schedule_id(b[1]), "candidates": [logdb.schedule_id(b[1]), "0" * 16]}
                             for h, b in ranked.items()})
    db = tvm_api.memory_database()
    ((_, _, _, in_situ),) = logdb.load_into(db, [log_dir])
    assert in_situ == 0
    for workload in logdb.parse_log(log_dir).workloads:
        if workload[0] in ranked:
            seconds, _ = tvm_api.best_record_seconds(db, tvm_api.workload_module_json(workload))
            assert seconds == pytest.approx(logdb.mean_run_secs(ranked[workload[0]][0]))


@pytest.mark.parametrize("choices_from_another_cpu", [False, True])
def test_a_choice_timed_on_another_cpu_does_not_overrule_this_cpus_records(
        tuned: Path, tmp_path: Path, choices_from_another_cpu: bool) -> None:
    """Two logs with the same records, the second holding in-situ choices: they apply while both logs are of the
    build's CPU, and not when the choices' log is of another CPU (its timings, in situ too, are from there)."""
    own = Path(shutil.copytree(tuned, tmp_path / "own"))
    other = _copy(tuned, tmp_path)
    ranked = {h: bodies for h, bodies in _ranked(other).items() if len(bodies) == 2}
    _write_choices(other, {h: {"chosen": logdb.schedule_id(b[1]), "candidates": [logdb.schedule_id(x) for x in b]}
                           for h, b in ranked.items()})
    db = tvm_api.memory_database()
    counts = logdb.load_into(db, [own, other], ranks=[0, int(choices_from_another_cpu)])
    assert sum(in_situ for _, _, _, in_situ in counts) == (0 if choices_from_another_cpu else len(ranked))
    for workload in logdb.parse_log(own).workloads:
        if workload[0] in ranked:
            seconds, _ = tvm_api.best_record_seconds(db, tvm_api.workload_module_json(workload))
            assert seconds == pytest.approx(logdb.mean_run_secs(ranked[workload[0]][int(not choices_from_another_cpu)]))


@pytest.mark.parametrize("text", ["{not json", json.dumps({"format": "other/1", "kernels": {}}),
                                  json.dumps({"format": logdb.IN_SITU_FORMAT,
                                              "kernels": {"123": {"chosen": "a", "candidates": ["b"]}}})])
def test_an_unreadable_choice_file_is_ignored_with_a_warning(tuned: Path, tmp_path: Path, text: str) -> None:
    log_dir = _copy(tuned, tmp_path)
    (log_dir / logdb.IN_SITU).write_text(text)
    with pytest.warns(logdb.TuningLogWarning, match="ignored in_situ.json"):
        ((workloads, _, applied, in_situ),) = logdb.load_into(tvm_api.memory_database(), [log_dir])
    assert (applied, in_situ) == (workloads, 0)


def test_selection_times_the_schedules_inside_the_model_and_writes_only_a_faster_choice(
        tuned: Path, model: tuple[Path, nn.Module], tmp_path: Path) -> None:
    log_dir = _copy(tuned, tmp_path)
    ranked = _ranked(log_dir)
    imported = import_model(str(model[0]))
    problem = prepare("convfc", imported.graph, get_target("x86"))
    done = select_in_situ(problem, imported, log_dir, top_k=2, threads=2, blocks=2, replays=2, repeat=20,
                          show_progress=False)
    assert done.kernels == sum(len(bodies) == 2 for bodies in ranked.values())
    assert done.baseline_ms > 0 and done.chosen_ms > 0
    faster = done.chosen_ms < done.baseline_ms and done.changed > 0
    assert done.written == (log_dir / logdb.IN_SITU).is_file() == faster
    if done.written:  # timing decides which branch runs; both leave a log that builds and matches PyTorch
        data = json.loads((log_dir / logdb.IN_SITU).read_text())
        assert len(data["kernels"]) == done.kernels
        assert all(k["chosen"] in k["candidates"] and len(k["in_situ_us"]) == 2 for k in data["kernels"].values())
        (entry,) = data["models"].values()
        assert entry["threads"] == 2 and entry["latency_ms"]["in_situ_choices"] == round(done.chosen_ms, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = compile_imported(imported, "x86", tuning_log=log_dir)
    (log,) = compiled.manifest["tuning"]["logs"]
    assert log["in_situ_records"] == (done.kernels if done.written else 0)
    x = np.random.default_rng(4).standard_normal((1, 8, 16, 16)).astype(np.float32)
    assert relative_error(compiled(x), _expected(model[1], x)) <= 1e-4


@pytest.mark.parametrize("args, message", [
    (["--in-situ", "1"], "at least 2 schedules"),
    (["--in-situ", "2", "--rpc", "127.0.0.1:9190", "--key", "k"], "cannot be combined with --rpc"),
    (["--in-situ", "2", "--rerank", "2"], "separate steps"),
])
def test_in_situ_cli_errors_are_one_line(tuned: Path, model: tuple[Path, nn.Module], tmp_path: Path,
                                         args: list[str], message: str, capfd: pytest.CaptureFixture[str]) -> None:
    log_dir = _copy(tuned, tmp_path)
    before = sorted(p.name for p in log_dir.iterdir())
    code, lines, _ = cli_in_process(["tune", model[0], "--log-dir", log_dir, *args], capfd)
    assert code != 0 and message in "".join(lines)
    assert len([line for line in lines if line.startswith("lncompile: error:")]) == 1
    assert sorted(p.name for p in log_dir.iterdir()) == before


def test_in_situ_without_a_log_says_tune_first(model: tuple[Path, nn.Module], tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = cli_in_process(["tune", model[0], "--log-dir", tmp_path / "none", "--in-situ", "3"], capfd)
    assert code != 0 and "holds no tuning log" in lines[-1] and "tune first" in lines[-1]
    assert not (tmp_path / "none").exists()
