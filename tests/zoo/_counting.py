"""Shared helpers for the zoo tests: parameter and MAC counts of a model, or of a factory on the meta device."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from lncompile import graphs


def skeleton(name: str, resolution: int | None = None, **knobs) -> torch.nn.Module:
    """The model on the meta device, straight from the factory: shapes only, no init / BN calibration."""
    spec = graphs.spec(name)
    with torch.device("meta"):
        return spec.factory(resolution=resolution or spec.resolution, num_classes=1000, **spec.preset, **knobs)


def num_params(model: torch.nn.Module) -> int:
    """Number of parameters (weights, biases, norm scales) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def count(model: torch.nn.Module, resolution: int) -> tuple[int, float]:
    """Parameter count and multiply-adds of ``model`` at batch 1 on a ``resolution`` square image (conv/linear
    MACs, as the papers count them). The input is made on the model's device: meta for a skeleton."""
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, resolution, resolution, device=device))
    return num_params(model), counter.get_total_flops() / 2


def params_macs(name: str, resolution: int | None = None, **knobs) -> tuple[int, float]:
    """``count`` of zoo model ``name``'s skeleton (eval mode), at its default resolution unless given."""
    resolution = resolution or graphs.spec(name).resolution
    return count(skeleton(name, resolution, **knobs).eval(), resolution)
