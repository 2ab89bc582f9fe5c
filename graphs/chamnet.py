"""ChamNet-A and ChamNet-B (arXiv 1812.08934), as released in facebookresearch/mobile-vision.

Stage tables from `mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_chamnet.py` (`cham_a`, `cham_b`;
../shared/reference/architectures.md §3.10). ChamNet adapts only the widths, depths and expansions of a
MobileNetV2-style network: every block is a 3x3 inverted residual with ReLU, no SE.

The blocks are FBNet's (same code base): the released ChamNets were built by mobile-vision's older FBNet
builder, whose IR block keeps its 1x1 expansion conv at expansion 1, and with that conv the MAdds equal
the released figures exactly (ChamNet-A 552.9 M at 224, ChamNet-B 323.3 M at 192); without it, as the
newer fbnet_v2 `IRFBlock` would build the first block, they come out 12.8 M / 5.3 M lower.
"""

from __future__ import annotations

from torch import nn

from .fbnet import FBNet
from .mobilenet import check_resolution
from .registry import Published, register

# Per model: (stem width, [(expansion, out channels, repeats, first stride), ...], head 1x1 conv width).
_ARCHS: dict[str, tuple[int, list[tuple[int, int, int, int]], int]] = {
    "a": (
        32,
        [(1, 24, 1, 1), (4, 40, 2, 2), (6, 48, 3, 2), (4, 96, 4, 2), (4, 160, 3, 1), (4, 248, 3, 2), (6, 480, 1, 1)],
        2016,
    ),
    "b": (
        24,
        [(1, 16, 1, 1), (5, 40, 2, 2), (6, 40, 3, 2), (6, 92, 3, 2), (6, 104, 3, 1), (5, 200, 3, 2), (6, 384, 1, 1)],
        1984,
    ),
}
# BASIC_ARGS of the ChamNet defs: expanded widths are rounded to a multiple of 8.
_WIDTH_DIVISOR = 8


class ChamNet(FBNet):
    """FBNet's network on a ChamNet stage table: each stage is ``repeats`` 3x3 IR blocks (stride on the first)."""

    def __init__(self, variant: str, num_classes: int = 1000) -> None:
        stem, stages, head = _ARCHS[variant]
        blocks = [
            ("ir", 3, expansion, out, stride if i == 0 else 1, 1)
            for expansion, out, repeats, stride in stages
            for i in range(repeats)
        ]
        super().__init__(blocks, head, num_classes, stem=stem, width_divisor=_WIDTH_DIVISOR)


_README = "facebookresearch/mobile-vision README ChamNet table (older Caffe2 release)"


@register(
    "chamnet_a",
    family="chamnet",
    resolution=224,
    published=Published(6.2e6, 552.9e6, f"{_README}: ChamNet-A 224, 552.9 MFLOPs (= MAdds), 6.2M params"),
)
def chamnet_a(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """ChamNet-A: the larger Chameleon-adapted MobileNetV2-style network (3x3 IR blocks, ReLU)."""
    check_resolution("chamnet_a", resolution)
    return ChamNet("a", num_classes)


@register(
    "chamnet_b",
    family="chamnet",
    resolution=192,
    published=Published(
        5.2e6,
        323.3e6,
        f"{_README}: ChamNet-B 192, 323.3 MFLOPs (= MAdds), 5.2M params; the fbnet_v2 def says input_size "
        "224, but the released ChamNet-B checkpoint (and its figures) are at 192",
    ),
)
def chamnet_b(resolution: int = 192, num_classes: int = 1000) -> nn.Module:
    """ChamNet-B: the smaller Chameleon-adapted network, released at 192x192."""
    check_resolution("chamnet_b", resolution)
    return ChamNet("b", num_classes)
