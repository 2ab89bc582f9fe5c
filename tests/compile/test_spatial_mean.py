"""The hand-scheduled channels-last mean over H and W (lncompile/backend/spatial_mean.py): numpy's mean for
channel counts of each vector width, and inside real builds: a squeeze-and-excitation block and a classifier
head match PyTorch in the channels-last preset with no mean task and no transpose left, while a channels-first
build keeps Relax's mean (a tuning task)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.backend.spatial_mean import scheduled_kernel
from lncompile.backend.tvm_api import tvm
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from tests.conftest import relative_error


@pytest.mark.parametrize(("shape", "keepdims"), [((1, 7, 9, 32), True), ((2, 5, 3, 24), True), ((1, 4, 4, 3), True),
                                               ((2, 6, 5, 40), False)])
def test_kernel_is_the_mean_over_rows_and_columns(shape: tuple[int, int, int, int], keepdims: bool) -> None:
    library = tvm.tirx.build(scheduled_kernel(shape, keepdims=keepdims).with_attr("global_symbol", "main"),
                             target=tvm_api.make_target({"kind": "llvm"}))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = x.mean(axis=(1, 2), keepdims=keepdims)
    y = tvm_api.empty_tensor(list(expected.shape), "float32", tvm_api.cpu_device())
    library["main"](tvm_api.tensor(x), y)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)


class SqueezeExciteNet(nn.Module):
    """conv -> SE (mean, reduce, ReLU, expand, sigmoid, scale) -> conv -> global mean -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 24, 3, padding=1)
        self.reduce, self.expand = nn.Conv2d(24, 8, 1), nn.Conv2d(8, 24, 1)
        self.project = nn.Conv2d(24, 16, 1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(y.mean((2, 3), keepdim=True)))))
        z = self.project(y * gate)
        return self.head(z.mean((2, 3)))


def _net() -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(0)
    return SqueezeExciteNet().eval(), np.random.default_rng(0).standard_normal((1, 3, 15, 13)).astype(np.float32)


def test_channels_last_build_uses_the_kernel_matches_pytorch_and_adds_no_transpose() -> None:
    net, x = _net()
    preset = get_target("x86")
    compiled = lncompile.compile(net, preset, x, tuning_log=False)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-5
    problem = prepare("se", import_model(net, x).graph, preset)
    calls = [name for name, _, _ in tvm_api.kernel_call_order(problem.fused)]
    assert sum(name.startswith("spatial_mean_nhwc") for name in calls) == 2
    assert not any("mean" in str(task.task_name) for task in problem.tasks)
    # no transpose: the stem conv reads the NCHW image, the kernels' permute_dims cancel against the convs'
    assert sum("transpose" in name for name in calls) == 0


def test_channels_first_build_keeps_relax_mean() -> None:
    net, x = _net()
    preset = replace(get_target("x86"), name="x86-nchw", layout="NCHW")
    problem = prepare("se", import_model(net, x).graph, preset)
    calls = [name for name, _, _ in tvm_api.kernel_call_order(problem.fused)]
    assert not any("spatial_mean" in name for name in calls)
    assert any("mean" in str(task.task_name) for task in problem.tasks)
