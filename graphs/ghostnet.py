"""GhostNet (arXiv 1911.11907), following the authors' huawei-noah ``ghostnet_pytorch/ghostnet.py`` (≡ timm).

Stage table = official ``cfgs`` (../shared/reference/architectures.md §3.17); width multiplier rounds every
width with ``make_divisible(·, 4)`` (official ``_make_divisible(c * width, 4)``) while the 1280-wide head conv
stays fixed, as in the official code and paper Table 7 (0.5x / 1.0x / 1.3x).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import ConvBNAct, SqueezeExcite, make_divisible
from .registry import Published, register

# (kernel, expansion width, out channels, SE ratio, stride) per Ghost bottleneck (official cfgs).
_STAGES = [
    (3, 16, 16, 0.0, 1),
    (3, 48, 24, 0.0, 2),
    (3, 72, 24, 0.0, 1),
    (5, 72, 40, 0.25, 2),
    (5, 120, 40, 0.25, 1),
    (3, 240, 80, 0.0, 2),
    (3, 200, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 480, 112, 0.25, 1),
    (3, 672, 112, 0.25, 1),
    (5, 672, 160, 0.25, 2),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
]
_STEM = 16
_LAST_CONV = 960  # the final 1x1 ConvBNAct (= the last expansion width), scaled with width_mult
_HEAD = 1280  # 1x1 conv after pooling, bias, no BN; not scaled
_DIVISOR = 4
_MIN_RESOLUTION = 32

# Paper Table 7 (params, MACs) per width multiplier, for tests.
PUBLISHED_WIDTHS: dict[float, tuple[float, float]] = {
    0.5: (2.6e6, 42e6),
    1.0: (5.2e6, 141e6),
    1.3: (7.3e6, 226e6),
}


class GhostModule(nn.Module):
    """Ghost module (ratio 2, cheap op = 3x3 depthwise): primary 1x1 conv to ceil(out/2) ch, cheap op on it,
    concat, keep the first ``out`` channels. Both halves carry BN and (if ``relu``) ReLU."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool = True, dw_size: int = 3) -> None:
        super().__init__()
        self.out_channels = out_channels
        init = math.ceil(out_channels / 2)
        act = nn.ReLU if relu else None
        self.primary = ConvBNAct(in_channels, init, 1, act=act)
        self.cheap = ConvBNAct(init, init, dw_size, groups=init, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        out = torch.cat([y, self.cheap(y)], 1)
        # Only an odd out_channels needs the slice; skip it otherwise so no no-op slice reaches the graph.
        return out if out.shape[1] == self.out_channels else out[:, : self.out_channels]


class GhostBottleneck(nn.Module):
    """Ghost bottleneck: ghost (expand, ReLU) -> [3x3/5x5 DW stride 2 + BN] -> [SE] -> ghost (project, linear)
    + shortcut (identity, or DW (stride) + BN + 1x1 conv + BN when the shape changes)."""

    def __init__(
        self, in_channels: int, mid: int, out_channels: int, kernel: int, stride: int, se_ratio: float
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [GhostModule(in_channels, mid, relu=True)]
        if stride > 1:
            layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, act=None))
        if se_ratio > 0:
            # Official SqueezeExcite: reduce to make_divisible(mid * 0.25, 4), ReLU, hard-sigmoid gate.
            layers.append(SqueezeExcite(mid, make_divisible(mid * se_ratio, _DIVISOR), gate=nn.Hardsigmoid))
        layers.append(GhostModule(mid, out_channels, relu=False))
        self.block = nn.Sequential(*layers)
        if in_channels == out_channels and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvBNAct(in_channels, in_channels, kernel, stride, groups=in_channels, act=None),
                ConvBNAct(in_channels, out_channels, 1, act=None),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.shortcut(x)


class GhostNet(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()

        def width(channels: int) -> int:
            return make_divisible(channels * width_mult, _DIVISOR)

        in_ch = width(_STEM)
        layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2)]
        for kernel, exp, out, se_ratio, stride in _STAGES:
            out_ch = width(out)
            layers.append(GhostBottleneck(in_ch, width(exp), out_ch, kernel, stride, se_ratio))
            in_ch = out_ch
        last = width(_LAST_CONV)
        layers.append(ConvBNAct(in_ch, last, 1))
        self.features = nn.Sequential(*layers)
        # Head: pool -> 1x1 conv (bias, no BN) -> ReLU, then dropout + FC.
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(last, _HEAD, 1, bias=True), nn.ReLU())
        self.classifier = nn.Sequential(nn.Flatten(1), nn.Dropout(dropout), nn.Linear(_HEAD, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.features(x)))


@register(
    "ghostnet",
    family="ghostnet",
    resolution=224,
    published=Published(
        5.2e6, 141e6, "arXiv 1911.11907 Table 7: GhostNet 1.0x (official README: 142M MAdds)"
    ),
)
def ghostnet(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """GhostNet: Ghost bottlenecks (1x1 primary conv + cheap depthwise maps), SE with hard-sigmoid gate."""
    if not 0.1 <= width_mult <= 4.0:
        raise UsageError(f"GhostNet width_mult must lie in [0.1, 4] (paper: 0.5-1.3), got {width_mult}")
    if resolution < _MIN_RESOLUTION:
        raise UsageError(f"GhostNet needs an input of at least {_MIN_RESOLUTION} px (got {resolution})")
    return GhostNet(width_mult, num_classes)
