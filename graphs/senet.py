"""Squeeze-and-Excitation networks (arXiv 1709.01507): SE-ResNet-50 and SENet-154.

Layouts are the original Caffe models (hujie-frank/SENet) as ported by Cadene / timm ``legacy_seresnet50`` and
``legacy_senet154`` (../shared/reference/architectures.md §3.22):

* SE block on the residual branch, before the identity add: global pool -> 1x1 C -> C/r (bias) -> ReLU ->
  1x1 C/r -> C (bias) -> sigmoid -> rescale; r = 16 in every released model; then add, then ReLU.
* SE-ResNet-50: ResNet-50 bottlenecks [3, 4, 6, 3], 7x7/2 stem; the stride sits in the bottleneck's
  *first 1x1* (Caffe), not in the 3x3 as in torchvision ResNet.
* SENet-154: ResNeXt-style bottlenecks [3, 8, 36, 3], 64 groups, 1x1 -> 2*planes, 3x3 grouped (stride)
  -> 4*planes, 1x1 -> 4*planes; stem of three 3x3 convs (64/2, 64, 128); down-sampling shortcuts are
  3x3/2 convs; dropout 0.2.
* Both: 3x3/2 max-pool with ceil_mode after the stem (Caffe rounding), global average pool, FC.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import ClassifierHead, ConvBNAct, SqueezeExcite
from .registry import Published, register
from .squeezenet import SpatialOp, check_num_classes, feature_size

# planes (bottleneck width at ResNeXt/ResNet base) of the four stages; outputs are 4 * planes.
_PLANES = (64, 128, 256, 512)


@dataclass(frozen=True)
class _SENetConfig:
    layers: tuple[int, int, int, int]
    groups: int
    resnext: bool  # SENet-154 bottleneck (2x/4x widths, stride in the 3x3) vs SE-ResNet (stride in 1x1)
    deep_stem: bool  # three 3x3 convs (64/2, 64, 128) instead of one 7x7/2 (64)
    downsample_kernel: int  # kernel of the projection shortcut of stages 2-4 (stage 1 always uses 1x1)
    dropout: float


_SERESNET50 = _SENetConfig(
    layers=(3, 4, 6, 3), groups=1, resnext=False, deep_stem=False, downsample_kernel=1, dropout=0.0
)
_SENET154 = _SENetConfig(
    layers=(3, 8, 36, 3), groups=64, resnext=True, deep_stem=True, downsample_kernel=3, dropout=0.2
)


class SEBottleneck(nn.Module):
    """1x1 -> 3x3 (grouped) -> 1x1 (linear) -> SE -> + shortcut -> ReLU."""

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int,
        cfg: _SENetConfig,
        reduction: int,
        downsample: nn.Module | None,
    ) -> None:
        super().__init__()
        cout = planes * 4
        if cfg.resnext:
            mid1, mid2, stride1, stride3 = planes * 2, planes * 4, 1, stride
        else:
            mid1, mid2, stride1, stride3 = planes, planes, stride, 1
        self.branch = nn.Sequential(
            ConvBNAct(cin, mid1, 1, stride1),
            ConvBNAct(mid1, mid2, 3, stride3, groups=cfg.groups),
            ConvBNAct(mid2, cout, 1, act=None),
            SqueezeExcite(cout, cout // reduction),
        )
        self.shortcut = downsample if downsample is not None else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


class SENet(nn.Module):
    def __init__(self, cfg: _SENetConfig, reduction: int = 16, num_classes: int = 1000) -> None:
        super().__init__()
        if cfg.deep_stem:
            stem = [ConvBNAct(3, 64, 3, 2), ConvBNAct(64, 64, 3), ConvBNAct(64, 128, 3)]
            in_ch = 128
        else:
            stem = [ConvBNAct(3, 64, 7, 2)]
            in_ch = 64
        layers: list[nn.Module] = [*stem, nn.MaxPool2d(3, 2, ceil_mode=True)]
        for stage, (planes, blocks) in enumerate(zip(_PLANES, cfg.layers, strict=True)):
            stride = 1 if stage == 0 else 2
            kernel = 1 if stage == 0 else cfg.downsample_kernel
            # Projection (conv + BN, no ReLU) on every stage's first block: stride 2, or 64/128 -> 256.
            downsample = ConvBNAct(in_ch, planes * 4, kernel, stride, act=None)
            layers.append(SEBottleneck(in_ch, planes, stride, cfg, reduction, downsample))
            in_ch = planes * 4
            layers.extend(SEBottleneck(in_ch, planes, 1, cfg, reduction, None) for _ in range(blocks - 1))
        self.features = nn.Sequential(*layers)
        self.classifier = ClassifierHead(in_ch, num_classes, dropout=cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _spatial_ops(cfg: _SENetConfig) -> list[SpatialOp]:
    if cfg.deep_stem:
        stem: list[SpatialOp] = [(3, 2, 1, False), (3, 1, 1, False), (3, 1, 1, False)]
    else:
        stem = [(7, 2, 3, False)]
    # Stride-2 convs of stages 2-4: 1x1/pad 0 (SE-ResNet) or 3x3/pad 1 (SENet-154) give the same sizes.
    return [*stem, (3, 2, 0, True)] + [(1, 2, 0, False)] * 3


def _build(name: str, cfg: _SENetConfig, reduction: int, resolution: int, num_classes: int) -> nn.Module:
    # The narrowest SE input is 256 channels; keep at least one reduced channel.
    if isinstance(reduction, bool) or not isinstance(reduction, int) or not 1 <= reduction <= 256:
        raise UsageError(
            f"{name}: reduction must be an integer in [1, 256] (paper: 2, 4, 8, 16, 32), got {reduction!r}"
        )
    check_num_classes(name, num_classes)
    feature_size(name, resolution, _spatial_ops(cfg))
    return SENet(cfg, reduction, num_classes)


@register(
    "seresnet50",
    family="senet",
    resolution=224,
    published=Published(
        28.09e6,
        3.87e9,
        "arXiv 1709.01507 Table 2 (SE-ResNet-50: 3.87 GFLOPs = multiply-adds; ~28.1M params, Table 10 r=16); "
        "28,088,024 params counted in timm legacy_seresnet50 / osmr",
    ),
)
def seresnet50(reduction: int = 16, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """SE-ResNet-50: ResNet-50 bottlenecks with SE (r = 16), Caffe layout (stride in the first 1x1)."""
    return _build("seresnet50", _SERESNET50, reduction, resolution, num_classes)


@register(
    "senet154",
    family="senet",
    resolution=224,
    published=Published(
        115.09e6,
        20.77e9,
        "timm legacy_senet154 (original Caffe weights, ported): 115.09M params, 20.77 GMACs at 224; "
        "the paper gives no params/FLOPs for SENet-154 (81.32% top-1, 224 crop)",
    ),
)
def senet154(reduction: int = 16, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """SENet-154: SE-ResNeXt-152 64x4d-style grouped bottlenecks, 3-conv stem, 3x3 down-sampling shortcuts."""
    return _build("senet154", _SENET154, reduction, resolution, num_classes)
