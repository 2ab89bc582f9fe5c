"""split_to_slices: splits become slices; a slice that takes back a concat input becomes that input."""

from __future__ import annotations

import torch
from torch import nn

from lncompile import targets
from lncompile.passes import split_slices
from lncompile.passes.pipeline import optimize
from tests.passes._grouping_util import run_passes, zoo_graph
from tests.passes._util import count, graph_of, max_error


class Chunk(nn.Module):
    """ShuffleNet v2 style: chunk in halves, one half through a conv, concat back."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat([torch.relu(a), self.conv(b)], 1)


class Ghost(nn.Module):
    """Ghost style: cat([y, cheap(y)]) then slices of it: one exact input, one inside, one straddling both."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.primary = nn.Conv2d(3, 4, 1)
        self.cheap = nn.Conv2d(4, 4, 3, 1, 1, groups=4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.primary(x)
        out = torch.cat([y, self.cheap(y)], 1)
        return out[:, :4] * 2, out[:, 5:7] + 1, out[:, 3:6] - 1


class RoundTrip(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c = torch.split(x, [1, 2, 3], dim=1)
        return torch.cat([a, b, c], 1) * 3


def test_split_becomes_slices() -> None:
    graph = graph_of(Chunk(), (1, 6, 4, 4))
    after, (stats,) = run_passes([split_slices], graph)
    assert stats.matches == 1 and count(after, "split") == 0 and count(after, "slice") == 2
    assert max_error(graph, after) == 0.0


def test_slices_of_a_concat() -> None:
    graph = graph_of(Ghost(), (1, 3, 5, 5))
    after, (stats,) = run_passes([split_slices], graph)
    assert stats.matches == 2  # out[:, :4] -> y; out[:, 5:7] -> cheap(y)[:, 1:3]
    assert stats.refused == {"slice straddles two concat inputs (needs data from both)": 1}  # out[:, 3:6]
    assert count(after, "concat") == 1 and count(after, "slice") == 2
    assert max_error(graph, after) == 0.0


def test_split_rejoined_in_order_is_the_input() -> None:
    graph = graph_of(RoundTrip(), (1, 6, 2, 2))
    after, (stats,) = run_passes([split_slices], graph)
    assert stats.matches == 1 and after.op_counts() == {"mul": 1}
    assert max_error(graph, after) == 0.0


def test_zoo_outputs_unchanged() -> None:
    for model in ("ghostnet", "shufflenet_v2"):
        graph = zoo_graph(model)
        result = optimize(graph, targets.get("x86"))
        assert count(result.graph, "split") == 0
        assert max_error(graph, result.graph) <= 1e-5
