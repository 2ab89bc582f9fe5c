"""mark_depthwise: conv2d with groups == in == out channels gets depthwise=True; nothing reads it but the verifier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile import targets
from lncompile.errors import IRVerificationError
from lncompile.ir import run_graph, verify
from lncompile.passes import mark_depthwise
from tests.conftest import relative_error
from tests.passes._grouping_util import run_passes
from tests.passes._util import graph_of, inputs_for, max_error


class Convs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)  # depthwise
        self.mult = nn.Conv2d(4, 8, 3, padding=1, groups=4)  # channel multiplier 2: not depthwise
        self.grouped = nn.Conv2d(8, 8, 1, groups=2)
        self.dense = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.grouped(self.mult(self.dw(x))))


def test_only_true_depthwise_convs_are_marked() -> None:
    graph = graph_of(Convs(), (1, 4, 6, 6))
    after, (stats,) = run_passes([mark_depthwise], graph)
    marks = [r.attrs.get("depthwise", False) for r in after.records() if r.op == "conv2d"]
    assert stats.matches == 1 and marks == [True, False, False, False]
    assert max_error(graph, after) == 0.0
    _, (stats,) = run_passes([mark_depthwise], after)
    assert stats.matches == 0  # already marked


def test_verifier_rejects_a_stale_marker() -> None:
    graph = graph_of(Convs(), (1, 4, 6, 6))
    dense = [r for r in graph.records() if r.op == "conv2d"][-1]
    graph.replace_record(dense.name, dense.with_(attrs=dense.attrs.updated(depthwise=True)))
    with pytest.raises(IRVerificationError, match="marked depthwise but groups=1"):
        verify(graph)


@pytest.mark.slow
def test_marked_graph_lowers_and_runs_in_tvm() -> None:
    from lncompile.backend import tvm_api
    from lncompile.backend.build import build

    graph = graph_of(Convs(), (1, 4, 6, 6))
    after, _ = run_passes([mark_depthwise], graph)
    vm = tvm_api.VirtualMachine(build(after, targets.get("x86")).executable, tvm_api.cpu_device())
    (x,) = inputs_for(after)
    assert relative_error(vm["main"](tvm_api.tensor(x)).numpy(), run_graph(graph, x)[0]) <= 1e-5
