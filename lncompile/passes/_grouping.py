"""Helpers the grouped/depthwise passes share (not a pass: no ``PASS`` here).

Channel permutations are index arrays on axis 1: ``y = x[:, idx]`` means output channel ``c`` reads input
channel ``idx[c]``. A per-channel op commutes with such a reordering once its per-channel parameters are
reordered the same way: ``op_p(x)[:, idx] == op_{p[idx]}(x[:, idx])``.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..ir import Graph, Node, Value
from ..ir.ops import UNARY_OPS, input_shuffle_groups

# Target rules these passes read, their values and the value used when a preset names none.
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "mixconv": (("merge", "split"), "split"),
    "grouped_pointwise": (("grouped", "dense", "dense_for_shuffle"), "grouped"),
    "winograd_tile": (("2", "4"), "2"),  # read by winograd_conv
    "distribute_concat": (("on", "off"), "off"),
    "depthwise_concat": (("on", "off"), "off"),  # read by fuse_depthwise_concat
}

# Ops that act on each channel independently with no per-channel parameter (channel axis 1 kept).
_PARAMLESS = frozenset(UNARY_OPS) | {"max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "resize2d"}
_BINARY = frozenset({"add", "sub", "mul", "div", "maximum", "minimum", "pow"})


def rule(rules: dict[str, str], key: str) -> str:
    """The value of target rule ``key`` (its default when absent); an unknown value is a usage error."""
    allowed, default = RULES[key]
    value = rules.get(key, default)
    if value not in allowed:
        raise UsageError(f"target pass rule {key}={value!r} is unknown; use one of {', '.join(allowed)}")
    return value


def count_rule(rules: dict[str, str], key: str, least: int, meaning: str) -> int | None:
    """Target rule ``key`` whose value is ``off`` (the default: None) or a whole number >= ``least``; anything
    else is a usage error saying the rule takes ``meaning``."""
    value = rules.get(key, "off")
    if value == "off":
        return None
    if not value.isdigit() or int(value) < least:
        raise UsageError(f"target pass rule {key}={value!r} is unknown; use off or {meaning}")
    return int(value)


def is_depthwise(graph: Graph, rec: Node) -> bool:
    """A conv2d with groups == in channels == out channels (one filter per channel)."""
    if rec.op != "conv2d":
        return False
    c = graph.arg_types(rec.name)[0].shape[1]
    return rec.attrs["groups"] == c == rec.type.shape[1]


def is_pointwise(graph: Graph, rec: Node) -> bool:
    """A 1x1, stride-1, unpadded conv2d."""
    if rec.op != "conv2d":
        return False
    w = graph.arg_types(rec.name)[1]
    return (w.shape[2:] == (1, 1) and tuple(rec.attrs["strides"]) == (1, 1)
            and not any(rec.attrs["padding"]))


def block_diagonal(w: np.ndarray, groups: int) -> np.ndarray:
    """The dense (groups=1) weight of a grouped conv: ``W[o, k*Cg + j] = w[o, j]`` for ``o`` in group ``k``."""
    o, cg = w.shape[:2]
    og = o // groups
    dense = np.zeros((o, cg * groups, *w.shape[2:]), w.dtype)
    for k in range(groups):
        dense[k * og:(k + 1) * og, k * cg:(k + 1) * cg] = w[k * og:(k + 1) * og]
    return dense


def keeps_groups(index: np.ndarray, groups: int) -> bool:
    """True if ``index`` maps every channel into its own group (block of ``len(index) / groups``)."""
    size = len(index) // groups
    return bool(np.all(index // size == np.arange(len(index)) // size))


def channel_params(graph: Graph, rec: Node) -> tuple[int, list[tuple[int, int]]] | None:
    """For a per-channel op: (data argument, [(parameter argument, its channel axis)]); None otherwise.

    Per-channel means: output channel c depends only on input channel c (and parameter c), and the channel
    axis stays axis 1. Parameters must be constants (they are reordered at compile time). A binary op with
    two tensor operands is not covered here (both would have to carry the same reordering), nor is a depthwise
    conv with ``input_shuffle_groups`` (its output channel c reads input channel perm[c]).
    """
    op, rank = rec.op, rec.type.rank
    args = graph.args(rec.name)
    if op in _PARAMLESS:
        return 0, []
    if op in ("batch_norm", "channel_affine"):
        params = list(range(1, len(args)))
    elif op == "prelu":
        params = [1] if graph.type_of(args[1]).shape != (1,) else []
    elif op == "conv2d" and is_depthwise(graph, rec) and not input_shuffle_groups(rec.attrs):
        params = list(range(1, len(args)))
    elif op in ("mean", "reduce_sum", "reduce_max"):
        axes = {a % graph.type_of(args[0]).rank for a in rec.attrs["axes"]}
        return (0, []) if not axes & {0, 1} else None
    elif op == "pad":
        return (0, []) if all(p == 0 for p in (*rec.attrs["pads"][0], *rec.attrs["pads"][1])) else None
    elif op == "slice":
        return (0, []) if rec.attrs["axis"] % rank > 1 else None
    elif op in _BINARY:
        consts = [i for i in (0, 1) if graph.constant(args[i]) is not None]
        if len(consts) != 1:
            return None
        param, data = consts[0], 1 - consts[0]
        if graph.type_of(args[data]).shape != rec.type.shape:
            return None  # the constant broadcasts the data up: not a per-channel map of it
        const_rank = graph.type_of(args[param]).rank
        axis = const_rank - (rank - 1)
        if axis < 0 or graph.type_of(args[param]).shape[axis] == 1:
            return data, []
        return data, [(param, axis)]
    else:
        return None
    if any(graph.constant(args[i]) is None for i in params):
        return None
    return 0, [(i, 0) for i in params]


def reindexed_args(graph: Graph, rec: Node, index: np.ndarray, data: Value) -> list[Value] | None:
    """Arguments of per-channel ``rec`` with ``data`` as its data and its parameters reordered by ``index``.

    ``op_p(x)[:, index] == op_{p[index]}(x[:, index])``; returns None unless ``rec`` is per-channel.
    """
    found = channel_params(graph, rec)
    if found is None:
        return None
    data_pos, params = found
    args = list(graph.args(rec.name))
    args[data_pos] = data
    for position, axis in params:
        old = args[position]
        array = np.take(graph.constant(old), index, axis=axis)
        args[position] = graph.add_constant(array, f"{old.node}_perm", graph.record(old.node).source)
    return args
