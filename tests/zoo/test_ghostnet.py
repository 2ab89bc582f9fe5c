"""GhostNet: shapes, export, params/MACs vs paper Table 7 at 0.5x / 1.0x / 1.3x, bad knobs."""

from __future__ import annotations

import pytest

from lncompile.errors import UsageError
from lncompile.graphs import registry
from lncompile.graphs.ghostnet import PUBLISHED_WIDTHS, GhostModule
from tests.zoo._checks import assert_close, assert_forward, assert_matches_published, export
from tests.zoo._counting import params_macs


def test_forward_and_published_figures() -> None:
    assert_forward(registry.create("ghostnet"))
    params, _ = assert_matches_published("ghostnet")
    # timm ghostnet_100 has 5,183,908 params (its classifier bias etc. agree; head 1280 is the same).
    assert params == pytest.approx(5.18e6, rel=0.005)


def test_exports() -> None:
    export(registry.create("ghostnet", num_classes=10))


@pytest.mark.parametrize("width", [0.5, 1.3])
def test_scaled_widths_paper_table7(width: float) -> None:
    published_params, published_macs = PUBLISHED_WIDTHS[width]
    params, macs = params_macs("ghostnet", 224, width_mult=width)
    assert_close(f"ghostnet {width}", params, macs, published_params, published_macs)


def test_width_rounding_divisor_4() -> None:
    # 0.5x: stem make_divisible(8, 4) = 8; the head conv stays at 1280.
    model = registry.create("ghostnet", width_mult=0.5)
    assert model.features[0][0].out_channels == 8
    assert model.head[1].out_channels == 1280
    ghosts = [m for m in model.modules() if isinstance(m, GhostModule)]
    # block 1 ghosts: 16 -> 8, 16 -> 8; block 2: 48 -> 24, 24 -> 12
    assert [g.out_channels for g in ghosts[:4]] == [8, 8, 24, 12]
    assert all(g.out_channels % 4 == 0 for g in ghosts)


def test_bad_values() -> None:
    with pytest.raises(UsageError):
        registry.create("ghostnet", width_mult=0)
    with pytest.raises(UsageError):
        registry.create("ghostnet", resolution=8)
