"""Split and concat as slices: channel splits become ``slice`` s, and slices that undo a concat disappear.

Three exact rewrites, in this order:

1. ``concat(p_0, ..., p_n)`` whose parts are consecutive pieces (``split`` outputs or step-1 ``slice`` s, same
   axis) of one tensor x covering ``x[lo:hi]`` in order -> x when it is all of x, else ``slice(x, lo, hi)``.
2. ``split(x, sizes)`` -> one ``slice(x, off_i, off_i + size_i)`` per part that is read (unread parts vanish).
   Relax's ``strided_slice`` is injective and fuses into its consumers' kernels; ``split`` yields a tuple
   that TVM's fusion does not always see through, so it tends to cost a copy per part.
3. ``slice(concat(x_0, ..., x_n))`` on the concat axis lying inside one input x_i -> x_i when it takes exactly
   x_i (the Ghost module's ``cat([y, cheap(y)])[:, :c]`` with c = |y|), else the same slice of x_i shifted by
   x_i's offset. Refused (the slice stays): a slice that straddles two inputs -- it needs data from both.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..ir import Graph, Value
from ._match import prune
from .base import PassStats, graph_pass

PRIORITY = 30


def _piece(g: Graph, v: Value) -> tuple[Value, int, int, int] | None:
    """(source, axis, lo, hi) if ``v`` is a contiguous piece of another tensor along ``axis``."""
    rec = g.record(v.node)
    if rec.op == "split":
        bounds = np.cumsum([0, *rec.attrs["sizes"]])
        return g.args(v.node)[0], rec.attrs["axis"] % rec.type.rank, int(bounds[v.index]), int(bounds[v.index + 1])
    if rec.op == "slice" and rec.attrs["step"] == 1:
        return g.args(v.node)[0], rec.attrs["axis"] % rec.type.rank, rec.attrs["start"], rec.attrs["end"]
    return None


def _rejoin(g: Graph, name: str, stats: PassStats) -> None:
    rec = g.record(name)
    pieces = [_piece(g, v) for v in g.args(name)]
    if any(p is None for p in pieces):
        return
    axis = rec.attrs["axis"] % rec.type.rank
    source = pieces[0][0]
    if any(p[0] != source or p[1] != axis for p in pieces):
        return
    if any(a[3] != b[2] for a, b in itertools.pairwise(pieces)):
        return
    lo, hi = pieces[0][2], pieces[-1][3]
    if (lo, hi) == (0, g.type_of(source).shape[axis]):
        new = source
    else:
        attrs = {"axis": axis, "start": lo, "end": hi, "step": 1}
        new = Value(g.add_op("slice", [source], attrs, name=f"{name}_slice", source=rec.source).name)
    g.replace_uses(Value(name), new)
    prune(g, [name])
    stats.matches += 1


def _split_to_slices(g: Graph, name: str, stats: PassStats) -> None:
    rec = g.record(name)
    (x,) = g.args(name)
    axis = rec.attrs["axis"] % rec.type.rank
    bounds = np.cumsum([0, *rec.attrs["sizes"]])
    for i in range(len(rec.outputs)):
        part = Value(name, i)
        if not g.users(part) and not g.is_output(part):
            continue
        attrs = {"axis": axis, "start": int(bounds[i]), "end": int(bounds[i + 1]), "step": 1}
        node = g.add_op("slice", [x], attrs, name=f"{name}_{i}", source=rec.source)
        g.replace_uses(part, Value(node.name))
    prune(g, [name])
    stats.matches += 1


def _slice_of_concat(g: Graph, name: str, stats: PassStats) -> bool | str:
    """True if rewritten; a reason if the slice reads a concat but cannot be moved onto one input."""
    rec = g.record(name)
    (src,) = g.args(name)
    cat = g.record(src.node)
    axis = rec.attrs["axis"] % rec.type.rank
    if cat.op != "concat" or cat.attrs["axis"] % cat.type.rank != axis:
        return False
    start, end, step = rec.attrs["start"], rec.attrs["end"], rec.attrs["step"]
    last = start + step * (rec.type.shape[axis] - 1)  # the last index actually read
    offset = 0
    for x in g.args(src.node):
        size = g.type_of(x).shape[axis]
        if offset <= start and last < offset + size:
            if (start - offset, step, rec.type.shape[axis]) == (0, 1, size):
                new = x
            else:
                attrs = {"axis": axis, "start": start - offset, "end": min(end - offset, size), "step": step}
                new = Value(g.add_op("slice", [x], attrs, name=f"{name}_in", source=rec.source).name)
            g.replace_uses(Value(name), new)
            prune(g, [name])
            stats.matches += 1
            return True
        offset += size
    return "slice straddles two concat inputs (needs data from both)"


@graph_pass("split_to_slices")
def split_to_slices(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Re-joined pieces -> their source; split -> slices; slice of a concat inside one input -> that input."""
    g = graph.copy()
    for name in graph.topo_order():
        if name in g and g.record(name).op == "concat":
            _rejoin(g, name, stats)
    for name in g.topo_order():
        if name in g and g.record(name).op == "split":
            _split_to_slices(g, name, stats)
    refused: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name in g.topo_order():
            if name not in g or name in refused or g.record(name).op != "slice":
                continue
            done = _slice_of_concat(g, name, stats)
            if isinstance(done, str):
                refused.add(name)
                stats.refuse(done)
            changed = changed or done is True
    return g


PASS = split_to_slices
