"""MnasNet A1 and B1 (arXiv 1807.11626), as released in tensorflow/tpu `models/official/mnasnet`.

Stage tables from ../shared/reference/architectures.md §3.11, identical to the block strings of
`mnasnet_models.py::mnasnet_a1` / `mnasnet_b1`; block semantics from `mnasnet_model.py::MnasBlock`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .blocks import ClassifierHead, ConvBNAct, InvertedResidual, SqueezeExcite, make_divisible
from .mobilenet import check_resolution, check_width_mult
from .registry import Published, register

# (expansion t, out channels, repeats, first stride, kernel, SE ratio or None). The first row is the
# "SepConv" block: with t = 1 there is no expansion conv, so it is a depthwise-separable conv (no skip:
# 32 -> 16 channels). A residual is added wherever stride == 1 and in == out, as in MnasBlock.
_A1_STAGES = [
    (1, 16, 1, 1, 3, None),
    (6, 24, 2, 2, 3, None),
    (3, 40, 3, 2, 5, 0.25),
    (6, 80, 4, 2, 3, None),
    (6, 112, 2, 1, 3, 0.25),
    (6, 160, 3, 2, 5, 0.25),
    (6, 320, 1, 1, 3, None),
]
_B1_STAGES = [
    (1, 16, 1, 1, 3, None),
    (3, 24, 3, 2, 3, None),
    (3, 40, 3, 2, 5, None),
    (6, 80, 3, 2, 5, None),
    (6, 96, 2, 1, 3, None),
    (6, 192, 4, 2, 5, None),
    (6, 320, 1, 1, 3, None),
]
_STAGES = {"a1": _A1_STAGES, "b1": _B1_STAGES}
_STEM = 32
_HEAD = 1280  # MnasNetModel's conv_head is a fixed 1280, not scaled by the depth multiplier


def _mnas_se(in_channels: int, ratio: float) -> Callable[[int], nn.Module]:
    """MnasNet SE: reduce to int(ratio * block *input* channels) (not the expanded width), ReLU, sigmoid."""
    reduced = max(1, int(in_channels * ratio))
    return lambda channels: SqueezeExcite(channels, reduced, act=nn.ReLU, gate=nn.Sigmoid)


class MnasNet(nn.Module):
    """MnasNet with TF `round_filters` width scaling (make_divisible 8 on stem and every block output)."""

    def __init__(self, variant: str, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        in_ch = make_divisible(_STEM * width_mult)
        layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2, act=nn.ReLU)]
        for t, out, repeats, stride, kernel, se_ratio in _STAGES[variant]:
            out_ch = make_divisible(out * width_mult)
            for i in range(repeats):
                se = _mnas_se(in_ch, se_ratio) if se_ratio else None
                # Expanded width is in * t without rounding (MnasBlock: input_filters * expand_ratio).
                layers.append(
                    InvertedResidual(
                        in_ch, out_ch, kernel, stride if i == 0 else 1, act=nn.ReLU, se=se, mid_channels=in_ch * t
                    )
                )
                in_ch = out_ch
        layers.append(ConvBNAct(in_ch, _HEAD, 1, act=nn.ReLU))
        self.features = nn.Sequential(*layers)
        self.classifier = ClassifierHead(_HEAD, num_classes, dropout=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register(
    "mnasnet_a1",
    family="mnasnet",
    resolution=224,
    published=Published(
        3.9e6, 315.2e6, "tensorflow/tpu mnasnet README table (224, depth multiplier 1.0: 3.9M params, 315.2M MAdds)"
    ),
)
def mnasnet_a1(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MnasNet-A1: the paper's final searched model (MBConv + SE in three stages, ReLU)."""
    check_width_mult("mnasnet_a1", width_mult)
    check_resolution("mnasnet_a1", resolution)
    return MnasNet("a1", width_mult, num_classes)


@register(
    "mnasnet_b1",
    family="mnasnet",
    resolution=224,
    published=Published(
        4.383312e6,
        314e6,
        "torchvision mnasnet1_0 weight metadata (B1 topology: 4,383,312 params, 0.314 GMACs); the paper's own "
        "B1 figures (arXiv v1) could not be verified",
    ),
)
def mnasnet_b1(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MnasNet-B1: the arXiv-v1 searched model without SE (torchvision's `mnasnet1_0`)."""
    check_width_mult("mnasnet_b1", width_mult)
    check_resolution("mnasnet_b1", resolution)
    return MnasNet("b1", width_mult, num_classes)
