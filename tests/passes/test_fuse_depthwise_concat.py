"""fuse_depthwise_concat: a ghost module's concat of y and a depthwise conv of y (and the residual add alone
reading it) becomes one depthwise_concat node where the target rule is on; outputs unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile.errors import UsageError
from lncompile.ir import Graph
from lncompile.passes import PassStats, fold_batchnorm, fuse_conv_activation, fuse_depthwise_concat, run_pipeline
from tests.passes._util import graph_of, max_error

ACTIVATIONS = {"relu": nn.ReLU(), "none": nn.Identity(), "hardswish": nn.Hardswish(), "gelu": nn.GELU()}


class Ghost(nn.Module):
    """1x1 conv -> y; concat(y, act(BN(dw(y)))) [+ x]; ``order`` "dw_first" puts the conv's part first, ``stride``
    and ``y_read_twice`` / ``dw_read_twice`` break the pattern."""

    def __init__(self, act: str = "relu", residual: bool = False, stride: int = 1, order: str = "y_first",
                 dw_read_twice: bool = False) -> None:
        super().__init__()
        self.primary = nn.Conv2d(16, 8, 1)
        self.cheap = nn.Sequential(nn.Conv2d(8, 8, 3, stride, 1, groups=8, bias=False), nn.BatchNorm2d(8),
                                   ACTIVATIONS[act])
        self.residual, self.order, self.dw_read_twice = residual, order, dw_read_twice

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        y = self.primary(x)
        d = self.cheap(y)
        if d.shape != y.shape:
            d = nn.functional.interpolate(d, size=y.shape[2:])
        out = torch.cat([y, d] if self.order == "y_first" else [d, y], 1)
        out = out + x if self.residual else out
        return (out, d) if self.dw_read_twice else out


def _fuse(graph: Graph, rule: str | None = "on") -> tuple[Graph, PassStats]:
    rules = {} if rule is None else {"depthwise_concat": rule}
    passes = [fold_batchnorm.PASS, fuse_conv_activation.PASS, fuse_depthwise_concat.PASS]
    result = run_pipeline(graph, passes, rules)
    return result.graph, result.stats[-1]


def _graph(**kwargs: object) -> Graph:
    torch.manual_seed(0)
    return graph_of(Ghost(**kwargs), (1, 16, 9, 11))


@pytest.mark.parametrize(("act", "residual"), [("relu", False), ("none", True), ("hardswish", True), ("relu", True)])
def test_concat_of_y_and_its_depthwise_conv_fuses_and_computes_the_same(act: str, residual: bool) -> None:
    graph = _graph(act=act, residual=residual)
    after, stats = _fuse(graph)
    assert stats.matches == 1
    assert after.op_counts() == {"conv2d": 1, "depthwise_concat": 1}  # the 1x1 conv and the fused node, no add
    (fused,) = [r for r in after.records() if r.op == "depthwise_concat"]
    assert fused.attrs["activation"] == act and fused.attrs["residual"] == residual
    assert max_error(graph, after) <= 1e-5


def test_rule_off_by_default_keeps_the_concat() -> None:
    graph = _graph()
    for rule in (None, "off"):
        after, stats = _fuse(graph, rule)
        assert stats.matches == 0 and after.op_counts().get("concat") == 1
        assert "depthwise_concat" not in after.op_counts()
        reason = f"rule depthwise_concat={rule or 'off'} keeps the concat and the depthwise conv apart"
        assert list(stats.refused) == [reason]


@pytest.mark.parametrize("kwargs", [{"order": "dw_first"}, {"stride": 2}, {"dw_read_twice": True}, {"act": "gelu"}])
def test_other_concats_are_left_alone(kwargs: dict[str, object]) -> None:
    after, stats = _fuse(_graph(**kwargs))
    assert stats.matches == 0 and after.op_counts().get("concat") == 1


def test_an_unknown_rule_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="depthwise_concat"):
        _fuse(_graph(), "yes")
