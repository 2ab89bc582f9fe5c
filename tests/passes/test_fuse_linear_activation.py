"""fuse_linear_activation: linear -> activation becomes one fused_linear node."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile.passes import fuse_linear_activation
from tests.passes._util import graph_of, max_error, run_pass


@pytest.mark.parametrize(("act", "expected"), [(nn.ReLU(), "relu"), (nn.Hardswish(), "hardswish"),
                                               (nn.GELU(approximate="tanh"), "gelu"), (nn.PReLU(1, 0.3), "prelu")])
def test_linear_activation_fuses(act: nn.Module, expected: str) -> None:
    torch.manual_seed(0)
    graph = graph_of(nn.Sequential(nn.Linear(6, 4, bias=expected != "relu"), act), (3, 6))
    after, stats = run_pass(fuse_linear_activation, graph)
    assert stats.matches == 1 and after.op_counts() == {"fused_linear": 1}
    (fused,) = [r for r in after.records() if r.op == "fused_linear"]
    assert fused.attrs["activation"] == expected
    if expected == "gelu":
        assert fused.attrs["act_approximate"] == "tanh"
    assert max_error(graph, after) <= 1e-5


def test_linear_output_that_is_a_graph_output_is_not_fused() -> None:
    class Both(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.fc(x)
            return torch.relu(y), y

    torch.manual_seed(0)
    graph = graph_of(Both(), (2, 6))
    after, stats = run_pass(fuse_linear_activation, graph)
    assert stats.matches == 0 and after.op_counts() == {"linear": 1, "relu": 1}
    assert "linear output is a graph output" in stats.refused
