"""CondenseNet-74 (converted form): shapes, export, params/MACs vs the authors' README, bad inputs."""

from __future__ import annotations

import pytest

from lncompile.errors import UsageError
from lncompile.graphs import registry
from tests.zoo._checks import assert_forward, assert_matches_published, called_ops, export

MODELS = ["condensenet74_c4_g4", "condensenet74_c8_g8"]
# Parameter counts of the official converted checkpoints as loaded by osmr/imgclsmob.
CONVERTED_PARAMS = {"condensenet74_c4_g4": 4_773_944, "condensenet74_c8_g8": 2_935_416}


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_published_figures(name: str) -> None:
    assert_forward(registry.create(name))
    # The README's FLOPs also count ReLU and pooling (utils.measure_model), ~12 M above conv+FC MACs: within 5 %.
    params, _ = assert_matches_published(name)
    assert params == CONVERTED_PARAMS[name]


@pytest.mark.parametrize("name", MODELS)
def test_exports(name: str) -> None:
    ops = called_ops(export(registry.create(name, num_classes=10)))
    assert not any("index_select" in op or "gather" in op for op in ops)


def test_bad_values() -> None:
    with pytest.raises(UsageError):
        registry.create("condensenet74_c4_g4", resolution=16)
    with pytest.raises(UsageError):
        registry.create("condensenet74_c4_g4", width_mult=0.5)
