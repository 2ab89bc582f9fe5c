"""CPU presets' ``fast_math``: sigmoid / silu / exp / tanh become polynomial kernels (TOPI fast_exp/fast_tanh)
that vectorize, instead of one libm call per vector lane. It must fire where asked, stay away where not, and
keep the model's output within float32 round-off of PyTorch."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile.backend import tvm_api
from lncompile.frontend import import_model
from lncompile.lower.layout import lower
from lncompile.targets import get as get_target
from tests.conftest import relative_error

EXP_OPS = ("R.sigmoid", "R.nn.silu", "R.exp", "R.tanh")


class ExpActivations(nn.Module):
    """A conv followed by each exp-based activation the rewrite handles (and one it does not: softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        a = torch.nn.functional.silu(y) + torch.sigmoid(y) + torch.tanh(y) + torch.exp(-y.abs())
        return torch.softmax(a.mean((2, 3)), dim=1)


@pytest.fixture(scope="module")
def model_and_input() -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(0)
    x = (3 * np.random.default_rng(0).standard_normal((1, 8, 20, 20))).astype(np.float32)  # reach the tails
    return ExpActivations().eval(), x


def _relax_text(module: nn.Module, x: np.ndarray, fast_math: bool) -> str:
    imported = import_model(module, x)
    return lower(imported.graph, "NHWC", fast_math=fast_math)["main"].script()


def test_fires_on_every_exp_based_activation(model_and_input: tuple[nn.Module, np.ndarray]) -> None:
    text = _relax_text(*model_and_input, fast_math=True)
    assert not [op for op in EXP_OPS if f"{op}(" in text]
    assert all(name in text for name in ("fast_sigmoid", "fast_silu", "fast_tanh", "fast_exp"))
    assert "R.nn.softmax(" in text  # not an elementwise exp: left to TVM


def test_does_not_fire_without_the_preset_flag(model_and_input: tuple[nn.Module, np.ndarray]) -> None:
    text = _relax_text(*model_and_input, fast_math=False)
    assert all(f"{op}(" in text for op in EXP_OPS) and "fast_" not in text
    assert not get_target("cuda").fast_math and get_target("x86").fast_math and get_target("arm").fast_math


def test_fused_into_the_conv_kernel(model_and_input: tuple[nn.Module, np.ndarray]) -> None:
    module, x = model_and_input
    preset = get_target("x86")
    imported = import_model(module, x)
    target = tvm_api.make_target({"kind": "llvm"}, None)
    kernels = [name for name, _, _ in tvm_api.kernel_call_order(
        tvm_api.fuse_for_target(lower(imported.graph, preset.layout, fast_math=True), target))]
    assert any(name.startswith("fused_conv2d") and "fast_silu" in name for name in kernels), kernels


def test_output_matches_pytorch(model_and_input: tuple[nn.Module, np.ndarray]) -> None:
    module, x = model_and_input
    compiled = lncompile.compile(module, "x86", x, tuning_log=False)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-5


class Elementwise(nn.Module):
    def __init__(self, fn: str) -> None:
        super().__init__()
        self.fn = getattr(torch, fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@pytest.mark.parametrize(("fn", "low", "high"), [("exp", -87.0, 88.0), ("sigmoid", -60.0, 60.0),
                                                 ("tanh", -20.0, 20.0)])
def test_error_over_the_float32_range(fn: str, low: float, high: float) -> None:
    """Each activation alone against float64, elementwise, from tail to tail (relative error for exp and for
    sigmoid's upper half, absolute where the value is near 0 in float32's own resolution)."""
    x = np.concatenate([np.linspace(low, high, 40000), np.linspace(-4, 4, 40000)]).astype(np.float32)
    x = x.reshape(1, 2, 200, 200)
    got = lncompile.compile(Elementwise(fn).eval(), "x86", x, tuning_log=False)(x).astype(np.float64)
    exact = getattr(np, fn, None)(x.astype(np.float64)) if fn != "sigmoid" else 1 / (1 + np.exp(-x.astype(np.float64)))
    error = np.abs(got - exact) / np.maximum(np.abs(exact), 1e-30 if fn == "exp" else 1e-6)
    assert error.max() < 2e-6, (fn, float(error.max()), float(x.reshape(-1)[np.argmax(error)]))


class HardSwishConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.hardswish(self.conv(x))


@pytest.mark.parametrize("fast_math", [True, False])
def test_fast_math_divides_by_a_constant_with_a_multiply(fast_math: bool, tmp_path: Path) -> None:
    """hardswish's x / 6: LLVM's reciprocal flag (fast-math-arcp) under the preset's ``fast_math``, a division
    instruction without it; PyTorch's output either way."""
    torch.manual_seed(0)
    module, x = HardSwishConv().eval(), np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)
    preset = replace(get_target("x86"), name=f"x86-fast-math-{fast_math}", fast_math=fast_math)
    compiled = lncompile.compile(module, preset, x, tuning_log=False)
    with torch.no_grad():
        assert relative_error(compiled(x), module(torch.from_numpy(x)).numpy()) <= 1e-6
    library = compiled.export(tmp_path / "hardswish.so")
    disassembly = subprocess.run(["objdump", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    divides = re.findall(r"\bv?div[ps]s\b", disassembly)
    assert not divides if fast_math else divides
