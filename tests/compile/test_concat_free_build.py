"""A Fire module built for x86: its concat distributed (passes/distribute_concat.py), the build matches PyTorch and
writes no concat. Where the next squeeze conv's halves are tuned kernels, the build runs the half over the 1x1
expand output right after that expand conv, before the 3x3 expand conv (``tvm_api.run_for_locality``; FuseOps
alone would run it last); where they are hand kernels (backend/pointwise_conv.py), the second half computes the
sum and the ReLU after it, and no kernel of its own applies the ReLU."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from tests.conftest import relative_error


class Fire(nn.Module):
    def __init__(self, activation: str = "relu") -> None:
        super().__init__()
        self.activation = torch.relu if activation == "relu" else nn.functional.silu
        self.squeeze = nn.Conv2d(8, 16, 1)
        self.expand1x1, self.expand3x3 = nn.Conv2d(16, 32, 1), nn.Conv2d(16, 32, 3, padding=1)
        # 16 channels out, as SqueezeNet's squeeze convs; with SiLU after it, it stays a tuned kernel (not
        # backend/pointwise_conv.py), which FuseOps gives the split's sum and the activation
        self.next_squeeze = nn.Conv2d(64, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze(x))
        y = torch.cat([torch.relu(self.expand1x1(s)), torch.relu(self.expand3x3(s))], 1)
        return self.activation(self.next_squeeze(y))


def test_fire_module_builds_without_concat_and_convolves_each_half_while_it_is_in_cache() -> None:
    torch.manual_seed(0)
    net, x = Fire("silu").eval(), np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)
    preset = get_target("x86")
    compiled = lncompile.compile(net, preset, x, tuning_log=False)
    with torch.no_grad():
        assert relative_error(compiled(x), net(torch.from_numpy(x)).numpy()) <= 1e-5
    fused = prepare("fire", import_model(net, x).graph, preset).fused
    calls = [(name, weights) for name, _, weights in tvm_api.kernel_call_order(fused)]
    assert not any("concat" in name for name, _ in calls)
    weights = [w for name, w in calls if "transpose" not in name]
    # squeeze (8x16 + 16), expand1x1 (16x32 + 32), its half of the next squeeze (32x16 + bias 16), then the 3x3
    # expand (Winograd: 4x4 transformed taps), then the other half (32x16) with the sum and the SiLU
    assert weights[:3] == [8 * 16 + 16, 16 * 32 + 32, 32 * 16 + 16]
    assert weights[3] >= 9 * 16 * 32 and weights[4] == 32 * 16


def test_hand_kernels_compute_the_split_sum_and_the_relu_after_it() -> None:
    torch.manual_seed(0)
    net, x = Fire("relu").eval(), np.random.default_rng(1).standard_normal((1, 8, 12, 12)).astype(np.float32)
    preset = get_target("x86")
    with torch.no_grad():
        assert relative_error(lncompile.compile(net, preset, x, tuning_log=False)(x),
                              net(torch.from_numpy(x)).numpy()) <= 1e-5
    calls = [name for name, _, _ in tvm_api.kernel_call_order(prepare("fire", import_model(net, x).graph,
                                                                      preset).fused)]
    assert not any("concat" in name for name in calls)
    # squeeze, expand1x1, the half over the 3x3 expand output, the half over the 1x1's with the sum and ReLU
    assert sum(name.startswith("pointwise_conv_nhwc") for name in calls) == 4
    assert [name for name in calls if "relu" in name and "winograd" not in name] == []
