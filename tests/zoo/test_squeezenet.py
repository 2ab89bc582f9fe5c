"""SqueezeNet 1.0 / 1.1: shapes, export, params/MACs vs torchvision metadata and the README, bad inputs."""

from __future__ import annotations

import pytest

from lncompile.errors import UsageError
from lncompile.graphs import registry
from tests.zoo._checks import assert_matches_published, assert_runs, called_ops, export
from tests.zoo._counting import params_macs

MODELS = ["squeezenet1_0", "squeezenet1_1"]


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_published_figures(name: str) -> None:
    assert_runs(name, num_classes=1000)  # calibrates BN at 64: fast; same architecture
    params, _ = assert_matches_published(name)
    assert params == registry.spec(name).published.params  # torchvision's exact counts


def test_v1_0_at_caffe_crop() -> None:
    """At the 227 Caffe crop: official README (forresti/SqueezeNet) 1.72 GFLOPS = true FLOPs, and ShuffleNet
    (arXiv 1707.01083) Table 6 quotes SqueezeNet at 833 MFLOPs = multiply-adds."""
    _, macs = params_macs("squeezenet1_0", 227)
    assert 2 * macs == pytest.approx(1.72e9, rel=0.05)
    assert macs == pytest.approx(833e6, rel=0.01)


@pytest.mark.parametrize("name", MODELS)
def test_exports(name: str) -> None:
    ops = called_ops(export(registry.create(name, resolution=64, num_classes=10)))
    assert {"aten.conv2d.default", "aten.cat.default", "aten.max_pool2d.default"} <= ops


def test_smallest_resolution_and_bad_values() -> None:
    # 1.0: 7x7/2 conv + three ceil-mode 3x3/2 pools -> 29 is the smallest input; 1.1 (3x3 stem) takes 25.
    for name, smallest in (("squeezenet1_0", 29), ("squeezenet1_1", 25)):
        assert_runs(name, smallest, num_classes=1000)
        with pytest.raises(UsageError, match=f"smallest it takes is {smallest}"):
            registry.create(name, resolution=smallest - 1)
    with pytest.raises(UsageError):
        registry.create("squeezenet1_0", width_mult=0.5)  # no knobs
    with pytest.raises(UsageError):
        registry.create("squeezenet1_1", num_classes=0)
