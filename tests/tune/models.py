"""Small models the tuning tests tune for real (a few trials each)."""

from __future__ import annotations

from pathlib import Path

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
