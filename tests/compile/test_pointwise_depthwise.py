"""The fused pointwise -> depthwise kernel (lncompile/backend/pointwise_depthwise.py) inside real builds: same
outputs as PyTorch in a channels-last and a channels-first preset, no transpose around it once the layouts are
converted, and no tuning task for it (it comes scheduled)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.backend.pointwise_depthwise import TILE_BYTES, tile_rows
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from tests.conftest import relative_error


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand (1x1, BN, ReLU6) -> depthwise (BN, ReLU6) -> project (1x1, BN) [+ x]."""

    def __init__(self, channels: int = 8, expand: int = 6, stride: int = 1, kernel: int = 3) -> None:
        super().__init__()
        hidden = channels * expand
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.Hardswish(), nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.residual = stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def _preset(layout: str = "NHWC", rule: str = "0") -> object:
    x86 = get_target("x86")
    return replace(x86, name=f"x86-{layout.lower()}-fused", layout=layout,
                   pass_rules={**x86.pass_rules, "fuse_pointwise_depthwise": rule})


def _block(size: int = 19, **kwargs: int) -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(0)
    block = InvertedResidual(**kwargs).eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return block, np.random.default_rng(0).standard_normal((1, 8, size, size)).astype(np.float32)


@pytest.mark.parametrize(("layout", "stride", "kernel", "size"), [
    ("NHWC", 1, 3, 19), ("NHWC", 2, 5, 19), ("NCHW", 2, 3, 19), ("NHWC", 1, 5, 28), ("NHWC", 2, 3, 32)])
def test_fused_kernel_matches_pytorch(layout: str, stride: int, kernel: int, size: int) -> None:
    block, x = _block(size, stride=stride, kernel=kernel)  # 28 and 32: tiles of 7 and 4 rows
    compiled = lncompile.compile(block, _preset(layout), x, tuning_log=False)
    (fused,) = [p for p in compiled.manifest["passes"] if p["name"] == "fuse_pointwise_depthwise"]
    assert fused["matches"] == 1
    with torch.no_grad():
        expected = block(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-4


def test_tiles_are_the_tallest_whole_ones_whose_expanded_rows_fit_in_cache() -> None:
    row = 58 * 144 * 4  # MobileNetV2's 56x56x144 pair, padded
    assert tile_rows(56, 3, 1, row) == 14 and tile_rows(28, 3, 2, row) == 7  # 4 tiles: two per thread
    assert tile_rows(56, 3, 2, 114 * 96 * 4) == 4  # its 112 -> 56 pair: 7 rows would need 657 KiB
    assert tile_rows(56, 3, 2, 114 * 48 * 4) == 14
    assert tile_rows(56, 3, 2, 114 * 64 * 4) == 7  # 8 rows would fit, but 7 tiles keep one thread waiting
    assert tile_rows(19, 3, 1, row) == 1 and tile_rows(56, 3, 1, TILE_BYTES) == 1  # prime; nothing fits


def test_fused_kernel_is_no_tuning_task_and_sits_between_nhwc_convs_without_transposes() -> None:
    block, x = _block()
    imported = import_model(block, x)
    fused = prepare("block", imported.graph, _preset())
    unfused = prepare("block", imported.graph, _preset(rule="off"))
    names = [str(t.task_name) for t in fused.tasks]
    assert not any("pointwise_depthwise" in n for n in names)
    # no conv is a task in either build: unfused, the expand and project convs are hand kernels of their own
    # (backend/pointwise_conv.py), and so is the depthwise conv
    assert not any("conv2d" in n for n in names) and len(fused.tasks) == len(unfused.tasks)
    calls = [name for name, _, _ in tvm_api.kernel_call_order(fused.fused)]
    assert sum("pointwise_depthwise" in c for c in calls) == 1
    unfused_calls = [name for name, _, _ in tvm_api.kernel_call_order(unfused.fused)]
    # the permute_dims wrapping the NHWC kernel cancel against ConvertLayout's: no transpose is added
    assert sum("transpose" in c for c in calls) <= sum("transpose" in c for c in unfused_calls)


def test_exported_library_with_the_fused_kernel_loads_and_matches(tmp_path: Path) -> None:
    block, x = _block(stride=2)
    compiled = lncompile.compile(block, _preset(), x, tuning_log=False)
    library = compiled.export(tmp_path / "block.so")
    loaded = lncompile.load(library)
    assert relative_error(loaded(x), compiled(x)) == 0.0


def test_a_tuned_build_counts_the_fused_kernel_as_scheduled_by_hand_not_as_a_task(tmp_path: Path) -> None:
    from lncompile.tune.report import describe_tuning
    from lncompile.tune.tuner import tune

    block, x = _block()
    problem = prepare("block", import_model(block, x).graph, _preset())
    tune(problem, tmp_path / "log", trials=2 * len(problem.tasks), trials_per_task=2, trials_per_iter=2,
         quick_search=True, show_progress=False)
    compiled = lncompile.compile(block, _preset(), x, tuning_log=tmp_path / "log")
    tuning = compiled.manifest["tuning"]
    # by hand: the fused pair, and the project conv (8 channels: backend/pointwise_conv.py)
    assert tuning["kernels"] == len(problem.tasks) and tuning["kernels_by_hand"] == 2
    (line,) = describe_tuning(tuning)
    assert line.endswith(f"{tuning['kernels_tuned']} of {len(problem.tasks)} kernels (tasks) tuned; "
                         "plus 2 scheduled by hand (not tasks)")


class SiLUInvertedResidualWithSE(nn.Module):
    """EfficientNet's MBConv: expand (SiLU) -> depthwise (SiLU) -> squeeze-and-excitation -> project."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(8, 48, 1)
        self.depthwise = nn.Conv2d(48, 48, 3, 2, 1, groups=48)
        self.reduce, self.excite = nn.Conv2d(48, 4, 1), nn.Conv2d(4, 48, 1)
        self.project = nn.Conv2d(48, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.silu(self.depthwise(nn.functional.silu(self.expand(x))))
        gate = torch.sigmoid(self.excite(nn.functional.silu(self.reduce(y.mean((2, 3), keepdim=True)))))
        return self.project(y * gate)


@pytest.mark.parametrize("fast_math", [True, False])
def test_silu_kernel_feeding_squeeze_excite_matches_pytorch_without_transposes(fast_math: bool) -> None:
    torch.manual_seed(0)
    block = SiLUInvertedResidualWithSE().eval()
    x = np.random.default_rng(0).standard_normal((1, 8, 19, 19)).astype(np.float32)
    preset = replace(_preset(), fast_math=fast_math)
    compiled = lncompile.compile(block, preset, x, tuning_log=False)
    (fused,) = [p for p in compiled.manifest["passes"] if p["name"] == "fuse_pointwise_depthwise"]
    assert fused["matches"] == 1
    with torch.no_grad():
        expected = block(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-5
    # the SE's mean and multiply read the NHWC kernel's output in NHWC: transposes only at the model's input
    # and output (NCHW both)
    calls = [name for name, _, _ in tvm_api.kernel_call_order(prepare("block", import_model(block, x).graph,
                                                                      preset).fused)]
    assert sum("pointwise_depthwise" in c for c in calls) == 1
    assert sum("transpose" in c for c in calls) == 2
