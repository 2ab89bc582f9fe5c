"""MobileViT v1 XXS / XS / S (arXiv 2110.02178).

Structure from the paper §3.1 and the authors' release (apple/ml-cvnets ``cvnets/models/classification/mobilevit.py``
and ``config/mobilevit.py``, ported to timm as ``mobilevit_xxs/xs/s``); stage tables in
../shared/reference/architectures.md §3.23.

Network: 3x3 conv stem (s2, 16 ch) -> MV2 -> 3 x MV2 (first s2) -> three stages of [MV2 s2 + MobileViT block]
-> 1x1 conv to 4 x C_last -> global pool -> FC. All activations are SiLU (Swish).

MobileViT block: 3x3 conv-BN-SiLU -> 1x1 conv (C -> d, no norm/act) -> unfold into 2x2 patches ->
L pre-LN transformer layers (4-head self-attention, FFN 2d with SiLU) + final LayerNorm -> fold ->
1x1 conv-BN-SiLU (d -> C) -> concat with the block input -> 3x3 conv-BN-SiLU (2C -> C).
"""

from __future__ import annotations

import torch
from torch import nn

from lncompile.errors import UsageError

from .blocks import ClassifierHead, ConvBNAct, InvertedResidual, make_divisible
from .registry import Published, register

# Patch size h = w = 2 in every MobileViT block (paper §4.1 / cvnets config).
_PATCH = 2
# Output stride of the last MobileViT stage; its feature map must still split into 2x2 patches.
_LAST_STRIDE = 32

# One variant: (MV2 expansion, channels of stem+layer1+layer2, [(C, d, L) for layer3..5], head channels).
# cvnets config/mobilevit.py (== timm model_cfgs); FFN hidden = 2d and 4 heads everywhere.
_VARIANTS: dict[str, tuple[int, tuple[int, int, int], list[tuple[int, int, int]], int]] = {
    "xxs": (2, (16, 16, 24), [(48, 64, 2), (64, 80, 4), (80, 96, 3)], 320),
    "xs": (4, (16, 32, 48), [(64, 96, 2), (80, 120, 4), (96, 144, 3)], 384),
    "s": (4, (16, 32, 64), [(96, 144, 2), (128, 192, 4), (160, 240, 3)], 640),
}


class MultiHeadSelfAttention(nn.Module):
    """Standard MHSA on (B, N, d) tokens: fused qkv linear (bias), softmax(q k^T / sqrt(d_h)) v, out linear."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # Split the fused projection (layout [q | k | v], heads contiguous) and move heads before tokens.
        q, k, v = (t.reshape(b, n, self.num_heads, -1).transpose(1, 2) for t in self.qkv(x).split(c, dim=-1))
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        y = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(y)


class TransformerLayer(nn.Module):
    """Pre-LN transformer encoder layer: x + MHSA(LN(x)), then x + FFN(LN(x)) with FFN = Linear-SiLU-Linear."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.SiLU(), nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class MobileViTBlock(nn.Module):
    """MobileViT block (paper Fig. 1b): local conv -> unfold -> transformers -> fold -> project -> fuse."""

    def __init__(self, channels: int, dim: int, depth: int, num_heads: int = 4, ffn_mult: int = 2) -> None:
        super().__init__()
        self.local = nn.Sequential(
            ConvBNAct(channels, channels, 3, act=nn.SiLU),
            nn.Conv2d(channels, dim, 1, bias=False),  # plain projection to d: no norm, no activation
        )
        self.transformer = nn.Sequential(*[TransformerLayer(dim, ffn_mult * dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.proj = ConvBNAct(dim, channels, 1, act=nn.SiLU)
        self.fusion = ConvBNAct(2 * channels, channels, 3, act=nn.SiLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.local(x)
        t = self.norm(self.transformer(unfold_patches(y, _PATCH)))
        y = fold_patches(t, y.shape, _PATCH)
        return self.fusion(torch.cat((x, self.proj(y)), dim=1))


def unfold_patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, d, H, W) -> (B*p*p, N, d): row (b, i, j) holds pixel (i, j) of each of the N = HW/p^2 patches.

    The transformer then attends across patches separately for each of the P = p*p pixel positions
    (cvnets ``unfolding``), here written as one reshape/permute instead of nn.Unfold.
    """
    b, d, h, w = x.shape
    nh, nw = h // p, w // p
    return x.reshape(b, d, nh, p, nw, p).permute(0, 3, 5, 2, 4, 1).reshape(b * p * p, nh * nw, d)


def fold_patches(t: torch.Tensor, shape: torch.Size, p: int) -> torch.Tensor:
    """Exact inverse of :func:`unfold_patches` back to ``shape`` = (B, d, H, W)."""
    b, d, h, w = shape
    return t.reshape(b, p, p, h // p, w // p, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, h, w)


class MobileViT(nn.Module):
    def __init__(self, variant: str, num_classes: int = 1000) -> None:
        super().__init__()
        expansion, (stem, c1, c2), vit_stages, head = _VARIANTS[variant]

        def mv2(cin: int, cout: int, stride: int) -> InvertedResidual:
            # cvnets InvertedResidual: hidden = make_divisible(round(cin * t), 8), SiLU; residual iff s1, cin == cout.
            mid = make_divisible(round(cin * expansion), 8)
            return InvertedResidual(cin, cout, 3, stride, expansion, act=nn.SiLU, mid_channels=mid)

        layers: list[nn.Module] = [
            ConvBNAct(3, stem, 3, 2, act=nn.SiLU),
            mv2(stem, c1, 1),
            mv2(c1, c2, 2),
            mv2(c2, c2, 1),
            mv2(c2, c2, 1),
        ]
        cin = c2
        for channels, dim, depth in vit_stages:
            layers += [mv2(cin, channels, 2), MobileViTBlock(channels, dim, depth)]
            cin = channels
        layers.append(ConvBNAct(cin, head, 1, act=nn.SiLU))  # cvnets conv_1x1_exp: min(4 * C, 960)
        self.features = nn.Sequential(*layers)
        self.classifier = ClassifierHead(head, num_classes, dropout=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _build(variant: str, resolution: int, num_classes: int) -> nn.Module:
    # Stride-2 stages take the map to resolution / 32 at the last MobileViT block, which must split into 2x2
    # patches; the release bilinearly resizes odd maps instead, a non-integer resize we do not model.
    step = _LAST_STRIDE * _PATCH
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0 or resolution % step:
        raise UsageError(
            f"mobilevit_{variant} needs a resolution that is a positive multiple of {step} "
            f"(its last stage splits the 1/32-scale map into 2x2 patches), got {resolution!r}"
        )
    return MobileViT(variant, num_classes)


@register(
    "mobilevit_xxs",
    family="mobilevit",
    resolution=256,
    published=Published(
        1.27e6,
        0.42e9,
        "timm mobilevit_xxs (apple/ml-cvnets release weights): 1.27M params, 0.42 GMACs @256; "
        "arXiv 2110.02178 Table (ImageNet) rounds to 1.3M and gives no FLOPs, so the release count is used",
    ),
)
def mobilevit_xxs(resolution: int = 256, num_classes: int = 1000) -> nn.Module:
    """MobileViT-XXS: MV2 (expansion 2) + MobileViT blocks d = 64/80/96, 256x256."""
    return _build("xxs", resolution, num_classes)


@register(
    "mobilevit_xs",
    family="mobilevit",
    resolution=256,
    published=Published(
        2.3e6,
        1.05e9,
        "arXiv 2110.02178 Table (ImageNet) 2.3M params; MACs from timm mobilevit_xs "
        "(cvnets release) 1.05 GMACs @256, the paper has none",
    ),
)
def mobilevit_xs(resolution: int = 256, num_classes: int = 1000) -> nn.Module:
    """MobileViT-XS: MV2 (expansion 4) + MobileViT blocks d = 96/120/144, 256x256."""
    return _build("xs", resolution, num_classes)


@register(
    "mobilevit_s",
    family="mobilevit",
    resolution=256,
    published=Published(
        5.6e6,
        2.03e9,
        "arXiv 2110.02178 Table (ImageNet) 5.6M params; MACs from timm mobilevit_s "
        "(cvnets release) 2.03 GMACs @256, the paper has none",
    ),
)
def mobilevit_s(resolution: int = 256, num_classes: int = 1000) -> nn.Module:
    """MobileViT-S: MV2 (expansion 4) + MobileViT blocks d = 144/192/240, 256x256."""
    return _build("s", resolution, num_classes)
