"""The pass manager: runs an ordered pipeline, verifies the IR after every pass, keeps statistics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import IRVerificationError
from ..ir import Graph, verify
from .base import Pass, PassStats, node_count


@dataclass
class PipelineResult:
    graph: Graph
    stats: list[PassStats] = field(default_factory=list)


def run_pipeline(graph: Graph, passes: Sequence[Pass], rules: dict[str, str] | None = None) -> PipelineResult:
    """Run ``passes`` in order on a copy of ``graph``; the IR is verified after each one.

    A pass that breaks the IR (or raises) is reported by name together with the passes that ran before it,
    since a bad rewrite often only shows up downstream.
    """
    rules = dict(rules or {})
    current = graph.copy()
    result = PipelineResult(current)
    done: list[str] = []
    for p in passes:
        stats = PassStats(p.name, nodes_before=node_count(current))
        started = time.perf_counter()
        try:
            current = p.run(current, stats, rules)
            verify(current)
        except IRVerificationError as e:
            after = f" (after {', '.join(done)})" if done else ""
            raise IRVerificationError(f"pass {p.name}{after} broke the IR: {e}") from e
        stats.seconds = time.perf_counter() - started
        stats.nodes_after = node_count(current)
        result.stats.append(stats)
        done.append(p.name)
    result.graph = current
    return result
