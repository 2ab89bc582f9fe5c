"""NASNet-A Mobile (Zoph et al., arXiv 1707.07012), inference form.

Cells and macro-skeleton follow TF-slim ``research/slim/nets/nasnet/nasnet_utils.py`` (``NasNetANormalCell``,
``NasNetAReductionCell``) and ``nasnet.py`` (``mobile_imagenet_config``: 12 cells = N=4 per stage,
``num_conv_filters`` F=44, ``stem_multiplier`` 1.0, two reduction stem cells); see
../shared/reference/architectures.md §3.7. The shared cell engine is in ``_nas_cells.py``.

Knobs: ``filters`` (F; "N @ P" names the penultimate width P = 6 * 4F), ``num_cells`` (N normal cells per
stage), ``stem_multiplier`` (conv0 has 32 * m filters; 3.0 for NASNet-A Large).
"""

from __future__ import annotations

from torch import nn

from ._nas_cells import Genotype, NasNetwork, check_knobs
from .registry import Published, register

# TF-slim NasNetANormalCell: out = concat(h1, the five block outputs) -> 6F channels.
NASNET_A_NORMAL = Genotype(
    ops=(
        "separable_5x5_2", "separable_3x3_2",
        "separable_5x5_2", "separable_3x3_2",
        "avg_pool_3x3", "none",
        "avg_pool_3x3", "avg_pool_3x3",
        "separable_3x3_2", "none",
    ),
    inputs=(0, 1, 1, 1, 0, 1, 1, 1, 0, 0),
    used=(1, 0, 0, 0, 0, 0, 0),
)

# TF-slim NasNetAReductionCell: out = concat(blocks 1-4) -> 4F channels at half resolution.
NASNET_A_REDUCTION = Genotype(
    ops=(
        "separable_5x5_2", "separable_7x7_2",
        "max_pool_3x3", "separable_7x7_2",
        "avg_pool_3x3", "separable_5x5_2",
        "none", "avg_pool_3x3",
        "separable_3x3_2", "max_pool_3x3",
    ),
    inputs=(0, 1, 0, 1, 0, 1, 3, 2, 2, 0),
    used=(1, 1, 1, 0, 0, 0, 0),
)


@register(
    "nasnet_a_mobile",
    family="nasnet",
    resolution=224,
    published=Published(
        5.3e6,
        564e6,
        "TF-slim nets/nasnet/README.md NASNet-A_Mobile_224 (5.3M params, 564M MACs) = arXiv 1707.07012 "
        "'NASNet-A (4 @ 1056)' mobile row; we build 5,289,978 params (= osmr nasnet_4a1056) / 563.6M MACs",
    ),
)
def nasnet_a_mobile(
    filters: int = 44,
    num_cells: int = 4,
    stem_multiplier: float = 1.0,
    resolution: int = 224,
    num_classes: int = 1000,
) -> nn.Module:
    """NASNet-A Mobile (4 @ 1056): 3 stages of N=4 normal cells, F=44 (TF-slim mobile_imagenet_config)."""
    check_knobs("nasnet_a_mobile", filters, num_cells, resolution, stem_multiplier)
    return NasNetwork(
        NASNET_A_NORMAL,
        NASNET_A_REDUCTION,
        filters,
        num_cells,
        num_classes,
        stem_filters=int(32 * stem_multiplier),
    )
