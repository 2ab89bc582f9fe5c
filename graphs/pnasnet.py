"""PNASNet-5 Mobile (Liu et al., arXiv 1712.00559), inference form.

TF-slim ``research/slim/nets/nasnet/pnasnet.py``: one cell type (``PNasNetNormalCell``) used everywhere, run
with stride 2 for the two stem cells and for the two reductions, which *replace* a normal cell
(``mobile_imagenet_config``: ``num_cells`` 9 = 3 stages of N=3 counting the reduction cells, F=54,
``stem_multiplier`` 1.0, ``skip_reduction_layer_input`` 1, i.e. each cell sees the previous two outputs);
see ../shared/reference/architectures.md §3.8. The shared cell engine is in ``_nas_cells.py``.

Knobs: ``filters`` (F), ``num_cells`` (N per stage), ``stem_multiplier`` (3.0 for PNASNet-5 Large).
"""

from __future__ import annotations

from torch import nn

from ._nas_cells import Genotype, NasNetwork, check_knobs
from .registry import Published, register

# TF-slim PNasNetNormalCell: out = concat(the five block outputs) -> 5F channels.
PNASNET5_CELL = Genotype(
    ops=(
        "separable_5x5_2", "max_pool_3x3",
        "separable_7x7_2", "max_pool_3x3",
        "separable_5x5_2", "separable_3x3_2",
        "separable_3x3_2", "max_pool_3x3",
        "separable_3x3_2", "none",
    ),
    inputs=(1, 1, 0, 0, 0, 0, 4, 0, 1, 0),
    used=(1, 1, 0, 0, 0, 0, 0),
)


@register(
    "pnasnet5_mobile",
    family="pnasnet",
    resolution=224,
    published=Published(
        5.1e6,
        588e6,
        "arXiv 1712.00559 ImageNet mobile row 'PNASNet-5 (N=3, F=54)' 5.1M params / 588M Mult-Adds, matched "
        "as quoted in DARTS arXiv 1806.09055 Table 3 (PNAS table text itself not retrieved); config = "
        "TF-slim pnasnet.py mobile_imagenet_config; we build 5.06M / 587.3M",
    ),
)
def pnasnet5_mobile(
    filters: int = 54,
    num_cells: int = 3,
    stem_multiplier: float = 1.0,
    resolution: int = 224,
    num_classes: int = 1000,
) -> nn.Module:
    """PNASNet-5 Mobile: 3 stages of N=3 PNASNet-5 cells (reductions included), F=54 (TF-slim)."""
    check_knobs("pnasnet5_mobile", filters, num_cells, resolution, stem_multiplier)
    return NasNetwork(
        PNASNET5_CELL,
        PNASNET5_CELL,
        filters,
        num_cells,
        num_classes,
        stem_filters=int(32 * stem_multiplier),
        reduction_replaces_normal=True,
    )
