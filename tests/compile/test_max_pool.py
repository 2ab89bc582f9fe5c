"""The hand-scheduled channels-last max pool (lncompile/backend/max_pool.py): PyTorch's max_pool2d for strides 1
and 2, padding, ceil_mode (windows past the edge) and channel counts of each vector width; inside a build it
replaces Relax's pool (no pool task, no transpose added) and matches PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.backend.max_pool import scheduled_kernel
from lncompile.backend.tvm_api import tvm
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from tests.conftest import relative_error

CASES = [  # (N, H, W, C), kernel, stride, padding, ceil_mode
    ((1, 11, 11, 32), 3, 2, 0, True),  # SqueezeNet's pools: the last window runs past the edge
    ((1, 12, 10, 16), 3, 2, 1, False),  # ResNet/ShuffleNet's stem pool
    ((2, 7, 9, 24), 2, 2, 0, False),
    ((1, 6, 5, 3), 3, 1, 1, True),
    ((1, 9, 8, 40), (3, 2), (1, 2), (1, 0), True),
]  # fmt: skip


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), CASES)
def test_kernel_is_torch_max_pool(shape: tuple[int, int, int, int], kernel: int | tuple[int, int],
                                  stride: int | tuple[int, int], padding: int | tuple[int, int],
                                  ceil_mode: bool) -> None:
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = F.max_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), kernel, stride, padding,
                            ceil_mode=ceil_mode).permute(0, 2, 3, 1).numpy()
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    (top, left) = pair(padding)
    func = scheduled_kernel(shape, expected.shape[1:3], pair(kernel), pair(stride), (top, left, top, left))
    library = tvm.tirx.build(func.with_attr("global_symbol", "main"), target=tvm_api.make_target({"kind": "llvm"}))
    y = tvm_api.empty_tensor(list(expected.shape), "float32", tvm_api.cpu_device())
    library["main"](tvm_api.tensor(x), y)
    np.testing.assert_array_equal(y.numpy(), expected)


class Pooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.pool, self.head = nn.Conv2d(3, 16, 3), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Conv2d(16, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(torch.relu(self.conv(x))))


def test_channels_last_build_uses_the_kernel_matches_pytorch_and_adds_no_transpose() -> None:
    torch.manual_seed(0)
    net, x = Pooled().eval(), np.random.default_rng(1).standard_normal((1, 3, 16, 14)).astype(np.float32)
    preset = get_target("x86")
    compiled = lncompile.compile(net, preset, x, tuning_log=False)
    with torch.no_grad():
        assert relative_error(compiled(x), net(torch.from_numpy(x)).numpy()) <= 1e-5
    problem = prepare("pool", import_model(net, x).graph, preset)
    calls = [name for name, _, _ in tvm_api.kernel_call_order(problem.fused)]
    assert sum(name.startswith("max_pool_nhwc") for name in calls) == 1
    assert not any("pool" in str(task.task_name) for task in problem.tasks)
    assert sum("transpose" in name for name in calls) == 1  # the output's (the stem conv reads the NCHW image)
