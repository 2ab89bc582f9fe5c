"""ShuffleNet v1 (arXiv 1707.01083) and ShuffleNet v2 (arXiv 1807.11164).

v1 follows the authors' (Megvii) re-implementation, megvii-model/ShuffleNet-Series ``ShuffleNetV1/``
(network.py, blocks.py), whose stage widths per (groups, width) are the paper's Table 1 scaled as in Table 2
("ShuffleNet s x": s times the filters of 1x). v2 is torchvision ``shufflenetv2.py`` style with the stage
widths of the paper's Table 5. See ../shared/reference/architectures.md §3.14-3.15.

Channel shuffle uses :func:`blocks.channel_shuffle`, the paper's order (view (N, g, C/g, H, W) -> transpose).
Megvii's v1 code reshapes as (N, C/g, g, H, W) instead, which is the inverse permutation: irrelevant for
random weights and for cost, but pretrained Megvii weights would need their own order.
"""

from __future__ import annotations

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import ConvBNAct, channel_shuffle
from .registry import Published, register

_MIN_RESOLUTION = 32  # both nets downsample by 32

# ----------------------------------------------------------------------------------------------------
# ShuffleNet v1
# ----------------------------------------------------------------------------------------------------

# Units per stage (first one stride 2), paper Table 1: stage 2 = 1+3, stage 3 = 1+7, stage 4 = 1+3.
_V1_REPEATS = [4, 8, 4]

# (stem, stage 2, stage 3, stage 4) output channels per (groups, width), Megvii ShuffleNetV1/network.py.
# 1x is paper Table 1; the stem stays 24 at 1.5x and is 16 (not 12) at 0.5x for g=8 in the release.
_V1_WIDTHS: dict[tuple[int, float], tuple[int, int, int, int]] = {
    (3, 0.5): (12, 120, 240, 480),
    (3, 1.0): (24, 240, 480, 960),
    (3, 1.5): (24, 360, 720, 1440),
    (3, 2.0): (48, 480, 960, 1920),
    (8, 0.5): (16, 192, 384, 768),
    (8, 1.0): (24, 384, 768, 1536),
    (8, 1.5): (24, 576, 1152, 2304),
    (8, 2.0): (48, 768, 1536, 3072),
}


class ShuffleV1Unit(nn.Module):
    """ShuffleNet unit (paper Fig. 2b/c).

    1x1 group conv (bottleneck = out/4) + BN + ReLU -> channel shuffle -> 3x3 depthwise (stride) + BN
    (no ReLU) -> 1x1 group conv + BN. Stride 1: ReLU(x + main). Stride 2: concat(3x3 avg-pool s2 of x,
    ReLU(main)), main producing out - in channels. The first unit of stage 2 has an ungrouped first 1x1
    (its input has only 24 channels).
    """

    def __init__(
        self, in_channels: int, out_channels: int, groups: int, stride: int, grouped_in: bool
    ) -> None:
        super().__init__()
        mid = out_channels // 4
        main_out = out_channels - in_channels if stride == 2 else out_channels
        self.groups = groups
        self.stride = stride
        self.reduce = ConvBNAct(in_channels, mid, 1, groups=groups if grouped_in else 1)
        self.depthwise = ConvBNAct(mid, mid, 3, stride, groups=mid, act=None)
        self.expand = ConvBNAct(mid, main_out, 1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channel_shuffle(self.reduce(x), self.groups)
        y = self.expand(self.depthwise(y))
        if self.stride == 1:
            return self.relu(x + y)
        return torch.cat([self.shortcut(x), self.relu(y)], 1)


class ShuffleNetV1(nn.Module):
    def __init__(self, groups: int, width_mult: float, num_classes: int = 1000) -> None:
        super().__init__()
        stem, *stages = _V1_WIDTHS[(groups, width_mult)]
        layers: list[nn.Module] = [ConvBNAct(3, stem, 3, 2), nn.MaxPool2d(3, 2, 1)]
        in_ch = stem
        for stage, (out_ch, repeats) in enumerate(zip(stages, _V1_REPEATS, strict=True)):
            for i in range(repeats):
                grouped_in = not (stage == 0 and i == 0)
                layers.append(ShuffleV1Unit(in_ch, out_ch, groups, 2 if i == 0 else 1, grouped_in))
                in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.classifier = nn.Linear(in_ch, num_classes, bias=False)  # Megvii: FC without bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def _check_resolution(resolution: int) -> None:
    if resolution < _MIN_RESOLUTION:
        raise UsageError(f"ShuffleNet needs an input of at least {_MIN_RESOLUTION} px (got {resolution})")


_MEGVII_V1 = "megvii-model/ShuffleNet-Series README (authors' re-implementation; the paper gives no params)"


@register(
    "shufflenet_v1_g3",
    family="shufflenet",
    resolution=224,
    published=Published(1.9e6, 138e6, f"{_MEGVII_V1}: 1.0x (group=3); paper Table 1: 137 MFLOPs"),
    groups=3,
)
@register(
    "shufflenet_v1_g8",
    family="shufflenet",
    resolution=224,
    published=Published(2.4e6, 138e6, f"{_MEGVII_V1}: 1.0x (group=8); paper Table 1: 137 MFLOPs"),
    groups=8,
)
def shufflenet_v1(
    groups: int = 3, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000
) -> nn.Module:
    """ShuffleNet v1: pointwise group convs + channel shuffle (widths 0.5x/1x/1.5x/2x, Megvii release)."""
    if (groups, width_mult) not in _V1_WIDTHS:
        widths = sorted({w for g, w in _V1_WIDTHS if g == groups})
        raise UsageError(f"ShuffleNet v1 (g={groups}) width_mult must be one of {widths}, got {width_mult}")
    _check_resolution(resolution)
    return ShuffleNetV1(groups, width_mult, num_classes)


# Published figures of the scaled v1 models (Megvii README), for tests: (groups, width) -> (params, MACs).
V1_SCALED_PUBLISHED: dict[tuple[int, float], tuple[float, float]] = {
    (3, 0.5): (0.7e6, 38e6),
    (3, 1.0): (1.9e6, 138e6),
    (3, 1.5): (3.4e6, 292e6),
    (3, 2.0): (5.4e6, 524e6),
    (8, 0.5): (1.0e6, 40e6),
    (8, 1.0): (2.4e6, 138e6),
    (8, 1.5): (4.3e6, 290e6),
    (8, 2.0): (6.5e6, 522e6),
}

# ----------------------------------------------------------------------------------------------------
# ShuffleNet v2
# ----------------------------------------------------------------------------------------------------

_V2_REPEATS = [4, 8, 4]

# (stage 2, stage 3, stage 4, conv5) output channels per width, paper Table 5 (stem is 24 throughout).
_V2_WIDTHS: dict[float, tuple[int, int, int, int]] = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}

# Paper Table 5 / Megvii README (params, MACs) per width.
V2_PUBLISHED: dict[float, tuple[float, float]] = {
    0.5: (1.4e6, 41e6),
    1.0: (2.3e6, 146e6),
    1.5: (3.5e6, 299e6),
    2.0: (7.4e6, 591e6),
}


class ShuffleV2Unit(nn.Module):
    """ShuffleNet v2 unit (paper Fig. 3c/d).

    Stride 1: split channels in half; left identity, right 1x1+BN+ReLU -> 3x3 DW+BN -> 1x1+BN+ReLU.
    Stride 2: no split; left 3x3 DW s2+BN -> 1x1+BN+ReLU, right as above with a stride-2 DW.
    Then concat and shuffle with 2 groups.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        branch = out_channels // 2
        self.stride = stride
        right_in = in_channels if stride == 2 else branch
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 ShuffleNet v2 unit keeps its width")
        self.left = (
            nn.Sequential(
                ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, act=None),
                ConvBNAct(in_channels, branch, 1),
            )
            if stride == 2
            else nn.Identity()
        )
        self.right = nn.Sequential(
            ConvBNAct(right_in, branch, 1),
            ConvBNAct(branch, branch, 3, stride, groups=branch, act=None),
            ConvBNAct(branch, branch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat([left, self.right(right)], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, width_mult: float, num_classes: int = 1000) -> None:
        super().__init__()
        *stages, last = _V2_WIDTHS[width_mult]
        in_ch = 24
        layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2), nn.MaxPool2d(3, 2, 1)]
        for out_ch, repeats in zip(stages, _V2_REPEATS, strict=True):
            for i in range(repeats):
                layers.append(ShuffleV2Unit(in_ch, out_ch, 2 if i == 0 else 1))
                in_ch = out_ch
        layers.append(ConvBNAct(in_ch, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@register(
    "shufflenet_v2",
    family="shufflenet",
    resolution=224,
    published=Published(
        2.3e6, 146e6, "arXiv 1807.11164 Table 5 / megvii-model/ShuffleNet-Series README: ShuffleNetV2 1.0x"
    ),
)
def shufflenet_v2(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """ShuffleNet v2: channel split + channel shuffle (torchvision layout, widths of paper Table 5)."""
    if width_mult not in _V2_WIDTHS:
        raise UsageError(
            f"ShuffleNet v2 width_mult must be one of {sorted(_V2_WIDTHS)} (paper Table 5), got {width_mult}"
        )
    _check_resolution(resolution)
    return ShuffleNetV2(width_mult, num_classes)
