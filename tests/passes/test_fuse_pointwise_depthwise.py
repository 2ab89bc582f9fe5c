"""fuse_pointwise_depthwise: a pointwise conv and the depthwise conv alone reading it become one node when the
tensor between them reaches the target rule's size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile.errors import UsageError
from lncompile.ir import Graph
from lncompile.passes import PassStats, fuse_conv_activation, fuse_pointwise_depthwise, run_pipeline
from tests.passes._util import graph_of, max_error

ACTIVATIONS = {"relu": nn.ReLU(), "clip": nn.ReLU6(), "hardswish": nn.Hardswish(), "none": nn.Identity(),
               "silu": nn.SiLU(), "gelu": nn.GELU()}


class InvertedResidualHead(nn.Module):
    """pointwise expand -> act -> depthwise -> act [-> the expanded tensor read again]."""

    def __init__(self, pw_act: str = "clip", dw_act: str = "clip", kernel: int = 3, stride: int = 2,
                 expanded_read_twice: bool = False) -> None:
        super().__init__()
        self.pw = nn.Conv2d(4, 24, 1)
        self.dw = nn.Conv2d(24, 24, kernel, stride, kernel // 2, groups=24)
        self.pw_act, self.dw_act = ACTIVATIONS[pw_act], ACTIVATIONS[dw_act]
        self.expanded_read_twice = expanded_read_twice

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        expanded = self.pw_act(self.pw(x))
        y = self.dw_act(self.dw(expanded))
        return (y, expanded) if self.expanded_read_twice else y


def _fuse(graph: Graph, rule: str | None = "0") -> tuple[Graph, PassStats]:
    rules = {} if rule is None else {"fuse_pointwise_depthwise": rule}
    result = run_pipeline(graph, [fuse_conv_activation.PASS, fuse_pointwise_depthwise.PASS], rules)
    return result.graph, result.stats[1]


def _graph(**kwargs: object) -> Graph:
    torch.manual_seed(0)
    return graph_of(InvertedResidualHead(**kwargs), (1, 4, 10, 10))


@pytest.mark.parametrize(("pw_act", "dw_act", "kernel", "stride"), [
    ("clip", "clip", 3, 2), ("relu", "relu", 3, 1), ("hardswish", "none", 5, 2), ("none", "hardswish", 5, 1),
    ("silu", "silu", 3, 2),
])
def test_pointwise_then_depthwise_fuses_and_computes_the_same(pw_act: str, dw_act: str, kernel: int,
                                                              stride: int) -> None:
    graph = _graph(pw_act=pw_act, dw_act=dw_act, kernel=kernel, stride=stride)
    after, stats = _fuse(graph)
    assert stats.matches == 1 and after.op_counts() == {"fused_pointwise_depthwise": 1}
    (fused,) = [r for r in after.records() if r.op == "fused_pointwise_depthwise"]
    assert fused.attrs["pw_activation"] == pw_act and fused.attrs["activation"] == dw_act
    assert tuple(fused.attrs["strides"]) == (stride, stride)
    assert max_error(graph, after) <= 1e-5


def test_rule_off_by_default_and_below_the_size_keeps_two_kernels() -> None:
    graph = _graph()
    for rule in (None, "off", "1"):  # the expanded tensor is 24 x 10 x 10 floats: 9.4 KiB
        after, stats = _fuse(graph, rule)
        assert stats.matches == 0 and after.op_counts() == {"fused_conv2d": 2}
        assert [reason.startswith("rule fuse_pointwise_depthwise=") for reason in stats.refused] == [True]
    after, stats = _fuse(graph, "0.009")  # 9.4 KiB = 0.0092 MiB
    assert stats.matches == 1


def test_expanded_tensor_read_elsewhere_is_not_fused() -> None:
    after, stats = _fuse(_graph(expanded_read_twice=True))
    assert stats.matches == 0 and after.op_counts() == {"fused_conv2d": 2}
    assert list(stats.refused) == ["expanded tensor is a graph output"]


def test_activation_the_kernel_lacks_is_not_fused() -> None:
    after, stats = _fuse(_graph(pw_act="gelu"))
    assert stats.matches == 0 and not stats.refused and after.op_counts() == {"fused_conv2d": 2}


def test_a_grouped_or_strided_first_conv_is_not_a_pointwise_conv() -> None:
    class Strided(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pw = nn.Conv2d(4, 24, 1, stride=2)
            self.dw = nn.Conv2d(24, 24, 3, 1, 1, groups=24)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.dw(torch.relu(self.pw(x))))

    torch.manual_seed(0)
    after, stats = _fuse(graph_of(Strided(), (1, 4, 10, 10)))
    assert stats.matches == 0 and after.op_counts() == {"fused_conv2d": 2}


@pytest.mark.parametrize("rule", ["big", "-1"])
def test_an_unknown_rule_value_is_a_usage_error(rule: str) -> None:
    with pytest.raises(UsageError, match="fuse_pointwise_depthwise"):
        _fuse(_graph(), rule)
