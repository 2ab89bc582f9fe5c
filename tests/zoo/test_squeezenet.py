"""SqueezeNet 1.0 / 1.1: shapes, export, params/MACs vs torchvision metadata and the README, bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lncompile.errors import UsageError
from lncompile.graphs import registry

MODELS = ["squeezenet1_0", "squeezenet1_1"]


def _macs(model: torch.nn.Module, resolution: int) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randn(1, 3, resolution, resolution))
    return fc.get_total_flops() / 2


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_published_figures(name: str) -> None:
    spec = registry.spec(name)
    model = registry.create(name, resolution=64)  # calibrates BN at 64: fast; same architecture
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()

    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(spec.published.params, rel=0.02)
    assert params == spec.published.params  # torchvision's exact counts
    assert _macs(model, spec.resolution) == pytest.approx(spec.published.macs, rel=0.05)


def test_v1_0_at_caffe_crop() -> None:
    """At the 227 Caffe crop: official README (forresti/SqueezeNet) 1.72 GFLOPS = true FLOPs, and ShuffleNet
    (arXiv 1707.01083) Table 6 quotes SqueezeNet at 833 MFLOPs = multiply-adds."""
    macs = _macs(registry.create("squeezenet1_0", resolution=64), 227)
    assert 2 * macs == pytest.approx(1.72e9, rel=0.05)
    assert macs == pytest.approx(833e6, rel=0.01)


@pytest.mark.parametrize("name", MODELS)
def test_exports(name: str) -> None:
    model = registry.create(name, resolution=64, num_classes=10)
    ep = torch.export.export(model, (torch.randn(1, 3, 64, 64),))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {"aten.conv2d.default", "aten.cat.default", "aten.max_pool2d.default"} <= ops


def test_smallest_resolution_and_bad_values() -> None:
    # 1.0: 7x7/2 conv + three ceil-mode 3x3/2 pools -> 29 is the smallest input; 1.1 (3x3 stem) takes 25.
    for name, smallest in (("squeezenet1_0", 29), ("squeezenet1_1", 25)):
        with torch.no_grad():
            assert registry.create(name, resolution=smallest)(
                torch.randn(1, 3, smallest, smallest)
            ).shape == (1, 1000)
        with pytest.raises(UsageError, match=f"smallest it takes is {smallest}"):
            registry.create(name, resolution=smallest - 1)
    with pytest.raises(UsageError):
        registry.create("squeezenet1_0", width_mult=0.5)  # no knobs
    with pytest.raises(UsageError):
        registry.create("squeezenet1_1", num_classes=0)
