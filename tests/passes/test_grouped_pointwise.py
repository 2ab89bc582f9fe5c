"""grouped_pointwise: rule 'dense' lowers grouped 1x1 convs as dense block-diagonal convs; 'grouped' keeps them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lncompile.errors import UsageError
from lncompile.passes import grouped_pointwise
from tests.passes._grouping_util import run_passes, zoo_graph
from tests.passes._util import graph_of, max_error


class Convs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.grouped = nn.Conv2d(8, 12, 1, groups=4)  # the one to densify
        self.dw1x1 = nn.Conv2d(12, 12, 1, groups=12)  # depthwise 1x1: never densified (C x the MACs)
        self.grouped3 = nn.Conv2d(12, 12, 3, padding=1, groups=3)  # not 1x1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grouped3(self.dw1x1(self.grouped(x)))


def groups_of(graph) -> list[int]:
    return [r.attrs["groups"] for r in graph.records() if r.op == "conv2d"]


def test_dense_rule_builds_the_block_diagonal_weight() -> None:
    graph = graph_of(Convs(), (1, 8, 5, 5))
    after, (stats,) = run_passes([grouped_pointwise], graph, {"grouped_pointwise": "dense"})
    assert stats.matches == 1 and groups_of(after) == [1, 12, 3]
    conv = next(r for r in after.records() if r.op == "conv2d")
    w = after.constant(after.args(conv.name)[1])
    assert w.shape == (12, 8, 1, 1)  # 4x the weights (and MACs) of the (12, 2, 1, 1) grouped conv
    original = graph.constant(graph.args(next(r for r in graph.records() if r.op == "conv2d").name)[1])
    for k in range(4):
        block = w[3 * k:3 * k + 3]
        assert np.array_equal(block[:, 2 * k:2 * k + 2], original[3 * k:3 * k + 3])
        assert np.count_nonzero(block) == np.count_nonzero(original[3 * k:3 * k + 3])  # zeros off the diagonal
    assert max_error(graph, after) <= 1e-5


@pytest.mark.parametrize("rule", ["grouped", "dense_for_shuffle"])
def test_other_rules_keep_grouped_convs(rule: str) -> None:
    graph = graph_of(Convs(), (1, 8, 5, 5))
    after, (stats,) = run_passes([grouped_pointwise], graph, {"grouped_pointwise": rule})
    assert stats.matches == 0 and groups_of(after) == [4, 12, 3]
    assert stats.refused == {f"rule grouped_pointwise={rule} keeps grouped 1x1 convs": 1}


def test_unknown_rule_value_is_a_usage_error() -> None:
    graph = graph_of(Convs(), (1, 8, 5, 5))
    with pytest.raises(UsageError, match="grouped_pointwise='blockwise' is unknown; use one of grouped, dense"):
        run_passes([grouped_pointwise], graph, {"grouped_pointwise": "blockwise"})


def test_shufflenet_v1_dense() -> None:
    graph = zoo_graph("shufflenet_v1_g3")
    after, (stats,) = run_passes([grouped_pointwise], graph, {"grouped_pointwise": "dense"})
    assert stats.matches == 31  # every grouped 1x1 but the first unit's ungrouped reduce conv
    assert all(g == 1 or g == r.type.shape[1] for r in after.records() if r.op == "conv2d"
               for g in [r.attrs["groups"]])
    assert max_error(graph, after) <= 1e-5
