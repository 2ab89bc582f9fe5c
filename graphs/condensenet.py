"""CondenseNet-74 (arXiv 1711.09224), in the inference ("converted") form of the authors' release.

Architecture per ShichenLiu/CondenseNet ``models/condensenet_converted.py`` / ``layers.py`` and README command
``--stages 4-6-8-10-8 --growth 8-16-32-64-128`` (../shared/reference/architectures.md §3.13):

* stem: a bare 3x3 stride-2 conv to 2*k0 = 16 channels (pre-activation net: the next layer's BN-ReLU follows);
* five dense blocks of 4, 6, 8, 10, 8 layers with exponentially increasing growth 8, 16, 32, 64, 128;
  transitions are a bare 2x2 average pool (fully dense connectivity, no 1x1 compression);
* dense layer (pre-activation BN -> ReLU -> conv): learned group conv 1x1 (to 4k, G groups) -> channel
  shuffle -> BN -> ReLU -> 3x3 group conv (to k, G groups) -> concatenated to the layer's input;
* head: BN -> ReLU -> global pool -> keep 50 % of the features (``CondenseLinear``) -> FC.

After training, a learned group conv with condensation factor C = G keeps ``in/C`` input channels per
group, so the converted layer gathers exactly ``in`` channels with a fixed ``index_select`` before its BN.
The learned index is a property of trained weights, which the zoo does not have; we stand it in with a
fixed permutation, the strided interleave that hands conv group g the channels g, g+G, g+2G, ... (one
channel in every G, drawn from every earlier layer, as learned groups are). It is written as reshape ->
transpose -> reshape (``channel_shuffle``) so the compiler sees no gather. Likewise the classifier keeps a
fixed half of the pooled features as a static slice. Params and MACs are those of the converted model.
"""

from __future__ import annotations

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import channel_shuffle
from .registry import Published, register

# (layers, growth rate) of the five dense blocks, README ImageNet command (--stages / --growth).
_STAGES = [(4, 8), (6, 16), (8, 32), (10, 64), (8, 128)]
_BOTTLENECK = 4  # --bottleneck: the 1x1 conv widens to 4 * growth
_MIN_RESOLUTION = 32  # stem stride 2 and four 2x2 pools: 32 px leaves a 1x1 map


class _PreActConv(nn.Sequential):
    """BN -> ReLU -> conv (the official ``Conv`` layer: pre-activation order)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(
                in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False
            ),
        )


class CondenseConv(nn.Module):
    """Converted learned group conv (official ``CondenseConv``): gather -> BN -> ReLU -> 1x1 G-group conv
    -> channel shuffle.

    The gather is a fixed permutation (see module docstring), a channel shuffle with ``in/G`` groups: conv
    group g receives input channels g, g+G, g+2G, ...
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"CondenseNet: {in_channels}->{out_channels} channels not divisible by {groups}")
        self.groups = groups
        self.conv = _PreActConv(in_channels, out_channels, 1, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = channel_shuffle(x, x.shape[1] // self.groups)  # fixed channel selection, for index_select
        return channel_shuffle(self.conv(x), self.groups)


class DenseLayer(nn.Module):
    """One CondenseNet layer: CondenseConv 1x1 (-> 4k) -> BN-ReLU-3x3 group conv (-> k), concatenated to x."""

    def __init__(self, in_channels: int, growth: int, groups: int) -> None:
        super().__init__()
        self.conv_1 = CondenseConv(in_channels, _BOTTLENECK * growth, groups)
        self.conv_2 = _PreActConv(_BOTTLENECK * growth, growth, 3, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv_2(self.conv_1(x))], 1)


class CondenseLinear(nn.Module):
    """Official ``CondenseLinear``: FC on a fixed 50 % of the features (the last half: a static slice)."""

    def __init__(self, in_features: int, num_classes: int, keep: float = 0.5) -> None:
        super().__init__()
        self.kept = int(in_features * keep)
        self.linear = nn.Linear(self.kept, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[:, x.shape[1] - self.kept :])


class CondenseNet(nn.Module):
    def __init__(self, groups: int, num_classes: int = 1000) -> None:
        super().__init__()
        channels = 2 * _STAGES[0][1]
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 2, 1, bias=False)]
        for i, (depth, growth) in enumerate(_STAGES):
            if i > 0:
                layers.append(nn.AvgPool2d(2, 2))  # transition: pooling only
            for _ in range(depth):
                layers.append(DenseLayer(channels, growth, groups))
                channels += growth
        layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        self.features = nn.Sequential(*layers)
        self.classifier = CondenseLinear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _build(groups: int, resolution: int, num_classes: int) -> nn.Module:
    if resolution < _MIN_RESOLUTION:
        raise UsageError(f"CondenseNet needs an input of at least {_MIN_RESOLUTION} px (got {resolution})")
    return CondenseNet(groups, num_classes)


@register(
    "condensenet74_c4_g4",
    family="condensenet",
    resolution=224,
    published=Published(
        4.8e6, 529e6, "ShichenLiu/CondenseNet README, ImageNet table: CondenseNet-74 (C=G=4), converted model"
    ),
)
def condensenet74_c4_g4(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """CondenseNet-74 with condensation factor C = 4 and G = 4 groups (1x1 and 3x3), converted form."""
    return _build(4, resolution, num_classes)


@register(
    "condensenet74_c8_g8",
    family="condensenet",
    resolution=224,
    published=Published(
        2.9e6, 274e6, "ShichenLiu/CondenseNet README, ImageNet table: CondenseNet-74 (C=G=8), converted model"
    ),
)
def condensenet74_c8_g8(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """CondenseNet-74 with condensation factor C = 8 and G = 8 groups (1x1 and 3x3), converted form."""
    return _build(8, resolution, num_classes)
