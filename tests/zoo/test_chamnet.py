"""ChamNet A / B zoo models: build, run, published params/MAdds at their release resolutions, bad knobs."""

from __future__ import annotations

import pytest

from lncompile import graphs
from lncompile.errors import UsageError
from tests.zoo._checks import assert_matches_published, assert_runs, export

MODELS = ["chamnet_a", "chamnet_b"]


@pytest.mark.parametrize("name", MODELS)
def test_runs_at_reduced_resolution(name: str) -> None:
    assert_runs(name)


@pytest.mark.parametrize("name", MODELS)
def test_matches_published_figures(name: str) -> None:
    _, macs = assert_matches_published(name)
    # The release's MFLOPs (552.9 / 323.3) are reproduced to the printed digit.
    assert round(macs / 1e6, 1) == round(graphs.spec(name).published.macs / 1e6, 1)


def test_default_resolutions() -> None:
    # ChamNet-B's released checkpoint and figures are 192x192 (the fbnet_v2 def's input_size 224 is not).
    assert graphs.spec("chamnet_a").resolution == 224
    assert graphs.spec("chamnet_b").resolution == 192


def test_exports() -> None:
    export(graphs.create("chamnet_b", resolution=64))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("knobs", [{"resolution": 8}, {"resolution": 200.5}, {"width_mult": 0.5}])
def test_bad_knobs_raise_usage_error(name: str, knobs: dict) -> None:
    with pytest.raises(UsageError):
        graphs.create(name, **knobs)
