"""Clean-up: drop ``dropout`` and ``identity`` nodes.

At inference ``dropout(x) = x`` and ``identity(x) = x``, so every consumer (and graph output) of such a node
can read ``x`` directly.
"""

from __future__ import annotations

from ..ir import Graph, Value
from ._match import remove
from .base import PassStats, graph_pass

PRIORITY = 10
NO_OPS = ("dropout", "identity")


@graph_pass("drop_identity")
def drop_identity(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Rewire consumers of dropout/identity nodes to their input, then remove the nodes."""
    g = graph.copy()
    for name in graph.topo_order():
        if g.record(name).op not in NO_OPS:
            continue
        (source,) = g.args(name)
        g.replace_uses(Value(name), source)
        remove(g, name)
        stats.matches += 1
    return g


PASS = drop_identity
