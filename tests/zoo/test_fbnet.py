"""FBNet A / B / C zoo models: build, run, published params/MAdds, block structure, bad knobs."""

from __future__ import annotations

import pytest
import torch

from lncompile import graphs
from lncompile.errors import UsageError
from tests.zoo._checks import assert_matches_published, assert_runs, export
from tests.zoo._counting import params_macs, skeleton

MODELS = ["fbnet_a", "fbnet_b", "fbnet_c"]


@pytest.mark.parametrize("name", MODELS)
def test_runs_at_reduced_resolution(name: str) -> None:
    assert_runs(name)


@pytest.mark.parametrize("name", MODELS)
def test_matches_published_figures(name: str) -> None:
    assert_matches_published(name)


def test_fbnet_a_reproduces_release_exactly() -> None:
    # model_info.json counts conv/FC weights only (no BN, no FC bias): 4,286,480; MAdds 249.921848 M.
    model = skeleton("fbnet_a").eval()
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert weights == 4_286_480
    _, macs = params_macs("fbnet_a")
    assert macs == 249_921_848


def test_fbnet_a_grouped_blocks() -> None:
    # ir_k5_g2 / ir_k3_g2: group-2 pw and pwl convs with a channel shuffle between (3 such blocks in A).
    model = skeleton("fbnet_a")
    grouped = [b for b in model.modules() if getattr(b, "groups", 1) == 2 and hasattr(b, "pwl")]
    assert len(grouped) == 3
    assert all(b.pw[0].groups == 2 and b.pwl[0].groups == 2 for b in grouped)


def test_exports() -> None:
    export(graphs.create("fbnet_a", resolution=64))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("knobs", [{"resolution": 16}, {"width_mult": 0.5}])
def test_bad_knobs_raise_usage_error(name: str, knobs: dict) -> None:
    # FBNet's releases define no width knob: asking for one is a usage error, as is a too-small input.
    with pytest.raises(UsageError):
        graphs.create(name, **knobs)
