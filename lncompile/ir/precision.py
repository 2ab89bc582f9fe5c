"""Re-typing a graph's float32 tensors as float64, to check rewrites without float32 round-off."""

from __future__ import annotations

from typing import Any

import numpy as np

from .graph import Graph
from .node import TensorType


def as_float64(graph: Graph) -> Graph:
    """The same graph computing in float64 (constants and types widened).

    Graph passes are exact algebra (BN folding, permutation folding...), but in float32 they change rounding;
    in float64 a correct pass agrees with the original to ~1e-13, so the check can be tight.
    """
    g = graph.copy()
    for name in g.nodes:
        rec = g.record(name)
        outs = tuple(TensorType(t.shape, "float64") if t.dtype == "float32" else t for t in rec.outputs)
        value: Any = rec.value
        if value is not None and value.dtype == np.float32:
            value = value.astype(np.float64)
        g.replace_record(name, rec.with_(outputs=outs, value=value))
    return g
