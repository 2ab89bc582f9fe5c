"""Building blocks shared by several zoo families (inference-time form: conv + BN + activation)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ActFactory = Callable[[], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping more than 10 % (TF/timm rule)."""
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Symmetric padding that keeps the spatial size at stride 1 (PyTorch-style, not TF 'SAME')."""
    return (kernel_size - 1) // 2 * dilation


class ConvBNAct(nn.Sequential):
    """k x k conv (no bias) -> BatchNorm -> optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: ActFactory | None = nn.ReLU,
        dilation: int = 1,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                same_padding(kernel_size, dilation),
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global average pool -> 1x1 reduce -> act -> 1x1 expand -> gate -> scale."""

    def __init__(
        self,
        channels: int,
        reduced_channels: int,
        act: ActFactory = nn.ReLU,
        gate: ActFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.act = act()
        self.expand = nn.Conv2d(reduced_channels, channels, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * s


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 / MnasNet / EfficientNet MBConv block (inference form, no drop-path).

    1x1 expand (skipped when expand_ratio == 1) -> k x k depthwise (stride) -> optional SE -> 1x1 linear
    project; the residual add is used iff stride == 1 and in == out channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        expand_ratio: float = 6,
        act: ActFactory = nn.ReLU6,
        se: Callable[[int], nn.Module] | None = None,
        mid_channels: int | None = None,
    ) -> None:
        super().__init__()
        mid = mid_channels or round(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if mid != in_channels:
            layers.append(ConvBNAct(in_channels, mid, 1, act=act))
        layers.append(ConvBNAct(mid, mid, kernel_size, stride, groups=mid, act=act))
        if se is not None:
            layers.append(se(mid))
        layers.append(ConvBNAct(mid, out_channels, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: (N, g*c, H, W) -> view (N, g, c, H, W) -> transpose -> flatten."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ClassifierHead(nn.Sequential):
    """Global average pool -> flatten -> dropout -> linear."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(dropout), nn.Linear(in_features, num_classes)
        )
