"""TinyNet A-E zoo models: build, run, official README figures, the tiny-formula scaling rules, bad knobs."""

from __future__ import annotations

import pytest

from lncompile import graphs
from lncompile.errors import UsageError
from lncompile.graphs.efficientnet import B0_STAGES, scale_stages
from tests.zoo._checks import assert_matches_published, assert_runs
from tests.zoo._counting import num_params

# name -> (r, w, d) from the official tinynet_pytorch/eval.py, and the README's FLOPs (= MACs).
OFFICIAL = {
    "tinynet_a": (0.86, 1.0, 1.2, 339e6),
    "tinynet_b": (0.84, 0.75, 1.1, 202e6),
    "tinynet_c": (0.825, 0.54, 0.85, 100e6),
    "tinynet_d": (0.68, 0.54, 0.695, 52e6),
    "tinynet_e": (0.475, 0.51, 0.60, 24e6),
}

# Per-stage repeats and widths (architectures.md §3.6, derived with timm's rules: round depth, make_divisible 8).
STAGES = {
    "tinynet_a": ([1, 2, 2, 4, 4, 5, 1], [16, 24, 40, 80, 112, 192, 320]),
    "tinynet_b": ([1, 2, 2, 3, 3, 4, 1], [16, 24, 32, 64, 88, 144, 240]),
    "tinynet_c": ([1, 2, 2, 3, 3, 3, 1], [8, 16, 24, 40, 64, 104, 176]),
    "tinynet_d": ([1, 1, 1, 2, 2, 3, 1], [8, 16, 24, 40, 64, 104, 176]),
    "tinynet_e": ([1, 1, 1, 2, 2, 2, 1], [8, 16, 24, 40, 56, 96, 160]),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_runs_at_reduced_resolution(name: str) -> None:
    assert_runs(name)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_matches_official_readme(name: str) -> None:
    spec = graphs.spec(name)
    r, _, _, readme_macs = OFFICIAL[name]
    assert spec.resolution == int(224 * r)
    assert spec.published is not None and spec.published.macs == readme_macs
    assert_matches_published(name)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_tiny_formula_scaling(name: str) -> None:
    _, w, d, _ = OFFICIAL[name]
    repeats, widths = STAGES[name]
    stages = scale_stages(B0_STAGES, w, d, rounding="round")
    assert [s.repeats for s in stages] == repeats
    assert [s.out for s in stages] == widths
    model = graphs.create(name, resolution=64)
    assert model.features[0].out_channels == 32  # fixed stem
    assert model.features[-1].out_channels == 1280  # head max(1280, 1280 * w)
    assert len(model.features) - 2 == sum(repeats)
    # The presets are exactly the knobs: tinynet_a's factory at C's (w, d) is TinyNet-C.
    other = graphs.create("tinynet_a", resolution=64, width_mult=w, depth_mult=d)
    assert num_params(other) == num_params(model)


def test_depth_rounds_instead_of_ceil() -> None:
    # TinyNet-C, d = 0.85: the 4-block stage gets round(3.4) = 3 blocks, where EfficientNet's ceil would give 4.
    assert scale_stages(B0_STAGES, 0.54, 0.85, rounding="round")[5].repeats == 3
    assert scale_stages(B0_STAGES, 0.54, 0.85, rounding="ceil")[5].repeats == 4


@pytest.mark.parametrize("knobs", [{"width_mult": -0.5}, {"depth_mult": 0}, {"resolution": 31}])
def test_bad_knob_values_raise_usage_error(knobs: dict) -> None:
    with pytest.raises(UsageError):
        graphs.create("tinynet_e", **knobs)
