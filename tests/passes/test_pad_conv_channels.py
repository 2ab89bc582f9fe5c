"""pad_conv_channels: a dense conv's output channels zero-padded to the rule's multiple, sliced back after."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile.errors import UsageError
from lncompile.ir import Graph, Value
from lncompile.passes import PassStats, fold_batchnorm, fuse_conv_activation, pad_conv_channels, run_pipeline
from tests.passes._util import graph_of, max_error


class Head(nn.Module):
    """SqueezeNet's classifier in small: conv -> act -> global average pool -> flatten (+ x with ``residual``)."""

    def __init__(self, channels: int = 8, out: int = 125, kernel: int = 1, groups: int = 1, bias: bool = True,
                 act: nn.Module | None = None, residual: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, out, kernel, padding=kernel // 2, groups=groups, bias=bias)
        self.act = act or nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        y = y + x if self.residual else y
        return y.mean((2, 3))


def _graph(**kwargs: object) -> Graph:
    torch.manual_seed(0)
    channels = int(kwargs.get("channels", 8))  # type: ignore[call-overload]
    return graph_of(Head(**kwargs), (1, channels, 5, 5))  # type: ignore[arg-type]


def _rewrite(graph: Graph, multiple: str | None = "4") -> tuple[Graph, PassStats]:
    rules = {} if multiple is None else {"pad_channels": multiple}
    result = run_pipeline(graph, [fold_batchnorm.PASS, fuse_conv_activation.PASS, pad_conv_channels.PASS], rules)
    return result.graph, result.stats[2]


@pytest.mark.parametrize(("kwargs", "padded"), [
    ({}, 128),  # 125 -> 128: 2.4% more work
    ({"act": nn.Hardswish(), "kernel": 3}, 128),
    ({"act": nn.Identity(), "bias": False}, 128),  # a plain conv2d, given a zero bias
    ({"out": 63, "act": nn.SiLU()}, 64),
])
def test_channels_are_padded_and_sliced_back_with_the_same_output(kwargs: dict, padded: int) -> None:
    graph = _graph(**kwargs)
    after, stats = _rewrite(graph)
    assert stats.matches == 1
    (conv,) = [r for r in after.records() if r.op in ("conv2d", "fused_conv2d")]
    (cut,) = [r for r in after.records() if r.op == "slice"]
    assert conv.type.shape[1] == padded and after.args(cut.name) == [Value(conv.name)]
    assert (cut.attrs["axis"], cut.attrs["start"], cut.attrs["end"]) == (1, 0, kwargs.get("out", 125))
    assert max_error(graph, after) <= 1e-6


@pytest.mark.parametrize(("kwargs", "multiple", "refusal"), [
    ({"out": 40}, "16", "padding to a multiple of 16 would add over 3.1% work"),  # 40 -> 48: 20% more
    ({"out": 8, "residual": True}, "16", "a residual or prelu input has the conv's channel count"),
    ({"out": 125, "act": nn.PReLU(125)}, "4", "a residual or prelu input has the conv's channel count"),
    ({"out": 128}, "16", None),  # already a multiple
    ({"out": 128, "act": nn.PReLU(128)}, "16", None),  # already a multiple: nothing to refuse
    ({}, None, None),  # rule off (the default)
    ({"channels": 125, "groups": 125, "kernel": 3}, "4", None),  # depthwise: not a dense conv
])
def test_must_not_fire(kwargs: dict, multiple: str | None, refusal: str | None) -> None:
    graph = _graph(**kwargs)
    after, stats = _rewrite(graph, multiple)
    assert stats.matches == 0 and "slice" not in after.op_counts()
    assert stats.refused == ({refusal: 1} if refusal else {})
    assert max_error(graph, after) == 0


@pytest.mark.parametrize("value", ["1", "sixteen", "-8"])
def test_an_unknown_rule_value_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match=f"pad_channels={value!r} is unknown"):
        _rewrite(_graph(), value)
