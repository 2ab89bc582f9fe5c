"""MobileNet v1 / v2 / v3 zoo models: build, run, published params/MAdds, scaled configurations, bad knobs."""

from __future__ import annotations

import pytest
import torch

from lncompile import graphs
from lncompile.errors import UsageError
from tests.zoo._checks import assert_close, assert_matches_published, assert_runs, export
from tests.zoo._counting import params_macs, skeleton

MODELS = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]


@pytest.mark.parametrize("name", MODELS)
def test_runs_at_reduced_resolution(name: str) -> None:
    assert_runs(name)


@pytest.mark.parametrize("name", MODELS)
def test_matches_published_figures(name: str) -> None:
    assert_matches_published(name)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v3_small"])
def test_exports(name: str) -> None:
    export(graphs.create(name, resolution=64))


# MobileNet v1 paper (arXiv 1704.04861) Table 6 (width, 224) and Table 7 (resolution, width 1.0): MAdds and
# params. The paper prints params to 0.1M, too coarse for a 2 % check at 0.5 / 0.25 (1.3M, 0.5M), so those
# two use the TF-slim release table (mobilenet_v1.md: 1.34M, 0.47M); MAdds are the paper's.
@pytest.mark.parametrize(
    ("width", "resolution", "params", "macs"),
    [
        (0.75, 224, 2.6e6, 325e6),
        (0.5, 224, 1.34e6, 149e6),
        (0.25, 224, 0.47e6, 41e6),
        (1.0, 192, 4.2e6, 418e6),
        (1.0, 160, 4.2e6, 290e6),
        (1.0, 128, 4.2e6, 186e6),
    ],
)
def test_v1_paper_tables_6_7(width: float, resolution: int, params: float, macs: float) -> None:
    got_params, got_macs = params_macs("mobilenet_v1", resolution, width_mult=width)
    assert_close(f"mobilenet_v1 {width}-{resolution}", got_params, got_macs, params, macs)


def test_v1_width_truncates_like_tf_slim() -> None:
    # TF-slim depth(): max(int(c * alpha), 8); at 0.25 the first conv is the 8-channel floor.
    model = skeleton("mobilenet_v1", width_mult=0.25)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1]
    assert [c.out_channels for c in convs] == [8, 16, 32, 32, 64, 64, *[128] * 6, 256, 256]


# MobileNet v2 TF-slim release table (tensorflow/models research/slim/nets/mobilenet/README.md; the paper's
# Table 4 gives only 1.0 and 1.4, and its 1.4 row (6.9M) is not the released model's 6.06M).
@pytest.mark.parametrize(
    ("width", "params", "macs"),
    [(0.35, 1.66e6, 59e6), (0.5, 1.95e6, 97e6), (0.75, 2.61e6, 209e6), (1.4, 6.06e6, 582e6)],
)
def test_v2_width_release_table(width: float, params: float, macs: float) -> None:
    got_params, got_macs = params_macs("mobilenet_v2", width_mult=width)
    assert_close(f"mobilenet_v2 {width}", got_params, got_macs, params, macs)


@pytest.mark.parametrize(
    ("width", "stages", "last"),
    # architectures.md §4.1: stem + stage widths after make_divisible(c * width, 8), and the last conv.
    [(0.35, [16, 8, 8, 16, 24, 32, 56, 112], 1280), (1.4, [48, 24, 32, 48, 88, 136, 224, 448], 1792)],
)
def test_v2_channel_rounding(width: float, stages: list[int], last: int) -> None:
    model = skeleton("mobilenet_v2", width_mult=width)
    features = model.features
    widths = [features[0].out_channels] + [features[i].block[-1][0].out_channels for i in (1, 3, 6, 10, 13, 16, 17)]
    assert widths == stages
    assert features[-1].out_channels == last


def test_v3_large_075_paper() -> None:
    # arXiv 1905.02244 Table 3: V3-Large 0.75 = 155M MAdds, 4.0M params (same in both arXiv versions).
    params, macs = params_macs("mobilenet_v3_large", width_mult=0.75)
    assert_close("mobilenet_v3_large 0.75", params, macs, 4.0e6, 155e6)


def test_v3_structure() -> None:
    model = skeleton("mobilenet_v3_large")
    ses = [m for m in model.modules() if m.__class__.__name__ == "SqueezeExcite"]
    # SE squeeze = make_divisible(exp / 4, 8): the 72-wide block squeezes to 24, the 960-wide ones to 240.
    assert [se.reduce.out_channels for se in ses][:2] == [24, 32]
    assert ses[-1].reduce.out_channels == 240
    assert all(isinstance(se.gate, torch.nn.Hardsigmoid) for se in ses)
    # Efficient last stage: pooled 960 -> 1280 conv with bias and no BN; head not scaled by width.
    assert model.head[1].in_channels == 960 and model.head[1].out_channels == 1280
    small = skeleton("mobilenet_v3_small", width_mult=0.5)
    assert small.features[0][0].out_channels == 16  # stem fixed below width 0.75 (timm fix_stem)
    assert small.head[1].out_channels == 1024


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("knobs", [{"width_mult": 0}, {"width_mult": -0.5}, {"resolution": 16}, {"depth_mult": 1.0}])
def test_bad_knobs_raise_usage_error(name: str, knobs: dict) -> None:
    with pytest.raises(UsageError):
        graphs.create(name, **knobs)
