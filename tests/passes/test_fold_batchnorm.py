"""fold_batchnorm: BN folds into the conv2d (plain, grouped, depthwise) or linear before it, only when exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile.passes import fold_batchnorm
from tests.passes._util import count, graph_of, max_error, run_pass


@pytest.mark.parametrize("groups", [1, 2, 8])  # plain, grouped, depthwise
@pytest.mark.parametrize("bias", [False, True])
def test_conv_bn_folds(groups: int, bias: bool) -> None:
    torch.manual_seed(groups)
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=groups, bias=bias), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 6, 1), nn.BatchNorm2d(6))
    graph = graph_of(model, (1, 8, 7, 7))
    after, stats = run_pass(fold_batchnorm, graph)
    assert stats.matches == 2 and not stats.refused
    assert count(after, "batch_norm") == 0 and count(after, "channel_affine") == 0
    assert count(after, "conv2d") == 2 and stats.nodes_after == stats.nodes_before - 2
    assert max_error(graph, after) <= 1e-5


def test_linear_bn1d_folds() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.BatchNorm1d(7))
    graph = graph_of(model, (3, 3, 2, 2))
    after, stats = run_pass(fold_batchnorm, graph)
    assert stats.matches == 1 and count(after, "batch_norm") == 0 and count(after, "channel_affine") == 0
    assert max_error(graph, after) <= 1e-5


class SharedConvOutput(nn.Module):
    """The conv output is also read by the residual add: folding BN into the conv would change that add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class ConvOutputIsGraphOutput(SharedConvOutput):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return self.bn(y), y


@pytest.mark.parametrize(("model", "reason"), [(SharedConvOutput, "conv2d output has another consumer"),
                                               (ConvOutputIsGraphOutput, "conv2d output is a graph output")])
def test_bn_not_folded_when_conv_output_is_read_elsewhere(model: type[nn.Module], reason: str) -> None:
    torch.manual_seed(0)
    graph = graph_of(model(), (1, 4, 6, 6))
    after, stats = run_pass(fold_batchnorm, graph)
    assert any(reason in r for r in stats.refused), stats.refused
    assert count(after, "batch_norm") == 0 and count(after, "channel_affine") == 1  # one affine node instead
    assert max_error(graph, after) <= 1e-5


def test_pre_activation_bn_becomes_one_affine_node() -> None:
    """CondenseNet/DenseNet order: BN -> ReLU -> conv, BN after a concat: no conv before to fold into."""

    class PreActivation(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn1, self.conv = nn.BatchNorm2d(3), nn.Conv2d(3, 5, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(torch.relu(self.bn1(x)))
            return torch.relu(self.bn2(torch.cat([x, y], 1)))

    torch.manual_seed(0)
    graph = graph_of(PreActivation(), (1, 3, 6, 6))
    after, stats = run_pass(fold_batchnorm, graph)
    assert stats.matches == 2 and count(after, "batch_norm") == 0 and count(after, "channel_affine") == 2
    assert set(stats.refused) == {"not folded (producer is input, not conv2d/linear): became channel_affine",
                                  "not folded (producer is concat, not conv2d/linear): became channel_affine"}
    assert max_error(graph, after) <= 1e-5
