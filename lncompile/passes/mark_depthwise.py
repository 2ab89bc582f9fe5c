"""Mark depthwise convolutions: ``conv2d`` with groups == in channels == out channels gets ``depthwise=True``.

One filter per channel: ``y[c] = w[c] * x[c]`` (no sum over channels). The marker is for readers of the IR
(``lncompile inspect``, cost models, later passes); no kernel, emitter or the interpreter reads it, and the
conv2d schema checks it stays true. Runs last in the grouped/depthwise band so convs that earlier rewrites
created (a merged MixConv, permuted weights) are marked too; a depthwise conv with a channel multiplier
(out = k * in, k > 1) is not marked.
"""

from __future__ import annotations

from ..ir import Graph
from ._grouping import is_depthwise
from .base import PassStats, graph_pass

PRIORITY = 38


@graph_pass("mark_depthwise")
def mark_depthwise(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Set ``depthwise=True`` on every depthwise conv2d not yet marked."""
    g = graph.copy()
    for name in graph.topo_order():
        rec = g.record(name)
        if is_depthwise(g, rec) and not rec.attrs.get("depthwise", False):
            g.replace_record(name, rec.with_(attrs=rec.attrs.updated(depthwise=True)))
            stats.matches += 1
    return g


PASS = mark_depthwise
