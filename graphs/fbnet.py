"""FBNet A, B, C (arXiv 1812.03443), as released in facebookresearch/mobile-vision.

Block lists from `mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnet.py` (../shared/reference/architectures.md
§3.12). Block semantics follow the builder the released checkpoints were trained with (mobile-vision's older
`mobile_cv/arch/fbnet`, the maskrcnn-benchmark FBNet builder): every IR block keeps its 1x1 expansion conv,
also at expansion 1 -- the paper's candidate block is 1x1 expand -> depthwise -> 1x1 project whatever its
expansion ("k3_e1" is that block with e = 1), and timm's `fbnetc_100` builds it so. The newer fbnet_v2
`IRFBlock` drops that conv at expansion 1 and puts a bias on every IR conv (`use_bias`); we build the
release's conv -> BN form without biases.

Published figures are the model-zoo json of those checkpoints, whose "params_m" counts conv/FC weights only
(no BN, no biases). FBNet-A reproduces both json figures exactly that way (4,286,480 weights, 249.921848 M
MAdds). FBNet-B/-C come out +10.6 M / +2.0 M MAdds (+3.6 % / +0.5 %) and +50 K / +6 K weights above the json:
the v1 defs of those two differ from the fbnet_v2 block lists in some detail that is not in the code index
(no one- or two-block edit of the lists reproduces the json), so the readable fbnet_v2 lists are kept.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ClassifierHead, ConvBNAct, channel_shuffle
from .mobilenet import check_resolution
from .registry import Published, register

# One row per block: (op, kernel, expansion, out channels, stride, groups). op "ir" is an inverted residual
# (`ir_k3`, `ir_k5`, and with groups 2 `ir_k3_g2` / `ir_k5_g2`), "skip" is the search space's identity op.
_Block = tuple[str, int, int, int, int, int]

_FBNET_A: list[_Block] = [
    ("skip", 0, 0, 16, 1, 1),
    ("ir", 3, 3, 24, 2, 1),
    ("ir", 3, 1, 24, 1, 1),
    ("skip", 0, 0, 24, 1, 1),
    ("skip", 0, 0, 24, 1, 1),
    ("ir", 5, 6, 32, 2, 1),
    ("ir", 3, 3, 32, 1, 1),
    ("ir", 5, 1, 32, 1, 1),
    ("ir", 3, 3, 32, 1, 1),
    ("ir", 5, 6, 64, 2, 1),
    ("ir", 5, 3, 64, 1, 1),
    ("ir", 5, 1, 64, 1, 2),
    ("ir", 5, 6, 64, 1, 1),
    ("ir", 3, 6, 112, 1, 1),
    ("ir", 5, 1, 112, 1, 2),
    ("ir", 5, 3, 112, 1, 1),
    ("ir", 3, 1, 112, 1, 2),
    ("ir", 5, 6, 184, 2, 1),
    ("ir", 5, 6, 184, 1, 1),
    ("ir", 5, 3, 184, 1, 1),
    ("ir", 5, 6, 184, 1, 1),
    ("ir", 5, 6, 352, 1, 1),
]
_FBNET_B: list[_Block] = [
    ("ir", 3, 1, 16, 1, 1),
    ("ir", 3, 6, 24, 2, 1),
    ("ir", 5, 1, 24, 1, 1),
    ("ir", 3, 1, 24, 1, 1),
    ("ir", 3, 1, 24, 1, 1),
    ("ir", 5, 6, 32, 2, 1),
    ("ir", 5, 3, 32, 1, 1),
    ("ir", 3, 6, 32, 1, 1),
    ("ir", 5, 6, 32, 1, 1),
    ("ir", 5, 6, 64, 2, 1),
    ("ir", 5, 6, 64, 1, 1),
    ("skip", 0, 0, 64, 1, 1),
    ("ir", 5, 3, 64, 1, 1),
    ("ir", 5, 6, 112, 1, 1),
    ("ir", 3, 1, 112, 1, 1),
    ("ir", 5, 1, 112, 1, 1),
    ("ir", 5, 3, 112, 1, 1),
    ("ir", 5, 6, 184, 2, 1),
    ("ir", 5, 1, 184, 1, 1),
    ("ir", 5, 6, 184, 1, 1),
    ("ir", 5, 6, 184, 1, 1),
    ("ir", 3, 6, 352, 1, 1),
]
_FBNET_C: list[_Block] = [
    ("ir", 3, 1, 16, 1, 1),
    ("ir", 3, 6, 24, 2, 1),
    ("skip", 0, 0, 24, 1, 1),
    ("ir", 3, 1, 24, 1, 1),
    ("ir", 3, 1, 24, 1, 1),
    ("ir", 5, 6, 32, 2, 1),
    ("ir", 5, 3, 32, 1, 1),
    ("ir", 5, 6, 32, 1, 1),
    ("ir", 3, 6, 32, 1, 1),
    ("ir", 5, 6, 64, 2, 1),
    ("ir", 5, 3, 64, 1, 1),
    ("ir", 5, 6, 64, 1, 1),
    ("ir", 5, 6, 64, 1, 1),
    ("ir", 5, 6, 112, 1, 1),
    ("ir", 5, 6, 112, 1, 1),
    ("ir", 5, 6, 112, 1, 1),
    ("ir", 5, 3, 112, 1, 1),
    ("ir", 5, 6, 184, 2, 1),
    ("ir", 5, 6, 184, 1, 1),
    ("ir", 5, 6, 184, 1, 1),
    ("ir", 5, 6, 184, 1, 1),
    ("ir", 3, 6, 352, 1, 1),
]
# (blocks, head 1x1 conv width); all three start with a 3x3 stride-2 conv to 16 channels.
_ARCHS = {"a": (_FBNET_A, 1504), "b": (_FBNET_B, 1984), "c": (_FBNET_C, 1984)}
_STEM = 16


class FBNetIRBlock(nn.Module):
    """FBNet inverted residual (ReLU, no SE), also used by ChamNet.

    1x1 pw expand (groups g) -> channel shuffle when g > 1 -> k x k depthwise (stride) -> 1x1 pwl project
    (groups g, BN, no activation); residual add iff stride 1 and in == out. The pw conv is kept at
    expansion 1 (see the module docstring).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, mid: int, groups: int = 1) -> None:
        super().__init__()
        self.groups = groups
        self.pw = ConvBNAct(cin, mid, 1, groups=groups, act=nn.ReLU)
        self.dw = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=nn.ReLU)
        self.pwl = ConvBNAct(mid, cout, 1, groups=groups, act=None)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(x)
        if self.groups > 1:
            # Mixes the two pw groups' outputs before the grouped pwl (ShuffleNet-style, IRFBlock "mid").
            y = channel_shuffle(y, self.groups)
        y = self.pwl(self.dw(y))
        return x + y if self.use_residual else y


def divisible_by(value: int, divisor: int) -> int:
    """mobile-vision `hp.get_divisible_by`: nearest multiple of ``divisor`` (halves away from zero), >= divisor."""
    if value % divisor == 0:
        return value
    return max(1, int(value / divisor + 0.5)) * divisor


class FBNet(nn.Module):
    """3x3 stride-2 stem -> FBNet IR blocks -> 1x1 head conv -> classifier; also ChamNet's network.

    ``blocks`` are ``_Block`` rows; a block's expanded width is its input width times its expansion, rounded by
    ``divisible_by`` to a multiple of ``width_divisor`` (1, no rounding, for FBNet).
    """

    def __init__(
        self, blocks: list[_Block], head: int, num_classes: int = 1000, *, stem: int = _STEM, width_divisor: int = 1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, stem, 3, 2, act=nn.ReLU)]
        in_ch = stem
        for op, kernel, expansion, out, stride, groups in blocks:
            if op == "skip":
                # The "skip" candidate is only ever placed where shapes match, so it is a true identity.
                assert stride == 1 and in_ch == out
                continue
            mid = divisible_by(in_ch * expansion, width_divisor)
            layers.append(FBNetIRBlock(in_ch, out, kernel, stride, mid, groups))
            in_ch = out
        layers.append(ConvBNAct(in_ch, head, 1, act=nn.ReLU))
        self.features = nn.Sequential(*layers)
        self.classifier = ClassifierHead(head, num_classes, dropout=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


_ZOO_JSON = "facebookresearch/mobile-vision model_zoo/models/model_info/fbnet/model_info.json"


@register(
    "fbnet_a",
    family="fbnet",
    resolution=224,
    published=Published(4.28648e6, 249.92e6, f"{_ZOO_JSON} (fbnet_a: 4.286M weights, 249.9 MFLOPs = MAdds)"),
)
def fbnet_a(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """FBNet-A: DNAS-searched IR blocks with skip ops and group-2 pointwise convs, head 1504."""
    check_resolution("fbnet_a", resolution)
    return FBNet(*_ARCHS["a"], num_classes)


@register(
    "fbnet_b",
    family="fbnet",
    resolution=224,
    published=Published(
        4.777296e6,
        295.56e6,
        f"{_ZOO_JSON} (fbnet_b: 4.777M weights, 295.6 MFLOPs = MAdds); the paper table prints 4.5M / 295M",
    ),
)
def fbnet_b(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """FBNet-B: DNAS-searched IR blocks (k3/k5, e1/3/6), one skip op, head 1984."""
    check_resolution("fbnet_b", resolution)
    return FBNet(*_ARCHS["b"], num_classes)


@register(
    "fbnet_c",
    family="fbnet",
    resolution=224,
    published=Published(5.520784e6, 382.98e6, f"{_ZOO_JSON} (fbnet_c: 5.521M weights, 383.0 MFLOPs = MAdds)"),
)
def fbnet_c(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """FBNet-C: the largest DNAS-searched FBNet, head 1984."""
    check_resolution("fbnet_c", resolution)
    return FBNet(*_ARCHS["c"], num_classes)
