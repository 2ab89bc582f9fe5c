"""AmoebaNet-A mobile (Real et al., arXiv 1802.01548), inference form.

Cells are tensorflow/tpu ``models/official/amoeba_net/model_specs.py`` ``amoeba_net_a`` (= ``evol_net_g``);
cell semantics (incl. the bottlenecked ``1x7_7x1`` op) from ``network_utils.BaseCell`` and macro-skeleton from
``model_builder._build_network_base``: conv0 with ``stem_reduction_size`` 32 filters, two reduction stem
cells, N normal cells per stage with a reduction cell inserted before stages 2 and 3 (tpu ``num_cells`` = 3N);
see ../shared/reference/architectures.md §3.9. The shared cell engine is in ``_nas_cells.py``.

Knobs: ``filters`` (F, tpu ``reduction_size``), ``num_cells`` (N per stage).
"""

from __future__ import annotations

from torch import nn

from ._nas_cells import Genotype, NasNetwork, check_knobs
from .registry import Published, register

# amoeba_net_a normal cell: out = concat(h1, h3, h4, h6) -> 4F channels.
AMOEBANET_A_NORMAL = Genotype(
    ops=(
        "avg_pool_3x3", "max_pool_3x3",
        "separable_3x3_2", "none",
        "none", "avg_pool_3x3",
        "separable_3x3_2", "separable_5x5_2",
        "avg_pool_3x3", "separable_3x3_2",
    ),
    inputs=(0, 0, 1, 1, 0, 1, 0, 2, 5, 0),
    used=(1, 0, 1, 0, 0, 1, 0),
)

# amoeba_net_a reduction cell: out = concat(the five block outputs) -> 5F channels at half resolution.
AMOEBANET_A_REDUCTION = Genotype(
    ops=(
        "separable_3x3_2", "avg_pool_3x3",
        "max_pool_3x3", "separable_7x7_2",
        "max_pool_3x3", "max_pool_3x3",
        "separable_3x3_2", "1x7_7x1",
        "avg_pool_3x3", "separable_7x7_2",
    ),
    inputs=(1, 0, 0, 2, 1, 0, 4, 0, 1, 0),
    used=(1, 1, 0, 0, 0, 0, 0),
)


@register(
    "amoebanet_a_mobile",
    family="amoebanet",
    resolution=224,
    published=Published(
        5.1e6,
        555e6,
        "arXiv 1802.01548 ImageNet mobile row 'AmoebaNet-A (N=4, F=50)' 5.1M params / 555M mult-adds, "
        "matched as quoted in DARTS arXiv 1806.09055 Table 3 (AmoebaNet table text itself not retrieved); "
        "cells = tensorflow/tpu amoeba_net model_specs.py amoeba_net_a; we build 5.09M / 554.7M",
    ),
)
def amoebanet_a_mobile(
    filters: int = 50,
    num_cells: int = 4,
    resolution: int = 224,
    num_classes: int = 1000,
) -> nn.Module:
    """AmoebaNet-A mobile: 3 stages of N=4 normal cells, F=50, stem conv 32 (tensorflow/tpu amoeba_net)."""
    check_knobs("amoebanet_a_mobile", filters, num_cells, resolution)
    return NasNetwork(
        AMOEBANET_A_NORMAL, AMOEBANET_A_REDUCTION, filters, num_cells, num_classes, stem_filters=32
    )
