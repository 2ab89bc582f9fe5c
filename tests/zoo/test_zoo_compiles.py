"""Every zoo family traces to the IR, keeps its outputs through the passes, compiles for x86 and matches PyTorch;
the IR profile counts correctly.

One model per family, its smallest (fewest published MACs: SENet is tested as SE-ResNet-50, not SENet-154), at a
reduced resolution keeps this CI-sized; bench/zoo_compile.py compiles every model at its paper resolution.

The compile test builds with LLVM's optimizer off (``opt-level`` 0 in the x86 preset's TVM target): it checks that
each family lowers to kernels that compute what PyTorch computes, which LLVM's optimization level does not
change. At the default level 3 LLVM spent most of each compile on the zoo's untuned kernels (naive loop nests
it unrolls and vectorizes: mixnet_s at 64 px took 128 s at level 3, 35 s at level 0); tuned builds and the
CLI's default build are compiled at level 3 by the other tests.

The tests of a family read one import of it (``torch.export`` is a third of a compile's time here): the
``small_model`` fixture is module-scoped and parametrized by family, so pytest runs the tests of one family
before it imports the next, and holds one family's model at a time.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lncompile import graphs, targets
from lncompile.analysis.profile import profile
from lncompile.api import compile_imported
from lncompile.errors import UsageError
from lncompile.frontend import ImportedModel, import_model
from lncompile.ir import run_graph
from lncompile.ir.precision import as_float64
from lncompile.passes.pipeline import optimize
from tests.conftest import relative_error
from tests.passes._util import count, inputs_for
from tests.zoo._checks import smallest_of_each_family

REDUCED_RESOLUTIONS = (64, 96, 128, 160, 192, 256)
BN_FREE_FAMILIES = {"mobilenet", "efficientnet", "mnasnet", "ghostnet", "shufflenet"}


def x86_unoptimized() -> targets.TargetPreset:
    """The x86 preset with LLVM's optimizer off (codegen only: the same kernels, unoptimized machine code)."""
    x86 = targets.get("x86")
    return dataclasses.replace(x86, name="x86-O0", tvm_target={**x86.tvm_target, "opt-level": 0})


@pytest.fixture(scope="module", params=smallest_of_each_family())
def small_model(request: pytest.FixtureRequest) -> tuple[torch.nn.Module, np.ndarray, ImportedModel]:
    """Zoo model ``request.param`` at its smallest accepted reduced resolution, an input, and the model imported
    to IR."""
    name = request.param
    for resolution in REDUCED_RESOLUTIONS:
        try:
            model = graphs.create(name, resolution=resolution)
        except UsageError:
            continue
        x = np.random.default_rng(0).standard_normal((1, 3, resolution, resolution)).astype(np.float32)
        return model, x, import_model(model, x)
    raise AssertionError(f"{name} accepts none of {REDUCED_RESOLUTIONS}")


def test_every_family_is_represented() -> None:
    families = {graphs.spec(n).family for n in graphs.names()}
    assert len(families) >= 20, sorted(families)


def test_ir_profile_matches_pytorch_counts(small_model: tuple[torch.nn.Module, np.ndarray, ImportedModel]) -> None:
    model, x, imported = small_model
    counted = profile(imported.graph)
    assert counted.params == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        model(torch.from_numpy(x))
    # FlopCounterMode counts 2 FLOPs per multiply-add for conv, linear and matmul.
    assert counted.macs == pytest.approx(flops.get_total_flops() / 2, rel=1e-6)


def test_pipeline_preserves_outputs(small_model: tuple[torch.nn.Module, np.ndarray, ImportedModel],
                                    request: pytest.FixtureRequest) -> None:
    """The whole default pass pipeline: same outputs, BatchNorm gone where foldable.

    Exactness is checked in float64 (the graph is widened before the passes run, so folding happens in float64
    too): there the passes must agree with the unoptimized IR to 1e-5 of the output scale (they agree to
    ~1e-12). In float32 both graphs carry rounding noise (the zoo's deep random-weight nets show ~1e-5..1e-4
    relative noise against float64 even unoptimized: mixnet_m 1.8e-5 unoptimized, 7.1e-5 optimized), so the
    float32 check (BN-free families only) bounds the optimized graph's error against the float64 reference by
    max(1e-4, 8x the unoptimized graph's own float32 error).
    """
    graph = small_model[2].graph
    family = graphs.spec(request.node.callspec.params["small_model"]).family

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
def test_family_compiles_for_x86_and_matches_pytorch(
        small_model: tuple[torch.nn.Module, np.ndarray, ImportedModel]) -> None:
    model, x, imported = small_model
    compiled = compile_imported(imported, x86_unoptimized())
    assert compiled.manifest["target"]["tvm_target"]["opt-level"] == 0
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
        exact = copy.deepcopy(model).double()(torch.from_numpy(x).double()).numpy()
    # Randomly initialised deep nets can amplify float32 round-off (SqueezeNeXt-23 at 64 px: PyTorch's own
    # float32 result is ~1e-3 from float64). The compiled model must then be as close to the float64 truth as
    # PyTorch's float32 is; otherwise it must meet the 1e-4 bound against PyTorch outright.
    torch_error = relative_error(expected, exact)
    if torch_error <= 5e-5:
        assert relative_error(compiled(x), expected) <= 1e-4
    else:
        assert relative_error(compiled(x), exact) <= 2 * torch_error
