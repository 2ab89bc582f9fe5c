"""ShuffleNet v1 (g=3, g=8) and v2: shapes, export, params/MACs vs published figures, widths, bad knobs."""

from __future__ import annotations

import pytest

from lncompile.errors import UsageError
from lncompile.graphs import registry
from lncompile.graphs.shufflenet import V1_SCALED_PUBLISHED, V2_PUBLISHED, ShuffleV1Unit
from tests.zoo._checks import assert_forward, assert_matches_published, export
from tests.zoo._counting import num_params, params_macs

MODELS = ["shufflenet_v1_g3", "shufflenet_v1_g8", "shufflenet_v2"]


def _close_params(params: int, published: float) -> bool:
    # Published params carry one decimal (e.g. "0.7M"): accept 2 % or the figure's own rounding (0.05 M).
    return abs(params - published) <= max(0.02 * published, 0.05e6)


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_published_figures(name: str) -> None:
    assert_forward(registry.create(name))
    assert_matches_published(name)


@pytest.mark.parametrize("name", MODELS)
def test_exports(name: str) -> None:
    export(registry.create(name, num_classes=10))


@pytest.mark.parametrize("groups,width", [(3, 0.5), (3, 2.0), (8, 0.5), (8, 1.5)])
def test_v1_scaled_widths(groups: int, width: float) -> None:
    # Megvii README: 0.5x g3 38M/0.7M, 2.0x g3 524M/5.4M, 0.5x g8 40M/1.0M, 1.5x g8 290M/4.3M.
    published_params, published_macs = V1_SCALED_PUBLISHED[(groups, width)]
    params, macs = params_macs(f"shufflenet_v1_g{groups}", 224, width_mult=width)
    assert _close_params(params, published_params)
    assert macs == pytest.approx(published_macs, rel=0.05)


def test_v1_stage_widths_paper_table1() -> None:
    # Paper Table 1 (1x): stage outputs 240/480/960 for g=3 and 384/768/1536 for g=8, bottleneck = out/4.
    for groups, widths in ((3, [240, 480, 960]), (8, [384, 768, 1536])):
        model = registry.create(f"shufflenet_v1_g{groups}")
        units = [m for m in model.features if isinstance(m, ShuffleV1Unit)]
        assert len(units) == 16
        firsts, seconds = [units[0], units[4], units[12]], [units[1], units[5], units[13]]
        # stride-2 units: main branch = out - in (the avg-pool shortcut is concatenated)
        mains = [w - p for w, p in zip(widths, [24, *widths[:2]], strict=True)]
        assert [u.expand[0].out_channels for u in firsts] == mains
        assert [u.expand[0].out_channels for u in seconds] == widths
        assert [u.reduce[0].out_channels for u in seconds] == [w // 4 for w in widths]
        assert model.classifier.in_features == widths[-1]
        # The first unit of stage 2 has an ungrouped first 1x1 (24 input channels); all others are grouped.
        assert units[0].reduce[0].groups == 1
        assert all(u.reduce[0].groups == groups and u.expand[0].groups == groups for u in units[1:])


@pytest.mark.parametrize("width", [0.5, 1.5, 2.0])
def test_v2_widths_paper_table5(width: float) -> None:
    # Paper Table 5 / Megvii README: 0.5x 41M/1.4M, 1.5x 299M/3.5M, 2.0x 591M/7.4M.
    published_params, published_macs = V2_PUBLISHED[width]
    params, macs = params_macs("shufflenet_v2", 224, width_mult=width)
    assert _close_params(params, published_params)
    assert macs == pytest.approx(published_macs, rel=0.05)


def test_v2_stage_widths() -> None:
    # torchvision shufflenet_v2_x*_*: exact parameter counts of the four widths.
    expected = {0.5: 1_366_792, 1.0: 2_278_604, 1.5: 3_503_624, 2.0: 7_393_996}
    for width, count in expected.items():
        assert num_params(registry.create("shufflenet_v2", width_mult=width)) == count


def test_bad_values() -> None:
    with pytest.raises(UsageError):
        registry.create("shufflenet_v2", width_mult=0.75)
    with pytest.raises(UsageError):
        registry.create("shufflenet_v1_g3", width_mult=0.25)
    with pytest.raises(UsageError):
        registry.create("shufflenet_v1_g8", resolution=16)
    with pytest.raises(UsageError):
        registry.create("shufflenet_v1_g8", groups=4)
