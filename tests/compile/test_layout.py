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
from lncompile.lower.layout import apply_layout, lower
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
    graph = optimize(imported.graph, get_target("x86")).graph
    assert _conv_layouts(to_relax(graph)) == {"NCHW"}
    converted = lower(graph, "NHWC")
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


def _calls_on_constants_alone(mod) -> list[str]:
    """Ops in ``mod``'s Relax functions whose tensor arguments are all constants (what FoldConstant folds)."""
    from tvm.relax.expr_functor import PyExprVisitor, visitor

    found: list[str] = []

    @visitor
    class _Visitor(PyExprVisitor):
        def visit_call_(self, call) -> None:
            args = list(call.args)
            if (isinstance(call.op, tvm_api.tvm.ir.Op) and any(isinstance(a, tvm_api.tvm.ir.Constant) for a in args)
                    and all(isinstance(a, (tvm_api.tvm.ir.Constant, tvm_api.relax.ShapeExpr)) for a in args)):
                found.append(call.op.name)
            for a in args:
                self.visit_expr(a)

    for _, func in mod.functions_items():
        if isinstance(func, tvm_api.relax.Function):
            _Visitor().visit_expr(func)
    return found


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_weight_layouts_fold_as_fold_constant_would(layout: str) -> None:
    """The numpy fold of weight permutes and bias reshapes gives FoldConstant's module, leaves nothing for
    FoldConstant, and is what ``lower`` returns."""
    model = lncompile.graphs.create("mobilenet_v2", resolution=32, width_mult=0.35)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    graph = optimize(import_model(model, x).graph, get_target("x86")).graph
    unfolded = apply_layout(to_relax(graph, layout=layout), layout)
    before = _calls_on_constants_alone(unfolded)
    assert {"relax.reshape"} <= set(before) and (layout == "NCHW" or "relax.permute_dims" in before), before
    folded = tvm_api.fold_constant_layouts(unfolded)
    assert _calls_on_constants_alone(folded) == []
    assert _calls_on_constants_alone(unfolded) == before  # the caller's module is not changed
    canonical = tvm_api.relax.transform.CanonicalizeBindings()
    by_tvm = tvm_api.relax.transform.FoldConstant()(unfolded)
    # Hashes cover the constants' values: the two folds stored the same numbers.
    assert tvm_api.workload_hash(canonical(folded)) == tvm_api.workload_hash(canonical(by_tvm))
    assert tvm_api.workload_hash(lower(graph, layout)) == tvm_api.workload_hash(folded)
