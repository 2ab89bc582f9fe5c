"""FBNet A, B, C (arXiv 1812.03443), as released in facebookresearch/mobile-vision.

Block lists from `mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnet.py` (../shared/reference/architectures.md
§3.12); block semantics from `irf_block.py::IRFBlock` and `blocks_factory.py`. These definitions put `bias=True`
on every conv of the IR blocks (`use_bias`), so those convs carry a bias before their BatchNorm; the stem
and head convs have none.

The published figures are the model-zoo json of the released checkpoints, which were built by the older
`mobile_cv/arch/fbnet` (v1) builder, not in the code index. This fbnet_v2 definition comes out 0.8-1.3 %
above those parameter counts and 1.3-2.2 % below those MAdds; both within the zoo's tolerance.
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


class _ConvBiasBNAct(nn.Sequential):
    """conv (with bias, as the released `use_bias` defs) -> BatchNorm -> optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=True),
            nn.BatchNorm2d(cout),
        ]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class FBNetIRBlock(nn.Module):
    """mobile-vision IRFBlock as the FBNet defs use it (ReLU, no SE).

    1x1 pw expand (groups g; skipped when the expanded width equals the input) -> channel shuffle when g > 1
    (applied even without the pw conv, as IRFBlock does) -> k x k depthwise (stride) -> 1x1 pwl project
    (groups g, BN, no activation); residual add iff stride 1 and in == out.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int, groups: int = 1) -> None:
        super().__init__()
        mid = cin * expansion
        self.pw = _ConvBiasBNAct(cin, mid, 1, groups=groups) if mid != cin else None
        self.groups = groups
        self.dw = _ConvBiasBNAct(mid, mid, kernel, stride, groups=mid)
        self.pwl = _ConvBiasBNAct(mid, cout, 1, groups=groups, relu=False)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(x) if self.pw is not None else x
        if self.groups > 1:
            y = channel_shuffle(y, self.groups)
        y = self.pwl(self.dw(y))
        return x + y if self.use_residual else y


class FBNet(nn.Module):
    def __init__(self, variant: str, num_classes: int = 1000) -> None:
        super().__init__()
        blocks, head = _ARCHS[variant]
        layers: list[nn.Module] = [ConvBNAct(3, _STEM, 3, 2, act=nn.ReLU)]
        in_ch = _STEM
        for op, kernel, expansion, out, stride, groups in blocks:
            if op == "skip":
                # The "skip" candidate is only ever placed where shapes match, so it is a true identity.
                assert stride == 1 and in_ch == out
                continue
            layers.append(FBNetIRBlock(in_ch, out, kernel, stride, expansion, groups))
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
    published=Published(4.28648e6, 249.92e6, f"{_ZOO_JSON} (fbnet_a: 4.286M params, 249.9 MFLOPs = MAdds)"),
)
def fbnet_a(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """FBNet-A: DNAS-searched IR blocks with skip ops and group-2 pointwise convs, head 1504."""
    check_resolution("fbnet_a", resolution)
    return FBNet("a", num_classes)


@register(
    "fbnet_b",
    family="fbnet",
    resolution=224,
    published=Published(
        4.777296e6,
        295.56e6,
        f"{_ZOO_JSON} (fbnet_b: 4.777M params, 295.6 MFLOPs = MAdds); the paper table prints 4.5M / 295M",
    ),
)
def fbnet_b(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """FBNet-B: DNAS-searched IR blocks (k3/k5, e1/3/6), one skip op, head 1984."""
    check_resolution("fbnet_b", resolution)
    return FBNet("b", num_classes)


@register(
    "fbnet_c",
    family="fbnet",
    resolution=224,
    published=Published(5.520784e6, 382.98e6, f"{_ZOO_JSON} (fbnet_c: 5.521M params, 383.0 MFLOPs = MAdds)"),
)
def fbnet_c(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """FBNet-C: the largest DNAS-searched FBNet, head 1984."""
    check_resolution("fbnet_c", resolution)
    return FBNet("c", num_classes)
