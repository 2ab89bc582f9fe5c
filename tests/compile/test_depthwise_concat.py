"""A ghost module's concat of y and its depthwise conv as one hand kernel (lncompile/backend/depthwise.py with
``concat``): equal to PyTorch alone, for vector widths 16/8/4 and with a residual; a channels-last x86 build
writes no concat kernel and matches PyTorch, and so does an NCHW build of the same fused node (Relax ops)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.backend.depthwise import scheduled_kernel
from lncompile.backend.tvm_api import tvm
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from tests.conftest import relative_error


@pytest.mark.parametrize(("size", "channels", "kernel", "act", "residual"), [
    (9, 16, 3, "relu", False), (7, 12, 3, "none", True), (10, 40, 5, "hardswish", True), (6, 8, 3, "silu", False)])
def test_kernel_writes_x_beside_its_depthwise_conv(size: int, channels: int, kernel: int, act: str,
                                                   residual: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, size, size + 3, channels)).astype(np.float32)
    w = rng.standard_normal((kernel, kernel, channels)).astype(np.float32)
    b = rng.standard_normal(channels).astype(np.float32)
    r = rng.standard_normal((1, size, size + 3, 2 * channels)).astype(np.float32)
    conv = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w).permute(2, 0, 1)[:, None],
                    torch.from_numpy(b), padding=kernel // 2, groups=channels)
    conv = {"relu": F.relu, "none": lambda t: t, "hardswish": F.hardswish, "silu": F.silu}[act](conv)
    expected = np.concatenate([x, conv.permute(0, 2, 3, 1).numpy()], axis=3) + (r if residual else 0)
    pad = kernel // 2
    func = scheduled_kernel(x.shape, (kernel, kernel), (1, 1), (pad,) * 4, (act, {}), concat=True, residual=residual)
    library = tvm.tirx.build(func.with_attr("global_symbol", "main"), target=tvm_api.make_target({"kind": "llvm"}))
    out = tvm_api.tensor(np.zeros_like(expected))
    library["main"](*(tvm_api.tensor(a) for a in [x, w, b, *([r] if residual else [])]), out)
    assert relative_error(out.numpy(), expected) <= 1e-5


class GhostPair(nn.Module):
    """Two ghost modules (1x1 conv, concat with a 3x3 depthwise conv of it): ReLU, then linear plus the input."""

    def __init__(self) -> None:
        super().__init__()
        self.primary1, self.cheap1 = nn.Conv2d(16, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.primary2, self.cheap2 = nn.Conv2d(32, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.primary1(x))
        h = torch.cat([y, torch.relu(self.cheap1(y))], 1)
        z = self.primary2(h.mean((2, 3), keepdim=True) * h)  # a mean reads the concat: distribute_concat keeps it
        return torch.cat([z, self.cheap2(z)], 1) + x


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_builds_fuse_the_concats_and_match_pytorch(layout: str) -> None:
    torch.manual_seed(0)
    net, x = GhostPair().eval(), np.random.default_rng(1).standard_normal((1, 16, 12, 10)).astype(np.float32)
    preset = dataclasses.replace(get_target("x86"), layout=layout)
    problem = prepare("ghost", import_model(net, x).graph, preset)
    calls = [name for name, _, _ in tvm_api.kernel_call_order(problem.fused)]
    hand = sum(name.startswith("depthwise_concat_nhwc") for name in calls)
    assert hand == (2 if layout == "NHWC" else 0)
    assert any("concatenate" in name for name in calls) == (layout == "NCHW")
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert relative_error(lncompile.compile(net, preset, x, tuning_log=False)(x), expected) <= 1e-5
