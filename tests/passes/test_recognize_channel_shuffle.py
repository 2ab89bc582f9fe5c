"""recognize_channel_shuffle: reshape -> transpose -> reshape on NCHW becomes one channel_shuffle op."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lncompile.ir import run_graph
from lncompile.ir.ops import channel_shuffle_perm
from lncompile.passes import recognize_channel_shuffle
from tests.passes._grouping_util import run_passes, zoo_graph
from tests.passes._util import count, graph_of, inputs_for, max_error


class Shuffle(nn.Module):
    def __init__(self, first: int, keep_view: bool = False) -> None:
        super().__init__()
        self.first, self.keep_view = first, keep_view

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x.shape
        view = x.view(n, self.first, c // self.first, h, w).transpose(1, 2)
        y = view.reshape(n, c, h, w) + 1.0
        return (y, view) if self.keep_view else y


@pytest.mark.parametrize(("first", "groups"), [(3, 3), (4, 4)])  # C = 12: (g, C/g) = (3, 4) and (C/g, g) = (4, 3)
def test_both_conventions_become_channel_shuffle(first: int, groups: int) -> None:
    graph = graph_of(Shuffle(first), (2, 12, 3, 5))
    after, (stats,) = run_passes([recognize_channel_shuffle], graph)
    assert stats.matches == 1 and count(after, "transpose") == count(after, "reshape") == 0
    (rec,) = [r for r in after.records() if r.op == "channel_shuffle"]
    assert rec.attrs["groups"] == groups
    assert max_error(graph, after) == 0.0  # a pure permutation: bit-exact


def test_permutation_matches_the_paper_and_megvii_orders() -> None:
    x = np.arange(12)
    paper = x.reshape(3, 4).T.reshape(-1)  # view (g=3, 4) -> transpose
    megvii = x.reshape(4, 3).T.reshape(-1)  # view (C/g=4, g=3) -> transpose: the inverse permutation
    assert (channel_shuffle_perm(12, 3) == paper).all() and (channel_shuffle_perm(12, 4) == megvii).all()
    assert (paper[megvii] == x).all()


def test_view_used_elsewhere_is_not_recognized() -> None:
    graph = graph_of(Shuffle(3, keep_view=True), (1, 12, 2, 2))
    after, (stats,) = run_passes([recognize_channel_shuffle], graph)
    assert stats.matches == 0 and count(after, "channel_shuffle") == 0
    assert stats.refused == {"the transposed view is a graph output": 1}
    xs = inputs_for(graph)
    for a, b in zip(run_graph(after, *xs), run_graph(graph, *xs), strict=True):
        assert (a == b).all()


@pytest.mark.parametrize(("model", "groups"), [("shufflenet_v1_g3", 3), ("shufflenet_v2", 2)])
def test_zoo_shuffles_are_recognized(model: str, groups: int) -> None:
    graph = zoo_graph(model)
    after, (stats,) = run_passes([recognize_channel_shuffle], graph)
    assert stats.matches == 16 and count(after, "transpose") == 0
    assert {r.attrs["groups"] for r in after.records() if r.op == "channel_shuffle"} == {groups}
    assert max_error(graph, after) == 0.0
