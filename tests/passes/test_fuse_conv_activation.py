"""fuse_conv_activation: conv2d -> [activation] -> [residual add] becomes one fused_conv2d node."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lncompile
from lncompile.passes import fuse_conv_activation
from tests.conftest import relative_error
from tests.passes._util import graph_of, max_error, run_pass

ACTIVATIONS = {
    "relu": nn.ReLU(), "clip": nn.ReLU6(), "hardswish": nn.Hardswish(), "hardsigmoid": nn.Hardsigmoid(),
    "silu": nn.SiLU(), "sigmoid": nn.Sigmoid(), "gelu": nn.GELU(), "leaky_relu": nn.LeakyReLU(0.1),
    "prelu": nn.PReLU(8, 0.2), "tanh": nn.Tanh(),
}  # fmt: skip


class Block(nn.Module):
    """conv -> act [-> + x]: the MobileNet/ResNet shapes the pass targets."""

    def __init__(self, act: str | None, residual: bool, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=bias)
        self.act, self.residual = ACTIVATIONS[act] if act else None, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = self.act(y) if self.act is not None else y
        return x + y if self.residual else y


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_conv_activation_fuses(act: str) -> None:
    torch.manual_seed(0)
    graph = graph_of(Block(act, residual=False), (1, 8, 6, 6))
    after, stats = run_pass(fuse_conv_activation, graph)
    assert stats.matches == 1 and after.op_counts() == {"fused_conv2d": 1}
    (fused,) = [r for r in after.records() if r.op == "fused_conv2d"]
    assert fused.attrs["activation"] == act and fused.attrs["residual"] is False
    assert max_error(graph, after) <= 1e-5


@pytest.mark.parametrize(("act", "bias"), [(None, False), ("clip", True), ("prelu", False)])
def test_conv_activation_residual_add_fuses(act: str | None, bias: bool) -> None:
    torch.manual_seed(1)
    graph = graph_of(Block(act, residual=True, bias=bias), (1, 8, 6, 6))
    after, stats = run_pass(fuse_conv_activation, graph)
    assert stats.matches == 1 and after.op_counts() == {"fused_conv2d": 1}
    (fused,) = [r for r in after.records() if r.op == "fused_conv2d"]
    assert fused.attrs["residual"] is True and fused.attrs["activation"] == (act or "none")
    assert max_error(graph, after) <= 1e-5


def test_activation_not_fused_when_conv_output_is_a_graph_output() -> None:
    class Leaky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.conv(x)
            return F.relu(y), y

    torch.manual_seed(0)
    graph = graph_of(Leaky(), (1, 3, 6, 6))
    after, stats = run_pass(fuse_conv_activation, graph)
    assert stats.matches == 0 and after.op_counts() == {"conv2d": 1, "relu": 1}
    assert "conv output is a graph output" in stats.refused


def test_activation_read_elsewhere_fuses_without_the_add() -> None:
    class TwoReaders(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu(self.conv(x))
            return (x + y) * y

    torch.manual_seed(0)
    graph = graph_of(TwoReaders(), (1, 4, 5, 5))
    after, stats = run_pass(fuse_conv_activation, graph)
    assert stats.matches == 1 and after.op_counts() == {"add": 1, "fused_conv2d": 1, "mul": 1}
    (fused,) = [r for r in after.records() if r.op == "fused_conv2d"]
    assert fused.attrs["residual"] is False and fused.attrs["activation"] == "relu"
    assert max_error(graph, after) <= 1e-5


class AllFusions(nn.Module):
    """Every fused op kind in one small net, for the TVM lowering check."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.PReLU(8, 0.1))
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.GELU())
        self.se_reduce, self.se_expand = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.project = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.pre_bn = nn.BatchNorm2d(16)
        self.head = nn.Sequential(nn.Linear(16, 12), nn.LeakyReLU(0.2), nn.Linear(12, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.dw(x)
        y = y * torch.sigmoid(self.se_expand(F.silu(self.se_reduce(y.mean((2, 3), keepdim=True)))))
        y = x + self.project(y)
        z = F.relu(self.pre_bn(torch.cat([x, y], 1)))
        return self.head(z.mean((2, 3)))


@pytest.mark.slow
def test_fused_ops_lower_through_tvm_and_match_pytorch() -> None:
    torch.manual_seed(0)
    model = AllFusions()
    graph_of(model, (1, 3, 16, 16))  # randomizes the BN statistics in place
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    compiled = lncompile.compile(model, "x86", example_input=x)
    ops = compiled.graph.op_counts()
    assert ops.get("fused_conv2d", 0) >= 3 and ops.get("squeeze_excite") == 1
    assert ops.get("fused_linear") == 1 and ops.get("channel_affine") == 1 and "batch_norm" not in ops
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-4
    assert {"fold_batchnorm", "squeeze_excite", "fuse_conv_activation"} <= {p["name"] for p in
                                                                            compiled.manifest["passes"]}
