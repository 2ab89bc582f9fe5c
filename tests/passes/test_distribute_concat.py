"""distribute_concat: a channel concat's readers read its parts (convs summed, per-channel ops per part), so no
concat is written; refused where a reader cannot take the parts; outputs unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile.ir import Graph
from lncompile.passes import PassStats, distribute_concat
from tests.passes._util import count, graph_of, max_error, run_pass


def _distribute(graph: Graph) -> tuple[Graph, PassStats]:
    return run_pass(distribute_concat, graph, {"distribute_concat": "on"})


class Fire(nn.Module):
    """SqueezeNet's Fire module, its concat read by ``after`` (a conv, through a pool, through a ReLU...)."""

    def __init__(self, after: str) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(8, 4, 1)
        self.expand1x1, self.expand3x3 = nn.Conv2d(4, 8, 1), nn.Conv2d(4, 8, 3, padding=1)
        self.after = after
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True) if after == "pool" else nn.AvgPool2d(2)
        self.conv = nn.Conv2d(16, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.depthwise = nn.Conv2d(16, 16, 3, 2, 1, groups=16)
        self.grouped = nn.Conv2d(16, 8, 1, groups=2)
        self.widen = nn.Conv2d(16, 40, 1)  # a classifier's shape: more channels out than in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze(x))
        y = torch.cat([torch.relu(self.expand1x1(s)), torch.relu(self.expand3x3(s))], 1)
        if self.after == "pool":
            y = self.pool(y)
        elif self.after == "avgpool_hardswish":
            y = nn.functional.hardswish(self.pool(y))
        elif self.after == "depthwise":
            y = self.depthwise(y)
        elif self.after == "scalar":
            y = y * 0.5 + 1.0
        elif self.after == "grouped":
            return self.grouped(y)
        elif self.after == "widening":
            return self.widen(y)
        elif self.after == "output":
            return y
        return torch.relu(self.bn(self.conv(y)))


@pytest.mark.parametrize("after", ["conv", "pool", "avgpool_hardswish", "depthwise", "scalar"])
def test_concat_read_by_a_conv_directly_or_through_per_channel_ops_goes(after: str) -> None:
    torch.manual_seed(0)
    graph = graph_of(Fire(after), (1, 8, 9, 9))
    assert count(graph, "concat") == 1
    result, stats = _distribute(graph)
    assert stats.matches >= 1 and count(result, "concat") == 0
    # the conv over the concat became one conv per part, the second taking the first's output as its residual
    assert count(result, "conv2d") == count(graph, "conv2d") + (after == "depthwise")
    (second,) = [r for r in result.records() if r.op == "fused_conv2d"]
    assert second.attrs["residual"] and second.attrs["activation"] == "none"
    assert max_error(graph, result) <= 1e-5


def test_a_per_channel_op_with_several_readers_is_split_for_each() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 5, 3, padding=1)
            self.c, self.d = nn.Conv2d(9, 2, 1), nn.Conv2d(9, 3, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = torch.relu(torch.cat([self.a(x), self.b(x)], 1))
            return self.c(y), self.d(y)

    graph = graph_of(Two(), (1, 3, 6, 6))
    result, stats = _distribute(graph)
    assert stats.matches == 2 and count(result, "concat") == 0
    assert count(result, "relu") == 2 and count(result, "conv2d") == 4 and count(result, "fused_conv2d") == 2
    assert max_error(graph, result) <= 1e-5


def test_a_sum_of_two_concats_split_alike_is_a_concat_of_sums() -> None:
    """GhostNet's residual stream: concat(p, q) + concat(p', q') feeding the next ghost module's conv."""

    class Ghosts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p1, self.q1 = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1, groups=4)
            self.p2, self.q2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 4, 3, padding=1, groups=4)
            self.head = nn.Conv2d(8, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = self.p1(x)
            first = torch.cat([p, self.q1(p)], 1)
            p2 = self.p2(first)
            return self.head(torch.cat([p2, self.q2(p2)], 1) + first)

    graph = graph_of(Ghosts(), (1, 4, 7, 7))
    result, stats = _distribute(graph)
    assert count(graph, "concat") == 2 and count(result, "concat") == 0 and stats.matches == 2
    assert count(result, "add") == 2 and count(result, "fused_conv2d") == 2  # an add per part; two split convs
    assert max_error(graph, result) <= 1e-5


@pytest.mark.parametrize(("after", "reason"), [
    ("grouped", "a reader is a grouped conv"),
    ("widening", "a conv reading it writes more than the concat (its split would add that much traffic)"),
    ("output", "concat is a graph output"),
])  # fmt: skip
def test_concat_stays_where_a_reader_cannot_take_its_parts(after: str, reason: str) -> None:
    graph = graph_of(Fire(after), (1, 8, 9, 9))
    result, stats = _distribute(graph)
    assert stats.matches == 0 and stats.refused == {reason: 1}
    assert count(result, "concat") == 1 and max_error(graph, result) == 0.0


class Odd(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.a, self.b, self.c = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
        self.d = nn.Conv2d(3, 8, 1)
        self.conv = nn.Conv2d(12 if kind == "three" else 8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "three":
            y = torch.cat([self.a(x), self.b(x), self.c(x)], 1)
        elif self.kind == "slices":
            y = torch.cat([self.d(x)[:, 4:], self.b(x)], 1)
        else:  # plus a tensor that is no concat
            y = torch.cat([self.a(x), self.b(x)], 1) + self.d(x)
        return self.conv(y)


@pytest.mark.parametrize(("kind", "reason"), [
    ("three", "concat of more than 2 parts"),
    ("slices", "a part is a slice of another tensor"),
    ("plain", "a reader (add) combines it with a tensor not split alike"),
])  # fmt: skip
def test_concat_stays_for_many_parts_or_an_operand_split_otherwise(kind: str, reason: str) -> None:
    graph = graph_of(Odd(kind), (1, 3, 5, 5))
    result, stats = _distribute(graph)
    assert stats.matches == 0 and reason in stats.refused
    assert count(result, "concat") == count(graph, "concat") and max_error(graph, result) == 0.0



def test_the_pass_runs_only_where_the_target_asks_for_it() -> None:
    graph = graph_of(Fire("conv"), (1, 8, 9, 9))
    result, stats = run_pass(distribute_concat, graph)  # no rule: off, the default (ARM, CUDA)
    assert stats.matches == 0 and count(result, "concat") == 1
