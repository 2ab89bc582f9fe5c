"""EfficientNet B0-B4 (arXiv 1905.11946) and EfficientNetV2-S (arXiv 2104.00298).

B0's stage table is paper Table 1 (= TF ``efficientnet_builder._DEFAULT_BLOCKS_ARGS``); B1-B4 are B0 under the
official (width, depth, resolution, dropout) table, not under a formula in phi (../shared/reference/architectures.md
§3.4, §4.2). V2-S is paper Table 4 = google/automl ``effnetv2_configs.v2_s_block`` (§3.5).

The builder here (:func:`scale_stages`, :class:`EfficientNet`, :func:`check_scaling`) is shared with TinyNet
(tinynet.py), which is B0 under a different depth-rounding rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import ClassifierHead, ConvBNAct, InvertedResidual, SqueezeExcite, make_divisible
from .registry import Published, register

# The network downsamples by 32 (stem + four stride-2 stages); smaller inputs collapse to 1x1 before the head.
MIN_RESOLUTION = 32


class Stage(NamedTuple):
    """One row of a stage table: ``repeats`` blocks, the first with ``stride``."""

    block: str  # "mbconv" (depthwise MBConv + SE) or "fused" (Fused-MBConv, full k x k conv)
    expand: int  # expansion ratio t
    out: int  # output channels
    repeats: int
    stride: int
    kernel: int
    se_ratio: float  # SE width as a fraction of the block *input* channels; 0 = no SE


# EfficientNet-B0, paper Table 1 / TF _DEFAULT_BLOCKS_ARGS (stem 32, head 1280, SE 0.25 everywhere).
B0_STAGES = [
    Stage("mbconv", 1, 16, 1, 1, 3, 0.25),
    Stage("mbconv", 6, 24, 2, 2, 3, 0.25),
    Stage("mbconv", 6, 40, 2, 2, 5, 0.25),
    Stage("mbconv", 6, 80, 3, 2, 3, 0.25),
    Stage("mbconv", 6, 112, 3, 1, 5, 0.25),
    Stage("mbconv", 6, 192, 4, 2, 5, 0.25),
    Stage("mbconv", 6, 320, 1, 1, 3, 0.25),
]
B0_STEM, B0_HEAD = 32, 1280

# EfficientNetV2-S, paper Table 4 / automl v2_s_block (stem 24, head 1280; no SE in the fused stages).
V2_S_STAGES = [
    Stage("fused", 1, 24, 2, 1, 3, 0.0),
    Stage("fused", 4, 48, 4, 2, 3, 0.0),
    Stage("fused", 4, 64, 4, 2, 3, 0.0),
    Stage("mbconv", 4, 128, 6, 2, 3, 0.25),
    Stage("mbconv", 6, 160, 9, 1, 3, 0.25),
    Stage("mbconv", 6, 256, 15, 2, 3, 0.25),
]


def check_scaling(resolution: int, **multipliers: float) -> None:
    """Reject a resolution below the network stride or a non-positive width/depth multiplier (UsageError)."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < MIN_RESOLUTION:
        raise UsageError(
            f"resolution must be an integer >= {MIN_RESOLUTION} (the network downsamples by 32), got {resolution!r}"
        )
    for name, value in multipliers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise UsageError(f"{name} must be a positive number, got {value!r}")


def round_filters(channels: int, width_mult: float) -> int:
    """TF ``round_filters``: scale, round to a multiple of 8, never drop more than 10 %."""
    return make_divisible(channels * width_mult, 8)


def round_repeats(repeats: int, depth_mult: float, rounding: str = "ceil") -> int:
    """Scale a stage's block count: EfficientNet uses ceil (TF ``round_repeats``); TinyNet uses round.

    ``round`` is Python's (half-to-even), as in timm ``_scale_stage_depth(depth_trunc='round')`` which the
    official TinyNet code calls; none of the released TinyNet configs hits an exact .5.
    """
    scaled = repeats * depth_mult
    return max(1, round(scaled)) if rounding == "round" else math.ceil(scaled)


def scale_stages(
    stages: list[Stage], width_mult: float = 1.0, depth_mult: float = 1.0, rounding: str = "ceil"
) -> list[Stage]:
    """Apply compound scaling (channels by ``round_filters``, repeats by ``round_repeats``) to a stage table."""
    return [
        s._replace(out=round_filters(s.out, width_mult), repeats=round_repeats(s.repeats, depth_mult, rounding))
        for s in stages
    ]


class FusedMBConv(nn.Module):
    """EfficientNetV2 Fused-MBConv: k x k full conv (expand, stride) -> 1x1 linear project; no SE.

    With t = 1 the single k x k conv produces the output and keeps its activation (automl: "add act if no
    expansion"; torchvision/timm the same). Residual iff stride 1 and C_in == C_out.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand: int) -> None:
        super().__init__()
        if expand == 1:
            layers = [ConvBNAct(in_channels, out_channels, kernel_size, stride, act=nn.SiLU)]
        else:
            mid = in_channels * expand
            layers = [
                ConvBNAct(in_channels, mid, kernel_size, stride, act=nn.SiLU),
                ConvBNAct(mid, out_channels, 1, act=None),
            ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


def _se_factory(in_channels: int, se_ratio: float) -> Callable[[int], nn.Module] | None:
    """SE sized from the block input (TF: max(1, int(input_filters * se_ratio))), SiLU inside, sigmoid gate."""
    if se_ratio <= 0:
        return None
    reduced = max(1, int(in_channels * se_ratio))
    return lambda mid: SqueezeExcite(mid, reduced, act=nn.SiLU)


def make_block(s: Stage, in_channels: int, stride: int) -> nn.Module:
    if s.block == "fused":
        return FusedMBConv(in_channels, s.out, s.kernel, stride, s.expand)
    return InvertedResidual(
        in_channels, s.out, s.kernel, stride, s.expand, act=nn.SiLU, se=_se_factory(in_channels, s.se_ratio)
    )


class EfficientNet(nn.Module):
    """Stem 3x3 s2 conv -> stages of MBConv / Fused-MBConv -> 1x1 head conv -> pool -> dropout -> FC (SiLU).

    ``stages`` are already scaled (see :func:`scale_stages`); stem/head widths are given explicitly because
    EfficientNet scales them while TinyNet fixes them.
    """

    def __init__(
        self,
        stages: list[Stage],
        stem_channels: int,
        head_channels: int,
        dropout: float,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, stem_channels, 3, 2, act=nn.SiLU)]
        in_ch = stem_channels
        for s in stages:
            for i in range(s.repeats):
                layers.append(make_block(s, in_ch, s.stride if i == 0 else 1))
                in_ch = s.out
        layers.append(ConvBNAct(in_ch, head_channels, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.classifier = ClassifierHead(head_channels, num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def efficientnet(
    width_mult: float, depth_mult: float, resolution: int, dropout: float, num_classes: int = 1000
) -> EfficientNet:
    """EfficientNet-B0's table under compound scaling (§4.2): stem and head widths scale too, repeats use ceil."""
    check_scaling(resolution, width_mult=width_mult, depth_mult=depth_mult)
    return EfficientNet(
        scale_stages(B0_STAGES, width_mult, depth_mult, "ceil"),
        stem_channels=round_filters(B0_STEM, width_mult),
        head_channels=round_filters(B0_HEAD, width_mult),
        dropout=dropout,
        num_classes=num_classes,
    )


# Official coefficient table (TF efficientnet_builder.efficientnet_params): name -> (width, depth, res, dropout).
EFFICIENTNET_PARAMS = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
}

_V1_SOURCE = "arXiv 1905.11946 Table 2 (v1); same figures in the tensorflow/tpu efficientnet README"


# The knobs are absolute multipliers on B0's table, so efficientnet_b0(width_mult=1.2, depth_mult=1.4,
# resolution=300) is exactly efficientnet_b3; each name defaults to its row of the official table.
@register(
    "efficientnet_b0",
    family="efficientnet",
    resolution=224,
    published=Published(5.3e6, 0.39e9, f"{_V1_SOURCE} (B0: 5.3M, 0.39B FLOPS = MACs)"),
)
def efficientnet_b0(
    width_mult: float = 1.0, depth_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000
) -> nn.Module:
    """EfficientNet-B0: MBConv + SE(0.25) + SiLU, the NAS baseline of the family (w=1.0, d=1.0, 224)."""
    return efficientnet(width_mult, depth_mult, resolution, 0.2, num_classes)


@register(
    "efficientnet_b1",
    family="efficientnet",
    resolution=240,
    published=Published(7.8e6, 0.70e9, f"{_V1_SOURCE} (B1: 7.8M, 0.70B)"),
)
def efficientnet_b1(
    width_mult: float = 1.0, depth_mult: float = 1.1, resolution: int = 240, num_classes: int = 1000
) -> nn.Module:
    """EfficientNet-B1: B0 scaled by w=1.0, d=1.1 at 240."""
    return efficientnet(width_mult, depth_mult, resolution, 0.2, num_classes)


@register(
    "efficientnet_b2",
    family="efficientnet",
    resolution=260,
    published=Published(9.2e6, 1.0e9, f"{_V1_SOURCE} (B2: 9.2M, 1.0B)"),
)
def efficientnet_b2(
    width_mult: float = 1.1, depth_mult: float = 1.2, resolution: int = 260, num_classes: int = 1000
) -> nn.Module:
    """EfficientNet-B2: B0 scaled by w=1.1, d=1.2 at 260."""
    return efficientnet(width_mult, depth_mult, resolution, 0.3, num_classes)


@register(
    "efficientnet_b3",
    family="efficientnet",
    resolution=300,
    published=Published(12e6, 1.8e9, f"{_V1_SOURCE} (B3: 12M, 1.8B)"),
)
def efficientnet_b3(
    width_mult: float = 1.2, depth_mult: float = 1.4, resolution: int = 300, num_classes: int = 1000
) -> nn.Module:
    """EfficientNet-B3: B0 scaled by w=1.2, d=1.4 at 300."""
    return efficientnet(width_mult, depth_mult, resolution, 0.3, num_classes)


@register(
    "efficientnet_b4",
    family="efficientnet",
    resolution=380,
    published=Published(19e6, 4.2e9, f"{_V1_SOURCE} (B4: 19M, 4.2B)"),
)
def efficientnet_b4(
    width_mult: float = 1.4, depth_mult: float = 1.8, resolution: int = 380, num_classes: int = 1000
) -> nn.Module:
    """EfficientNet-B4: B0 scaled by w=1.4, d=1.8 at 380."""
    return efficientnet(width_mult, depth_mult, resolution, 0.4, num_classes)


@register(
    "efficientnet_v2_s",
    family="efficientnet",
    resolution=384,
    published=Published(
        21.5e6,
        8.4e9,
        "google/automl efficientnetv2 README (EffNetV2-S: 21.5M params, 8.4B FLOPs at eval size 384); "
        "chosen over the paper's rounded Table 7 row (22M / 8.8B) because the release states its resolution",
    ),
)
def efficientnet_v2_s(resolution: int = 384, num_classes: int = 1000) -> nn.Module:
    """EfficientNetV2-S: 3 Fused-MBConv stages then 3 MBConv+SE stages, SiLU (trained at 300, evaluated at 384)."""
    check_scaling(resolution)
    return EfficientNet(V2_S_STAGES, stem_channels=24, head_channels=1280, dropout=0.2, num_classes=num_classes)
