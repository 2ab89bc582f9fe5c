"""MixNet-S / MixNet-M (Tan & Le, "MixConv: Mixed Depthwise Convolutional Kernels", BMVC 2019, arXiv 1907.09595).

Stage tables from the official tensorflow/tpu ``models/official/mnasnet/mixnet/mixnet_builder.py`` (same as timm
``_gen_mixnet_s/m``; ../shared/reference/architectures.md §3.16). Width scaling is the builder's ``round_filters``
(make_divisible 8, 90 % rule) on the stem and every block's channels; the 1536-channel head is not scaled
(``feature_size`` is used as is). MixNet-L is MixNet-M at width 1.3 (``mixnet_builder.mixnet_l``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .blocks import ClassifierHead, ConvBNAct, SqueezeExcite, make_divisible, same_padding
from .efficientnet import check_scaling
from .registry import Published, register


class MixStage(NamedTuple):
    """One row of the official block strings: ``repeats`` blocks, the first with ``stride``."""

    repeats: int
    kernels: tuple[int, ...]  # one depthwise kernel size per channel group (MixConv)
    expand: int
    expand_groups: int  # 1x1 expansion split into this many groups (TF ``a1.1`` = 2)
    project_groups: int  # 1x1 projection split into this many groups (TF ``p1.1`` = 2)
    out: int
    stride: int
    se_ratio: float  # of the block input channels; 0 = no SE
    swish: bool  # Swish (SiLU) inside the block, else ReLU


# mixnet_builder.mixnet_s (stem 16).
MIXNET_S = [
    MixStage(1, (3,), 1, 1, 1, 16, 1, 0.0, False),
    MixStage(1, (3,), 6, 2, 2, 24, 2, 0.0, False),
    MixStage(1, (3,), 3, 2, 2, 24, 1, 0.0, False),
    MixStage(1, (3, 5, 7), 6, 1, 1, 40, 2, 0.5, True),
    MixStage(3, (3, 5), 6, 2, 2, 40, 1, 0.5, True),
    MixStage(1, (3, 5, 7), 6, 1, 2, 80, 2, 0.25, True),
    MixStage(2, (3, 5), 6, 1, 2, 80, 1, 0.25, True),
    MixStage(1, (3, 5, 7), 6, 2, 2, 120, 1, 0.5, True),
    MixStage(2, (3, 5, 7, 9), 3, 2, 2, 120, 1, 0.5, True),
    MixStage(1, (3, 5, 7, 9, 11), 6, 1, 1, 200, 2, 0.5, True),
    MixStage(2, (3, 5, 7, 9), 6, 1, 2, 200, 1, 0.5, True),
]

# mixnet_builder.mixnet_m (stem 24).
MIXNET_M = [
    MixStage(1, (3,), 1, 1, 1, 24, 1, 0.0, False),
    MixStage(1, (3, 5, 7), 6, 2, 2, 32, 2, 0.0, False),
    MixStage(1, (3,), 3, 2, 2, 32, 1, 0.0, False),
    MixStage(1, (3, 5, 7, 9), 6, 1, 1, 40, 2, 0.5, True),
    MixStage(3, (3, 5), 6, 2, 2, 40, 1, 0.5, True),
    MixStage(1, (3, 5, 7), 6, 1, 1, 80, 2, 0.25, True),
    MixStage(3, (3, 5, 7, 9), 6, 2, 2, 80, 1, 0.25, True),
    MixStage(1, (3,), 6, 1, 1, 120, 1, 0.5, True),
    MixStage(3, (3, 5, 7, 9), 3, 2, 2, 120, 1, 0.5, True),
    MixStage(1, (3, 5, 7, 9), 6, 1, 1, 200, 2, 0.5, True),
    MixStage(3, (3, 5, 7, 9), 6, 1, 2, 200, 1, 0.5, True),
]

HEAD_CHANNELS = 1536  # official feature_size, not width-scaled


def split_channels(channels: int, groups: int) -> list[int]:
    """timm ``_split_channels`` / TF ``_split_channels``: equal parts, the remainder added to the first group."""
    split = [channels // groups] * groups
    split[0] += channels - sum(split)
    return split


class MixedConv2d(nn.Module):
    """Split channels into groups, one conv per group (kernel ``kernels[i]``), concatenate.

    ``depthwise=True`` is MixConv (each group a depthwise conv with its own kernel size); with all kernels 1 it is
    the official grouped 1x1 (``GroupedConv2D``). When every group has the same kernel and equal splits, that is
    exactly ``nn.Conv2d(groups=G)``, so one grouped conv is emitted instead of split/conv/concat.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernels: tuple[int, ...], stride: int = 1, depthwise: bool = False
    ) -> None:
        super().__init__()
        g = len(kernels)
        self.in_splits = split_channels(in_channels, g)
        out_splits = split_channels(out_channels, g)
        uniform = len(set(kernels)) == 1 and in_channels % g == 0 and out_channels % g == 0
        if uniform:
            k = kernels[0]
            groups = in_channels if depthwise else g
            self.convs = nn.ModuleList(
                [nn.Conv2d(in_channels, out_channels, k, stride, same_padding(k), groups=groups, bias=False)]
            )
        else:
            self.convs = nn.ModuleList(
                nn.Conv2d(ci, co, k, stride, same_padding(k), groups=ci if depthwise else 1, bias=False)
                for k, ci, co in zip(kernels, self.in_splits, out_splits, strict=True)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        parts = torch.split(x, self.in_splits, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts, strict=True)], dim=1)


class MixBlock(nn.Module):
    """Official ``MixnetBlock``: [grouped 1x1 expand -> BN -> act] -> MixConv DW -> BN -> act -> [SE] ->
    grouped 1x1 project -> BN; residual iff stride 1 and C_in == C_out. With t = 1 there is no expansion
    (the first block is then depthwise-separable)."""

    def __init__(self, in_channels: int, s: MixStage, stride: int) -> None:
        super().__init__()
        act = nn.SiLU if s.swish else nn.ReLU
        mid = in_channels * s.expand
        layers: list[nn.Module] = []
        if s.expand != 1:
            layers += [MixedConv2d(in_channels, mid, (1,) * s.expand_groups), nn.BatchNorm2d(mid), act()]
        layers += [MixedConv2d(mid, mid, s.kernels, stride, depthwise=True), nn.BatchNorm2d(mid), act()]
        if s.se_ratio > 0:
            # TF: num_reduced_filters = max(1, int(input_filters * se_ratio)); SE uses the block's activation.
            layers.append(SqueezeExcite(mid, max(1, int(in_channels * s.se_ratio)), act=act))
        layers += [MixedConv2d(mid, s.out, (1,) * s.project_groups), nn.BatchNorm2d(s.out)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == s.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


class MixNet(nn.Module):
    """Stem 3x3 s2 (ReLU) -> MixBlocks -> 1x1 head conv 1536 (ReLU) -> pool -> dropout -> FC."""

    def __init__(
        self, stages: list[MixStage], stem: int, width_mult: float, dropout: float, num_classes: int = 1000
    ) -> None:
        super().__init__()
        in_ch = make_divisible(stem * width_mult, 8)
        layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2, act=nn.ReLU)]
        for s in stages:
            s = s._replace(out=make_divisible(s.out * width_mult, 8))
            for i in range(s.repeats):
                layers.append(MixBlock(in_ch, s, s.stride if i == 0 else 1))
                in_ch = s.out
        layers.append(ConvBNAct(in_ch, HEAD_CHANNELS, 1, act=nn.ReLU))
        self.features = nn.Sequential(*layers)
        self.classifier = ClassifierHead(HEAD_CHANNELS, num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# Paper figures (MixConv ImageNet table: S 4.1M / 256M, M 5.0M / 360M, L 7.3M / 565M). architectures.md §6 lists them
# as not re-read from the PDF; they are corroborated by OpenVINO's mixnet-l spec (7.3M, 0.565 GFLOPs) and the
# exact release parameter counts 4,134,606 / 5,014,382 (timm, osmr). Conv/linear MACs of the official
# architecture are 239M / 339M, 6.6 % / 5.8 % under the paper's S/M rows (L: 555M, -1.7 %).
@register(
    "mixnet_s",
    family="mixnet",
    resolution=224,
    published=Published(4.1e6, 256e6, "arXiv 1907.09595 Table 2 (MixNet-S: 4.1M params, 256M FLOPS = MACs)"),
)
def mixnet_s(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MixNet-S: NAS-found MixConv network, stem 16, head 1536, ReLU early / Swish later."""
    check_scaling(resolution, width_mult=width_mult)
    return MixNet(MIXNET_S, 16, width_mult, dropout=0.2, num_classes=num_classes)


@register(
    "mixnet_m",
    family="mixnet",
    resolution=224,
    published=Published(5.0e6, 360e6, "arXiv 1907.09595 Table 2 (MixNet-M: 5.0M params, 360M FLOPS = MACs)"),
)
def mixnet_m(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MixNet-M: NAS-found MixConv network, stem 24, head 1536; width_mult=1.3 gives MixNet-L."""
    check_scaling(resolution, width_mult=width_mult)
    return MixNet(MIXNET_M, 24, width_mult, dropout=0.25, num_classes=num_classes)
