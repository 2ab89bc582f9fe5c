"""fold_channel_shuffle: a channel shuffle folds into the convs around it, exactly, or stays with a reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from graphs.blocks import channel_shuffle
from lncompile import targets
from lncompile.ir import Graph, run_graph
from lncompile.passes import fold_channel_shuffle, grouped_pointwise, recognize_channel_shuffle
from lncompile.passes.pipeline import optimize
from tests.conftest import relative_error
from tests.passes._grouping_util import neighbours_1x1, run_passes, zoo_graph
from tests.passes._util import count, graph_of, inputs_for, max_error

PASSES = [recognize_channel_shuffle, grouped_pointwise, fold_channel_shuffle]


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


class V1Unit(nn.Module):
    """ShuffleNet v1 unit core: 1x1 (dense or grouped) -> BN -> ReLU -> shuffle -> 3x3 DW -> BN -> grouped 1x1."""

    def __init__(self, reduce_groups: int, groups: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.groups = groups
        self.reduce = nn.Sequential(nn.Conv2d(6, 12, 1, groups=reduce_groups, bias=False), bn(12), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(12, 12, 3, 1, 1, groups=12, bias=False), bn(12))
        self.expand = nn.Conv2d(12, 6, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.dw(channel_shuffle(self.reduce(x), self.groups)))


class V2Units(nn.Module):
    """Two ShuffleNet v2 stride-1 units (split halves, concat, shuffle) and a 1x1 head conv."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        b = c // 2
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(b, b, 1, bias=False), bn(b), nn.ReLU(), nn.Conv2d(b, b, 3, 1, 1, groups=b),
                          bn(b), nn.Conv2d(b, b, 1), nn.ReLU())
            for _ in range(2)
        )
        self.scale = nn.Parameter(torch.rand(1, c, 1, 1) + 0.5)
        self.head = nn.Conv2d(c, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for branch in self.branches:
            left, right = x.chunk(2, dim=1)
            x = channel_shuffle(torch.cat([left, branch(right)], 1), 2)
        # per-channel ops between the last shuffle and the head: a constant scale and a pool
        return self.head(nn.functional.max_pool2d(x * self.scale, 2))


class Blocked(nn.Module):
    """A shuffle between grouped 3x3 convs: no conv can absorb it (not 1x1, so not densified either)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(4, 8, 3, 1, 1, groups=2)
        self.b = nn.Conv2d(8, 8, 3, 1, 1, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(channel_shuffle(self.a(x), 2))


class ShuffleThenDense3x3(nn.Module):
    """Input -> shuffle -> dense 3x3 conv: the producer is the graph input, the consumer absorbs (any kernel)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(6, 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(channel_shuffle(x, 3))


class ShuffleToOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.relu(x), 2)


def folded(graph: Graph, rules: dict[str, str] | None = None) -> tuple[Graph, dict]:
    after, stats = run_passes(PASSES, graph, rules)
    return after, stats[-1].to_json()


def test_v1_unit_with_dense_reduce_folds_into_the_producer_under_every_rule() -> None:
    graph = graph_of(V1Unit(reduce_groups=1), (1, 6, 8, 8))
    after, stats = folded(graph, {"grouped_pointwise": "grouped"})
    assert stats["matches"] == 1 and not stats["refused"]
    assert count(after, "channel_shuffle") == count(after, "transpose") == 0
    assert sorted(r.attrs["groups"] for r in after.records() if r.op == "conv2d") == [1, 3, 12]  # nothing densified
    assert max_error(graph, after) <= 1e-5


def test_v1_unit_between_grouped_convs_needs_the_dense_rule() -> None:
    graph = graph_of(V1Unit(reduce_groups=3), (1, 6, 8, 8))
    kept, stats = folded(graph, {"grouped_pointwise": "grouped"})
    assert stats["matches"] == 0 and count(kept, "channel_shuffle") == 1
    (reason,) = stats["refused"]
    assert "groups the shuffle mixes (rule grouped_pointwise=grouped)" in reason
    assert max_error(graph, kept) <= 1e-6
    for rule in ("dense_for_shuffle", "dense"):
        after, stats = folded(graph, {"grouped_pointwise": rule})
        assert stats["matches"] == 1 and count(after, "channel_shuffle") == count(after, "transpose") == 0
        groups = sorted(r.attrs["groups"] for r in after.records() if r.op == "conv2d")
        # dense_for_shuffle densifies only the conv the shuffle folds into; dense densifies both 1x1 convs
        assert groups == ([1, 3, 12] if rule == "dense_for_shuffle" else [1, 1, 12])
        assert max_error(graph, after) <= 1e-5


def test_v2_units_fold_into_the_convs_through_split_and_concat() -> None:
    graph = graph_of(V2Units(), (1, 8, 6, 6))
    after, stats = folded(graph)
    assert stats["matches"] == 2 and not stats["refused"]
    assert count(after, "channel_shuffle") == count(after, "transpose") == 0
    assert count(after, "split") == 1  # the first unit's split of the input: no shuffle before it
    assert max_error(graph, after) <= 1e-5


def test_dense_3x3_consumer_absorbs_a_shuffle_of_the_input() -> None:
    graph = graph_of(ShuffleThenDense3x3(), (1, 6, 5, 5))
    after, stats = folded(graph)
    assert stats["matches"] == 1 and count(after, "channel_shuffle") == 0
    (conv,) = [r for r in after.records() if r.op == "conv2d"]
    assert after.args(conv.name)[0].node == after.input_names[0]  # reads the input directly, permuted weights
    assert max_error(graph, after) <= 1e-5


@pytest.mark.parametrize("rule", ["grouped", "dense_for_shuffle", "dense"])
def test_shuffle_into_grouped_3x3_is_not_folded(rule: str) -> None:
    graph = graph_of(Blocked(), (1, 4, 6, 6))
    after, stats = folded(graph, {"grouped_pointwise": rule})
    assert stats["matches"] == 0 and count(after, "channel_shuffle") == 1
    (reason,) = stats["refused"]
    assert "grouped conv" in reason
    assert max_error(graph, after) <= 1e-6


def test_shuffle_returned_as_output_is_not_folded() -> None:
    graph = graph_of(ShuffleToOutput(), (1, 4, 3, 3))
    after, stats = folded(graph)
    assert stats["matches"] == 0 and count(after, "channel_shuffle") == 1
    (reason,) = stats["refused"]
    assert "graph output" in reason
    assert max_error(graph, after) == 0.0


def shuffles_next_to_1x1(graph: Graph) -> int:
    recognized, _ = run_passes([recognize_channel_shuffle], graph)
    names = [r.name for r in recognized.records() if r.op == "channel_shuffle"]
    assert all(neighbours_1x1(recognized, n) for n in names)
    return len(names)


@pytest.mark.parametrize(("model", "preset"), [("shufflenet_v2", "x86"), ("shufflenet_v2", "arm"),
                                               ("shufflenet_v1_g3", "cuda")])
def test_zoo_shufflenets_keep_no_shuffle_after_the_pipeline(model: str, preset: str) -> None:
    graph = zoo_graph(model)
    assert shuffles_next_to_1x1(graph) == 16
    result = optimize(graph, targets.get(preset))
    assert count(result.graph, "channel_shuffle") == count(result.graph, "transpose") == 0
    stats = {s.name: s for s in result.stats}
    assert stats["fold_channel_shuffle"].matches == 16
    assert max_error(graph, result.graph) <= 1e-5


@pytest.mark.parametrize("preset", ["x86", "arm"])
def test_shufflenet_v1_on_cpu_presets_keeps_grouped_convs_and_folds_the_rest_into_depthwise(preset: str) -> None:
    graph = zoo_graph("shufflenet_v1_g3")
    result = optimize(graph, targets.get(preset))
    stats = {s.name: s for s in result.stats}
    weights = stats["fold_channel_shuffle"]
    # only the first unit (dense reduce conv, paper Table 1) folds into weights; the other 15 sit between
    # grouped 1x1 convs that the rule keeps grouped, and the depthwise conv between them reads them instead
    assert weights.matches == 1
    assert sum(weights.refused.values()) == 15 and all("grouped_pointwise=grouped" in r for r in weights.refused)
    assert stats["fold_shuffle_into_depthwise"].matches == 15 and not stats["fold_shuffle_into_depthwise"].refused
    assert count(result.graph, "channel_shuffle") == count(result.graph, "transpose") == 0
    convs = [r for r in result.graph.records() if r.op in ("conv2d", "fused_conv2d")]
    assert sum(r.attrs["groups"] == 3 for r in convs) == 31  # every grouped 1x1 conv stays grouped
    assert sum(r.attrs.get("input_shuffle_groups", 0) == 3 for r in convs) == 15
    assert max_error(graph, result.graph) <= 1e-5


@pytest.mark.slow
def test_kept_channel_shuffle_lowers_to_tvm() -> None:
    from lncompile.backend import tvm_api
    from lncompile.backend.build import build

    graph = graph_of(Blocked(), (1, 4, 6, 6))
    kept, _ = folded(graph)
    assert count(kept, "channel_shuffle") == 1
    built = build(kept, targets.get("x86"))
    vm = tvm_api.VirtualMachine(built.executable, tvm_api.cpu_device())
    (x,) = inputs_for(kept)
    got = vm["main"](tvm_api.tensor(x)).numpy()
    assert relative_error(got, run_graph(graph, x)[0]) <= 1e-5
    assert np.isfinite(got).all()
