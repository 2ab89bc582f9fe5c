"""fold_affine_into_conv: a BN-turned-affine folds forward into the conv it feeds only when exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lncompile.ir import Graph, TensorType, Value
from lncompile.passes import fold_affine_into_conv, fold_batchnorm
from tests.passes._util import count, graph_of, max_error, run_pass


class ConcatBnConv(nn.Module):
    def __init__(self, padding: int, groups: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 5, 1)
        self.bn = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 4, 3, padding=padding, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(torch.cat([x, self.stem(x)], 1)))


def _affine_graph(padding: int, groups: int = 1) -> Graph:
    torch.manual_seed(0)
    graph, _ = run_pass(fold_batchnorm, graph_of(ConcatBnConv(padding, groups), (1, 3, 7, 7)))
    assert count(graph, "channel_affine") == 1
    return graph


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_affine_folds_into_unpadded_conv(groups: int) -> None:
    graph = _affine_graph(padding=0, groups=groups)
    after, stats = run_pass(fold_affine_into_conv, graph)
    assert stats.matches == 1 and count(after, "channel_affine") == 0
    assert max_error(graph, after) <= 1e-5


def test_affine_with_shift_stays_before_a_padded_conv() -> None:
    graph = _affine_graph(padding=1)
    after, stats = run_pass(fold_affine_into_conv, graph)
    assert stats.matches == 0 and count(after, "channel_affine") == 1
    assert any("shift is nonzero" in r for r in stats.refused)


def test_pure_scale_folds_into_a_padded_conv() -> None:
    rng = np.random.default_rng(0)
    g = Graph()
    x = g.add_input("x", TensorType((1, 4, 5, 5)))
    scale = g.add_constant(rng.random(4).astype(np.float32) + 0.5)
    affine = g.add_op("channel_affine", [x, scale, g.add_constant(np.zeros(4, np.float32))])
    w = g.add_constant(rng.standard_normal((6, 4, 3, 3)).astype(np.float32))
    conv = g.add_op("conv2d", [Value(affine.name), w], {"strides": (1, 1), "padding": (1, 1, 1, 1),
                                                        "dilation": (1, 1), "groups": 1})
    g.set_outputs([Value(conv.name)])
    after, stats = run_pass(fold_affine_into_conv, g)
    assert stats.matches == 1 and after.op_counts() == {"conv2d": 1}
    assert max_error(g, after) <= 1e-5
