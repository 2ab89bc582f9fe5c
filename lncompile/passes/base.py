"""Pass infrastructure: a pass is a pure function IR -> IR with a name and statistics.

Each pass lives in its own module and follows pattern -> check -> rewrite: its ``_match(g, name)`` returns
what it found at a candidate node (the match to rewrite), a *reason* string when the pattern is there but must
not be rewritten, or ``None`` when there is no pattern; :func:`lncompile.passes._match.matches` drives that loop
and records the refusals. The rewrite builds new records on a copy of the graph; the input is never modified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..ir import Graph


@dataclass
class PassStats:
    """What one pass did: matches rewritten, matches refused (with reasons), node counts."""

    name: str
    matches: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    nodes_before: int = 0
    nodes_after: int = 0
    seconds: float = 0.0

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "matches": self.matches,
            "refused": dict(self.refused),
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "seconds": round(self.seconds, 4),
        }


class Pass(Protocol):
    """A graph pass: ``run(graph, stats, rules)`` returns a new graph; ``graph`` must stay untouched."""

    name: str

    def run(self, graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph: ...


@dataclass(frozen=True)
class FunctionPass:
    """Adapter: a plain function ``fn(graph, stats, rules) -> graph`` as a :class:`Pass`."""

    name: str
    fn: Callable[[Graph, PassStats, dict[str, str]], Graph]
    doc: str = ""

    def run(self, graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
        return self.fn(graph, stats, rules)


def graph_pass(name: str) -> Callable[[Callable[[Graph, PassStats, dict[str, str]], Graph]], FunctionPass]:
    """Decorator turning ``def my_pass(graph, stats, rules) -> Graph`` into a named pass."""

    def deco(fn: Callable[[Graph, PassStats, dict[str, str]], Graph]) -> FunctionPass:
        return FunctionPass(name, fn, (fn.__doc__ or "").strip())

    return deco


def node_count(graph: Graph) -> int:
    return sum(1 for r in graph.records() if r.op not in ("input", "constant"))
