"""Small models the tuning tests tune for real (a few trials each), and copies of shipped logs to load."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn


class ConvAndClassifier(nn.Module):
    """A conv (3x3, bias, ReLU) and a classifier GEMV: two kernels with weights to pre-pack."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def export_conv_and_classifier(directory: Path) -> tuple[Path, nn.Module]:
    """ConvAndClassifier (seeded weights) as ``directory/convfc.onnx``, and the module itself."""
    torch.manual_seed(0)
    module = ConvAndClassifier().eval()
    path = directory / "convfc.onnx"
    torch.onnx.export(module, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False, opset_version=13,
                      input_names=["x"])
    return path, module


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
