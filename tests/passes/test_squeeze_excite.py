"""squeeze_excite: mean -> 1x1 conv -> act -> 1x1 conv -> gate -> mul(x, gate) becomes one node."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lncompile.passes import squeeze_excite
from tests.passes._util import count, graph_of, max_error, run_pass


class SE(nn.Module):
    def __init__(self, act: str = "relu", gate: str = "sigmoid", leak: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.reduce, self.expand = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.act, self.gate, self.leak = act, gate, leak

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        s = x.mean((2, 3), keepdim=True)
        h = self.reduce(s)
        h = {"relu": F.relu, "silu": F.silu, "hardswish": F.hardswish, "relu6": F.relu6}[self.act](h)
        g = self.expand(h)
        g = torch.sigmoid(g) if self.gate == "sigmoid" else F.hardsigmoid(g)
        y = x * g
        return (y, s * 2.0) if self.leak else y


@pytest.mark.parametrize(("act", "gate"), [("relu", "sigmoid"), ("silu", "sigmoid"), ("hardswish", "hardsigmoid"),
                                           ("relu6", "hardsigmoid")])
def test_se_becomes_one_node(act: str, gate: str) -> None:
    torch.manual_seed(0)
    graph = graph_of(SE(act, gate), (1, 3, 8, 8))
    after, stats = run_pass(squeeze_excite, graph)
    assert stats.matches == 1 and count(after, "squeeze_excite") == 1
    assert count(after, "mean") == 0 and count(after, "mul") == 0 and count(after, "conv2d") == 1
    (se,) = [r for r in after.records() if r.op == "squeeze_excite"]
    assert se.attrs["act"] == ("clip" if act == "relu6" else act) and se.attrs["gate"] == gate
    assert max_error(graph, after) <= 1e-5


def test_se_whose_pooled_tensor_has_another_user_is_refused() -> None:
    torch.manual_seed(0)
    graph = graph_of(SE(leak=True), (1, 3, 8, 8))
    after, stats = run_pass(squeeze_excite, graph)
    assert stats.matches == 0 and count(after, "squeeze_excite") == 0
    assert "pooled tensor has another consumer" in stats.refused
    assert max_error(graph, after) == 0.0


def test_global_pool_before_a_classifier_is_not_se() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    graph = graph_of(model, (1, 3, 8, 8))
    after, stats = run_pass(squeeze_excite, graph)
    assert stats.matches == 0 and count(after, "mean") == 1
