"""lncompile's IR: a networkx graph of frozen op records, with a verifier, a printer and an interpreter."""

from .graph import Graph
from .interpret import run_graph
from .node import Attrs, Node, TensorType, Value
from .ops import OPS, OpSchema, ShapeError
from .printer import format_graph, ir_hash
from .verify import verify

__all__ = [
    "OPS",
    "Attrs",
    "Graph",
    "Node",
    "OpSchema",
    "ShapeError",
    "TensorType",
    "Value",
    "format_graph",
    "ir_hash",
    "run_graph",
    "verify",
]
