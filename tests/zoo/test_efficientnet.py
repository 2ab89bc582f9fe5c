"""EfficientNet B0-B4 and V2-S zoo models: build, run, published params/MACs, compound scaling, bad knobs."""

from __future__ import annotations

import pytest

from lncompile import graphs
from lncompile.errors import UsageError
from lncompile.graphs.efficientnet import B0_STAGES, EFFICIENTNET_PARAMS, scale_stages
from tests.zoo._checks import assert_matches_published, assert_runs
from tests.zoo._counting import num_params

MODELS = [
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_v2_s",
]


@pytest.mark.parametrize("name", MODELS)
def test_runs_at_reduced_resolution(name: str) -> None:
    assert_runs(name)


@pytest.mark.parametrize("name", MODELS)
def test_matches_published_figures(name: str) -> None:
    assert_matches_published(name)


def test_b0_is_the_torchvision_architecture() -> None:
    # torchvision efficientnet_b0 (ported from the paper's weights) has exactly 5,288,548 parameters.
    assert num_params(graphs.create("efficientnet_b0")) == 5_288_548


def test_default_resolutions_follow_the_official_table() -> None:
    for name, (_, _, resolution, _) in EFFICIENTNET_PARAMS.items():
        assert graphs.spec(name).resolution == resolution
    assert graphs.spec("efficientnet_v2_s").resolution == 384  # automl eval size (train size is 300)


# Stem, per-stage widths, per-stage repeats and head of B1-B4, derived from the official (w, d) with TF
# round_filters (make_divisible 8, 90 % rule) and round_repeats (ceil); they agree with timm's efficientnet_b*.
SCALED = {
    "efficientnet_b1": (32, [16, 24, 40, 80, 112, 192, 320], [2, 3, 3, 4, 4, 5, 2], 1280),
    "efficientnet_b2": (32, [16, 24, 48, 88, 120, 208, 352], [2, 3, 3, 4, 4, 5, 2], 1408),
    "efficientnet_b3": (40, [24, 32, 48, 96, 136, 232, 384], [2, 3, 3, 5, 5, 6, 2], 1536),
    "efficientnet_b4": (48, [24, 32, 56, 112, 160, 272, 448], [2, 4, 4, 6, 6, 8, 2], 1792),
}


@pytest.mark.parametrize("name", sorted(SCALED))
def test_compound_scaling_matches_official_coefficients(name: str) -> None:
    stem, widths, repeats, head = SCALED[name]
    width, depth, _, _ = EFFICIENTNET_PARAMS[name]
    stages = scale_stages(B0_STAGES, width, depth)
    assert [s.out for s in stages] == widths
    assert [s.repeats for s in stages] == repeats

    model = graphs.create(name, resolution=64)
    features = model.features
    assert features[0].out_channels == stem
    assert features[-1].out_channels == head
    assert len(features) - 2 == sum(repeats)  # stem + blocks + head conv

    # The knobs are multipliers on B0's table: B0 scaled by (w, d) is the same network.
    as_b0 = graphs.create("efficientnet_b0", resolution=64, width_mult=width, depth_mult=depth)
    assert num_params(as_b0) == num_params(model)


def test_depth_uses_ceil() -> None:
    # d = 1.1 turns every 1-, 2-, 3- and 4-block stage into 2, 3, 4, 5 blocks (ceil), where round would keep them.
    assert [s.repeats for s in scale_stages(B0_STAGES, 1.0, 1.1)] == [2, 3, 3, 4, 4, 5, 2]


@pytest.mark.parametrize(
    "knobs",
    [{"width_mult": 0}, {"depth_mult": -1.0}, {"resolution": 16}, {"width_mult": "wide"}],
)
def test_bad_knob_values_raise_usage_error(knobs: dict) -> None:
    with pytest.raises(UsageError):
        graphs.create("efficientnet_b0", **knobs)


def test_v2_s_rejects_small_resolution_and_has_no_width_knob() -> None:
    with pytest.raises(UsageError):
        graphs.create("efficientnet_v2_s", resolution=8)
    with pytest.raises(UsageError):
        graphs.create("efficientnet_v2_s", width_mult=1.2)
