"""Pre-packed weights: kernels whose weights are marked layout-free, tuned schedules that store them in the
order they read them, and logs tuned before the mark carried over (lncompile/tune/migrate.py).

A conv (3x3, bias, ReLU) and a classifier GEMV; tuning is real but tiny (2-3 trials per task, --quick; the
pre-packed log is the one test_in_situ reads too, tuned once per session).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lncompile.api import compile_imported
from lncompile.backend import tvm_api
from lncompile.errors import UsageError
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune import logdb
from lncompile.tune.migrate import migrate_to_packed_weights
from lncompile.tune.tasks import prepare
from tests.conftest import relative_error
from tests.tune.models import export_conv_and_classifier, tuned_conv_and_classifier

pytestmark = pytest.mark.slow

TUNE_ARGS = ["--trials-per-task", "2", "--trials-per-iter", "2", "--quick", "--builder-timeout", "240"]


def _x() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((1, 8, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    return export_conv_and_classifier(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def unpacked_preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The x86 preset with pre-packing off, as a user's preset file."""
    data = get_target("x86").to_json() | {"name": "x86-unpacked", "prepack_weights": False}
    for key in ("device", "host", "cross_compiler"):
        data.pop(key)
    path = tmp_path_factory.mktemp("preset") / "x86-unpacked.json"
    path.write_text(json.dumps(data))
    return path


def _tune(onnx_path: Path, log_dir: Path, *target: str) -> None:
    result = subprocess.run([sys.executable, "-m", "lncompile.cli", "tune", str(onnx_path), "--log-dir", str(log_dir),
                             *target, *TUNE_ARGS], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def packed_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tuned_conv_and_classifier(tmp_path_factory)  # x86 presets pre-pack by default


@pytest.fixture(scope="module")
def unpacked_log(model: tuple[Path, nn.Module], unpacked_preset: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    log_dir = tmp_path_factory.mktemp("unpacked") / "log"
    _tune(model[0], log_dir, "--target", str(unpacked_preset))
    return log_dir


def _layout_free_kernels(preset: object, onnx_path: Path) -> list[str]:
    problem = prepare("convfc", import_model(str(onnx_path)).graph, preset)
    return [str(t.task_name) for t in problem.tasks
            if "layout_free_buffers" in (tvm_api.task_workload_module(t)["main"].attrs or {})]


def test_x86_kernels_mark_their_weights_layout_free_and_other_presets_do_not(model: tuple[Path, nn.Module]) -> None:
    x86 = get_target("x86")
    marked = _layout_free_kernels(x86, model[0])
    assert any("conv2d" in name for name in marked) and any("matmul" in name for name in marked)
    assert _layout_free_kernels(dataclasses.replace(x86, prepack_weights=False), model[0]) == []


def test_tuned_schedules_store_the_weights_in_their_own_order_and_match_pytorch(
        packed_log: Path, model: tuple[Path, nn.Module]) -> None:
    onnx_path, module = model
    traces = [json.loads(line)[1][0] for line in (packed_log / logdb.RECORDS).read_text().splitlines()]
    assert any("meta_schedule.layout_rewrite_preproc" in json.dumps(t) for t in traces)
    problem = prepare("convfc", import_model(str(onnx_path)).graph, get_target("x86"))
    db = tvm_api.memory_database()
    logdb.load_into(db, [packed_log])
    applied, *_ = tvm_api.apply_database(problem.fused, problem.target, db)
    packed = tvm_api.pack_weights_now(applied, problem.target)
    # the re-layouts were folded into the constants: main calls the same kernels, none at run time
    assert len(tvm_api.kernel_call_order(packed)) == len(tvm_api.kernel_call_order(applied))
    # and no (weight, bias) tuple of a packer is left bound for the VM to build and take apart at run time
    assert "R.Tuple(" not in packed["main"].script()
    compiled = compile_imported(import_model(str(onnx_path)), "x86", tuning_log=packed_log)
    assert compiled.manifest["tuning"]["kernels_tuned"] == compiled.manifest["tuning"]["kernels"]
    with torch.no_grad():
        expected = module(torch.from_numpy(_x())).numpy()
    assert relative_error(compiled(_x()), expected) <= 1e-4


def test_a_log_tuned_without_packing_does_not_apply_to_packed_kernels(
        unpacked_log: Path, model: tuple[Path, nn.Module]) -> None:
    compiled = compile_imported(import_model(str(model[0])), "x86", tuning_log=unpacked_log)
    assert not (compiled.manifest["tuning"] or {}).get("kernels_tuned")


def test_migration_carries_every_schedule_over_and_the_build_matches_pytorch(
        unpacked_log: Path, model: tuple[Path, nn.Module], tmp_path: Path) -> None:
    onnx_path, module = model
    problem = prepare("convfc", import_model(str(onnx_path)).graph, get_target("x86"))
    done = migrate_to_packed_weights(problem, unpacked_log, tmp_path / "packed", top_k=4, threads=2,
                                     show_progress=False)
    assert done.failed == 0 and done.tasks_without_records == 0 and done.measured >= len(problem.tasks)
    manifest = json.loads((tmp_path / "packed" / logdb.MANIFEST).read_text())
    (entry,) = manifest["models"].values()
    assert entry["sessions"][-1] | {"migrated_to_packed_weights": done.measured, "measured_threads": 2} \
        == entry["sessions"][-1]
    assert all(task["best_ms"] is not None for task in entry["tasks"]) and done.after_ms == entry["estimated_ms"]
    # only measurements: every record of the new log was run with the packed weights (none carries old times)
    old_times = {tuple(r[1][1]) for r in map(json.loads, (unpacked_log / logdb.RECORDS).read_text().splitlines())}
    new_records = [json.loads(line) for line in (tmp_path / "packed" / logdb.RECORDS).read_text().splitlines()]
    assert len(new_records) == done.measured and not {tuple(r[1][1]) for r in new_records} & old_times
    compiled = compile_imported(import_model(str(onnx_path)), "x86", tuning_log=tmp_path / "packed")
    assert compiled.manifest["tuning"]["kernels_tuned"] == compiled.manifest["tuning"]["kernels"] == len(problem.tasks)
    with torch.no_grad():
        expected = module(torch.from_numpy(_x())).numpy()
    assert relative_error(compiled(_x()), expected) <= 1e-4


def test_migration_refuses_a_non_empty_destination_and_an_unpacked_preset(
        unpacked_log: Path, model: tuple[Path, nn.Module], tmp_path: Path) -> None:
    graph = import_model(str(model[0])).graph
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        migrate_to_packed_weights(prepare("convfc", graph, get_target("x86")), unpacked_log, tmp_path / "busy")
    unpacked = dataclasses.replace(get_target("x86"), prepack_weights=False)
    with pytest.raises(UsageError, match="does not pre-pack weights"):
        migrate_to_packed_weights(prepare("convfc", graph, unpacked), unpacked_log, tmp_path / "new")
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
