"""MnasNet A1 / B1 zoo models: build, run, published params/MAdds, depth-multiplier tables, bad knobs."""

from __future__ import annotations

import pytest
import torch

from lncompile import graphs
from lncompile.errors import UsageError
from tests.zoo._checks import assert_matches_published, assert_runs, export
from tests.zoo._counting import params_macs, skeleton

MODELS = ["mnasnet_a1", "mnasnet_b1"]


@pytest.mark.parametrize("name", MODELS)
def test_runs_at_reduced_resolution(name: str) -> None:
    assert_runs(name)


@pytest.mark.parametrize("name", MODELS)
def test_matches_published_figures(name: str) -> None:
    assert_matches_published(name)


def test_exports() -> None:
    export(graphs.create("mnasnet_a1", resolution=64))


# MnasNet-A1 depth-multiplier / resolution table, tensorflow/tpu models/official/mnasnet/README.md. Params
# are printed to 0.1M there (too coarse for 2 % at 0.35: 1.747M prints as 1.7M), so they must round to the
# printed value; MAdds (printed to 0.1M) must be within 5 %.
@pytest.mark.parametrize(
    ("width", "resolution", "params", "macs"),
    [
        (1.4, 224, 6.1e6, 591.5e6),
        (0.75, 224, 2.9e6, 226.7e6),
        (0.5, 224, 2.1e6, 105.2e6),
        (0.35, 224, 1.7e6, 63.2e6),
        (1.0, 192, 3.9e6, 232.0e6),
        (1.0, 128, 3.9e6, 104.1e6),
    ],
)
def test_a1_depth_multiplier_table(width: float, resolution: int, params: float, macs: float) -> None:
    got_params, got_macs = params_macs("mnasnet_a1", resolution, width_mult=width)
    assert round(got_params / 1e6, 1) == params / 1e6, f"{got_params / 1e6:.3f}M params vs {params / 1e6}M"
    assert abs(got_macs / macs - 1) <= 0.05, f"{got_macs / 1e6:.1f}M MAdds vs {macs / 1e6}M"


# MnasNet-B1 scaled: torchvision mnasnet0_5 / 0_75 / 1_3 weight metadata (num_params exact, GMACs to 3 digits).
@pytest.mark.parametrize(
    ("width", "params", "macs"), [(0.5, 2_218_512, 0.104e9), (0.75, 3_170_208, 0.215e9), (1.3, 6_282_256, 0.526e9)]
)
def test_b1_torchvision_widths(width: float, params: int, macs: float) -> None:
    got_params, got_macs = params_macs("mnasnet_b1", width_mult=width)
    assert got_params == params
    assert abs(got_macs / macs - 1) <= 0.01


def test_a1_squeeze_excite_uses_block_input_width() -> None:
    # MnasBlock: reduced = int(0.25 * input_filters); stage 3's first block takes 24 channels (-> 6),
    # its others 40 (-> 10), though their expanded widths are 72 and 120.
    model = skeleton("mnasnet_a1")
    ses = [m for m in model.modules() if m.__class__.__name__ == "SqueezeExcite"]
    assert [(se.reduce.in_channels, se.reduce.out_channels) for se in ses[:3]] == [(72, 6), (120, 10), (120, 10)]
    assert all(isinstance(se.gate, torch.nn.Sigmoid) for se in ses)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("knobs", [{"width_mult": 0}, {"width_mult": float("nan")}, {"resolution": 31}])
def test_bad_knobs_raise_usage_error(name: str, knobs: dict) -> None:
    with pytest.raises(UsageError):
        graphs.create(name, **knobs)
