"""fold_shuffle_into_depthwise: a shuffle that only a depthwise conv reads becomes that conv's input indexing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from graphs.blocks import channel_shuffle
from lncompile import targets
from lncompile.errors import IRVerificationError
from lncompile.ir import Graph, run_graph, verify
from lncompile.ir.precision import as_float64
from lncompile.passes import (
    fold_affine_into_conv,
    fold_batchnorm,
    fold_channel_shuffle,
    fold_shuffle_into_depthwise,
    recognize_channel_shuffle,
)
from lncompile.passes.pipeline import optimize
from tests.conftest import _randomize_bn, relative_error
from tests.passes._grouping_util import run_passes
from tests.passes._util import count, graph_of, inputs_for, max_error

SHUFFLE = "input_shuffle_groups"


class V1Block(nn.Module):
    """A tiny ShuffleNet v1 unit: grouped 1x1 -> BN -> ReLU -> shuffle -> 3x3 DW -> BN [-> ReLU] -> grouped 1x1 -> BN.

    Stride 1 adds the input back (ReLU(x + y)), as the paper's unit does. ``dw_act`` puts a ReLU after the
    depthwise conv so that fusion turns it into a ``fused_conv2d`` before the shuffle is folded.
    """

    def __init__(self, dw_act: bool = False, c: int = 12, mid: int = 12, groups: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.groups = groups
        self.reduce = nn.Sequential(nn.Conv2d(c, mid, 1, groups=groups, bias=False), nn.BatchNorm2d(mid), nn.ReLU())
        dw = [nn.Conv2d(mid, mid, 3, 1, 1, groups=mid, bias=False), nn.BatchNorm2d(mid)]
        self.dw = nn.Sequential(*dw, *([nn.ReLU()] if dw_act else []))
        self.expand = nn.Sequential(nn.Conv2d(mid, c, 1, groups=groups, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.dw(channel_shuffle(self.reduce(x), self.groups)))
        return torch.relu(x + y)


class ShuffledDepthwise(nn.Module):
    """Input -> shuffle -> depthwise conv (any stride, dilation, asymmetric padding through F.pad) -> ReLU."""

    def __init__(self, c: int, groups: int, kernel: int, stride: int, dilation: int,
                 pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.groups, self.pads = groups, pads
        self.conv = nn.Conv2d(c, c, kernel, stride, 0, dilation, groups=c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(nn.functional.pad(channel_shuffle(x, self.groups), self.pads)))


class SecondReader(nn.Module):
    """The shuffled tensor feeds the depthwise conv and a residual add."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.dw = nn.Conv2d(6, 6, 3, 1, 1, groups=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channel_shuffle(x, 3)
        return self.dw(y) + y


class GroupedConsumer(nn.Module):
    """A shuffle into a grouped (not depthwise) 3x3 conv, and one into a depthwise conv with a multiplier."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.grouped = nn.Conv2d(6, 6, 3, 1, 1, groups=3)
        self.multiplier = nn.Conv2d(6, 12, 3, 1, 1, groups=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grouped(channel_shuffle(x, 3)), self.multiplier(channel_shuffle(x + 1, 2))


class ShuffleToOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.relu(x), 2)


def folded(graph: Graph) -> tuple[Graph, dict]:
    after, stats = run_passes([recognize_channel_shuffle, fold_shuffle_into_depthwise], graph)
    return after, stats[-1].to_json()


def shuffled_convs(graph: Graph) -> list[tuple[str, int]]:
    return [(r.op, r.attrs[SHUFFLE]) for r in graph.records() if r.attrs.get(SHUFFLE)]


def test_pass_alone_folds_the_shuffle_into_the_depthwise_conv_exactly() -> None:
    graph = graph_of(V1Block(), (1, 12, 6, 6))
    after, stats = folded(graph)
    assert stats["matches"] == 1 and not stats["refused"]
    assert count(after, "channel_shuffle") == count(after, "transpose") == 0
    assert shuffled_convs(after) == [("conv2d", 3)]
    assert max_error(graph, after) == 0.0  # the interpreter shuffles, then convolves: the same arithmetic


@pytest.mark.parametrize("dw_act", [False, True], ids=["conv2d", "fused_conv2d"])
@pytest.mark.parametrize("preset", ["x86", "arm"])
def test_v1_block_keeps_no_shuffle_on_cpu_presets(dw_act: bool, preset: str) -> None:
    graph = graph_of(V1Block(dw_act), (1, 12, 6, 6))
    result = optimize(graph, targets.get(preset))
    stats = {s.name: s for s in result.stats}
    # weight folding is tried first and refused (grouped_pointwise=grouped); then the depthwise conv takes it
    assert stats["fold_channel_shuffle"].matches == 0
    assert all("grouped_pointwise=grouped" in r for r in stats["fold_channel_shuffle"].refused)
    assert stats["fold_shuffle_into_depthwise"].matches == 1
    after = result.graph
    assert count(after, "channel_shuffle") == count(after, "transpose") == 0
    # after BN folding the plain depthwise conv stays conv2d; with a ReLU it is fused before the fold
    assert shuffled_convs(after) == [("fused_conv2d" if dw_act else "conv2d", 3)]
    assert sorted(r.attrs["groups"] for r in after.records() if r.op in ("conv2d", "fused_conv2d")) == [3, 3, 12]
    assert max_error(graph, after) <= 1e-5
    wide = as_float64(graph)
    xs = [x.astype(np.float64) for x in inputs_for(graph)]
    got = run_graph(optimize(wide, targets.get(preset)).graph, *xs)[0]
    assert relative_error(got, run_graph(wide, *xs)[0]) <= 1e-12


def test_weight_folding_stays_preferred_where_the_rule_allows_it() -> None:
    graph = graph_of(V1Block(), (1, 12, 6, 6))
    result = optimize(graph, targets.get("cuda"))  # grouped_pointwise=dense_for_shuffle
    stats = {s.name: s for s in result.stats}
    assert stats["fold_channel_shuffle"].matches == 1 and stats["fold_shuffle_into_depthwise"].matches == 0
    assert count(result.graph, "channel_shuffle") == 0 and not shuffled_convs(result.graph)
    assert max_error(graph, result.graph) <= 1e-5


def test_shuffle_with_a_second_reader_is_not_folded() -> None:
    graph = graph_of(SecondReader(), (1, 6, 5, 5))
    after, stats = folded(graph)
    assert stats["matches"] == 0 and count(after, "channel_shuffle") == 1 and not shuffled_convs(after)
    assert stats["refused"] == {"shuffle output has another consumer": 1}


def test_shuffle_into_a_conv_that_is_not_depthwise_is_not_folded() -> None:
    graph = graph_of(GroupedConsumer(), (1, 6, 5, 5))
    after, stats = folded(graph)
    assert stats["matches"] == 0 and count(after, "channel_shuffle") == 2 and not shuffled_convs(after)
    assert sorted(stats["refused"]) == [
        "shuffle feeds a conv2d that is not depthwise (groups=3, in=6, out=6)",
        "shuffle feeds a conv2d that is not depthwise (groups=6, in=6, out=12)",
    ]
    assert max_error(graph, after) == 0.0


def test_shuffle_returned_as_output_is_not_folded() -> None:
    graph = graph_of(ShuffleToOutput(), (1, 4, 3, 3))
    after, stats = folded(graph)
    assert stats["matches"] == 0 and count(after, "channel_shuffle") == 1
    assert stats["refused"] == {"shuffle output is a graph output": 1}


class TwoShuffles(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.dw = nn.Conv2d(6, 6, 3, 1, 1, groups=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(channel_shuffle(channel_shuffle(x, 2), 3))


def test_a_conv_that_already_reads_through_a_shuffle_takes_no_second_one() -> None:
    graph = graph_of(TwoShuffles(), (1, 6, 4, 4))
    after, stats = run_passes([recognize_channel_shuffle, fold_shuffle_into_depthwise,
                               fold_shuffle_into_depthwise], graph)
    assert [s.matches for s in stats[1:]] == [1, 0] and count(after, "channel_shuffle") == 1
    assert stats[1].refused == {"shuffle feeds channel_shuffle (argument 0), not a conv's data input": 1}
    assert stats[2].refused == {"the depthwise conv2d already reads its input through a shuffle": 1}
    assert shuffled_convs(after) == [("conv2d", 3)]
    assert max_error(graph, after) == 0.0


def test_verifier_rejects_the_attribute_where_it_does_not_fit() -> None:
    graph = graph_of(GroupedConsumer(), (1, 6, 5, 5))
    grouped = next(r for r in graph.records() if r.op == "conv2d" and r.attrs["groups"] == 3)
    graph.replace_record(grouped.name, grouped.with_(attrs=grouped.attrs.updated(**{SHUFFLE: 3})))
    with pytest.raises(IRVerificationError, match="input_shuffle_groups needs a depthwise conv"):
        verify(graph)

    after, _ = folded(graph_of(V1Block(dw_act=True), (1, 12, 6, 6)))
    verify(after)
    dw = next(r for r in after.records() if r.attrs.get(SHUFFLE))
    after.replace_record(dw.name, dw.with_(attrs=dw.attrs.updated(**{SHUFFLE: 5})))
    with pytest.raises(IRVerificationError, match="input_shuffle_groups=5 does not divide 12 channels"):
        verify(after)
    fused = optimize(graph_of(V1Block(dw_act=True), (1, 12, 6, 6)), targets.get("x86")).graph
    expand = next(r for r in fused.records() if r.op == "fused_conv2d" and r.attrs["groups"] == 3)
    fused.replace_record(expand.name, expand.with_(attrs=expand.attrs.updated(**{SHUFFLE: 3})))
    with pytest.raises(IRVerificationError, match="fused_conv2d: input_shuffle_groups needs a depthwise conv"):
        verify(fused)


def test_printer_shows_the_attribute() -> None:
    from lncompile.ir.printer import format_graph

    after, _ = folded(graph_of(V1Block(), (1, 12, 6, 6)))
    assert "input_shuffle_groups=3" in format_graph(after)


# ---- passes that read a conv's input channels, should they meet the attribute (not in the default order) ----

class AffineShuffleDepthwise(nn.Module):
    """BN on the input (no conv before it: becomes a channel_affine) -> shuffle -> unpadded depthwise conv."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bn = nn.BatchNorm2d(6)
        self.dw = nn.Conv2d(6, 6, 3, groups=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(channel_shuffle(self.bn(x), 3))


class ShuffleAfterShuffledDepthwise(nn.Module):
    """dense 1x1 -> shuffle(3) -> depthwise -> shuffle(2) -> ReLU (output): the second shuffle cannot go up."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(6, 6, 1)
        self.dw = nn.Conv2d(6, 6, 3, 1, 1, groups=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(channel_shuffle(self.dw(channel_shuffle(self.conv(x), 3)), 2))


def test_affine_folds_into_a_shuffled_depthwise_conv_through_the_permutation() -> None:
    graph = graph_of(AffineShuffleDepthwise(), (1, 6, 5, 5))
    after, stats = run_passes([recognize_channel_shuffle, fold_batchnorm, fold_shuffle_into_depthwise,
                               fold_affine_into_conv], graph)
    assert stats[2].matches == 1 and stats[3].matches == 1
    assert count(after, "channel_affine") == count(after, "channel_shuffle") == 0
    assert max_error(graph, after) <= 1e-5


def test_a_shuffled_depthwise_conv_does_not_pass_a_permutation_up() -> None:
    graph = graph_of(ShuffleAfterShuffledDepthwise(), (1, 6, 5, 5))
    after, stats = run_passes([recognize_channel_shuffle, fold_shuffle_into_depthwise, fold_channel_shuffle], graph)
    assert stats[1].matches == 1 and stats[2].matches == 0 and count(after, "channel_shuffle") == 1
    (reason,) = stats[2].refused
    assert "producer conv2d cannot take a channel permutation" in reason
    assert max_error(graph, after) == 0.0


# ---- lowering -------------------------------------------------------------------------------------------

def _x86(layout: str) -> targets.TargetPreset:
    return dataclasses.replace(targets.get("x86"), layout=layout)


def _primfunc_names(graph: Graph, layout: str = "NCHW") -> list[str]:
    """Names of the TIR kernels of ``graph`` after TVM's fusion, as the build fuses them."""
    from lncompile.backend import tvm_api
    from lncompile.backend.build import resolve_host_json, resolve_target_json
    from lncompile.lower.layout import lower

    p = _x86(layout)
    target = tvm_api.make_target(resolve_target_json(p), resolve_host_json(p))
    fused = tvm_api.fuse_for_target(lower(graph, layout), target)
    return [gv.name_hint for gv, f in fused.functions_items() if type(f).__name__ == "PrimFunc"]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_tiny_v1_block_compiles_for_x86_with_one_kernel_for_shuffle_and_depthwise(layout: str) -> None:
    import lncompile

    model = _randomize_bn(V1Block())
    x = np.random.default_rng(0).standard_normal((1, 12, 8, 8)).astype(np.float32)
    compiled = lncompile.compile(model, _x86(layout), example_input=x, tuning_log=False)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-4
    assert count(compiled.graph, "channel_shuffle") == 0 and shuffled_convs(compiled.graph) == [("conv2d", 3)]
    kernels = _primfunc_names(compiled.graph, layout)
    moves = [k for k in kernels if "transpose" in k or "permute" in k or "reshape" in k]
    if layout == "NCHW":
        assert not moves, kernels
    else:  # channels-last: only the model's input and output change layout
        assert len(moves) <= 2 and not [k for k in moves if "conv" in k], kernels
    # the gather, the depthwise reduction and its bias add are one kernel
    suffix = "_nhwc" if layout == "NHWC" else ""
    assert [k for k in kernels if "depthwise_conv2d_shuffled" in k] == [f"fused_depthwise_conv2d_shuffled{suffix}_add"]


class ShuffledDepthwiseCases(nn.Module):
    """Several shuffled depthwise convs on one input: stride 2, dilation 2, asymmetric padding, 1x1 unpadded."""

    CASES = ((3, 1, 1, (1, 1, 1, 1)), (3, 2, 1, (0, 1, 0, 1)), (3, 1, 2, (2, 1, 0, 2)), (1, 1, 1, (0, 0, 0, 0)))

    def __init__(self) -> None:
        super().__init__()
        self.cases = nn.ModuleList(ShuffledDepthwise(8, 4, *case) for case in self.CASES)  # pads: l, r, t, b

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(m(x) for m in self.cases)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_shuffled_depthwise_lowering_matches_the_interpreter(layout: str) -> None:
    from lncompile.backend import tvm_api
    from lncompile.backend.build import build

    graph = graph_of(ShuffledDepthwiseCases(), (1, 8, 7, 7))
    after = optimize(graph, targets.get("x86")).graph
    assert count(after, "channel_shuffle") == 0 and shuffled_convs(after) == [("fused_conv2d", 4)] * 4
    vm = tvm_api.VirtualMachine(build(after, _x86(layout), tuning_log=False).executable, tvm_api.cpu_device())
    (x,) = inputs_for(after)
    got = vm["main"](tvm_api.tensor(x))
    for i, expected in enumerate(run_graph(graph, x)):
        assert relative_error(got[i].numpy(), expected) <= 1e-5
    kernels = [k for k in _primfunc_names(after, layout) if "transpose" not in k]  # NHWC: input, outputs
    assert len(kernels) == 4 and all("depthwise_conv2d_shuffled" in k for k in kernels), kernels
