"""A preset's ``layout`` reaches the build: NHWC convs with pre-packed weights, same output as PyTorch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import lncompile
from lncompile.backend import tvm_api
from lncompile.errors import UsageError
from lncompile.frontend import import_model
from lncompile.lower.layout import apply_layout
from lncompile.lower.relax_lower import to_relax
from lncompile.passes.pipeline import optimize
from lncompile.targets import get as get_target
from tests.conftest import relative_error


def _conv_layouts(mod) -> set[str]:
    text = mod.script()
    return {layout for layout in ("NHWC", "NCHW") if f'data_layout="{layout}"' in text}


def test_nhwc_preset_builds_and_matches_pytorch(tiny_block: torch.nn.Module, tiny_input: np.ndarray) -> None:
    preset = replace(get_target("x86"), name="x86-nhwc", layout="NHWC")
    compiled = lncompile.compile(tiny_block, preset, tiny_input, tuning_log=False)
    with torch.no_grad():
        expected = tiny_block(torch.from_numpy(tiny_input)).numpy()
    assert relative_error(compiled(tiny_input), expected) <= 1e-4


def test_nhwc_converts_every_conv_and_prepacks_weights(tiny_block: torch.nn.Module, tiny_input: np.ndarray) -> None:
    imported = import_model(tiny_block, tiny_input)
    mod = to_relax(optimize(imported.graph, get_target("x86")).graph)
    assert _conv_layouts(mod) == {"NCHW"}
    converted = apply_layout(mod, "NHWC")
    assert _conv_layouts(converted) == {"NHWC"}
    # Weights were transformed at compile time: layout_transform/permute only at the model's boundary and
    # around ops without layout inference, never on a constant.
    text = converted.script()
    assert "R.clip" not in text  # rewritten to min/max so ReLU6-style clips keep NHWC
    assert "permute_dims(metadata" not in text and "layout_transform(metadata" not in text


def test_unknown_layout_is_refused(tiny_block: torch.nn.Module, tiny_input: np.ndarray) -> None:
    imported = import_model(tiny_block, tiny_input)
    with pytest.raises(UsageError, match="unknown layout 'NCHWc'"):
        apply_layout(to_relax(imported.graph), "NCHWc")


def test_nchw_is_left_alone(tiny_block: torch.nn.Module, tiny_input: np.ndarray) -> None:
    mod = to_relax(import_model(tiny_block, tiny_input).graph)
    assert tvm_api.workload_hash(apply_layout(mod, "NCHW")) == tvm_api.workload_hash(mod)
