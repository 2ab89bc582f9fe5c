"""SqueezeNeXt 1.0-SqNxt-23 (arXiv 1803.10615) with the paper's width multiplier (1.0 / 1.5 / 2.0-SqNxt-23).

Structure from the authors' Caffe release (amirgholami/SqueezeNext ``1.0-SqNxt-23/train_val.prototxt``,
``2.0-SqNxt-23/train_val.prototxt``), cross-checked with ../shared/reference/architectures.md §3.21 and osmr:

* every conv is conv (no bias) -> BN -> ReLU, including the unit's last 1x1 and the projection shortcut;
  the unit output is ReLU(branch + shortcut);
* the first unit of every stage has a 1x1 projection shortcut (carrying the stride), later units are
  identity (the 2.0 release projects even its 64 -> 64 first unit: "first of stage" is the rule);
* the two separable convs alternate order unit by unit: 3x1 then 1x3 in odd units, 1x3 then 3x1 in even ones;
* the width multiplier scales only the four stage widths: the 2.0 release keeps the 64-channel 7x7 stem
  and the 128-channel final 1x1 conv (osmr's port scales those too, hence its 2.58M for 2.0);
* the classifier is global average pool -> FC without bias, as in the prototxt.
"""

from __future__ import annotations

import torch
from torch import nn

from lncompile.errors import UsageError

from .registry import Published, register
from .squeezenet import SpatialOp, check_num_classes, feature_size

_STEM_CHANNELS = 64
_FINAL_CHANNELS = 128
# (output channels at width 1.0, units, stride of the first unit), read off the prototxt's Eltwise layers;
# "23" = conv1 + 21 units + FC.
_STAGES_23 = [(32, 6, 1), (64, 6, 2), (128, 8, 2), (256, 1, 2)]


def _conv_bn_relu(
    cin: int, cout: int, kernel: tuple[int, int], stride: int = 1, padding: tuple[int, int] | None = None
) -> nn.Sequential:
    padding = padding if padding is not None else (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class SqnxtUnit(nn.Module):
    """1x1 (C/d, stride) -> 1x1 (C/2d) -> 3x1 / 1x3 (C/d) -> 1x3 / 3x1 (C/d) -> 1x1 (out); add shortcut; ReLU.

    C is the unit's input width; d = 1 in stride-2 units, 4 when the unit narrows (C > out), 2 otherwise.
    """

    def __init__(self, cin: int, cout: int, stride: int, project: bool, vertical_first: bool) -> None:
        super().__init__()
        den = 1 if stride == 2 else 4 if cin > cout else 2
        mid, low = cin // den, cin // (2 * den)
        sep = [(3, 1), (1, 3)] if vertical_first else [(1, 3), (3, 1)]
        self.branch = nn.Sequential(
            _conv_bn_relu(cin, mid, (1, 1), stride),
            _conv_bn_relu(mid, low, (1, 1)),
            _conv_bn_relu(low, mid, sep[0]),
            _conv_bn_relu(mid, mid, sep[1]),
            _conv_bn_relu(mid, cout, (1, 1)),
        )
        self.shortcut = _conv_bn_relu(cin, cout, (1, 1), stride) if project else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


class SqueezeNext(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            # Caffe stem: 7x7/2 with pad 0 and a pool that rounds up: 227 -> 111 -> 55.
            _conv_bn_relu(3, _STEM_CHANNELS, (7, 7), 2, padding=(0, 0)),
            nn.MaxPool2d(3, 2, ceil_mode=True),
        ]
        in_ch, index = _STEM_CHANNELS, 0
        for base, units, first_stride in _STAGES_23:
            out_ch = int(base * width_mult)
            for i in range(units):
                index += 1
                layers.append(SqnxtUnit(in_ch, out_ch, first_stride if i == 0 else 1, i == 0, index % 2 == 1))
                in_ch = out_ch
        layers.append(_conv_bn_relu(in_ch, _FINAL_CHANNELS, (1, 1)))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(_FINAL_CHANNELS, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


# Stem conv 7x7/2 pad 0, ceil-mode 3x3/2 pool, then three stride-2 1x1 convs (pad 0).
_SPATIAL: list[SpatialOp] = [
    (7, 2, 0, False),
    (3, 2, 0, True),
    (1, 2, 0, False),
    (1, 2, 0, False),
    (1, 2, 0, False),
]


@register(
    "squeezenext23",
    family="squeezenext",
    resolution=227,
    published=Published(
        0.72e6,
        282e6,
        "arXiv 1803.10615 Table 2, 1.0-SqNxt-23 (0.72M params, 282M MACs) as quoted by architectures.md "
        "§3.21, not re-read in the paper [U]; the Caffe release (227 crop) counts 717,280 params; "
        "osmr 724,056 / 287.28M",
    ),
)
def squeezenext23(width_mult: float = 1.0, resolution: int = 227, num_classes: int = 1000) -> nn.Module:
    """SqueezeNeXt-23: two-stage 1x1 squeeze, separable 3x1/1x3 convs, 1x1 expand, residual add."""
    name = "squeezenext23"
    # Widths are int(32 * w); the narrowest unit squeezes its input by 4 (4 channels at 32 * w = 16).
    if (
        isinstance(width_mult, bool)
        or not isinstance(width_mult, (int, float))
        or not 0.5 <= width_mult <= 4.0
    ):
        raise UsageError(
            f"{name}: width_mult must be a number in [0.5, 4] (paper: 1.0, 1.5, 2.0), got {width_mult!r}"
        )
    check_num_classes(name, num_classes)
    feature_size(name, resolution, _SPATIAL)
    return SqueezeNext(float(width_mult), num_classes)
