"""The IR graph: a networkx MultiDiGraph whose nodes carry frozen :class:`Node` records.

An edge ``producer -> consumer`` carries one tensor: ``arg`` is its position among the consumer's
arguments and ``out`` the producer's output index (a multigraph, since ``x * x`` uses one tensor twice).
Graph inputs are ``input`` nodes, listed in ``graph.graph["inputs"]``; the outputs are the values listed in
``graph.graph["outputs"]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx
import numpy as np

from .node import Attrs, Node, TensorType, Value
from .ops import OPS


class Graph(nx.MultiDiGraph):
    """lncompile's IR: ``graph.record(name)`` is the op, ``graph.args(name)`` its inputs in order."""

    def __init__(self, incoming_graph_data: Any = None, **attr: Any) -> None:
        super().__init__(incoming_graph_data, **attr)
        self.graph.setdefault("inputs", [])
        self.graph.setdefault("outputs", [])
        self.graph.setdefault("name", "model")

    # ---- reading -------------------------------------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        return list(self.graph["inputs"])

    @property
    def outputs(self) -> list[Value]:
        return [Value(*v) for v in self.graph["outputs"]]

    def record(self, name: str) -> Node:
        return self.nodes[name]["op"]

    def records(self) -> Iterable[Node]:
        """All op records in a topological order (inputs first)."""
        return (self.record(n) for n in self.topo_order())

    def topo_order(self) -> list[str]:
        return list(nx.lexicographical_topological_sort(self, key=self._order_key))

    def _order_key(self, name: str) -> tuple[int, str]:
        return (self.nodes[name].get("seq", 0), name)

    def args(self, name: str) -> list[Value]:
        """The values a node consumes, in argument order."""
        edges = sorted(self.in_edges(name, data=True), key=lambda e: e[2]["arg"])
        return [Value(src, data["out"]) for src, _, data in edges]

    def arg_types(self, name: str) -> list[TensorType]:
        return [self.type_of(v) for v in self.args(name)]

    def type_of(self, value: Value) -> TensorType:
        return self.record(value.node).outputs[value.index]

    def users(self, value: Value | str) -> list[tuple[str, int]]:
        """(consumer, arg position) pairs reading ``value`` (or any output of a node name)."""
        node, index = (value, None) if isinstance(value, str) else value
        uses = [
            (dst, data["arg"])
            for _, dst, data in self.out_edges(node, data=True)
            if index is None or data["out"] == index
        ]
        return sorted(uses)

    def is_output(self, value: Value | str) -> bool:
        if isinstance(value, str):
            return any(v.node == value for v in self.outputs)
        return value in self.outputs

    def constant(self, value: Value) -> np.ndarray | None:
        """The array behind ``value`` if it is produced by a ``constant`` node."""
        rec = self.record(value.node)
        return rec.value if rec.op == "constant" else None

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in self.records():
            if rec.op not in ("input", "constant"):
                counts[rec.op] = counts.get(rec.op, 0) + 1
        return dict(sorted(counts.items()))

    # ---- building --------------------------------------------------------------------------------------

    def fresh_name(self, hint: str) -> str:
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in hint) or "v"
        if base not in self:
            return base
        for i in itertools.count(1):
            if f"{base}_{i}" not in self:
                return f"{base}_{i}"
        raise AssertionError("unreachable")

    def _next_seq(self) -> int:
        seq = self.graph.get("_seq", 0) + 1
        self.graph["_seq"] = seq
        return seq

    def add_record(self, node: Node, args: Sequence[Value] = ()) -> Node:
        if node.name in self:
            raise ValueError(f"node {node.name!r} already in graph")
        self.add_node(node.name, op=node, seq=self._next_seq())
        for position, value in enumerate(args):
            self.add_edge(value.node, node.name, arg=position, out=value.index)
        return node

    def add_op(
        self,
        op: str,
        args: Sequence[Value],
        attrs: dict[str, Any] | Attrs | None = None,
        *,
        name: str | None = None,
        source: str = "",
    ) -> Node:
        """Add op ``op`` reading ``args``; its output types come from the op's schema."""
        attrs = attrs if isinstance(attrs, Attrs) else Attrs(attrs or {})
        types = OPS[op].infer([self.type_of(a) for a in args], attrs)
        node = Node(self.fresh_name(name or op), op, attrs, tuple(types), source=source)
        return self.add_record(node, args)

    def add_input(self, name: str, ty: TensorType) -> Value:
        node = self.add_record(Node(self.fresh_name(name), "input", Attrs(), (ty,)))
        self.graph["inputs"].append(node.name)
        return Value(node.name)

    def add_constant(self, array: np.ndarray, name: str = "const", source: str = "") -> Value:
        array = np.asarray(array)
        ty = TensorType(array.shape, str(array.dtype))
        node = self.add_record(Node(self.fresh_name(name), "constant", Attrs(), (ty,), array, source))
        return Value(node.name)

    def set_outputs(self, values: Sequence[Value]) -> None:
        self.graph["outputs"] = [tuple(v) for v in values]

    # ---- rewriting -------------------------------------------------------------------------------------

    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every consumer of ``old`` (and the graph outputs) read ``new`` instead."""
        for _, dst, key, data in list(self.out_edges(old.node, keys=True, data=True)):
            if data["out"] == old.index:
                self.remove_edge(old.node, dst, key)
                self.add_edge(new.node, dst, arg=data["arg"], out=new.index)
        self.graph["outputs"] = [tuple(new) if Value(*v) == old else v for v in self.graph["outputs"]]

    def set_args(self, name: str, args: Sequence[Value]) -> None:
        for src, _, key in list(self.in_edges(name, keys=True)):
            self.remove_edge(src, name, key)
        for position, value in enumerate(args):
            self.add_edge(value.node, name, arg=position, out=value.index)

    def replace_record(self, name: str, node: Node) -> None:
        """Swap the record of ``name`` (same name) keeping its edges."""
        if node.name != name:
            raise ValueError("replace_record keeps the node's name")
        self.nodes[name]["op"] = node

    def remove_dead(self) -> int:
        """Remove nodes that no graph output depends on (graph inputs stay). Returns how many."""
        live = {v[0] for v in self.graph["outputs"]}
        for v in list(live):
            live |= nx.ancestors(self, v)
        dead = [n for n in self.nodes if n not in live and n not in self.graph["inputs"]]
        self.remove_nodes_from(dead)
        return len(dead)

    def copy(self, as_view: bool = False) -> Graph:  # type: ignore[override]
        g = super().copy(as_view=as_view)
        g.graph["inputs"] = list(self.graph["inputs"])
        g.graph["outputs"] = list(self.graph["outputs"])
        return g
