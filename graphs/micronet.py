"""MicroNet M0-M3 (ICCV 2021, arXiv 2108.05894): Micro-Factorized convolutions + Dynamic Shift-Max.

Follows the authors' release liyunsheng13/micronet: ``backbone/micronet.py`` (``DYMicroBlock``, stem
``spatialsepsf``, head), ``backbone/activation.py`` (``DYShiftMax``), the row tables of
``backbone/microconfig.py`` and the per-model settings of ``script/eval_micronet_m{0..3}.sh``
(../shared/reference/architectures.md §3.19). These are the ICCV models (M0 4 M ... M3 21 M MAdds), not
the differently named models of arXiv 2011.12289 v1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import channel_shuffle, make_divisible
from .registry import Published, register

# One row per block (microconfig.py column names):
#   s stride, n repeats, c out channels, ks kernel, (c1, c2) depth-wise channel multipliers of the k x 1 / 1 x k
#   convs, (g1, g2) groups of the first 1x1 group conv / shuffle groups, (c3, g3, g4) groups of the second
#   1x1 group conv (c3 unused by the released code), (y1, y2, y3) which of the three activations are Dynamic
#   Shift-Max (0: none/ReLU6, 1: linear DY (J=1), 2: DY with max of two fusions), r squeeze ratio factor.
Row = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, int, int]

_M0: list[Row] = [  # msnx_dy6_exp4_4M_221
    (2, 1, 8, 3, 2, 2, 0, 4, 8, 2, 2, 2, 0, 1, 1),
    (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 2, 1, 1),
    (2, 1, 16, 5, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
    (1, 1, 32, 5, 1, 4, 4, 4, 32, 4, 4, 2, 2, 1, 1),
    (2, 1, 64, 5, 1, 4, 8, 8, 64, 8, 8, 2, 2, 1, 1),
    (1, 1, 96, 3, 1, 4, 8, 8, 96, 8, 8, 2, 2, 1, 2),
    (1, 1, 384, 3, 1, 4, 12, 12, 0, 0, 0, 2, 2, 1, 2),
]
_M1: list[Row] = [  # msnx_dy6_exp6_6M_221
    (2, 1, 8, 3, 2, 2, 0, 6, 8, 2, 2, 2, 0, 1, 1),
    (2, 1, 16, 3, 2, 2, 0, 8, 16, 4, 4, 2, 2, 1, 1),
    (2, 1, 16, 5, 2, 2, 0, 16, 16, 4, 4, 2, 2, 1, 1),
    (1, 1, 32, 5, 1, 6, 4, 4, 32, 4, 4, 2, 2, 1, 1),
    (2, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 1),
    (1, 1, 96, 3, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
    (1, 1, 576, 3, 1, 6, 12, 12, 0, 0, 0, 2, 2, 1, 2),
]
_M2: list[Row] = [  # msnx_dy9_exp6_12M_221
    (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 0, 1, 1),
    (2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
    (1, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 2, 2, 1, 1),
    (2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 2, 2, 1, 1),
    (1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 2, 2, 1, 2),
    (1, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 2),
    (2, 1, 96, 5, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
    (1, 1, 128, 3, 1, 6, 12, 12, 128, 8, 8, 2, 2, 1, 2),
    (1, 1, 768, 3, 1, 6, 16, 16, 0, 0, 0, 2, 2, 1, 2),
]
_M3: list[Row] = [  # msnx_dy12_exp6_20M_020
    (2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 0, 2, 0, 1),
    (2, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 0, 2, 0, 1),
    (1, 1, 24, 3, 2, 2, 0, 24, 24, 4, 4, 0, 2, 0, 1),
    (2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 0, 2, 0, 1),
    (1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 0, 2, 0, 2),
    (1, 1, 64, 5, 1, 6, 8, 8, 48, 8, 8, 0, 2, 0, 2),
    (1, 1, 80, 5, 1, 6, 8, 8, 80, 8, 8, 0, 2, 0, 2),
    (1, 1, 80, 5, 1, 6, 10, 10, 80, 8, 8, 0, 2, 0, 2),
    (2, 1, 120, 5, 1, 6, 10, 10, 120, 10, 10, 0, 2, 0, 2),
    (1, 1, 120, 5, 1, 6, 12, 12, 120, 10, 10, 0, 2, 0, 2),
    (1, 1, 144, 3, 1, 6, 12, 12, 144, 12, 12, 0, 2, 0, 2),
    (1, 1, 864, 3, 1, 6, 12, 12, 0, 0, 0, 0, 2, 0, 2),
]

# Settings shared by all four eval scripts: MODULE DYShiftMax, ACT_MAX 2.0, REDUCTION 8, SHUFFLE True,
# POINTWISE group, DEPTHSEP True, INIT_A_BLOCK3 (1.0, 0.0).
_REDUCTION = 8
_ACT_MAX = 2.0


@dataclass(frozen=True)
class MicroNetConfig:
    rows: list[Row]
    stem_groups: tuple[int, int]  # STEM_GROUPS; stem output channels = g1 * g2 = STEM_CH
    out_channels: int  # OUT_CH of the first head linear layer
    dropout: float
    init_a: tuple[float, float]  # INIT_A
    init_b: tuple[float, float]  # INIT_B


CONFIGS: dict[str, MicroNetConfig] = {
    "m0": MicroNetConfig(_M0, (2, 2), 640, 0.05, (1.0, 1.0), (0.0, 0.0)),
    "m1": MicroNetConfig(_M1, (3, 2), 960, 0.05, (1.0, 1.0), (0.0, 0.0)),
    "m2": MicroNetConfig(_M2, (4, 2), 1024, 0.1, (1.0, 1.0), (0.0, 0.0)),
    "m3": MicroNetConfig(_M3, (4, 3), 1024, 0.1, (1.0, 0.5), (0.0, 0.5)),
}


def group_circular_shift(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel (i, j) of a (groups x C/groups) layout takes channel ((i+1) % groups, (j+1) % (C/groups)).

    The release gathers with a precomputed index; here the same permutation is two static rotations
    (slices + cat) on a 5-D view, so the graph stays gather-free.
    """
    n, c, h, w = x.shape
    y = x.reshape(n, groups, c // groups, h, w)
    if groups > 1:  # next group (no-op, and an empty slice, for one group)
        y = torch.cat((y[:, 1:], y[:, :1]), 1)
    if c // groups > 1:  # next channel inside the group
        y = torch.cat((y[:, :, 1:], y[:, :, :1]), 2)
    return y.reshape(n, c, h, w)


class DynamicShiftMax(nn.Module):
    """Dynamic Shift-Max (release ``DYShiftMax``, J = 2 fusions, K = 2 (x and its group-shifted copy)).

    GAP -> Linear(C, squeeze) -> ReLU -> Linear(squeeze, J*2*C) -> h-sigmoid -> coefficients
    (y - 0.5) * 2 * act_max plus their initial offsets; out = max_j(a_j * x + b_j * shift(x)).
    With ``use_max=False`` (the release's act_relu=False) only one fusion a * x + b * shift(x) is kept.
    """

    def __init__(
        self,
        channels: int,
        shift_groups: int,
        reduction: int,
        use_max: bool,
        init_a: tuple[float, float],
        init_b: tuple[float, float],
    ) -> None:
        super().__init__()
        self.channels = channels
        self.fusions = 2 if use_max else 1
        self.shift_groups = shift_groups
        self.scale = _ACT_MAX * 2  # the release doubles ACT_MAX: coefficients span +-ACT_MAX around init
        self.init_a, self.init_b = init_a, init_b
        squeeze = max(make_divisible(channels // reduction, 4), 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(channels, squeeze),
            nn.ReLU(),
            nn.Linear(squeeze, 2 * self.fusions * channels),
            nn.Hardsigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coeffs = (self.fc(self.pool(x)) - 0.5) * self.scale
        coeffs = coeffs.reshape(x.shape[0], 2 * self.fusions * self.channels, 1, 1)
        shifted = group_circular_shift(x, self.shift_groups)
        parts = torch.split(coeffs, self.channels, dim=1)
        a1, b1 = parts[0] + self.init_a[0], parts[1] + self.init_b[0]
        out = x * a1 + shifted * b1
        if self.fusions == 2:
            a2, b2 = parts[2] + self.init_a[1], parts[3] + self.init_b[1]
            out = torch.maximum(out, x * a2 + shifted * b2)
        return out


class Shuffle(nn.Module):
    """ShuffleNet channel shuffle; the identity cases (1 group, or one channel per group) emit no ops."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups in (1, x.shape[1]):
            return x
        return channel_shuffle(x, self.groups)


def conv_bn(cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int], groups: int) -> list[nn.Module]:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return [nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(cout)]


def micro_depthwise(channels: int, expand: tuple[int, int], kernel: int, stride: int) -> list[nn.Module]:
    """Micro-Factorized depth-wise conv: k x 1 DW (x c1 channels) + BN -> 1 x k DW (x c2 channels) + BN."""
    mid = channels * expand[0]
    return conv_bn(channels, mid, (kernel, 1), (stride, 1), channels) + conv_bn(
        mid, mid * expand[1], (1, kernel), (1, stride), mid
    )


class MicroBlock(nn.Module):
    """Release ``DYMicroBlock`` (shuffle on, group pointwise, depth-sep on), three layouts by row:

    * g1 == 0 (the paper's Micro-Block-A, early rows): micro depth-wise conv (expands channels) -> act ->
      shuffles -> 1x1 group conv -> linear act -> shuffles;
    * g4 == 0 (last row): 1x1 group conv (expands) -> optional linear DY-Shift-Max;
    * otherwise (Micro-Block-B/C): 1x1 group conv (expands) -> act -> shuffle -> micro depth-wise conv ->
      act -> shuffle -> 1x1 group conv -> linear act -> shuffles.

    "act" is ReLU6 or DY-Shift-Max per the row's y flags; "linear act" is a J=1 DY-Shift-Max (or nothing).

    Residual iff stride 1 and in == out channels.
    """

    def __init__(
        self, cin: int, row: Row, stride: int, init_a: tuple[float, float], init_b: tuple[float, float]
    ) -> None:
        super().__init__()
        _, _, cout, k, c1, c2, g1, g2, _, g3, g4, y1, y2, y3, r = row
        hidden = cin * c1 * c2
        reduction = _REDUCTION * r
        block3 = ((1.0, 0.0), (0.0, 0.0))  # INIT_A_BLOCK3 (1.0, 0.0): (init_a, init_b) of linear DY layers

        def act(channels: int, flag: int, groups: int, red: int) -> list[nn.Module]:
            # flag 0 -> ReLU6, 1 -> linear DY-Shift-Max (J=1), 2 -> DY-Shift-Max with max (J=2).
            if flag == 0:
                return [nn.ReLU6()]
            return [DynamicShiftMax(channels, groups, red, flag == 2, init_a, init_b)]

        def linear_act(channels: int, groups: int, red: int) -> list[nn.Module]:
            # y3: DY-Shift-Max with act_relu=False (linear, J=1) or nothing.
            return [DynamicShiftMax(channels, groups, red, False, *block3)] if y3 > 0 else []

        layers: list[nn.Module] = []
        if g1 == 0:
            layers += micro_depthwise(cin, (c1, c2), k, stride)
            layers += act(hidden, y2, g2, reduction)
            layers.append(Shuffle(g2))
            if y2 != 0:
                layers.append(Shuffle(hidden // 2))
            layers += conv_bn(hidden, cout, (1, 1), (1, 1), g3)
            layers += linear_act(cout, g4, reduction // 2)
            layers.append(Shuffle(g4))
            if cout % 2 == 0 and y3 != 0:
                layers.append(Shuffle(cout // 2))
        elif g4 == 0:
            layers += conv_bn(cin, hidden, (1, 1), (1, 1), g1)
            layers += linear_act(hidden, g2, reduction)
        else:
            layers += conv_bn(cin, hidden, (1, 1), (1, 1), g1)
            layers += act(hidden, y1, g2, reduction)
            layers.append(Shuffle(g2))
            layers += micro_depthwise(hidden, (1, 1), k, stride)
            # After the depth-wise conv the release shifts within "expansion" groups: hidden // g2 groups.
            layers += act(hidden, y2, hidden // g2 if g2 != 1 else 1, reduction)
            if y1 != 0 and y2 != 0:
                layers.append(Shuffle(hidden // 4))
            elif y1 != 0 or y2 != 0:
                layers.append(Shuffle(hidden // 2))
            layers += conv_bn(hidden, cout, (1, 1), (1, 1), g3)
            layers += linear_act(cout, g4, reduction // 2 if cout < hidden else reduction)
            layers.append(Shuffle(g4))
            if y3 != 0:
                layers.append(Shuffle(cout // 2))
        self.layers = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


class SwishLinear(nn.Sequential):
    """Release ``SwishLinear`` (Linear -> BN1d -> h-swish) on a (N, C, 1, 1) map: 1x1 conv with bias ->
    BatchNorm2d -> h-swish, so BN stays BatchNorm2d for the compiler; same parameters and MACs."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.Hardswish())


class MicroNet(nn.Module):
    """Stem -> micro blocks (one per table row and repeat) -> ReLU6 + GAP + h-swish -> two SwishLinear layers."""

    def __init__(self, cfg: MicroNetConfig, num_classes: int) -> None:
        super().__init__()
        g1, g2 = cfg.stem_groups
        # Stem "spatialsepsf": 3x1 conv (s2 rows) + BN -> 1x3 grouped conv (s2 cols) + BN -> shuffle -> ReLU6.
        layers: list[nn.Module] = [
            *conv_bn(3, g1, (3, 1), (2, 1), 1),
            *conv_bn(g1, g1 * g2, (1, 3), (1, 2), g1),
            Shuffle(g1),
            nn.ReLU6(),
        ]
        cin = g1 * g2
        for row in cfg.rows:
            stride, repeats, cout = row[0], row[1], row[2]
            for i in range(repeats):
                layers.append(MicroBlock(cin, row, stride if i == 0 else 1, cfg.init_a, cfg.init_b))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Hardswish())
        # As released, the logits also pass through BN + h-swish (SwishLinear for the last layer too).
        self.classifier = nn.Sequential(
            SwishLinear(cin, cfg.out_channels),
            nn.Dropout(cfg.dropout),
            SwishLinear(cfg.out_channels, num_classes),
            nn.Flatten(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def shift_max_macs(model: nn.Module, resolution: int) -> int:
    """Multiply-adds spent applying Dynamic Shift-Max: 2 per element per fusion (a * x + b * shift(x)).

    The paper counts this O(H*W*C*J*K) term as part of the operator's cost (it is what separates MicroNet's
    reported MAdds from a conv + linear count, which comes out ~13 % lower); FlopCounterMode does not see it
    because it is elementwise.
    """
    total = 0

    def hook(module: DynamicShiftMax, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * module.fusions * inputs[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, DynamicShiftMax)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, resolution, resolution))
    finally:
        for h in handles:
            h.remove()
    return total


_SOURCE = (
    "liyunsheng13/micronet README = ICCV 2021 paper (figures rounded to 0.1 M params / 1 M MAdds; "
    "MAdds include applying Dynamic Shift-Max)"
)


def _build(variant: str, resolution: int, num_classes: int) -> nn.Module:
    if resolution < 32 or resolution % 32:
        raise UsageError(
            f"micronet needs a resolution that is a positive multiple of 32 (as its release asserts), "
            f"got {resolution}"
        )
    return MicroNet(CONFIGS[variant], num_classes)


@register("micronet_m0", family="micronet", resolution=224, published=Published(1.0e6, 4e6, _SOURCE + ", M0"))
def micronet_m0(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MicroNet-M0: Micro-Factorized convs + Dynamic Shift-Max, 4 M MAdds."""
    return _build("m0", resolution, num_classes)


@register("micronet_m1", family="micronet", resolution=224, published=Published(1.8e6, 6e6, _SOURCE + ", M1"))
def micronet_m1(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MicroNet-M1: Micro-Factorized convs + Dynamic Shift-Max, 6 M MAdds."""
    return _build("m1", resolution, num_classes)


@register("micronet_m2", family="micronet", resolution=224, published=Published(2.4e6, 12e6, _SOURCE + ", M2"))
def micronet_m2(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MicroNet-M2: Micro-Factorized convs + Dynamic Shift-Max, 12 M MAdds."""
    return _build("m2", resolution, num_classes)


@register("micronet_m3", family="micronet", resolution=224, published=Published(2.6e6, 21e6, _SOURCE + ", M3"))
def micronet_m3(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """MicroNet-M3: Micro-Factorized convs + Dynamic Shift-Max, 21 M MAdds."""
    return _build("m3", resolution, num_classes)
