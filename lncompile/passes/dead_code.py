"""Final clean-up: remove nodes no graph output depends on (dead ops and the constants only they used).

Folding leaves the old weights behind (a BN's mean/var, a conv's unscaled weight); they are unreachable from
the outputs, so :meth:`Graph.remove_dead` drops them. Graph inputs always stay (the signature is fixed).
"""

from __future__ import annotations

from ..ir import Graph
from .base import PassStats, graph_pass

PRIORITY = 95


@graph_pass("dead_code")
def dead_code(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Remove unreachable nodes; ``matches`` counts the nodes removed (constants included)."""
    g = graph.copy()
    stats.matches += g.remove_dead()
    return g


PASS = dead_code
