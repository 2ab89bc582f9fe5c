"""CondenseNet-74 (converted form): shapes, export, params/MACs vs the authors' README, bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lncompile.errors import UsageError
from lncompile.graphs import registry

MODELS = ["condensenet74_c4_g4", "condensenet74_c8_g8"]
# Parameter counts of the official converted checkpoints as loaded by osmr/imgclsmob.
CONVERTED_PARAMS = {"condensenet74_c4_g4": 4_773_944, "condensenet74_c8_g8": 2_935_416}


def _params_and_macs(model: torch.nn.Module, resolution: int) -> tuple[int, float]:
    """Parameter count, then MACs counted on the meta device (shapes only: fast); moves model to meta."""
    params = sum(p.numel() for p in model.parameters())
    model.to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randn(1, 3, resolution, resolution, device="meta"))
    return params, fc.get_total_flops() / 2


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_published_figures(name: str) -> None:
    spec = registry.spec(name)
    model = registry.create(name)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()

    params, macs = _params_and_macs(model, spec.resolution)
    assert params == pytest.approx(spec.published.params, rel=0.02)
    assert params == CONVERTED_PARAMS[name]
    # The README's FLOPs also count ReLU and pooling (utils.measure_model), ~12 M above conv+FC MACs.
    assert macs == pytest.approx(spec.published.macs, rel=0.05)


@pytest.mark.parametrize("name", MODELS)
def test_exports(name: str) -> None:
    model = registry.create(name, num_classes=10)
    ep = torch.export.export(model, (torch.randn(1, 3, 64, 64),))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("index_select" in op or "gather" in op for op in ops)


def test_bad_values() -> None:
    with pytest.raises(UsageError):
        registry.create("condensenet74_c4_g4", resolution=16)
    with pytest.raises(UsageError):
        registry.create("condensenet74_c4_g4", width_mult=0.5)
