"""The IR verifier: structural and type invariants every frontend and pass must keep."""

from __future__ import annotations

import networkx as nx

from ..errors import IRVerificationError
from .graph import Graph
from .node import TensorType, Value
from .ops import OPS, ShapeError


def _fail(name: str, graph: Graph, message: str) -> None:
    where = ""
    if name in graph:
        rec = graph.record(name)
        where = f" ({rec.op}{', from ' + rec.source if rec.source else ''})"
    raise IRVerificationError(f"IR invalid at node %{name}{where}: {message}")


def verify(graph: Graph) -> None:
    """Raise :class:`IRVerificationError` unless ``graph`` is well formed.

    Checks: acyclic; every node has a known op and a record named like the node; arguments are bound at
    positions 0..n-1 to existing outputs of their producers, within the op's arity; every output type
    equals what the op's schema infers from the argument types; constants hold arrays of their declared
    type; graph inputs are exactly the ``input`` nodes; graph outputs exist.
    """
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise IRVerificationError(f"IR invalid: cycle through {[e[0] for e in cycle]}")
    input_nodes = {n for n in graph.nodes if graph.record(n).op == "input"}
    if input_nodes != set(graph.input_names):
        raise IRVerificationError(
            f"IR invalid: graph inputs {graph.input_names} differ from input nodes {sorted(input_nodes)}"
        )
    if not graph.outputs:
        raise IRVerificationError("IR invalid: the graph has no outputs")
    for value in graph.outputs:
        if value.node not in graph or value.index >= len(graph.record(value.node).outputs):
            raise IRVerificationError(f"IR invalid: graph output {value} does not exist")

    for name in graph.nodes:
        rec = graph.record(name)
        if rec.name != name:
            _fail(name, graph, f"record is named {rec.name!r}")
        if rec.op not in OPS:
            _fail(name, graph, f"unknown op {rec.op!r}")
        schema = OPS[rec.op]
        positions = sorted(d["arg"] for _, _, d in graph.in_edges(name, data=True))
        if positions != list(range(len(positions))):
            _fail(name, graph, f"argument positions {positions} are not 0..n-1")
        if not schema.min_inputs <= len(positions) <= schema.max_inputs:
            _fail(name, graph, f"{len(positions)} arguments, op takes {schema.min_inputs}..{schema.max_inputs}")
        if not rec.outputs:
            _fail(name, graph, "no output types")
        args = graph.args(name)
        for value in args:
            if value.index >= len(graph.record(value.node).outputs):
                _fail(name, graph, f"reads {value}, which has no output {value.index}")
        if rec.op == "constant":
            if rec.value is None or TensorType(rec.value.shape, str(rec.value.dtype)) != rec.type:
                _fail(name, graph, f"constant value does not match its type {rec.type}")
            continue
        if rec.op == "input":
            continue
        try:
            inferred = schema.infer(graph.arg_types(name), rec.attrs)
        except (ShapeError, KeyError, TypeError, ValueError) as e:
            _fail(name, graph, f"type inference failed: {e}")
        if tuple(inferred) != rec.outputs:
            _fail(name, graph, f"declared {[str(t) for t in rec.outputs]} but inputs give {[str(t) for t in inferred]}")


def verified(graph: Graph) -> Graph:
    verify(graph)
    return graph


__all__ = ["Value", "verified", "verify"]
