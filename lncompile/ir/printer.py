"""A readable text form of the IR (also the canonical form hashed into manifests)."""

from __future__ import annotations

import hashlib

import numpy as np

from .graph import Graph
from .node import Node


def _attr_text(rec: Node) -> str:
    if not rec.attrs:
        return ""
    return " {" + ", ".join(f"{k}={v}" for k, v in rec.attrs.items()) + "}"


def format_node(graph: Graph, rec: Node, *, with_source: bool = True) -> str:
    args = ", ".join(str(v) for v in graph.args(rec.name))
    types = ", ".join(str(t) for t in rec.outputs)
    line = f"  %{rec.name} = {rec.op}({args}){_attr_text(rec)} : {types}"
    if with_source and rec.source:
        line += f"  # {rec.source}"
    return line


def format_graph(graph: Graph, *, constants: bool = False, with_source: bool = True) -> str:
    """The graph as text. Constants are shown as a summary line unless ``constants`` is set."""
    inputs = ", ".join(f"%{n}: {graph.record(n).type}" for n in graph.input_names)
    lines = [f"graph {graph.graph['name']}({inputs}) {{"]
    n_const, n_weights = 0, 0
    for rec in graph.records():
        if rec.op == "input":
            continue
        if rec.op == "constant":
            n_const += 1
            n_weights += rec.type.size
            if constants:
                lines.append(f"  %{rec.name} = constant : {rec.type}")
            continue
        lines.append(format_node(graph, rec, with_source=with_source))
    lines.append("  return " + ", ".join(str(v) for v in graph.outputs))
    lines.append("}")
    if not constants:
        lines.insert(1, f"  # {n_const} constants, {n_weights:,} values")
    return "\n".join(lines)


def ir_hash(graph: Graph) -> str:
    """sha256 over the canonical text (no source locations) and every constant's bytes."""
    h = hashlib.sha256(format_graph(graph, constants=True, with_source=False).encode())
    for rec in graph.records():
        if rec.op == "constant":
            h.update(np.ascontiguousarray(rec.value).tobytes())
    return h.hexdigest()
