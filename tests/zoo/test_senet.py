"""SE-ResNet-50 and SENet-154: shapes, export, params/MACs vs paper/timm, the SE reduction-ratio table."""

from __future__ import annotations

import pytest
from torch import nn

from lncompile.errors import UsageError
from lncompile.graphs import registry
from lncompile.graphs.senet import SEBottleneck
from tests.zoo._checks import assert_forward, assert_matches_published, called_ops, export
from tests.zoo._counting import num_params

MODELS = ["seresnet50", "senet154"]
# Exact counts of timm legacy_seresnet50 / legacy_senet154 (the original Caffe models).
TIMM_PARAMS = {"seresnet50": 28_088_024, "senet154": 115_088_984}


def _check_layout(name: str, model: nn.Module) -> None:
    """Caffe SE-ResNet strides in the first 1x1; SENet-154 in the grouped 3x3, with 3x3/2 shortcuts."""
    blocks = [m for m in model.modules() if isinstance(m, SEBottleneck)]
    convs = [m for m in blocks[3].branch.modules() if isinstance(m, nn.Conv2d)]  # first block of stage 2
    shortcut = blocks[3].shortcut[0]
    if name == "seresnet50":
        assert len(blocks) == 16
        assert [(c.kernel_size[0], c.stride[0]) for c in convs[:3]] == [(1, 2), (3, 1), (1, 1)]
        assert (shortcut.kernel_size, shortcut.stride) == ((1, 1), (2, 2))
    else:
        assert len(blocks) == 50
        assert [(c.in_channels, c.out_channels, c.stride[0], c.groups) for c in convs[:3]] == [
            (256, 256, 1, 1),
            (256, 512, 2, 64),
            (512, 512, 1, 1),
        ]
        assert (shortcut.kernel_size, shortcut.stride) == ((3, 3), (2, 2))
    assert blocks[3].branch[3].reduce.out_channels == 512 // 16


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_published_figures(name: str) -> None:
    # create() calibrates BN with a forward pass at the given resolution: 64 keeps SENet-154 cheap.
    model = registry.create(name, resolution=64)
    _check_layout(name, model)
    assert_forward(model)

    params, _ = assert_matches_published(name)
    assert params == TIMM_PARAMS[name]


@pytest.mark.parametrize(("reduction", "published"), [(2, 45.7e6), (4, 35.7e6), (8, 30.7e6), (32, 26.9e6)])
def test_reduction_ratio_table(reduction: int, published: float) -> None:
    """SE-ResNet-50 params for r = 2..32: arXiv 1709.01507 (v4) Table 10 (recalled; consistent with 25.6M
    for ResNet-50 + 2 * sum(C^2) / r)."""
    model = registry.create("seresnet50", resolution=32, reduction=reduction)
    assert num_params(model) == pytest.approx(published, rel=0.02)


def test_exports() -> None:
    ops = called_ops(export(registry.create("seresnet50", resolution=64, num_classes=10)))
    assert {"aten.conv2d.default", "aten.sigmoid.default", "aten.mul.Tensor"} <= ops


def test_bad_values() -> None:
    for bad in (0, 512, 2.5, True):
        with pytest.raises(UsageError):
            registry.create("seresnet50", reduction=bad)
    with pytest.raises(UsageError, match="smallest it takes is 5"):
        registry.create("seresnet50", resolution=4)
    with pytest.raises(UsageError):
        registry.create("senet154", width_mult=0.5)
