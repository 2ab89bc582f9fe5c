"""fold_pad: an explicit zero H/W pad moves into the conv's (or count-including avg pool's) padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lncompile.passes import fold_pad
from tests.passes._util import count, graph_of, max_error, run_pass


class PadConv(nn.Module):
    def __init__(self, value: float = 0.0, then: str = "conv") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.value, self.then = value, then

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pad(x, (1, 2, 0, 1), value=self.value)  # asymmetric, like TF "SAME" padding
        if self.then == "conv":
            return self.conv(y)
        if self.then == "avg":
            return F.avg_pool2d(y, 3, 2, padding=1, count_include_pad=True)
        if self.then == "avg_exclusive":
            return F.avg_pool2d(y, 3, 2, padding=1, count_include_pad=False)
        return F.max_pool2d(y, 3, 2)


@pytest.mark.parametrize("then", ["conv", "avg"])
def test_zero_pad_folds_into_padding(then: str) -> None:
    graph = graph_of(PadConv(then=then), (1, 3, 9, 9))
    after, stats = run_pass(fold_pad, graph)
    assert stats.matches == 1 and count(after, "pad") == 0
    (consumer,) = [r for r in after.records() if r.op in ("conv2d", "avg_pool2d")]
    assert consumer.attrs["padding"] == (1, 2, 2, 3)  # (t, l, b, r): own 1 + explicit (0, 1, 1, 2)
    assert max_error(graph, after) <= 1e-6


@pytest.mark.parametrize(("value", "then", "reason"), [
    (0.5, "conv", "pad value is not zero"),
    (0.0, "max", "max_pool2d"),
    (0.0, "avg_exclusive", "count_include_pad=False"),
])
def test_inexact_pads_are_refused(value: float, then: str, reason: str) -> None:
    graph = graph_of(PadConv(value, then), (1, 3, 9, 9))
    after, stats = run_pass(fold_pad, graph)
    assert stats.matches == 0 and count(after, "pad") == 1
    assert any(reason in r for r in stats.refused), stats.refused
    assert max_error(graph, after) == 0.0


def test_channel_pad_is_refused() -> None:
    class PadChannels(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(5, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(F.pad(x, (0, 0, 0, 0, 1, 1)))

    graph = graph_of(PadChannels(), (1, 3, 4, 4))
    after, stats = run_pass(fold_pad, graph)
    assert stats.matches == 0 and "pad touches N or C" in stats.refused and count(after, "pad") == 1
