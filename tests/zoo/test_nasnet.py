"""NAS cell networks: NASNet-A Mobile, PNASNet-5 Mobile, AmoebaNet-A mobile (graphs/nasnet.py, pnasnet.py,
amoebanet.py on graphs/_nas_cells.py).

MACs are counted on the meta device (shapes only), which gives the same count as a real forward pass.
"""

from __future__ import annotations

import pytest
import torch

from lncompile.errors import UsageError
from lncompile.graphs import registry
from lncompile.graphs.amoebanet import amoebanet_a_mobile
from lncompile.graphs.nasnet import nasnet_a_mobile
from lncompile.graphs.pnasnet import pnasnet5_mobile
from tests.zoo._checks import assert_close, assert_forward, assert_matches_published
from tests.zoo._counting import count, num_params

MODELS = ["nasnet_a_mobile", "pnasnet5_mobile", "amoebanet_a_mobile"]


@pytest.mark.parametrize("name", MODELS)
def test_runs_at_reduced_resolution(name: str) -> None:
    assert_forward(registry.create(name, num_classes=10), num_classes=10)


@pytest.mark.parametrize("name", MODELS)
def test_matches_published_params_and_macs(name: str) -> None:
    assert_matches_published(name)


def test_nasnet_a_mobile_exact_release_size() -> None:
    # osmr nasnet_4a1056 (a port of the TF-slim mobile model) has exactly this many parameters.
    with torch.device("meta"):
        assert num_params(nasnet_a_mobile()) == 5_289_978


# Scaled configurations with published figures: the large ImageNet models at 331 px are the same cells with
# more filters (F), more cells per stage (N) and, for NASNet/PNASNet, a 3x stem (stem_multiplier=3).
LARGE = [
    # NASNet-A Large (6 @ 4032): TF-slim nasnet README 88.9M params, 23.8G MACs (timm nasnetalarge 88.75M).
    pytest.param(
        nasnet_a_mobile, {"filters": 168, "num_cells": 6, "stem_multiplier": 3.0}, 88.9e6, 23.8e9,
        id="nasnet_a_large",
    ),
    # PNASNet-5 Large (N=4, F=216): timm pnasnet5large 86.06M params, 25.04 GMACs (paper 86.1M / 25.0B).
    pytest.param(
        pnasnet5_mobile, {"filters": 216, "num_cells": 4, "stem_multiplier": 3.0}, 86.06e6, 25.04e9,
        id="pnasnet5_large",
    ),
    # AmoebaNet-A (N=6, F=190): EfficientNet Table 2 quotes 87M params, 23B FLOPs (AmoebaNet: 86.7M / 23.1B).
    pytest.param(amoebanet_a_mobile, {"filters": 190, "num_cells": 6}, 87e6, 23e9, id="amoebanet_a_n6_f190"),
]


@pytest.mark.parametrize(("factory", "knobs", "params", "macs"), LARGE)
def test_large_configurations(factory, knobs: dict, params: float, macs: float) -> None:
    with torch.device("meta"):  # 86-89M parameters: build shapes only
        model = factory(resolution=331, **knobs)
    got_params, got_macs = count(model.eval(), 331)
    assert_close(f"{factory.__name__} {knobs}", got_params, got_macs, params, macs)


def test_width_knob_sets_penultimate_width() -> None:
    # "N @ P": NASNet-A penultimate width P = 6 * 4F; PNASNet-5 cells output 5 * 4F, AmoebaNet-A 4 * 4F.
    with torch.device("meta"):  # shapes only
        assert nasnet_a_mobile().num_features == 1056
        assert nasnet_a_mobile(filters=32, num_cells=2).num_features == 6 * 4 * 32
        assert pnasnet5_mobile().num_features == 5 * 4 * 54
        assert amoebanet_a_mobile().num_features == 4 * 4 * 50


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "bad", [{"filters": 4}, {"filters": 44.5}, {"num_cells": 0}, {"resolution": 16}], ids=str
)
def test_bad_knobs_raise_usage_error(name: str, bad: dict) -> None:
    with pytest.raises(UsageError):
        registry.create(name, **bad)


@pytest.mark.parametrize("name", ["nasnet_a_mobile", "pnasnet5_mobile"])
def test_bad_stem_multiplier_raises_usage_error(name: str) -> None:
    with pytest.raises(UsageError):
        registry.create(name, stem_multiplier=0.01)
