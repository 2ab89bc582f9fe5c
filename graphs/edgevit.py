"""EdgeViT XXS / XS / S (arXiv 2205.03436, "EdgeViTs: Competing Light-weight CNNs on Mobile Devices with ViTs").

Follows the official code (saic-fi/edgevit ``src/edgevit.py``); stage tables in
../shared/reference/architectures.md §3.24.

Four stages, each a patch-embedding conv (k = s = 4, then 2) + LayerNorm followed by LGL blocks:
* Local aggregation (stages with sampling ratio r > 1): x += DW3x3(x); x += 1x1 -> DW5x5 -> 1x1 (BN(x));
  x += 1x1-GELU-1x1 (BN(x)).
* Global sparse attention: x += DW3x3(x); on LN(tokens): keep every r-th token as a delegate (avg pool k=1, s=r),
  multi-head self-attention among delegates (matmul + softmax), local propagation back to full resolution with a
  depthwise transposed conv (k = s = r) + LayerNorm, output linear; then x += MLP(LN(x)) (ratio 4, GELU).
* Head: BatchNorm2d -> global mean -> linear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lncompile.errors import UsageError

from .registry import Published, register

# Delegate sampling ratio r of each stage and the patch-embedding stride before it (official defaults).
_SAMPLE_RATIOS = (4, 2, 2, 1)
_PATCH_STRIDES = (4, 2, 2, 2)
_MLP_RATIO = 4
_BLOCK_LN_EPS = 1e-6  # blocks use LayerNorm(eps=1e-6); patch embedding and LocalProp keep PyTorch's 1e-5

# (embed dims, depths, head dim) per variant, official edgevit_xxs / edgevit_xs / edgevit_s.
_VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    "xxs": ((36, 72, 144, 288), (1, 1, 3, 2), 36),
    "xs": ((48, 96, 240, 384), (1, 1, 3, 1), 48),
    "s": ((48, 96, 240, 384), (1, 2, 5, 3), 48),
}


def _channels_last_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the channel axis of an NCHW map."""
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    """Non-overlapping k = s conv (with bias) followed by LayerNorm over channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(out_channels)  # declared first to keep the official state_dict order
        self.proj = nn.Conv2d(in_channels, out_channels, stride, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _channels_last_norm(self.norm, self.proj(x))


class ConvMlp(nn.Sequential):
    """1x1 conv -> GELU -> 1x1 conv (the official CMlp)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))


class LocalAgg(nn.Module):
    """Local aggregation: conditional positional encoding, a 5x5 depthwise 'attention' and a conv MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        # Declared in the official order (conv1, conv2, attn) so official weights load by position.
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, _MLP_RATIO * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class LocalProp(nn.Module):
    """Depthwise ConvTranspose2d(dim, dim, kernel=r, stride=r, groups=dim), written without a transposed conv.

    With kernel == stride the output windows do not overlap: out[c, i*r + a, j*r + b] = x[c, i, j] * w[c, a, b]
    + bias[c]. That is a broadcast multiply of (B, C, h, 1, w, 1) by (1, C, 1, r, 1, r) reshaped to
    (B, C, h*r, w*r) -- exactly the official layer (same parameters: weight (C, 1, r, r), bias (C,)).
    """

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.weight = nn.Parameter(torch.empty(dim, 1, ratio, ratio))
        self.bias = nn.Parameter(torch.empty(dim))
        # ConvTranspose2d's default init (fan-in computed from weight.size(1) * r * r).
        bound = 1.0 / ratio
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        r = self.ratio
        y = x.reshape(b, c, h, 1, w, 1) * self.weight.reshape(1, c, 1, r, 1, r)
        return y.reshape(b, c, h * r, w * r) + self.bias.reshape(1, c, 1, 1)


class GlobalSparseAttn(nn.Module):
    """Self-attention among delegate tokens (every r-th token) propagated back to all tokens (official code)."""

    def __init__(self, dim: int, num_heads: int, ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.ratio = ratio
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if ratio > 1:
            self.local_prop = LocalProp(dim, ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: LayerNorm-ed tokens as an NCHW map (B, C, H, W); returns tokens (B, H*W, C)."""
        b, c, h, w = x.shape
        r = self.ratio
        if r > 1:
            x = F.avg_pool2d(x, kernel_size=1, stride=r)  # sparse sampling: keep every r-th token per axis
        n = (h // r) * (w // r)
        tokens = x.flatten(2).transpose(1, 2)
        # Split the fused projection (layout [q | k | v], heads contiguous) and move heads before tokens.
        q, k, v = (t.reshape(b, n, self.num_heads, -1).transpose(1, 2) for t in self.qkv(tokens).split(c, dim=-1))
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        y = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c)
        if r > 1:
            y = self.local_prop(y.transpose(1, 2).reshape(b, c, h // r, w // r))
            y = self.norm(y.flatten(2).transpose(1, 2))
        return self.proj(y)


class SelfAttnBlock(nn.Module):
    """Positional DW conv, then pre-LN sparse global attention and pre-LN MLP (GELU), both residual."""

    def __init__(self, dim: int, num_heads: int, ratio: int) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=_BLOCK_LN_EPS)
        self.attn = GlobalSparseAttn(dim, num_heads, ratio)
        self.norm2 = nn.LayerNorm(dim, eps=_BLOCK_LN_EPS)
        hidden = _MLP_RATIO * dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(_channels_last_norm(self.norm1, x))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class LGLBlock(nn.Sequential):
    """Local-Global-Local bottleneck: LocalAgg (only where r > 1) then sparse global attention."""

    def __init__(self, dim: int, num_heads: int, ratio: int) -> None:
        layers: list[nn.Module] = [LocalAgg(dim)] if ratio > 1 else []
        super().__init__(*layers, SelfAttnBlock(dim, num_heads, ratio))


class EdgeViT(nn.Module):
    def __init__(self, variant: str, num_classes: int = 1000) -> None:
        super().__init__()
        dims, depths, head_dim = _VARIANTS[variant]
        layers: list[nn.Module] = []
        cin = 3
        for dim, depth, stride, ratio in zip(dims, depths, _PATCH_STRIDES, _SAMPLE_RATIOS, strict=True):
            layers.append(PatchEmbed(cin, dim, stride))
            layers += [LGLBlock(dim, dim // head_dim, ratio) for _ in range(depth)]
            cin = dim
        self.features = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(cin)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.features(x))
        return self.head(x.mean(dim=(2, 3)))


def _build(variant: str, resolution: int, num_classes: int) -> nn.Module:
    # Stage i runs at resolution / 4, 8, 16, 32 and samples every r-th token; the delegate grid must tile the map
    # exactly so that local propagation restores its size: resolution / 4 divisible by 4, /8 and /16 by 2.
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0 or resolution % 32:
        raise UsageError(
            f"edgevit_{variant} needs a resolution that is a positive multiple of 32 "
            f"(stride-32 backbone whose delegate grids must tile each stage), got {resolution!r}"
        )
    return EdgeViT(variant, num_classes)


@register(
    "edgevit_xxs",
    family="edgevit",
    resolution=224,
    published=Published(
        4.1e6,
        0.56e9,
        "arXiv 2205.03436 ImageNet-1K table: EdgeViT-XXS 4.1M, 0.6 GFLOPs (MACs, one decimal); "
        "0.56G is the official code measured by later papers (StarNet, CVPR 2024: 559M; EATFormer: 557M), "
        "used because 0.6 is too coarse for a 5 % check",
    ),
)
def edgevit_xxs(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """EdgeViT-XXS: dims 36/72/144/288, depths 1/1/3/2, head dim 36, 224x224."""
    return _build("xxs", resolution, num_classes)


@register(
    "edgevit_xs",
    family="edgevit",
    resolution=224,
    published=Published(
        6.7e6,
        1.1e9,
        "arXiv 2205.03436 ImageNet-1K table: EdgeViT-XS 6.7M, 1.1 GFLOPs (MACs); "
        "EfficientMod (ICLR 2024) Table 1 quotes 6.8M / 1.1G",
    ),
)
def edgevit_xs(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """EdgeViT-XS: dims 48/96/240/384, depths 1/1/3/1, head dim 48, 224x224."""
    return _build("xs", resolution, num_classes)


@register(
    "edgevit_s",
    family="edgevit",
    resolution=224,
    published=Published(
        13.1e6,
        1.9e9,
        "official release saic-fi/edgevit edgevit_s: 13.1M params (also EfficientMod, ICLR 2024, "
        "Table 1: 13.1M, 1.9G); arXiv 2205.03436 gives 1.9 GFLOPs (MACs) but its 11.1M params (as quoted) "
        "does not match the released definition, so the release count is used",
    ),
)
def edgevit_s(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """EdgeViT-S: dims 48/96/240/384, depths 1/2/5/3, head dim 48, 224x224."""
    return _build("s", resolution, num_classes)
