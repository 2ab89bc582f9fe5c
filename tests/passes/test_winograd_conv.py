"""winograd_conv: dense 3x3 stride-1 convs with enough input channels become ``winograd_conv2d`` nodes whose
interpreter kernel runs the Winograd algorithm itself, so equal outputs check the weight transform and the
matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lncompile.errors import UsageError
from lncompile.ir import Graph
from lncompile.ir.winograd import TILE_SIZES, alpha, matrices, transform_weight
from lncompile.passes import PassStats, fold_batchnorm, fuse_conv_activation, run_pipeline, winograd_conv
from tests.passes._util import graph_of, max_error


class ConvBlock(nn.Module):
    """conv -> BN -> act [+ x]: after the fusion passes, one fused_conv2d (with a residual when asked)."""

    def __init__(self, channels: int = 8, out: int = 8, kernel: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1, padding: tuple[int, int] | int = 1, act: nn.Module | None = None,
                 residual: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, out, kernel, stride, padding, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(out)
        self.act = act or nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn(self.conv(x)))
        return y + x if self.residual else y


def _rewrite(graph: Graph, rule: str | None = "1", tile: str | None = None) -> tuple[Graph, PassStats]:
    rules = ({} if rule is None else {"winograd": rule}) | ({} if tile is None else {"winograd_tile": tile})
    result = run_pipeline(graph, [fold_batchnorm.PASS, fuse_conv_activation.PASS, winograd_conv.PASS], rules)
    return result.graph, result.stats[2]


def _graph(size: tuple[int, int] = (10, 10), channels: int = 8, **kwargs: object) -> Graph:
    torch.manual_seed(0)
    return graph_of(ConvBlock(channels=channels, **kwargs), (1, channels, *size))


@pytest.mark.parametrize("tile", TILE_SIZES)
def test_matrices_compute_a_3_tap_correlation(tile: int) -> None:
    a_t, b_t, g = matrices(tile)
    rng = np.random.default_rng(tile)
    d, w = rng.standard_normal(alpha(tile)), rng.standard_normal(3)
    expected = np.array([d[i:i + 3] @ w for i in range(tile)])
    assert np.abs(a_t @ ((g @ w) * (b_t @ d)) - expected).max() < 1e-12
    u = transform_weight(w.reshape(1, 1, 1, 3) * w.reshape(1, 1, 3, 1), tile)
    assert u.shape == (alpha(tile), alpha(tile), 1, 1)
    np.testing.assert_allclose(u[:, :, 0, 0], np.outer(g @ w, g @ w), atol=1e-12)


@pytest.mark.parametrize(("size", "padding", "act", "residual", "largest", "tile"), [
    ((10, 10), 1, nn.ReLU(), False, None, 2),  # output 10x10: the last tile row/column sticks out
    ((26, 25), 1, nn.ReLU(), False, "4", 4),  # 4x4 tiles, sticking out by 2 and 3
    ((26, 25), 1, nn.ReLU(), False, "2", 2),
    ((13, 11), (1, 0), nn.ReLU6(), False, "4", 2),  # asymmetric padding, odd sizes; too small for 4x4 tiles
    ((8, 8), 1, nn.Hardswish(), True, None, 2),  # exact tiles, residual add
    ((9, 7), 0, nn.SiLU(), False, None, 2),  # unpadded
])
def test_dense_3x3_conv_becomes_winograd_and_computes_the_same(size: tuple[int, int], padding: object,
                                                                act: nn.Module, residual: bool, largest: str | None,
                                                                tile: int) -> None:
    graph = _graph(size, padding=padding, act=act, residual=residual)
    after, stats = _rewrite(graph, tile=largest)
    assert stats.matches == 1 and after.op_counts() == {"winograd_conv2d": 1}
    (node,) = [r for r in after.records() if r.op == "winograd_conv2d"]
    assert node.attrs["residual"] is residual and node.attrs["tile"] == tile
    assert after.arg_types(node.name)[1].shape == (tile + 2, tile + 2, 8, 8)
    assert max_error(graph, after) <= 1e-5


def test_plain_conv_without_bias_is_rewritten_with_a_zero_bias() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 4, 3, padding=1, bias=False)
    graph = graph_of(nn.Sequential(conv), (1, 8, 6, 6))
    result = run_pipeline(graph, [winograd_conv.PASS], {"winograd": "8"})
    assert result.stats[0].matches == 1 and result.graph.op_counts() == {"winograd_conv2d": 1}
    assert max_error(graph, result.graph) <= 1e-5


def test_rule_off_by_default_and_below_the_channels_keeps_the_conv_direct() -> None:
    graph = _graph()
    for rule in (None, "off", "9"):  # 8 input channels
        after, stats = _rewrite(graph, rule)
        assert stats.matches == 0 and after.op_counts() == {"fused_conv2d": 1}
        assert [reason.startswith("rule winograd=") for reason in stats.refused] == [True]
    assert _rewrite(graph, "8")[1].matches == 1


@pytest.mark.parametrize("kwargs", [
    {"stride": 2}, {"kernel": 1, "padding": 0}, {"kernel": 5, "padding": 2}, {"groups": 2}, {"dilation": 2},
])
def test_strided_other_kernel_grouped_or_dilated_convs_are_not_matched(kwargs: dict[str, object]) -> None:
    after, stats = _rewrite(_graph(**kwargs))
    assert stats.matches == 0 and not stats.refused and after.op_counts() == {"fused_conv2d": 1}


def test_a_prelu_conv_is_refused() -> None:
    _, stats = _rewrite(_graph(act=nn.PReLU(8)))
    assert stats.matches == 0 and list(stats.refused) == ["a prelu activation keeps its conv direct"]


@pytest.mark.parametrize("rule", ["many", "0", "-4", "2.5"])
def test_an_unknown_rule_value_is_a_usage_error(rule: str) -> None:
    with pytest.raises(UsageError, match="winograd="):
        _rewrite(_graph(), rule)


@pytest.mark.parametrize("tile", ["3", "6", "big"])
def test_an_unknown_tile_rule_value_is_a_usage_error(tile: str) -> None:
    with pytest.raises(UsageError, match="winograd_tile="):
        _rewrite(_graph(), tile=tile)
