"""The hand-scheduled end of a squeeze-and-excitation block (lncompile/backend/se_scale.py): the gate computed
once per channel and x scaled in place, equal to PyTorch for both gates; a channels-last build uses it only
where the SE block is the only reader of its input (elsewhere the input must survive it) and matches PyTorch
either way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.backend.se_scale import scheduled_kernel
from lncompile.backend.tvm_api import tvm
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from tests.conftest import relative_error

GATES = {"sigmoid": torch.sigmoid, "hardsigmoid": F.hardsigmoid}


@pytest.mark.parametrize(("shape", "hidden", "gate"), [((1, 5, 7, 32), 8, "sigmoid"), ((2, 3, 4, 24), 6, "hardsigmoid"),
                                                      ((1, 2, 2, 12), 3, "sigmoid")])
@pytest.mark.parametrize("fast_math", [False, True])
def test_kernel_scales_x_in_place_by_the_gate(shape: tuple[int, int, int, int], hidden: int, gate: str,
                                             fast_math: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    squeezed = rng.standard_normal((shape[0], 1, 1, hidden)).astype(np.float32)
    weight = rng.standard_normal((hidden, shape[3])).astype(np.float32)
    bias = rng.standard_normal(shape[3]).astype(np.float32)
    g = GATES[gate](torch.from_numpy(squeezed[:, 0, 0] @ weight + bias)).numpy()
    expected = x * g[:, None, None, :]
    func = scheduled_kernel(shape, hidden, gate, fast_math=fast_math)
    assert len(func.params) == 4  # x, h, w2, b2: the result is written into x
    library = tvm.tirx.build(func.with_attr("global_symbol", "main"), target=tvm_api.make_target({"kind": "llvm"}))
    data = tvm_api.tensor(x)
    library["main"](data, tvm_api.tensor(squeezed), tvm_api.tensor(weight), tvm_api.tensor(bias))
    assert relative_error(data.numpy(), expected) <= 1e-6


class SqueezeExcite(nn.Module):
    """conv -> SE (mean, reduce conv, ReLU, expand conv, gate, multiply) -> conv; ``residual``: the SE's input is
    also added to its output, so it has a second reader."""

    def __init__(self, gate: str, residual: bool) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 8, 1)
        self.reduce, self.expand = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.gate, self.residual = GATES[gate], residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        scaled = y * self.gate(self.expand(torch.relu(self.reduce(y.mean((2, 3), keepdim=True)))))
        return self.head(scaled + y if self.residual else scaled)


@pytest.mark.parametrize(("gate", "residual", "in_place"), [("sigmoid", False, True), ("hardsigmoid", False, True),
                                                            ("sigmoid", True, False)])
def test_channels_last_build_scales_in_place_only_an_input_nothing_else_reads(gate: str, residual: bool,
                                                                             in_place: bool) -> None:
    torch.manual_seed(0)
    net, x = SqueezeExcite(gate, residual).eval(), np.random.default_rng(1).standard_normal((1, 8, 9, 11))
    x = x.astype(np.float32)
    problem = prepare("se", import_model(net, x).graph, get_target("x86"))
    calls = [name for name, _, _ in tvm_api.kernel_call_order(problem.fused)]
    assert sum(name.startswith("se_scale_nhwc") for name in calls) == int(in_place)
    assert sum("multiply" in name for name in calls) == int(not in_place)  # else FuseOps' gate-and-multiply kernel
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert relative_error(lncompile.compile(net, "x86", x, tuning_log=False)(x), expected) <= 1e-5
