"""TinyNet A-E (Han et al., "Model Rubik's Cube", NeurIPS 2020, arXiv 2010.14819).

EfficientNet-B0 shrunk by the "tiny formula" (../shared/reference/architectures.md §3.6, §4.3): the blocks and stage
table are B0's (built with efficientnet.py); what differs from EfficientNet compound scaling is
  * depth: per-stage repeats use round(d * n) (floored at 1), not ceil;
  * the stem stays 32 channels (``fix_stem``) and the head is max(1280, round_filters(1280 * w)) = 1280;
  * input resolution int(224 * r).
(r, w, d) per model are the official huawei-noah ``tinynet_pytorch/eval.py`` values (identical in timm).
"""

from __future__ import annotations

from torch import nn

from .efficientnet import (
    B0_HEAD,
    B0_STAGES,
    B0_STEM,
    EfficientNet,
    check_scaling,
    round_filters,
    scale_stages,
)
from .registry import Published, register

# Figures: MACs are the official README's "FLOPs" column (huawei-noah Efficient-AI-Backbones
# tinynet_pytorch/readme.md). The README gives no parameter counts and the paper's are rounded to 0.1M, too coarse
# for a 2 % check at 2.0M, so params are the count of the authors' released weights as ported to timm
# (results-imagenet.csv param_count, tinynet_*.in1k).
_SOURCE = "huawei-noah Efficient-AI-Backbones tinynet_pytorch/readme.md (FLOPs = MACs); params: timm tinynet_{}.in1k"


def tinynet(
    width_mult: float, depth_mult: float, resolution: int, num_classes: int = 1000, dropout: float = 0.2
) -> nn.Module:
    """B0's table with TinyNet's rules: round-depth, fixed 32-channel stem, head never below 1280."""
    check_scaling(resolution, width_mult=width_mult, depth_mult=depth_mult)
    return EfficientNet(
        scale_stages(B0_STAGES, width_mult, depth_mult, rounding="round"),
        stem_channels=B0_STEM,
        head_channels=max(B0_HEAD, round_filters(B0_HEAD, width_mult)),
        dropout=dropout,
        num_classes=num_classes,
    )


@register("tinynet_a", family="tinynet", resolution=192, published=Published(6.19e6, 339e6, _SOURCE.format("a")))
def tinynet_a(
    width_mult: float = 1.0, depth_mult: float = 1.2, resolution: int = 192, num_classes: int = 1000
) -> nn.Module:
    """TinyNet-A: r=0.86 (192), w=1.0, d=1.2."""
    return tinynet(width_mult, depth_mult, resolution, num_classes)


@register("tinynet_b", family="tinynet", resolution=188, published=Published(3.73e6, 202e6, _SOURCE.format("b")))
def tinynet_b(
    width_mult: float = 0.75, depth_mult: float = 1.1, resolution: int = 188, num_classes: int = 1000
) -> nn.Module:
    """TinyNet-B: r=0.84 (188), w=0.75, d=1.1."""
    return tinynet(width_mult, depth_mult, resolution, num_classes)


@register("tinynet_c", family="tinynet", resolution=184, published=Published(2.46e6, 100e6, _SOURCE.format("c")))
def tinynet_c(
    width_mult: float = 0.54, depth_mult: float = 0.85, resolution: int = 184, num_classes: int = 1000
) -> nn.Module:
    """TinyNet-C: r=0.825 (184), w=0.54, d=0.85."""
    return tinynet(width_mult, depth_mult, resolution, num_classes)


@register("tinynet_d", family="tinynet", resolution=152, published=Published(2.34e6, 52e6, _SOURCE.format("d")))
def tinynet_d(
    width_mult: float = 0.54, depth_mult: float = 0.695, resolution: int = 152, num_classes: int = 1000
) -> nn.Module:
    """TinyNet-D: r=0.68 (152), w=0.54, d=0.695."""
    return tinynet(width_mult, depth_mult, resolution, num_classes)


@register("tinynet_e", family="tinynet", resolution=106, published=Published(2.04e6, 24e6, _SOURCE.format("e")))
def tinynet_e(
    width_mult: float = 0.51, depth_mult: float = 0.6, resolution: int = 106, num_classes: int = 1000
) -> nn.Module:
    """TinyNet-E: r=0.475 (106), w=0.51, d=0.6."""
    return tinynet(width_mult, depth_mult, resolution, num_classes)
