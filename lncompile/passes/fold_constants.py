"""Clean-up: constant folding.

An op whose every input is a ``constant`` computes the same array on every call; evaluate it once with the
reference interpreter's kernel (:data:`lncompile.ir.interpret.KERNELS`, so folding and the oracle cannot
disagree) and replace it by ``constant`` nodes (one per output). Chains fold in one sweep, since nodes are
visited in topological order. Inputs left unused are removed by the final clean-up.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ir import Graph, TensorType, Value
from ..ir.interpret import KERNELS
from ._match import constants, remove
from .base import PassStats, graph_pass

PRIORITY = 11
# Folding must not blow up the weights (e.g. broadcast_to of a scalar to a feature map).
MAX_FOLDED_VALUES = 1 << 22


@graph_pass("fold_constants")
def fold_constants(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Replace every op whose inputs are all constants by the constant(s) it computes."""
    g = graph.copy()
    for name in graph.topo_order():
        rec = g.record(name)
        args = g.args(name)
        if rec.op in ("input", "constant") or not args:
            continue
        arrays = constants(g, args)
        if arrays is None:
            continue
        reason = _check(rec.op, rec.outputs)
        if reason is None:
            results = _evaluate(rec.op, rec.attrs, arrays)
            got = [TensorType(r.shape, str(r.dtype)) for r in results]
            if got != list(rec.outputs):
                reason = f"{rec.op}: kernel result {[str(t) for t in got]} differs from the declared type"
        if reason is not None:
            stats.refuse(reason)
            continue
        for index, array in enumerate(results):
            folded = g.add_constant(array, f"{name}_folded", source=rec.source)
            g.replace_uses(Value(name, index), folded)
        remove(g, name)
        stats.matches += 1
    return g


def _check(op: str, outputs: tuple[TensorType, ...]) -> str | None:
    if op not in KERNELS:
        return f"{op}: no interpreter kernel to evaluate it"
    if sum(t.size for t in outputs) > MAX_FOLDED_VALUES:
        return f"{op}: result larger than {MAX_FOLDED_VALUES} values"
    return None


def _evaluate(op: str, attrs, arrays: list[np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        out = KERNELS[op]([torch.from_numpy(np.array(a)) for a in arrays], attrs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [np.ascontiguousarray(t.numpy()) for t in outs]


PASS = fold_constants
