"""Distribute a channel concat over its readers, so the concatenated tensor is never written.

A channel concat ``y = concat([a, b], axis=1)`` costs a kernel that copies both parts (SqueezeNet's Fire
modules, GhostNet's ghost modules: every block). Each reader of ``y`` can instead read the parts:

- ungrouped conv: with ``w = [w_a | w_b]`` split on its input channels (axis 1),
  ``conv(y, w) + bias = conv(a, w_a) + bias + conv(b, w_b)``: the second conv takes the first's output as its
  residual (a fused_conv2d), and an activation after the conv now follows that sum. The first conv's
  output is written and read back in place of the concat, so this is done only where the conv's output is
  smaller than its input (a Fire module's squeeze conv: 1/8 of it; not SqueezeNet's classifier, 1000 channels
  out of 512 in: its two halves, lightly tuned, took 0.70 ms against 0.46 ms whole);
- per-channel ops, which act on each channel alone: ``f(y) = concat([f(a), f(b)])`` for max/avg pooling, the
  unary activations and a depthwise conv (its weight and bias split on the output channels with the parts);
- binary elementwise ops whose other operand is a concat of the same split ``[c, d]``, or a constant without a
  channel axis to split (a scalar, or size 1 on the channels): ``y + z = concat([a + c, b + d])``.

A per-channel rewrite leaves a new concat further down, which the pass tries in turn (to a fixed point), so a
concat travels through pools and activations until a conv absorbs it. The concat goes only when *every* reader
can take the parts (else it would be computed anyway) and it is no graph output. Refused, with the reason:
concats of more than two parts (each part makes one more kernel per reader; ShuffleNetV2's channel-split concats
have up to nine), parts that are slices of another tensor (reading a slice would copy it), other axes.

Target rule ``distribute_concat``: ``on`` (x86 presets: SqueezeNet 0.95x, GhostNet 0.92x the latency side by
side, with tuned logs for the split convs) or ``off`` (the default: ARM and CUDA, not measured there).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from ..ir import Graph, Value
from ..ir.ops import BINARY_OPS, UNARY_OPS
from ._grouping import is_depthwise, rule
from ._match import prune, remove
from .base import PassStats, graph_pass

if TYPE_CHECKING:
    from ..ir import Node

PRIORITY = 44  # after BatchNorm folding (40-42), before the fusions (45-59) that take the split convs' adds

MAX_PARTS = 2
_PER_CHANNEL = frozenset(UNARY_OPS) | {"max_pool2d", "avg_pool2d"}  # no per-channel parameter to split
_VIEWS = frozenset({"slice", "split"})


def _concat_sizes(g: Graph, value: Value) -> tuple[int, ...] | None:
    rec = g.record(value.node)
    if rec.op != "concat" or rec.type.rank != 4 or rec.attrs["axis"] not in (1, -3):
        return None
    return tuple(t.shape[1] for t in g.arg_types(rec.name))


def _channel_free_constant(g: Graph, value: Value) -> bool:
    array = g.constant(value)
    return array is not None and (array.ndim < 3 or array.shape[-3] == 1)


def _reader_reason(g: Graph, concat: str, reader: str, position: int, sizes: tuple[int, ...]) -> str | None:
    """Why ``reader`` cannot take the parts of ``concat`` (read at ``position``), or None if it can."""
    rec = g.record(reader)
    if rec.op == "conv2d" and position == 0:
        if rec.attrs.get("input_shuffle_groups", 0):
            return "a reader is a conv reading a channel shuffle"
        if any(g.constant(v) is None for v in g.args(reader)[1:]):
            return "a reader is a conv whose weights are not constants"
        if is_depthwise(g, rec):
            return None
        if rec.attrs["groups"] != 1:
            return "a reader is a grouped conv"
        if rec.type.size >= g.record(concat).type.size:
            return "a conv reading it writes more than the concat (its split would add that much traffic)"
        return None
    if rec.op in _PER_CHANNEL:
        return None
    if rec.op in BINARY_OPS:
        a, b = g.args(reader)
        if a == b:
            return None
        other = b if position == 0 else a
        if rec.type != g.record(concat).type:
            return f"a reader ({rec.op}) broadcasts the concat"
        if _concat_sizes(g, other) == sizes or _channel_free_constant(g, other):
            return None
        return f"a reader ({rec.op}) combines it with a tensor not split alike"
    return f"a reader is {rec.op}"


def _match(g: Graph, concat: str) -> tuple[list[Value], list[tuple[str, int]]] | str | None:
    """(parts, readers) of a channel concat every reader can take apart; a refusal reason; or None."""
    value = Value(concat)
    sizes = _concat_sizes(g, value)
    if sizes is None:
        return None
    if g.is_output(value):
        return "concat is a graph output"
    parts = g.args(concat)
    if len(parts) > MAX_PARTS:
        return f"concat of more than {MAX_PARTS} parts"
    if any(g.record(p.node).op in _VIEWS for p in parts):
        return "a part is a slice of another tensor"
    readers = g.users(value)
    if not readers:
        return None  # dead: dead_code removes it
    for reader, position in readers:
        reason = _reader_reason(g, concat, reader, position, sizes)
        if reason is not None:
            return reason
    return parts, readers


def _split_constant(g: Graph, value: Value, axis: int, sizes: list[int], hint: str) -> list[Value]:
    array = g.constant(value)
    assert array is not None
    bounds = np.cumsum([0, *sizes])
    return [g.add_constant(np.ascontiguousarray(np.take(array, range(lo, hi), axis=axis)), f"{hint}_{k}")
            for k, (lo, hi) in enumerate(itertools.pairwise(bounds))]


def _conv_sum(g: Graph, rec: Node, parts: list[Value], sizes: list[int]) -> Value:
    """sum_k conv(part_k, w[:, part k's channels]) + bias, written as the last part's conv alone, then each earlier
    part's conv (the first's with the bias, the others' with a zero one) taking the running sum as its residual.

    Why this order: lowering emits the last part's conv first, so TVM's FuseOps fuses the sum's add (and an
    activation after it) into that conv's kernel, and the first part's conv + bias is a kernel of its own that
    reads only its part; the build then runs it right after that part is written, while it is in cache
    (``tvm_api.run_for_locality``). Summed the other way, FuseOps puts the first part's conv last.
    """
    _, w, *bias = g.args(rec.name)
    dtype = rec.type.dtype
    weights = _split_constant(g, w, 1, sizes, f"{rec.name}_w")
    last = len(parts) - 1
    total = Value(g.add_op("conv2d", [parts[last], weights[last]], rec.attrs, name=f"{rec.name}_part{last}",
                           source=rec.source).name)
    fused = {**dict(rec.attrs), "activation": "none", "residual": True}
    for k in reversed(range(last)):
        b = bias[0] if k == 0 and bias else g.add_constant(np.zeros(rec.type.shape[1], dtype), f"{rec.name}_b{k}")
        total = Value(g.add_op("fused_conv2d", [parts[k], weights[k], b, total], fused, name=f"{rec.name}_part{k}",
                               source=rec.source).name)
    return total


def _per_part(g: Graph, rec: Node, parts: list[Value], sizes: list[int], position: int,
              concat: str) -> Value:
    """concat([f(part) for each part]) for a per-channel reader ``f``."""
    args = g.args(rec.name)
    if rec.op == "conv2d":  # depthwise: each part keeps its own filters
        weights = _split_constant(g, args[1], 0, sizes, f"{rec.name}_w")
        biases = _split_constant(g, args[2], 0, sizes, f"{rec.name}_b") if len(args) > 2 else []
        part_args = [[part, weights[k], *biases[k:k + 1]] for k, part in enumerate(parts)]
    elif rec.op in BINARY_OPS and args[0] == args[1]:
        part_args = [[part, part] for part in parts]
    elif rec.op in BINARY_OPS:
        other = args[1 - position]
        others = g.args(other.node) if _concat_sizes(g, other) is not None else [other] * len(parts)
        part_args = [[part, o] if position == 0 else [o, part] for part, o in zip(parts, others, strict=True)]
    else:
        part_args = [[part] for part in parts]
    outputs = []
    for k, (size, each) in enumerate(zip(sizes, part_args, strict=True)):
        attrs = {**dict(rec.attrs), **({"groups": size} if rec.op == "conv2d" else {})}
        outputs.append(Value(g.add_op(rec.op, each, attrs, name=f"{rec.name}_part{k}", source=rec.source).name))
    merged = g.add_op("concat", outputs, {"axis": 1}, name=f"{concat}_{rec.name}", source=g.record(concat).source)
    return Value(merged.name)


@graph_pass("distribute_concat")
def distribute_concat(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Rewrite each channel concat's readers to read its parts, until no concat can go (target rule
    ``distribute_concat``: ``on``, or ``off``, the default)."""
    if rule(rules, "distribute_concat") == "off":
        return graph
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        stats.refused.clear()  # recounted each sweep: the last sweep's are the concats that stayed
        for concat in g.topo_order():
            if concat not in g or g.record(concat).op != "concat":
                continue
            found = _match(g, concat)
            if found is None:
                continue
            if isinstance(found, str):
                stats.refuse(found)
                continue
            parts, readers = found
            sizes = [g.type_of(p).shape[1] for p in parts]
            for reader, position in dict(reversed(readers)).items():  # each reader once (x + x reads it twice)
                rec = g.record(reader)
                if rec.op == "conv2d" and rec.attrs["groups"] == 1:
                    new = _conv_sum(g, rec, parts, sizes)
                else:
                    new = _per_part(g, rec, parts, sizes, position, concat)
                read = g.args(reader)
                g.replace_uses(Value(reader), new)
                remove(g, reader)
                prune(g, [v.node for v in read if v.node != concat], cascade=False)  # the other concat of a sum
            remove(g, concat)
            stats.matches += 1
            changed = True
    return g


PASS = distribute_concat
