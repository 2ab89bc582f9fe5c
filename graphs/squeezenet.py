"""SqueezeNet 1.0 / 1.1 (arXiv 1602.07360), torchvision structure.

Stage tables from ../shared/reference/architectures.md §3.20 (channel plan: torchvision ``squeezenet.py`` /
forresti/SqueezeNet Caffe prototxt; pool placement: official README "pool_{1,4,8}" vs "pool_{1,3,5}").
No BatchNorm anywhere: every conv carries a bias and is followed by ReLU, as in the release.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lncompile.errors import UsageError

from .registry import Published, register

# A spatial op as (kernel, stride, padding, ceil_mode): enough to follow the feature-map size through a net.
SpatialOp = tuple[int, int, int, bool]


def _walk(resolution: int, ops: Sequence[SpatialOp]) -> int | None:
    """Feature-map side after ``ops`` (PyTorch size rule), or None when some op gets too small an input."""
    size = resolution
    for kernel, stride, padding, ceil_mode in ops:
        span = size + 2 * padding - kernel
        if span < 0:
            return None
        size = (-(-span // stride) if ceil_mode else span // stride) + 1
    return size


def feature_size(name: str, resolution: int, ops: Sequence[SpatialOp]) -> int:
    """Feature-map side after ``ops``; UsageError when ``resolution`` is not a size or is too small."""
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
        raise UsageError(f"{name}: resolution must be a positive integer, got {resolution!r}")
    size = _walk(resolution, ops)
    if size is None:
        smallest = next(r for r in range(resolution, 100_000) if _walk(r, ops) is not None)
        raise UsageError(f"{name}: resolution {resolution} is too small; the smallest it takes is {smallest}")
    return size


def check_num_classes(name: str, num_classes: int) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UsageError(f"{name}: num_classes must be a positive integer, got {num_classes!r}")


class Fire(nn.Module):
    """Fire module: 1x1 squeeze + ReLU -> [1x1 expand + ReLU || 3x3 expand (pad 1) + ReLU] -> concat."""

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(in_channels, squeeze, 1), nn.ReLU())
        self.expand1x1 = nn.Sequential(nn.Conv2d(squeeze, expand1x1, 1), nn.ReLU())
        self.expand3x3 = nn.Sequential(nn.Conv2d(squeeze, expand3x3, 3, padding=1), nn.ReLU())
        self.out_channels = expand1x1 + expand3x3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], dim=1)


# fire2..fire9 as (squeeze s1x1, expand e1x1, expand e3x3): paper Table 1, the same in v1.0 and v1.1.
_FIRES = [
    (16, 64, 64),
    (16, 64, 64),
    (32, 128, 128),
    (32, 128, 128),
    (48, 192, 192),
    (48, 192, 192),
    (64, 256, 256),
    (64, 256, 256),
]

# version -> (conv1 channels, conv1 kernel, fire indices (0 = fire2) that a 3x3/2 max-pool precedes).
_VERSIONS = {
    "1_0": (96, 7, (3, 7)),  # pools after conv1, fire4, fire8
    "1_1": (64, 3, (2, 4)),  # pools after conv1, fire3, fire5
}

_POOL: SpatialOp = (3, 2, 0, True)  # Caffe pooling rounds up; torchvision reproduces it with ceil_mode=True


class SqueezeNet(nn.Module):
    def __init__(self, version: str, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        stem_ch, stem_k, pools_before = _VERSIONS[version]
        layers: list[nn.Module] = [
            nn.Conv2d(3, stem_ch, stem_k, stride=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, ceil_mode=True),
        ]
        in_ch = stem_ch
        for i, (s, e1, e3) in enumerate(_FIRES):
            if i in pools_before:
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            fire = Fire(in_ch, s, e1, e3)
            layers.append(fire)
            in_ch = fire.out_channels
        self.features = nn.Sequential(*layers)
        # Head: dropout -> conv10 (1x1 to classes, with ReLU as in the release) -> global average pool.
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv2d(in_ch, num_classes, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _spatial_ops(version: str) -> list[SpatialOp]:
    _, stem_k, pools_before = _VERSIONS[version]
    # Fire modules keep the size (3x3 with pad 1), so only the stem conv and the three pools matter.
    return [(stem_k, 2, 0, False), _POOL] + [_POOL for _ in pools_before]


def _build(version: str, resolution: int, num_classes: int) -> nn.Module:
    name = f"squeezenet{version}"
    check_num_classes(name, num_classes)
    feature_size(name, resolution, _spatial_ops(version))
    return SqueezeNet(version, num_classes)


@register(
    "squeezenet1_0",
    family="squeezenet",
    resolution=224,
    published=Published(
        1_248_424,
        0.82e9,
        "torchvision squeezenet1_0 weights metadata (1,248,424 params, 0.82 GFLOPS = MACs at 224); "
        "paper ~1.25M params; README 1.72 GFLOPS is true FLOPs at 227",
    ),
)
def squeezenet1_0(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """SqueezeNet 1.0: 7x7/2 conv (96) stem, Fire modules, pools after conv1/fire4/fire8, no BN."""
    return _build("1_0", resolution, num_classes)


@register(
    "squeezenet1_1",
    family="squeezenet",
    resolution=224,
    published=Published(
        1_235_496,
        0.35e9,
        "torchvision squeezenet1_1 weights metadata (1,235,496 params, 0.35 GFLOPS = MACs at 224); "
        "official README: 0.72 GFLOPS (true FLOPs), 2.4x less than v1.0",
    ),
)
def squeezenet1_1(resolution: int = 224, num_classes: int = 1000) -> nn.Module:
    """SqueezeNet 1.1: 3x3/2 conv (64) stem, same Fires, pools after conv1/fire3/fire5 (2.4x cheaper)."""
    return _build("1_1", resolution, num_classes)
