"""DiCENet: shapes, export, params/MACs vs the EdgeNets release table (several widths), fixed-resolution units."""

from __future__ import annotations

import pytest
import torch

from lncompile.errors import UsageError
from lncompile.graphs import registry
from lncompile.graphs.dicenet import PUBLISHED_BY_WIDTH, DiCE
from tests.zoo._checks import assert_close, assert_matches_published, assert_runs, export
from tests.zoo._counting import params_macs


def test_forward_and_published_figures() -> None:
    assert_runs("dicenet", num_classes=1000)
    assert_matches_published("dicenet")


@pytest.mark.parametrize("width", [0.2, 0.5, 0.75, 1.5, 1.75, 2.0])
def test_widths_release_table(width: float) -> None:
    # EdgeNets model_zoo README (MFLOPs) and dicenet_config.py RESULTS comment (params), all at 224.
    published_params, published_macs = PUBLISHED_BY_WIDTH[width]
    params, macs = params_macs("dicenet", 224, width_mult=width)
    assert_close(f"dicenet {width}", params, macs, published_params, published_macs)


def test_exports() -> None:
    export(registry.create("dicenet", resolution=64, num_classes=10))


def test_units_built_for_the_requested_resolution() -> None:
    # Height/width-wise convs take the feature-map rows/columns as channels: 28/14/7 at 224, 12/6/3 at 96.
    for resolution, sizes in ((224, {28, 14, 7}), (96, {12, 6, 3})):
        model = registry.create("dicenet", resolution=resolution)
        units = [m for m in model.modules() if isinstance(m, DiCE)]
        assert len(units) == 3 + sum((3, 7, 3))
        assert {u.conv_height.in_channels for u in units} == sizes
        assert all(u.conv_width.groups == u.conv_width.in_channels for u in units)
    # A model built for one resolution refuses another one with a clear error.
    with pytest.raises(UsageError, match="resolution"):
        registry.create("dicenet", resolution=96)(torch.randn(1, 3, 128, 128))


@pytest.mark.parametrize("knobs", [{"width_mult": 0.3}, {"width_mult": 3.0}, {"resolution": 100}, {"resolution": 16}])
def test_bad_knobs(knobs: dict) -> None:
    with pytest.raises(UsageError):
        registry.create("dicenet", **knobs)
