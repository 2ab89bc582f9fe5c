"""The hand-scheduled pointwise conv (lncompile/backend/pointwise_conv.py): PyTorch's 1x1 conv + bias + activation
[+ residual] for output channels that do or do not fill 16-lane vectors, rows its column blocks do not divide and
every activation it takes; which convs it computes; inside a channels-last build it replaces the tuned kernels of
those convs, with no transpose left around it (also where ShuffleNetV2's channel split slices its output)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.backend.pointwise_conv import register_block, scheduled_kernel, suits
from lncompile.backend.tvm_api import tvm
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from tests.conftest import built_kernel_calls, relative_error

ACTIVATIONS = {
    "none": (lambda t: t, {}),
    "relu": (F.relu, {}),
    "clip": (lambda t: t.clamp(0.0, 6.0), {"min": 0.0, "max": 6.0}),
    "hardswish": (F.hardswish, {}),
    "silu": (F.silu, {}),
}
CASES = [  # (N, H, W, C), out channels, activation, residual
    ((1, 14, 14, 116), 116, "relu", False),  # ShuffleNetV2's: 4 blocks of 32, the last 20 real
    ((1, 8, 8, 144), 24, "none", True),  # MobileNetV2's project conv + residual
    ((1, 5, 13, 58), 58, "clip", False),  # 13 columns: two 7-column blocks, the second one short
    ((2, 3, 9, 24), 40, "hardswish", True),  # batch 2
    ((1, 6, 6, 16), 8, "silu", False),  # one 16-lane block, 8 real
    ((1, 7, 9, 40), 64, "relu", True),  # whole vectors: two blocks of 32, all real
    ((1, 1, 2, 72), 18, "relu", False),  # a 1x2 map: one 2-column block
]  # fmt: skip


@pytest.mark.parametrize(("shape", "out_channels", "activation", "residual"), CASES)
def test_kernel_is_torch_conv(shape: tuple[int, int, int, int], out_channels: int, activation: str,
                              residual: bool) -> None:
    rng = np.random.default_rng(0)
    n, h, w, c = shape
    x = rng.standard_normal(shape).astype(np.float32)
    weight = (rng.standard_normal((out_channels, c)) * 0.2).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    r = rng.standard_normal((n, h, w, out_channels)).astype(np.float32)
    torch_act, params = ACTIVATIONS[activation]
    conv = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(weight)[:, :, None, None],
                    torch.from_numpy(b))
    expected = torch_act(conv).permute(0, 2, 3, 1).numpy() + (r if residual else 0)
    block, _ = register_block(out_channels, w)
    padded = -(-out_channels // block) * block
    w_blocked = np.zeros((c, padded), np.float32)
    w_blocked[:, :out_channels] = weight.T
    w_blocked = np.ascontiguousarray(w_blocked.reshape(c, padded // block, block).transpose(1, 0, 2))
    func = scheduled_kernel(shape, out_channels, (activation, params), residual, fast_math=True)
    library = tvm.tirx.build(func.with_attr("global_symbol", "main"), target=tvm_api.make_target({"kind": "llvm"}))
    y = tvm_api.empty_tensor([n, h, w, out_channels], "float32", tvm_api.cpu_device())
    added = [tvm_api.tensor(r)] if residual else []
    library["main"](tvm_api.tensor(x), tvm_api.tensor(w_blocked), tvm_api.tensor(b), *added, y)
    assert relative_error(y.numpy(), expected) <= 2e-6


@pytest.mark.parametrize("after", ["relu", "clip", "hardswish"])
def test_kernel_applies_an_activation_after_the_residual(after: str) -> None:
    """A split conv's second half: act2(conv(x) + b + r), as distribute_concat leaves SqueezeNet's squeeze convs."""
    rng = np.random.default_rng(3)
    shape, out_channels = (1, 9, 11, 40), 16
    x = rng.standard_normal(shape).astype(np.float32)
    weight = (rng.standard_normal((out_channels, shape[3])) * 0.2).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    r = rng.standard_normal((*shape[:3], out_channels)).astype(np.float32)
    torch_act, params = ACTIVATIONS[after]
    expected = torch_act(torch.from_numpy(x @ weight.T + b + r)).numpy()
    block, _ = register_block(out_channels, shape[2])
    w_blocked = np.ascontiguousarray(weight.T.reshape(shape[3], 1, block).transpose(1, 0, 2))
    func = scheduled_kernel(shape, out_channels, ("none", {}), True, fast_math=True, sum_activation=(after, params))
    library = tvm.tirx.build(func.with_attr("global_symbol", "main"), target=tvm_api.make_target({"kind": "llvm"}))
    y = tvm_api.empty_tensor([*shape[:3], out_channels], "float32", tvm_api.cpu_device())
    library["main"](tvm_api.tensor(x), tvm_api.tensor(w_blocked), tvm_api.tensor(b), tvm_api.tensor(r), y)
    assert relative_error(y.numpy(), expected) <= 2e-6


def test_register_blocks() -> None:
    assert register_block(116, 14) == (32, 7)  # two 16-lane vectors x 7 columns: 14 accumulators
    assert register_block(8, 14) == (16, 14)  # one vector: 14 columns
    assert register_block(24, 2) == (32, 2)  # a row narrower than 7 columns is one block


@pytest.mark.parametrize(
    ("kernel", "strides", "groups", "channels", "out_channels", "size", "activation", "expected"), [
    ((1, 1), (1, 1), 1, 116, 116, (14, 14), "relu", True),
    ((1, 1), (1, 1), 1, 144, 24, (1, 2), "none", True),
    ((1, 1), (1, 1), 1, 672, 40, (14, 14), "silu", True),  # partial vectors: whatever the activation
    ((1, 1), (1, 1), 1, 576, 160, (7, 7), "none", True),  # whole vectors, few weights
    ((1, 1), (1, 1), 1, 960, 320, (7, 7), "none", False),  # whole vectors, many weights: the tuned kernel
    ((1, 1), (1, 1), 1, 112, 672, (14, 14), "silu", False),  # whole vectors and SiLU: the tuned kernel
    ((1, 1), (2, 2), 1, 24, 24, (14, 14), "none", False),
    ((3, 3), (1, 1), 1, 24, 24, (14, 14), "none", False),
    ((1, 1), (1, 1), 2, 24, 24, (14, 14), "none", False),
    ((1, 1), (1, 1), 1, 72, 24, (1, 1), "relu", False),  # a squeeze-and-excitation's conv
])  # fmt: skip
def test_suits(kernel: tuple[int, int], strides: tuple[int, int], groups: int, channels: int, out_channels: int,
               size: tuple[int, int], activation: str, expected: bool) -> None:
    padding = (0, 0, 0, 0) if kernel == (1, 1) else (1, 1, 1, 1)
    assert suits(kernel, strides, padding, groups, channels, out_channels, size, activation) is expected


class SplitBlock(nn.Module):
    """A 1x1 conv of 40 channels (not 16-lane), then a ShuffleNetV2-style unit: split the channels, a 1x1 conv of
    20 channels on one half, concat; then a 1x1 conv of 24 channels with a residual, and one of 32 (16-lane) with
    SiLU, which keeps the tuned kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(8, 40, 1)
        self.branch = nn.Sequential(nn.Conv2d(20, 20, 1), nn.BatchNorm2d(20), nn.ReLU())
        self.project = nn.Conv2d(40, 24, 1)
        self.expand = nn.Conv2d(24, 32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = torch.relu(self.stem(x)).chunk(2, dim=1)
        y = torch.cat([left, self.branch(right)], dim=1)
        z = self.project(y) + y[:, :24]
        return F.silu(self.expand(z))


def test_channels_last_build_uses_it_for_partial_vector_convs_and_matches_pytorch() -> None:
    torch.manual_seed(0)
    net, x = SplitBlock().eval(), np.random.default_rng(1).standard_normal((1, 8, 9, 11)).astype(np.float32)
    with torch.no_grad():
        net.branch[1].running_mean.uniform_(-1, 1)
        net.branch[1].running_var.uniform_(0.5, 2)
    preset = get_target("x86")
    calls = built_kernel_calls(net, x, preset)
    assert sum(name.startswith("pointwise_conv_nhwc") for name in calls) == 3  # the 40-, 20- and 24-channel convs
    problem = prepare("split_block", import_model(net, x).graph, preset)
    assert [str(task.task_name) for task in problem.tasks if "conv2d" in str(task.task_name)]  # the SiLU conv
    # the input's and the output's transposes only: those around the kernels cancel, through the split and concat
    assert sum("transpose" in name for name in calls) == 2


def test_nchw_build_keeps_relax_convs_and_matches_pytorch() -> None:
    torch.manual_seed(0)
    net, x = SplitBlock().eval(), np.random.default_rng(2).standard_normal((1, 8, 6, 6)).astype(np.float32)
    preset = dataclasses.replace(get_target("x86"), layout="NCHW")
    problem = prepare("split_block", import_model(net, x).graph, preset)
    calls = [name for name, _, _ in tvm_api.kernel_call_order(problem.fused)]
    assert not any(name.startswith("pointwise_conv_nhwc") for name in calls)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert relative_error(lncompile.compile(net, preset, x, tuning_log=False)(x), expected) <= 1e-5
