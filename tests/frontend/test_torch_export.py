"""The PyTorch frontend: numerics against eager PyTorch, and errors that name the op and where it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lncompile.errors import UnsupportedOpError
from lncompile.frontend.torch_export import from_torch
from lncompile.ir import run_graph
from tests.conftest import relative_error


def _check(module: nn.Module, x: np.ndarray, tol: float = 1e-5) -> None:
    module = module.eval()
    graph = from_torch(module, torch.from_numpy(x))
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert relative_error(run_graph(graph, x)[0], expected) <= tol


def test_mobile_block(tiny_block: nn.Module, tiny_input: np.ndarray) -> None:
    graph = from_torch(tiny_block, torch.from_numpy(tiny_input))
    counts = graph.op_counts()
    assert counts["conv2d"] == 5 and counts["batch_norm"] == 3 and counts["hardswish"] == 2
    assert "hardsigmoid" in counts and "linear" in counts
    _check(tiny_block, tiny_input)


class ShuffleSplit(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        y = torch.cat([a, F.relu6(b)], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        y = F.max_pool2d(y, 3, 2, 1, ceil_mode=True) + F.avg_pool2d(y, 3, 2, 1, ceil_mode=True)
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        return F.pad(y, (1, 0, 2, 1)) * torch.sigmoid(y.amax((2, 3), keepdim=True)).mean()


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.norm = nn.LayerNorm(16)
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(x.flatten(2).transpose(1, 2))
        q, k, v = self.qkv(tokens).split(16, dim=-1)
        att = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1)
        y = F.gelu(self.proj(att @ v)) + F.scaled_dot_product_attention(q, k, v)
        return F.silu(y).transpose(1, 2).reshape(x.shape)


@pytest.mark.parametrize("module, shape", [(ShuffleSplit(), (1, 8, 9, 9)), (Attention(), (1, 16, 4, 4))])
def test_op_coverage(module: nn.Module, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    _check(module, np.random.default_rng(1).standard_normal(shape).astype(np.float32))


class Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.Identity(), CumSum()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CumSum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, 1)


def test_unsupported_op_names_op_and_module_path() -> None:
    with pytest.raises(UnsupportedOpError, match=r"aten\.cumsum.* at body\.1\.1 \(CumSum\)"):
        from_torch(Unsupported().eval(), torch.randn(1, 3, 8, 8))


def test_training_mode_batch_norm_is_refused() -> None:
    # from_torch puts modules in eval mode; a program exported by hand in training mode carries a
    # training-mode batch_norm, which the translator refuses instead of silently using batch statistics.
    from lncompile.frontend.torch_export import from_exported_program

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    ep = torch.export.export(model, (torch.randn(2, 3, 8, 8),))
    with pytest.raises(UnsupportedOpError, match="training mode"):
        from_exported_program(ep)
