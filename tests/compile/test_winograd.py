"""The Winograd conv kernel (lncompile/backend/winograd.py) inside real builds: same outputs as PyTorch in a
channels-last and a channels-first preset, the activation fused into it, no transpose added around it, one
tuning task per shape, and a tuned schedule that applies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from lncompile.tune.tuner import tune
from tests.conftest import relative_error


class Fire(nn.Module):
    """SqueezeNet's fire module (squeeze 1x1, expand 1x1 and 3x3, concatenated) and a 3x3 conv with BN after it
    (asymmetric padding, a residual-free epilogue), at sizes that are no multiple of the 4x4 output tile."""

    def __init__(self) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(8, 16, 1)
        self.expand1x1 = nn.Conv2d(16, 12, 1)
        self.expand3x3 = nn.Conv2d(16, 12, 3, padding=1)
        self.conv = nn.Conv2d(24, 20, 3, padding=(1, 0), bias=False)
        self.bn = nn.BatchNorm2d(20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze(x))
        y = torch.cat([torch.relu(self.expand1x1(s)), torch.relu(self.expand3x3(s))], 1)
        return nn.functional.hardswish(self.bn(self.conv(y)))


def _preset(layout: str = "NHWC", rule: str = "16", tile: str = "2") -> object:
    x86 = get_target("x86")
    return replace(x86, name=f"x86-{layout.lower()}-winograd", layout=layout,
                   pass_rules={**x86.pass_rules, "winograd": rule, "winograd_tile": tile,
                               "distribute_concat": "off"})  # its concat stays, read by a 24-channel 3x3 conv


def _model(size: tuple[int, int] = (13, 11)) -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(0)
    model = Fire().eval()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    model.bn.running_var.uniform_(0.5, 1.5)
    return model, np.random.default_rng(0).standard_normal((1, 8, *size)).astype(np.float32)


@pytest.mark.parametrize(("layout", "size", "tile"), [("NHWC", (13, 11), "2"), ("NHWC", (26, 27), "4"),
                                                     ("NCHW", (26, 27), "2")])
def test_winograd_build_matches_pytorch(layout: str, size: tuple[int, int], tile: str) -> None:
    model, x = _model(size)
    compiled = lncompile.compile(model, _preset(layout, tile=tile), x, tuning_log=False)
    (rewrite,) = [p for p in compiled.manifest["passes"] if p["name"] == "winograd_conv"]
    assert rewrite["matches"] == 2
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-5


def test_winograd_kernels_take_their_epilogue_and_add_no_transpose() -> None:
    model, x = _model()
    graph = import_model(model, x).graph
    winograd = prepare("fire", graph, _preset())
    direct = prepare("fire", graph, _preset(rule="off"))
    names = [str(t.task_name) for t in winograd.tasks]
    assert len(names) == len(direct.tasks) and sum("winograd" in n for n in names) == 2
    calls = [name for name, _, _ in tvm_api.kernel_call_order(winograd.fused)]
    # the expand 3x3's ReLU and the last conv's hardswish run inside the Winograd kernels
    assert sum(c.startswith("fused_winograd_conv2d_nhwc") for c in calls) == 2
    direct_calls = [name for name, _, _ in tvm_api.kernel_call_order(direct.fused)]
    assert sum("transpose" in c for c in calls) == sum("transpose" in c for c in direct_calls)


def test_a_tuned_winograd_schedule_applies_and_matches(tmp_path: Path) -> None:
    model, x = _model()
    preset = _preset()
    problem = prepare("fire", import_model(model, x).graph, preset)
    winograd_only = replace(problem, tasks=[t for t in problem.tasks if "winograd" in str(t.task_name)])
    outcome = tune(winograd_only, tmp_path / "log", trials=4, trials_per_task=2, trials_per_iter=2,
                   quick_search=True, show_progress=False, builder_timeout_s=600)
    assert outcome.stopped is None and all(task["best_ms"] for task in outcome.tasks), outcome
    compiled = lncompile.compile(model, preset, x, tuning_log=tmp_path / "log")
    assert compiled.manifest["tuning"]["kernels_tuned"] == 2
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-5
