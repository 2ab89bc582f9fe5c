"""The hand-scheduled stem conv (lncompile/backend/stem_conv.py): PyTorch's conv2d + bias + activation read from
NCHW and written channels-last, for strides, padding, channel counts of each vector width, every activation it
takes and rows its register blocks do not evenly divide; inside a channels-last build it replaces the input's
transpose and the conv's task, only for a dense conv over a model input with few channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.backend.stem_conv import block_columns, scheduled_kernel
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
CASES = [  # (N, C, H, W), out channels, kernel, stride, padding, activation
    ((1, 3, 32, 32), 32, 3, 2, 1, "clip"),  # MobileNetV2's stem, smaller
    ((1, 3, 23, 23), 64, 3, 2, 0, "relu"),  # SqueezeNet's, smaller: 11 columns (prime), one-column blocks
    ((1, 3, 16, 18), 16, 3, 2, 1, "hardswish"),
    ((2, 3, 14, 12), 24, 3, 1, 1, "silu"),  # 8-lane vectors, batch 2
    ((1, 1, 9, 10), 12, (3, 5), (2, 1), (1, 2), "none"),  # grey image, 4-lane vectors, rectangular kernel
    ((1, 4, 12, 12), 8, 5, 2, 2, "relu"),  # RGBA
]  # fmt: skip


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize(("shape", "out_channels", "kernel", "stride", "padding", "activation"), CASES)
def test_kernel_is_torch_conv(shape: tuple[int, int, int, int], out_channels: int, kernel: int | tuple[int, int],
                              stride: int | tuple[int, int], padding: int | tuple[int, int], activation: str) -> None:
    rng = np.random.default_rng(0)
    (kh, kw), (top, left) = _pair(kernel), _pair(padding)
    x = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal((out_channels, shape[1], kh, kw)) * 0.3).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    torch_act, params = ACTIVATIONS[activation]
    expected = torch_act(F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride,
                                  (top, left))).permute(0, 2, 3, 1).numpy()
    func = scheduled_kernel(shape, out_channels, (kh, kw), _pair(stride), (top, left, top, left), (activation, params),
                            fast_math=True)
    library = tvm.tirx.build(func.with_attr("global_symbol", "main"), target=tvm_api.make_target({"kind": "llvm"}))
    y = tvm_api.empty_tensor(list(expected.shape), "float32", tvm_api.cpu_device())
    library["main"](tvm_api.tensor(x), tvm_api.tensor(np.ascontiguousarray(w.transpose(1, 2, 3, 0))),
                    tvm_api.tensor(b), y)
    assert relative_error(y.numpy(), expected) <= 2e-6


def test_register_blocks_divide_the_row_and_fit_the_accumulators() -> None:
    assert block_columns(112, 32) == 7  # 2 vectors x 8 columns would exceed 14 accumulators; 7 divides 112
    assert block_columns(112, 16) == 14
    assert block_columns(111, 64) == 3  # 4 vectors: at most 3 columns
    assert block_columns(13, 16) == 13
    assert block_columns(13, 32) == 1  # 13 is prime and over the 7-column budget


class Stem(nn.Module):
    """A stem conv over the image, then a depthwise conv and a pointwise conv on its output."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pw = nn.Conv2d(16, 16, 1)  # with SiLU after it: a tuned task (not backend/pointwise_conv.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.pw(torch.relu(self.dw(self.stem(x)))))


def test_channels_last_build_reads_the_image_in_place_and_matches_pytorch() -> None:
    torch.manual_seed(0)
    net, x = Stem().eval(), np.random.default_rng(1).standard_normal((1, 3, 30, 26)).astype(np.float32)
    with torch.no_grad():
        net.stem[1].running_mean.uniform_(-1, 1)
        net.stem[1].running_var.uniform_(0.5, 2)
    preset = get_target("x86")
    calls = built_kernel_calls(net, x, preset)
    problem = prepare("stem", import_model(net, x).graph, preset)
    assert calls[0].startswith("stem_conv_nhwc")
    assert sum("transpose" in name for name in calls) == 1  # the output's only: the image is read where it lies
    assert len(problem.tasks) == 2  # the pointwise conv and the output's transpose; the stem conv is no task


class WideInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class ConvAfterConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 16, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


@pytest.mark.parametrize(("net", "channels", "stems"), [(WideInput, 8, 0), (ConvAfterConv, 3, 1)])
def test_only_convs_over_an_image_input_use_it(net: type[nn.Module], channels: int, stems: int) -> None:
    """8 input channels are no image; a 3-channel conv reading another conv's (channels-last) output is no stem."""
    torch.manual_seed(0)
    model, x = net().eval(), np.random.default_rng(2).standard_normal((1, channels, 10, 10)).astype(np.float32)
    problem = prepare("not_stem", import_model(model, x).graph, get_target("x86"))
    calls = [name for name, _, _ in tvm_api.kernel_call_order(problem.fused)]
    assert sum(name.startswith("stem_conv_nhwc") for name in calls) == stems
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert relative_error(lncompile.compile(model, get_target("x86"), x, tuning_log=False)(x), expected) <= 1e-5
