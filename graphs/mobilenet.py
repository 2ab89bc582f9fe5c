"""MobileNet v1 (arXiv 1704.04861), v2 (arXiv 1801.04381) and v3 (arXiv 1905.02244).

Stage tables from ../shared/reference/architectures.md §3.1-3.3; channel rounding per §4.1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import ClassifierHead, ConvBNAct, InvertedResidual, SqueezeExcite, make_divisible
from .registry import Published, register

# Every MobileNet-style network here downsamples by 32 (stem + four stride-2 stages), so a smaller input
# would leave the last stages with nothing to convolve.
MIN_RESOLUTION = 32


def check_width_mult(model: str, width_mult: float) -> None:
    """Reject a width multiplier the channel rounding cannot turn into a network (<= 0, inf, NaN)."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)):
        raise UsageError(f"{model}: width_mult must be a number, got {width_mult!r}")
    if not math.isfinite(width_mult) or width_mult <= 0 or width_mult > 4:
        raise UsageError(f"{model}: width_mult must be in (0, 4], got {width_mult}")


def check_resolution(model: str, resolution: int, minimum: int = MIN_RESOLUTION) -> None:
    """Reject an input size the network's total stride cannot take."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < minimum:
        raise UsageError(f"{model}: resolution must be an integer >= {minimum}, got {resolution!r}")


# (out channels, repeats, first stride) of the depthwise-separable stages, paper Table 1 / TF-slim _CONV_DEFS.
_V1_STAGES = [(64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2)]

# (expansion t, out channels c, repeats n, first stride s), paper Table 2.
_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

# MobileNetV3 bneck rows as printed in the paper: (kernel, exp size, out, SE, NL, stride); NL "RE" = ReLU,
# "HS" = h-swish. Large = Table 1, Small = Table 2 (timm `_gen_mobilenet_v3` arch_def is the same network).
_V3_LARGE = [
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
]
_V3_SMALL = [
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
]
# (last 1x1 conv width, head width): the last conv scales with width_mult, the head after pooling does not.
_V3_HEADS = {"large": (960, 1280), "small": (576, 1024)}
_V3_ACTS = {"RE": nn.ReLU, "HS": nn.Hardswish}


class MobileNetV1(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()

        def depth(channels: int) -> int:
            # TF-slim: plain truncation with a floor of 8 channels (no rounding to a multiple of 8).
            return max(int(channels * width_mult), 8)

        in_ch = depth(32)
        layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2, act=nn.ReLU6)]
        for out, repeats, stride in _V1_STAGES:
            for i in range(repeats):
                out_ch = depth(out)
                layers.append(ConvBNAct(in_ch, in_ch, 3, stride if i == 0 else 1, groups=in_ch, act=nn.ReLU6))
                layers.append(ConvBNAct(in_ch, out_ch, 1, act=nn.ReLU6))
                in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.classifier = ClassifierHead(in_ch, num_classes, dropout=0.001)

    def forward(self, x):
        return self.classifier(self.features(x))


class MobileNetV2(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        in_ch = make_divisible(32 * width_mult)
        # The last 1x1 conv keeps 1280 channels for width_mult <= 1 (paper §5.1, torchvision).
        last_ch = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in _V2_STAGES:
            out_ch = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(in_ch, out_ch, 3, s if i == 0 else 1, t, act=nn.ReLU6))
                in_ch = out_ch
        layers.append(ConvBNAct(in_ch, last_ch, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = ClassifierHead(last_ch, num_classes, dropout=0.2)

    def forward(self, x):
        return self.classifier(self.features(x))


def _v3_se(channels: int) -> nn.Module:
    """V3 SE: squeeze to make_divisible(C/4, 8), ReLU, h-sigmoid gate (paper §5.3; timm se_layer)."""
    return SqueezeExcite(channels, make_divisible(channels / 4, 8), act=nn.ReLU, gate=nn.Hardsigmoid)


class MobileNetV3(nn.Module):
    """MobileNetV3 with the "efficient last stage" (paper §5.1, Fig. 5).

    Width scaling follows TF-slim / timm: every conv width goes through make_divisible(c * width_mult, 8);
    the stem stays at 16 below width 0.75 (timm `fix_stem`); a block's expansion is a factor of its (scaled)
    input width, as TF-slim's `expand_input_by_factor` (e.g. 88/24 for Small's third block); the 1280/1024
    head after pooling is not scaled.
    """

    def __init__(self, variant: str, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        table = _V3_LARGE if variant == "large" else _V3_SMALL
        last_conv, head = _V3_HEADS[variant]
        in_ch = 16 if width_mult < 0.75 else make_divisible(16 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2, act=nn.Hardswish)]
        paper_in = 16
        for kernel, exp, out, use_se, nl, stride in table:
            out_ch = make_divisible(out * width_mult)
            mid = make_divisible(in_ch * exp / paper_in)
            layers.append(
                InvertedResidual(
                    in_ch, out_ch, kernel, stride, act=_V3_ACTS[nl], se=_v3_se if use_se else None, mid_channels=mid
                )
            )
            in_ch, paper_in = out_ch, out
        last_ch = make_divisible(last_conv * width_mult)
        layers.append(ConvBNAct(in_ch, last_ch, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        # Efficient last stage: pool first, then a 1x1 conv with bias and no BN, h-swish, dropout, FC.
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(last_ch, head, 1, bias=True), nn.Hardswish(), nn.Flatten(1)
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(head, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.features(x)))


@register(
    "mobilenet_v1",
    family="mobilenet",
    resolution=224,
    published=Published(4.2e6, 569e6, "arXiv 1704.04861 Table 8 (1.0 MobileNet-224); TF-slim 4.24M"),
)
def mobilenet_v1(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MobileNet v1: 3x3 conv stem + 13 depthwise-separable layers, ReLU6 (TF-slim)."""
    check_width_mult("mobilenet_v1", width_mult)
    check_resolution("mobilenet_v1", resolution)
    return MobileNetV1(width_mult, num_classes)


@register(
    "mobilenet_v2",
    family="mobilenet",
    resolution=224,
    published=Published(3.47e6, 300e6, "arXiv 1801.04381 Table 4 (300M MAdds); TF-slim release 3.47M params"),
)
def mobilenet_v2(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MobileNet v2: inverted residuals with linear bottlenecks, ReLU6."""
    check_width_mult("mobilenet_v2", width_mult)
    check_resolution("mobilenet_v2", resolution)
    return MobileNetV2(width_mult, num_classes)


@register(
    "mobilenet_v3_large",
    family="mobilenet",
    resolution=224,
    published=Published(5.4e6, 219e6, "arXiv 1905.02244 Table 3 (V3-Large 1.0: 219M MAdds, 5.4M params)"),
)
def mobilenet_v3_large(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MobileNet v3-Large: NAS-found bnecks with SE (h-sigmoid) and h-swish, efficient last stage."""
    check_width_mult("mobilenet_v3_large", width_mult)
    check_resolution("mobilenet_v3_large", resolution)
    return MobileNetV3("large", width_mult, num_classes)


@register(
    "mobilenet_v3_small",
    family="mobilenet",
    resolution=224,
    published=Published(
        2.5e6,
        56e6,
        "arXiv 1905.02244 final version Table 3 (V3-Small 1.0: 56M MAdds, 2.5M params); the first arXiv "
        "version and the TF-slim README print 66M / 2.9M, an accounting no PyTorch counter reproduces",
    ),
)
def mobilenet_v3_small(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MobileNet v3-Small: the low-resource V3 search result (SE on most bnecks, h-swish after stage 2)."""
    check_width_mult("mobilenet_v3_small", width_mult)
    check_resolution("mobilenet_v3_small", resolution)
    return MobileNetV3("small", width_mult, num_classes)
