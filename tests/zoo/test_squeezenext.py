"""SqueezeNeXt-23: shapes, export, params/MACs vs the paper and the Caffe release, width multiplier."""

from __future__ import annotations

import pytest
from torch import nn

from lncompile.errors import UsageError
from lncompile.graphs import registry
from lncompile.graphs.squeezenext import SqnxtUnit
from tests.zoo._checks import assert_forward, assert_matches_published, assert_runs, called_ops, export
from tests.zoo._counting import num_params

NAME = "squeezenext23"


def _conv_shapes(module: nn.Module) -> list[tuple[int, int, tuple[int, ...], int]]:
    """(in, out, kernel, stride) of every conv in ``module``, in definition order."""
    return [
        (m.in_channels, m.out_channels, tuple(m.kernel_size), m.stride[0])
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
    ]


def test_forward_and_published_figures() -> None:
    assert_runs(NAME, num_classes=1000)  # calibrates BN at 64: fast; same architecture
    params, _ = assert_matches_published(NAME)
    # Weights + BN scale/shift of the Caffe 1.0-SqNxt-23 prototxt (no conv or FC biases).
    assert params == 717_280


def test_units_match_caffe_release() -> None:
    """Conv widths read from amirgholami/SqueezeNext {1.0,2.0}-SqNxt-23/train_val.prototxt."""
    units = [m for m in registry.create(NAME, resolution=64).modules() if isinstance(m, SqnxtUnit)]
    assert len(units) == 21
    # Unit 1 (Convolution2..7): shortcut 64->32, branch 64->16->8->16 (3x1)->16 (1x3)->32.
    assert _conv_shapes(units[0].branch) == [
        (64, 16, (1, 1), 1),
        (16, 8, (1, 1), 1),
        (8, 16, (3, 1), 1),
        (16, 16, (1, 3), 1),
        (16, 32, (1, 1), 1),
    ]
    assert _conv_shapes(units[0].shortcut) == [(64, 32, (1, 1), 1)]
    # Unit 2 is identity-shortcut and puts 1x3 before 3x1; unit 7 (Convolution33..38) is the stride-2 entry.
    assert isinstance(units[1].shortcut, nn.Identity)
    assert [k for _, _, k, _ in _conv_shapes(units[1].branch)][2:4] == [(1, 3), (3, 1)]
    assert _conv_shapes(units[6].branch)[0] == (32, 32, (1, 1), 2)
    assert _conv_shapes(units[6].shortcut) == [(32, 64, (1, 1), 2)]

    wide = registry.create(NAME, resolution=64, width_mult=2.0)
    units = [m for m in wide.modules() if isinstance(m, SqnxtUnit)]
    convs = _conv_shapes(wide)
    assert convs[0] == (3, 64, (7, 7), 2)  # stem not widened
    # First unit 64 -> 64 still projects (Convolution2) and squeezes by 2: 32, 16, 32, 32, 64.
    assert _conv_shapes(units[0].shortcut) == [(64, 64, (1, 1), 1)]
    assert [c[1] for c in _conv_shapes(units[0].branch)] == [32, 16, 32, 32, 64]
    # Last unit (Convolution105..110) and the unwidened final 1x1 (Convolution111) + FC without bias.
    assert _conv_shapes(units[-1].shortcut) == [(256, 512, (1, 1), 2)]
    assert [c[1] for c in _conv_shapes(units[-1].branch)] == [256, 128, 256, 256, 512]
    assert convs[-1] == (512, 128, (1, 1), 1)
    fc = next(m for m in wide.modules() if isinstance(m, nn.Linear))
    assert (fc.in_features, fc.bias) == (128, None)


def test_width_multiplier() -> None:
    """1.5-SqNxt-23: 1.4M params (arXiv 1803.10615 Table 2 as recalled, not re-read [U]); 2.0-SqNxt-23 has no
    trustworthy published count here, so it is pinned to the tally of its Caffe prototxt (2,361,728)."""
    assert num_params(registry.create(NAME, resolution=64, width_mult=1.5)) == pytest.approx(1.4e6, rel=0.02)
    wide = registry.create(NAME, resolution=64, width_mult=2.0)
    assert num_params(wide) == 2_361_728
    assert_forward(wide)


def test_exports() -> None:
    ops = called_ops(export(registry.create(NAME, resolution=64, num_classes=10)))
    assert {"aten.conv2d.default", "aten.batch_norm.default", "aten.add.Tensor"} <= ops


def test_bad_values() -> None:
    for bad in (0.25, 0, -1.0, 8.0, "1.0", True):
        with pytest.raises(UsageError):
            registry.create(NAME, width_mult=bad)
    with pytest.raises(UsageError, match="smallest it takes is 11"):
        registry.create(NAME, resolution=10)
    with pytest.raises(UsageError):
        registry.create(NAME, depth_mult=2.0)
