"""The hand-scheduled channels-last depthwise conv (lncompile/backend/depthwise.py): PyTorch's depthwise conv,
bias and activation for each stride, kernel size, padding and vector width it takes; chosen in channels-last
CPU builds only where ``suits`` says it is the faster kernel, with no transpose added around it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.backend.depthwise import scheduled_kernel, suits
from lncompile.backend.tvm_api import tvm
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from tests.conftest import relative_error

TORCH_ACTIVATIONS = {"none": lambda y: y, "relu": torch.relu, "clip": lambda y: torch.clamp(y, 0.0, 6.0),
                     "hardswish": nn.functional.hardswish, "silu": nn.functional.silu}


@pytest.mark.parametrize(("channels", "size", "kernel", "stride", "padding", "activation", "fast_math"), [
    (32, (13, 14), (3, 3), 1, (1, 1, 1, 1), "clip", False),
    (48, (14, 15), (3, 3), 2, (0, 0, 1, 1), "relu", False),  # TF-style "same" padding of a stride-2 conv
    (16, (9, 10), (5, 5), 1, (2, 2, 2, 2), "hardswish", False),
    (24, (7, 8), (5, 5), 2, (2, 2, 2, 2), "silu", True),
    (40, (11, 12), (3, 3), 1, (1, 1, 1, 1), "silu", False),
    (20, (6, 7), (3, 3), 1, (1, 1, 1, 1), "none", False),  # 4-lane vectors: computed right, if not chosen by builds
    (64, (1, 1), (3, 3), 1, (1, 1, 1, 1), "relu", False),  # a 1x1 map: every loop of one iteration
    (64, (4, 4), (1, 5), 1, (0, 2, 0, 2), "none", False),  # a 1x5 kernel: no row taps to loop over
])
def test_kernel_is_pytorchs_depthwise_conv(channels: int, size: tuple[int, int], kernel: tuple[int, int],
                                           stride: int, padding: tuple[int, int, int, int], activation: str,
                                           fast_math: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, *size, channels)).astype(np.float32)
    w = rng.standard_normal((*kernel, channels)).astype(np.float32)
    b = rng.standard_normal(channels).astype(np.float32)
    params = {"min": 0.0, "max": 6.0} if activation == "clip" else {}
    func = scheduled_kernel(x.shape, kernel, (stride, stride), padding, (activation, params), fast_math=fast_math)
    library = tvm.tirx.build(func.with_attr("global_symbol", "main"), target=tvm_api.make_target({"kind": "llvm"}))
    top, left, bottom, right = padding
    x_nchw = torch.nn.functional.pad(torch.from_numpy(x).permute(0, 3, 1, 2), (left, right, top, bottom))
    weight = torch.from_numpy(w).permute(2, 0, 1).unsqueeze(1)
    conv = torch.nn.functional.conv2d(x_nchw, weight, torch.from_numpy(b), stride, groups=channels)
    expected = TORCH_ACTIVATIONS[activation](conv).permute(0, 2, 3, 1).numpy()
    y = tvm_api.empty_tensor(list(expected.shape), "float32", tvm_api.cpu_device())
    library["main"](tvm_api.tensor(x), tvm_api.tensor(w), tvm_api.tensor(b), y)
    assert relative_error(y.numpy(), expected) <= 1e-5


def test_suits_full_16_lane_vectors_and_8_lane_3x3_convs() -> None:
    assert suits(32, (3, 3)) and suits(240, (5, 5)) and suits(24, (3, 3))
    assert not suits(72, (5, 5)) and not suits(36, (3, 3)) and not suits(58, (3, 3))


class Block(nn.Module):
    """pointwise (ReLU6) -> depthwise 3x3 (ReLU6) -> depthwise 5x5 over 8-lane channels -> pointwise."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(8, 32, 1)
        self.depthwise = nn.Conv2d(32, 32, 3, 1, 1, groups=32)
        self.expand2 = nn.Conv2d(32, 24, 1)
        self.depthwise5 = nn.Conv2d(24, 24, 5, 1, 2, groups=24)
        self.project = nn.Conv2d(24, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.relu6(self.depthwise(nn.functional.relu6(self.expand(x))))
        return self.project(self.depthwise5(self.expand2(y)))


def _block() -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(0)
    return Block().eval(), np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)


def _preset(layout: str = "NHWC") -> object:
    x86 = get_target("x86")  # the pointwise -> depthwise fusion off: these depthwise convs stay on their own
    return replace(x86, name=f"x86-{layout}", layout=layout, pass_rules={**x86.pass_rules,
                                                                         "fuse_pointwise_depthwise": "off"})


def test_channels_last_build_uses_it_where_it_suits_and_matches_pytorch() -> None:
    block, x = _block()
    compiled = lncompile.compile(block, _preset(), x, tuning_log=False)
    with torch.no_grad():
        assert relative_error(compiled(x), block(torch.from_numpy(x)).numpy()) <= 1e-5
    problem = prepare("block", import_model(block, x).graph, _preset())
    calls = [name for name, _, _ in tvm_api.kernel_call_order(problem.fused)]
    assert sum(name.startswith("depthwise_nhwc") for name in calls) == 1  # the 3x3; the 8-lane 5x5 is a task
    weight_5x5 = "T.Buffer((T.int64(5), T.int64(5), T.int64(1), T.int64(24))"  # HWIO, pre-packed or not
    assert sum(weight_5x5 in tvm_api.task_workload_module(t).script() for t in problem.tasks) == 1
    assert sum("transpose" in name for name in calls) == 2  # the model's NCHW input and output only


def test_channels_first_build_keeps_relax_convs() -> None:
    block, x = _block()
    calls = [name for name, _, _ in tvm_api.kernel_call_order(prepare("block", import_model(block, x).graph,
                                                                      _preset("NCHW")).fused)]
    assert not any("depthwise_nhwc" in name for name in calls)
