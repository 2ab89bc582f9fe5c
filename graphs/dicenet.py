"""DiCENet (arXiv 1906.03516): dimension-wise convolutions + dimension-wise fusion.

Follows the authors' release sacmehta/EdgeNets: ``model/classification/dicenet.py``, ``nn_layers/dice.py``,
``nn_layers/cnn_utils.py`` and the per-width channel table ``model/classification/dicenet_config.py``
(../shared/reference/architectures.md §3.18).

The DiCE unit convolves a C x H x W tensor along each of its three dimensions: a depth-wise 3x3 conv over
(H, W) per channel, a "height-wise" 3x3 conv that treats the H rows as channels (one filter per row, sliding
over (C, W)) and a "width-wise" one that treats the W columns as channels. The height/width-wise convs
therefore have H resp. W input channels, so every unit is built for one feature-map size and the network
for one input resolution: the factory builds the units for the requested resolution (the release's
``model_width``/``model_height`` arguments) instead of the release's resample-inside-the-unit fallback.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import channel_shuffle
from .registry import Published, register

# Width setting s -> output channels of [level1, level2, level3, level4, level5, head conv]
# (EdgeNets dicenet_config.py ``sc_ch_dict``).
_CHANNELS: dict[float, tuple[int, ...]] = {
    0.2: (16, 16, 32, 64, 128, 1024),
    0.5: (24, 24, 48, 96, 192, 1024),
    0.75: (24, 24, 86, 172, 344, 1024),
    1.0: (24, 24, 116, 232, 464, 1024),
    1.25: (24, 24, 144, 288, 576, 1024),
    1.5: (24, 24, 176, 352, 704, 1024),
    1.75: (24, 24, 210, 420, 840, 1024),
    2.0: (24, 24, 244, 488, 976, 1024),
    2.4: (24, 24, 278, 556, 1112, 1280),  # in the release's table, but no published figures
}
# ShuffleDiCE blocks after the strided DiCE unit of levels 3, 4, 5 (``rep_layers[1:]``).
_REPEATS = (3, 7, 3)
# Published figures per width at 224x224: (params from the ``# RESULTS`` comment of dicenet_config.py,
# MACs = "FLOPs (in million)" of model/classification/model_zoo/README.md). The comment's second
# "1.50" row (182 M, 3.26 M) is s=1.75 by its FLOPs, which match the README's s=1.75 row.
PUBLISHED_BY_WIDTH: dict[float, tuple[float, float]] = {
    0.2: (1.13e6, 14.90e6),
    0.5: (1.21e6, 24.71e6),
    0.75: (1.50e6, 46.83e6),
    1.0: (1.81e6, 70.71e6),
    1.25: (2.16e6, 98.11e6),
    1.5: (2.65e6, 135.48e6),
    1.75: (3.26e6, 182.24e6),
    2.0: (3.98e6, 236.29e6),
}


class CBR(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> PReLU (per-channel), EdgeNets ``CBR``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
        )


class DiCE(nn.Module):
    """DiCE unit for a fixed C x H x W input (EdgeNets ``nn_layers/dice.py::DICE``).

    Dimension-wise convs (channel-, height-, width-wise 3x3) -> concat (3C) -> BN + PReLU -> shuffle(3)
    -> grouped 1x1 "local fusion" (groups = C, fuses each channel's three views) -> global fusion:
    3x3 projection (groups = gcd(C, C_out)) scaled by SE-like channel weights (GAP -> C/4 -> C_out -> sigmoid).
    """

    def __init__(self, channels: int, out_channels: int, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width
        self.conv_channel = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        # Rows (columns) become the channel axis: one 3x3 filter per row (column), sliding over (C, W) ((H, C)).
        self.conv_height = nn.Conv2d(height, height, 3, 1, 1, groups=height, bias=False)
        self.conv_width = nn.Conv2d(width, width, 3, 1, 1, groups=width, bias=False)
        self.br_act = nn.Sequential(nn.BatchNorm2d(3 * channels), nn.PReLU(3 * channels))
        self.local_fusion = CBR(3 * channels, channels, 1, groups=channels)
        self.proj = CBR(channels, out_channels, 3, groups=math.gcd(channels, out_channels))
        self.channel_weights = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // 4, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(channels // 4, out_channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != self.height or x.shape[3] != self.width:
            raise UsageError(
                f"DiCENet unit built for {self.height}x{self.width} feature maps got "
                f"{x.shape[2]}x{x.shape[3]}; build the model for the input resolution it will run at"
            )
        out_c = self.conv_channel(x)
        # (N, C, H, W) -> (N, H, C, W): conv over (C, W) per row -> back.
        out_h = self.conv_height(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        # (N, C, H, W) -> (N, W, H, C): conv over (H, C) per column -> back (same axes as the release's
        # transpose(1, 3)).
        out_w = self.conv_width(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        y = self.br_act(torch.cat((out_c, out_h, out_w), 1))
        y = self.local_fusion(channel_shuffle(y, 3))
        return self.proj(y) * self.channel_weights(y)


class StridedDiCE(nn.Module):
    """Down-sampling unit: [3x3 DW s2 CBR -> 1x1 CBR] || [3x3 avg-pool s2 -> DiCE -> 1x1 CBR], concat (2C), shuffle(2).

    ``height``/``width`` are the (already halved) output sizes.
    """

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.left = nn.Sequential(CBR(channels, channels, 3, 2, groups=channels), CBR(channels, channels, 1))
        self.right = nn.Sequential(
            nn.AvgPool2d(3, 2, 1), DiCE(channels, channels, height, width), CBR(channels, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.cat((self.left(x), self.right(x)), 1), 2)


class ShuffleDiCEBlock(nn.Module):
    """ShuffleNetV2-style unit: keep half the input; other half -> 1x1 CBR -> DiCE; concat, shuffle(2)."""

    def __init__(self, cin: int, cout: int, height: int, width: int) -> None:
        super().__init__()
        self.left_channels = round(0.5 * cin)
        right_out = cout - self.left_channels
        self.right = nn.Sequential(
            CBR(cin - self.left_channels, right_out, 1), DiCE(right_out, right_out, height, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = x[:, : self.left_channels], x[:, self.left_channels :]
        return channel_shuffle(torch.cat((left, self.right(right)), 1), 2)


class DiCENet(nn.Module):
    """ImageNet DiCENet (EdgeNets ``model/classification/dicenet.py::CNNModel``) for a fixed resolution."""

    def __init__(self, width_mult: float, resolution: int, num_classes: int) -> None:
        super().__init__()
        ch = _CHANNELS[width_mult]
        size = resolution // 4  # after the s2 stem conv and the s2 max-pool
        self.stem = nn.Sequential(CBR(3, ch[0], 3, 2), nn.MaxPool2d(3, 2, 1))
        levels: list[nn.Module] = []
        cin = ch[1]
        for out, repeats in zip(ch[2:5], _REPEATS, strict=True):
            size //= 2
            blocks: list[nn.Module] = [StridedDiCE(cin, size, size)]
            cin *= 2
            for _ in range(repeats):
                blocks.append(ShuffleDiCEBlock(cin, out, size, size))
                cin = out
            levels.append(nn.Sequential(*blocks))
        self.levels = nn.Sequential(*levels)
        # Head as released: GAP -> grouped (4) 1x1 conv, no BN/act -> dropout -> 1x1 conv with bias.
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cin, ch[5], 1, groups=4, bias=False),
            nn.Dropout(0.2 if width_mult > 1 else 0.1),
            nn.Conv2d(ch[5], num_classes, 1),
            nn.Flatten(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.levels(self.stem(x)))


@register(
    "dicenet",
    family="dicenet",
    resolution=224,
    published=Published(
        PUBLISHED_BY_WIDTH[1.0][0],
        PUBLISHED_BY_WIDTH[1.0][1],
        "sacmehta/EdgeNets release, s=1.0 @224: 70.71 MFLOPs (=MACs) from model/classification/model_zoo/"
        "README.md, 1.81 M params from the RESULTS comment of dicenet_config.py (paper table not verified)",
    ),
)
def dicenet(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """DiCENet: ShuffleNetV2-like network of DiCE units (dimension-wise convs + fusion), PReLU.

    ``width_mult`` is the paper's width setting s, one of the release's table (0.2 ... 2.0, plus 2.4);
    the units are built for ``resolution``, which must be a multiple of 32 (as the release asserts).
    """
    widths = sorted(_CHANNELS)
    if width_mult not in _CHANNELS:
        raise UsageError(
            f"dicenet width_mult must be one of the released width settings {widths}, got {width_mult}"
        )
    if resolution < 32 or resolution % 32:
        raise UsageError(
            f"dicenet needs a resolution that is a positive multiple of 32 (its DiCE units are built for "
            f"the exact feature-map sizes), got {resolution}"
        )
    return DiCENet(float(width_mult), resolution, num_classes)
