"""Small models the tuning tests tune for real (a few trials each), and copies of shipped logs to load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from filelock import FileLock
from torch import nn


class ConvAndClassifier(nn.Module):
    """A conv (3x3, bias, ReLU) and a classifier GEMV: two kernels with weights to pre-pack."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)  # 8 channels: over 3 it would be a hand-scheduled stem, no task
        self.fc = nn.Linear(16, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def export_conv_and_classifier(directory: Path) -> tuple[Path, nn.Module]:
    """ConvAndClassifier (seeded weights) as ``directory/convfc.onnx``, and the module itself."""
    torch.manual_seed(0)
    module = ConvAndClassifier().eval()
    path = directory / "convfc.onnx"
    torch.onnx.export(module, (torch.randn(1, 8, 16, 16),), str(path), dynamo=False, opset_version=13,
                      input_names=["x"])
    return path, module


def tuned_conv_and_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of ``lncompile tune convfc.onnx`` (3 trials per task, --quick), tuned once per test session and
    shared by the test files that only read it (test_prepack, test_in_situ), across pytest-xdist workers.

    The log is renamed into place when complete, so a worker never reads another's half-written one.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: the run's own root
    folder, log_dir = shared / "convfc-tuned", shared / "convfc-tuned" / "log"
    with FileLock(str(shared / "convfc-tuned.lock")):
        if not log_dir.is_dir():
            folder.mkdir(exist_ok=True)
            onnx_path, _ = export_conv_and_classifier(folder)
            partial = folder / "log.partial"
            shutil.rmtree(partial, ignore_errors=True)
            result = subprocess.run([sys.executable, "-m", "lncompile.cli", "tune", str(onnx_path), "--log-dir",
                                     str(partial), "--trials-per-task", "3", "--trials-per-iter", "3", "--quick",
                                     "--builder-timeout", "240"], capture_output=True, text=True)
            assert result.returncode == 0, result.stderr[-3000:]
            partial.rename(log_dir)
    return log_dir


def shipped_logs_sharing_kernels(directory: Path) -> tuple[list[Path], list[dict[str, float]], dict[str, Any],
                                                           list[str]]:
    """Copies of the efficientnet_b0 and mnasnet_a1 shipped x86 logs (databases and manifests only: no in-situ
    choice) in ``directory``: (log dirs, per log each workload's fastest mean seconds, each workload's line,
    the workload hashes both logs hold)."""
    from lncompile.tune import logdb
    from lncompile.tune.apply import shipped_dir

    logs, best, modules = [], [], {}
    for name in ("efficientnet_b0", "mnasnet_a1"):
        (directory / name).mkdir()
        for file in (logdb.WORKLOADS, logdb.RECORDS, logdb.MANIFEST):
            shutil.copy(shipped_dir() / "x86" / name / file, directory / name / file)
        logs.append(directory / name)
        parsed, fastest = logdb.parse_log(directory / name), {}
        for index, body in parsed.records:
            key, seconds = str(parsed.workloads[index][0]), logdb.mean_run_secs(body)
            if seconds is not None:
                fastest[key] = min(fastest.get(key, float("inf")), seconds)
                modules.setdefault(key, parsed.workloads[index])
        best.append(fastest)
    shared = sorted(set(best[0]) & set(best[1]))
    assert shared, "the two logs no longer share a kernel: pick two that do"
    return logs, best, modules, shared
