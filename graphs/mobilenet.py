"""MobileNet v1 (arXiv 1704.04861) and v2 (arXiv 1801.04381).

Stage tables from ../shared/reference/architectures.md §3.1-3.2; channel rounding per §4.1.
"""

from __future__ import annotations

from torch import nn

from .blocks import ClassifierHead, ConvBNAct, InvertedResidual, make_divisible
from .registry import Published, register

# (out channels, repeats, first stride) of the depthwise-separable stages, paper Table 1 / TF-slim _CONV_DEFS.
_V1_STAGES = [(64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2)]

# (expansion t, out channels c, repeats n, first stride s), paper Table 2.
_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


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


@register(
    "mobilenet_v1",
    family="mobilenet",
    resolution=224,
    published=Published(4.2e6, 569e6, "arXiv 1704.04861 Table 8 (1.0 MobileNet-224); TF-slim 4.24M"),
)
def mobilenet_v1(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MobileNet v1: 3x3 conv stem + 13 depthwise-separable layers, ReLU6 (TF-slim)."""
    return MobileNetV1(width_mult, num_classes)


@register(
    "mobilenet_v2",
    family="mobilenet",
    resolution=224,
    published=Published(3.47e6, 300e6, "arXiv 1801.04381 Table 4 (300M MAdds); TF-slim release 3.47M params"),
)
def mobilenet_v2(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MobileNet v2: inverted residuals with linear bottlenecks, ReLU6."""
    return MobileNetV2(width_mult, num_classes)
