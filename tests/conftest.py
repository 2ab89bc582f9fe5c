"""Shared test helpers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

# Tests run beside other processes on 2 cores: one intra-op thread avoids oversubscription (10x slowdowns seen).
torch.set_num_threads(1)


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|: the issue's "difference relative to output scale"."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def cli_in_process(argv: list, capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    """``lncompile ARGV`` run in this process (``cli.main``): (exit status, stderr lines, stdout).

    stderr is captured at the file-descriptor level (TVM's native messages too) and each Python warning counts
    as a stderr line. Spares a test the 10-20 s a fresh process spends importing torch and TVM; the tests that
    need a real process (exit status, signals, the README's command) start one.
    """
    from lncompile.cli import main

    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, err.splitlines() + [f"warning: {w.message}" for w in caught], out


class TinyMobileBlock(nn.Module):
    """Not a zoo model: depthwise conv, BN, hardswish, a squeeze-excitation gate, a residual add, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.se_reduce = nn.Conv2d(16, 8, 1)
        self.se_expand = nn.Conv2d(8, 16, 1)
        self.project = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.dw(x)
        gate = nn.functional.hardsigmoid(self.se_expand(torch.relu(self.se_reduce(y.mean((2, 3), keepdim=True)))))
        y = self.project(y * gate)
        x = x + y
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


@pytest.fixture
def tiny_block() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(TinyMobileBlock())


@pytest.fixture
def tiny_input() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)


def built_kernel_calls(net: nn.Module, x: np.ndarray, preset: object, tolerance: float = 1e-5) -> list[str]:
    """Build ``net`` untuned for ``preset``, check the library's output against PyTorch's within ``tolerance``
    (relative), and return the names of the kernels the model's ``main`` calls, in order."""
    import lncompile
    from lncompile.backend import tvm_api
    from lncompile.frontend import import_model
    from lncompile.tune.tasks import prepare

    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert relative_error(lncompile.compile(net, preset, x, tuning_log=False)(x), expected) <= tolerance
    return [name for name, _, _ in tvm_api.kernel_call_order(prepare("net", import_model(net, x).graph,
                                                                     preset).fused)]
