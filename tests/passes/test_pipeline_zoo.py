"""The whole default pipeline on one model of every zoo family: same outputs, BatchNorm gone where foldable.

Exactness is checked in float64 (the graph is widened before the passes run, so folding happens in float64
too): there the passes must agree with the unoptimized IR to 1e-5 of the output scale (they agree to ~1e-12).
In float32 both graphs carry rounding noise (the zoo's deep random-weight nets show ~1e-5..1e-4 relative
noise against float64 even unoptimized: mixnet_m 1.8e-5 unoptimized, 7.1e-5 optimized), so the float32 check
(BN-free families only, to keep the file fast) bounds the optimized graph's error against the float64
reference by max(1e-4, 8x the unoptimized graph's own float32 error).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lncompile
from lncompile.errors import UsageError
from lncompile.frontend import import_model
from lncompile.ir import run_graph
from lncompile.ir.precision import as_float64
from lncompile.passes.pipeline import optimize
from tests.conftest import relative_error
from tests.passes._util import count, inputs_for
from tests.zoo._checks import smallest_of_each_family

RESOLUTIONS = (64, 96, 128, 160, 256)
BN_FREE_FAMILIES = {"mobilenet", "efficientnet", "mnasnet", "ghostnet", "shufflenet"}


def _import_small(name: str):
    for resolution in RESOLUTIONS:
        try:
            return import_model(name, resolution=resolution)
        except UsageError:
            continue
    pytest.skip(f"{name} accepts none of the resolutions {RESOLUTIONS}")


@pytest.mark.parametrize("name", smallest_of_each_family())
def test_pipeline_preserves_outputs(name: str) -> None:
    graph = _import_small(name).graph
    family = lncompile.graphs.spec(name).family

    wide = as_float64(graph)
    xs = [x.astype(np.float64) for x in inputs_for(graph)]
    reference = run_graph(wide, *xs)
    result = optimize(wide)
    for got, expected in zip(run_graph(result.graph, *xs), reference, strict=True):
        assert relative_error(got, expected) <= 1e-5
    assert result.graph.op_counts() != graph.op_counts(), "no pass changed anything"

    bn = next(s for s in result.stats if s.name == "fold_batchnorm")
    assert bn.matches == count(graph, "batch_norm") - count(result.graph, "batch_norm")
    assert all("parameters are not constants" in r for r in bn.refused if "became" not in r)
    if family not in BN_FREE_FAMILIES:
        return
    assert count(result.graph, "batch_norm") == 0

    # float32, as built: folded weights are rounded to float32; the error must stay at float32 noise level.
    xs32 = inputs_for(graph)
    noise = max(relative_error(a, b) for a, b in zip(run_graph(graph, *xs32), reference, strict=True))
    optimized = optimize(graph).graph
    error = max(relative_error(a, b) for a, b in zip(run_graph(optimized, *xs32), reference, strict=True))
    assert error <= max(1e-4, 8 * noise), f"float32: optimized {error:.2e}, unoptimized {noise:.2e}"


@pytest.mark.slow
def test_passes_on_mobilenet_v2_builds_and_matches_pytorch(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    compiled = lncompile.compile("mobilenet_v2", "x86", resolution=96)
    assert compiled.graph.op_counts().get("batch_norm", 0) == 0 and compiled.graph.op_counts()["fused_conv2d"] > 30
    with torch.no_grad():
        expected = lncompile.graphs.create("mobilenet_v2", resolution=96)(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-4

    library = compiled.export(tmp_path / "mbv2.so")
    manifest = json.loads(library.with_suffix(".json").read_text())
    passes = {p["name"]: p for p in manifest["passes"]}
    assert passes["fold_batchnorm"]["matches"] == 52 and passes["fuse_conv_activation"]["matches"] > 30
    assert manifest["ir_sha256"] != manifest["imported_ir_sha256"]
    assert relative_error(lncompile.load(library)(x), expected) <= 1e-4


@pytest.mark.slow
def test_cli_build_with_and_without_passes(tmp_path: Path) -> None:
    from lncompile.cli import main

    args = ["build", "mobilenet_v1", "-r", "64", "--width-mult", "0.25"]
    assert main([*args, "--no-passes", "-o", str(tmp_path / "off")]) == 0
    assert main([*args, "-o", str(tmp_path / "on")]) == 0
    off = json.loads((tmp_path / "off" / "mobilenet_v1-x86.json").read_text())
    on = json.loads((tmp_path / "on" / "mobilenet_v1-x86.json").read_text())
    assert off["passes"] == [] and off["ir_sha256"] == off["imported_ir_sha256"]
    assert on["imported_ir_sha256"] == off["ir_sha256"] != on["ir_sha256"]
    assert next(p for p in on["passes"] if p["name"] == "fold_batchnorm")["matches"] == 27
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    y_off = lncompile.load(tmp_path / "off" / "mobilenet_v1-x86.so")(x)
    y_on = lncompile.load(tmp_path / "on" / "mobilenet_v1-x86.so")(x)
    assert relative_error(y_on, y_off) <= 1e-4
