"""mixconv: split -> depthwise convs with mixed kernel sizes -> concat becomes one depthwise conv (rule 'merge')."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile import targets
from lncompile.passes import mixconv
from lncompile.passes.pipeline import optimize
from tests.passes._grouping_util import run_passes, zoo_graph
from tests.passes._util import count, graph_of, max_error


class Mix(nn.Module):
    """MixConv over 3 + 4 + 5 channels with kernels 3, 5, 7 ('same' padding) and biases on some parts."""

    def __init__(self, stride: int = 1, depthwise: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sizes = [3, 4, 5]
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, stride, k // 2, groups=c if depthwise else 1, bias=k != 5)
            for c, k in zip(self.sizes, (3, 5, 7), strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.sizes, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts, strict=True)], 1)


class MixedStrides(nn.Module):
    """Parts with different strides whose outputs still line up (k=3 s=1 p=1 and k=1 s=2 p=2 on 4x4)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(2, 2, 3, 1, 1, groups=2)
        self.b = nn.Conv2d(2, 2, 1, 2, 2, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat([self.a(a), self.b(b)], 1)


@pytest.mark.parametrize("stride", [1, 2])
def test_merge_rewrites_to_one_depthwise_conv(stride: int) -> None:
    graph = graph_of(Mix(stride), (1, 12, 9, 9))
    after, (stats,) = run_passes([mixconv], graph, {"mixconv": "merge"})
    assert stats.matches == 1 and after.op_counts() == {"conv2d": 1}
    (conv,) = [r for r in after.records() if r.op == "conv2d"]
    w = after.constant(after.args(conv.name)[1])
    assert conv.attrs["groups"] == 12 and w.shape == (12, 1, 7, 7) and conv.attrs["padding"] == (3, 3, 3, 3)
    assert (w[:3, :, [0, 1, 5, 6]] == 0).all() and (w[:3, :, :, [0, 1, 5, 6]] == 0).all()  # 3x3 centred in 7x7
    assert max_error(graph, after) <= 1e-5


def test_split_rule_keeps_the_parts() -> None:
    graph = graph_of(Mix(), (1, 12, 9, 9))
    after, (stats,) = run_passes([mixconv], graph, {"mixconv": "split"})
    assert stats.matches == 0 and count(after, "conv2d") == 3 and count(after, "split") == 1
    assert stats.refused == {"rule mixconv=split keeps MixConv parts as separate convs": 1}


def test_different_strides_are_refused() -> None:
    graph = graph_of(MixedStrides(), (1, 4, 4, 4))
    after, (stats,) = run_passes([mixconv], graph, {"mixconv": "merge"})
    assert stats.matches == 0 and count(after, "conv2d") == 2
    assert stats.refused == {"parts have different strides": 1}
    assert max_error(graph, after) == 0.0


def test_dense_parts_are_refused() -> None:
    graph = graph_of(Mix(depthwise=False), (1, 12, 9, 9))
    after, (stats,) = run_passes([mixconv], graph, {"mixconv": "merge"})
    assert stats.matches == 0 and count(after, "conv2d") == 3
    assert stats.refused == {"a part is not a depthwise conv": 1}


def test_mixnet_s_through_the_pipeline() -> None:
    graph = zoo_graph("mixnet_s")
    merged = optimize(graph, targets.get("x86"))  # mixconv: merge
    kept = optimize(graph, targets.get("arm"))  # mixconv: split
    stats = {s.name: s for s in merged.stats}["mixconv"]
    assert stats.matches == 13 and not stats.refused  # every MixConv layer (2-5 kernel sizes) of MixNet-S
    assert count(merged.graph, "split") == count(merged.graph, "slice") == 0
    kept_stats = {s.name: s for s in kept.stats}["mixconv"]
    assert kept_stats.matches == 0
    assert kept_stats.refused == {"rule mixconv=split keeps MixConv parts as separate convs": 13}
    assert count(kept.graph, "slice") > 0  # the kept splits, as slices
    assert max_error(graph, merged.graph) <= 1e-5 and max_error(graph, kept.graph) <= 1e-5
