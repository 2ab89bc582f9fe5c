"""Fold ``channel_shuffle`` away into neighbouring convolutions, so that no transpose is left to run.

A shuffle is a fixed channel permutation: ``y = x[:, P]`` (output channel c reads input channel P[c]).

Into the producer (tried first): walking up from x through per-channel ops -- batch_norm, elementwise
activations, depthwise conv, ops with per-channel constants -- each commutes with P once its parameters are
reordered, ``op_p(u)[:, P] = op_{p[P]}(u[:, P])``; at a conv, ``conv(u, W, b)[:, P] = conv(u, W[P], b[P])``.
Every tensor on the way must have no other reader.

Into the consumers: ``conv(x[:, P], W) = conv(x, W')`` with ``W'[:, P[c]] = W[:, c]`` (a dense conv sums over
input channels, any kernel size; repeated channels add up). The permutation is pushed down lazily: each tensor
reached is a list of (source tensor, channel) pairs. ``split``/``slice``/``concat`` on channels and further
shuffles only rearrange that list (no op left); a per-channel op runs on the sources gathered once in source
order (one ``concat`` of contiguous ``slice`` s, nothing when it is a single source) with its parameters
reordered; a dense conv (or a ``linear`` on (N, C)) absorbs whatever order arrives. This is what ShuffleNet v2
needs: concat -> shuffle -> split halves, one half into a 1x1 conv, the other passed on to the next concat:
the passed-on half never moves until a conv reads it.

Grouped convs absorb P only if it keeps every channel in its own group (``P[c] // Cg == c // Cg``). ShuffleNet
v1's shuffle sits between two grouped 1x1 convs and mixes their groups on purpose, so it folds only after one
of them is lowered as a dense block-diagonal conv (exact, g x its MACs; see :mod:`grouped_pointwise`): done
when the target rule ``grouped_pointwise`` is ``dense`` or ``dense_for_shuffle``, refused (with the reason)
under ``grouped`` (the CPU presets).

Refused: any path that reaches a graph output, an op that mixes channels but cannot absorb a permutation
(a grouped non-1x1 conv whose groups are mixed, reshape across channels, softmax on channels, ...), or a
binary op combining permuted and unpermuted channels. The shuffle then stays for a later pass,
:mod:`fold_shuffle_into_depthwise` (priority 55): when a depthwise conv is its only reader -- ShuffleNet v1
under ``grouped``, where all but the first unit's shuffle are refused here -- that conv reads its input through
the permutation (attribute ``input_shuffle_groups``, one kernel gathering in its input indexing, no weights
changed). Only a shuffle that neither pass takes is lowered as reshape/permute/reshape.

A depthwise conv that already carries ``input_shuffle_groups`` is not per-channel (output c reads input P[c]),
so it does not pass a permutation here (:func:`_grouping.channel_params` leaves it out); in the default
pipeline it cannot meet this pass anyway, as that attribute is set only later.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Value
from ..ir.ops import channel_shuffle_perm
from ._grouping import channel_params, is_depthwise, keeps_groups, reindexed_args, rule
from ._match import exclusive_reason, prune
from .base import PassStats, graph_pass
from .grouped_pointwise import densify, densify_reason

PRIORITY = 26

Lazy = tuple[tuple[Value, int], ...]


def _perm(g: Graph, name: str) -> np.ndarray:
    return channel_shuffle_perm(g.record(name).type.shape[1], g.record(name).attrs["groups"])


def _const(g: Graph, array: np.ndarray, like: Value) -> Value:
    return g.add_constant(np.ascontiguousarray(array, dtype=g.constant(like).dtype), f"{like.node}_perm",
                          g.record(like.node).source)


def _grouped_reason(g: Graph, name: str, densify_ok: bool, mode: str, where: str) -> str | None:
    """None if grouped conv ``name`` may be densified to take a group-mixing permutation, else why not."""
    if not densify_ok:
        return f"{where} is a grouped conv whose groups the shuffle mixes (rule grouped_pointwise={mode})"
    reason = densify_reason(g, name)
    return None if reason is None else f"{where}: {reason}"


# ---- into the producer ----------------------------------------------------------------------------------

def _into_producer(graph: Graph, name: str, densify_ok: bool, mode: str) -> Graph | str:
    g = graph.copy()
    index = _perm(g, name)
    (cur,) = g.args(name)
    first = cur
    dropped: list[str] = [name]
    while True:
        rec = g.record(cur.node)
        if rec.op in ("input", "constant") or len(rec.outputs) != 1:
            return f"producer is {rec.op}"
        reason = exclusive_reason(g, cur, "a tensor between the producer and the shuffle")
        if reason is not None:
            return reason
        args = g.args(rec.name)
        if rec.op == "conv2d" and not is_depthwise(g, rec):
            if any(g.constant(a) is None for a in args[1:]):
                return "producer conv has non-constant weights"
            groups = rec.attrs["groups"]
            if groups > 1 and not keeps_groups(index, groups):
                why = _grouped_reason(g, rec.name, densify_ok, mode, "producer")
                if why is not None:
                    return why
                densify(g, rec.name)
                args = g.args(rec.name)
            new = [args[0]] + [_const(g, np.take(g.constant(a), index, axis=0), a) for a in args[1:]]
            g.set_args(rec.name, new)
            dropped += [a.node for a in args[1:]]
            break
        found = channel_params(g, rec)
        if found is None:
            return f"producer {rec.op} cannot take a channel permutation"
        new = reindexed_args(g, rec, index, args[found[0]])
        g.set_args(rec.name, new)
        dropped += [a.node for a in args if a not in new]
        cur = args[found[0]]
    g.replace_uses(Value(name), first)
    prune(g, dropped)
    return g


# ---- into the consumers ---------------------------------------------------------------------------------

class _Push:
    """Pushes permutations down from one shuffle; ``lazy`` maps old tensors to their (source, channel) lists."""

    def __init__(self, g: Graph, densify_ok: bool, mode: str) -> None:
        self.g, self.densify_ok, self.mode = g, densify_ok, mode
        self.lazy: dict[Value, Lazy] = {}
        self.cache: dict[Lazy, tuple[Value, np.ndarray]] = {}
        self.region: list[str] = []
        self.dropped: list[str] = []

    def channels(self, v: Value) -> Lazy:
        """The (source, channel) list of ``v``: its own channels unless permuted (empty below rank 2)."""
        if v in self.lazy:
            return self.lazy[v]
        t = self.g.type_of(v)
        return tuple((v, c) for c in range(t.shape[1])) if t.rank >= 2 else ()

    def materialize(self, chans: Lazy, source: str) -> tuple[Value, np.ndarray]:
        """Gather the sources of ``chans`` once, in source order: M with ``chans[c] == M[:, pos[c]]``."""
        if chans in self.cache:
            return self.cache[chans]
        g = self.g
        by_source: dict[Value, set[int]] = {}
        for src, ch in chans:
            by_source.setdefault(src, set()).add(ch)
        pieces: list[Value] = []
        offset: dict[tuple[Value, int], int] = {}
        for src, wanted in by_source.items():
            ordered = sorted(wanted)
            runs = np.split(np.array(ordered), np.nonzero(np.diff(ordered) != 1)[0] + 1)
            for run in runs:
                lo, hi = int(run[0]), int(run[-1]) + 1
                if (lo, hi) == (0, g.type_of(src).shape[1]):
                    pieces.append(src)
                else:
                    node = g.add_op("slice", [src], {"axis": 1, "start": lo, "end": hi, "step": 1},
                                    name=f"{src.node}_ch{lo}_{hi}", source=source)
                    pieces.append(Value(node.name))
                for ch in range(lo, hi):
                    offset[(src, ch)] = len(offset)
        if len(pieces) == 1:
            gathered = pieces[0]
        else:
            gathered = Value(g.add_op("concat", pieces, {"axis": 1}, name="gather", source=source).name)
        pos = np.array([offset[e] for e in chans])
        self.cache[chans] = (gathered, pos)
        return gathered, pos

    def step(self, name: str) -> str | None:
        """Handle node ``name``, which reads at least one permuted tensor; a reason if it cannot."""
        g = self.g
        rec = g.record(name)
        args = g.args(name)
        lazy_args = [i for i, a in enumerate(args) if a in self.lazy]
        ins = [self.channels(a) for a in args]
        if rec.op == "channel_shuffle":
            self.lazy[Value(name)] = tuple(ins[0][p] for p in _perm(g, name))
        elif rec.op in ("split", "slice", "concat") and rec.attrs["axis"] % rec.type.rank == 1:
            if rec.op == "concat":
                self.lazy[Value(name)] = tuple(e for chans in ins for e in chans)
            elif rec.op == "slice":
                self.lazy[Value(name)] = ins[0][rec.attrs["start"]:rec.attrs["end"]:rec.attrs["step"]]
            else:
                bounds = np.cumsum([0, *rec.attrs["sizes"]])
                for i in range(len(rec.outputs)):
                    self.lazy[Value(name, i)] = ins[0][bounds[i]:bounds[i + 1]]
        elif (rec.op == "conv2d" and not is_depthwise(g, rec)) or rec.op == "linear":
            return self.absorb(name, lazy_args)
        else:
            return self.per_channel(name, lazy_args, ins)
        self.region.append(name)
        return None

    def per_channel(self, name: str, lazy_args: list[int], ins: list[Lazy]) -> str | None:
        g = self.g
        rec = g.record(name)
        args = g.args(name)
        if rec.op == "reshape" and rec.type.shape[:2] == g.type_of(args[0]).shape[:2]:
            found: tuple[int, list] | None = (0, [])
        else:
            found = channel_params(g, rec)
        if len(rec.outputs) != 1:
            found = None
        if found is not None and found[0] in lazy_args and len(lazy_args) == 1:
            chans = ins[found[0]]
            if len(set(chans)) != len(chans):
                return f"{rec.op} reads a channel twice after the shuffle"
            gathered, pos = self.materialize(chans, rec.source)
            new_args = reindexed_args(g, rec, np.argsort(pos), gathered) if rec.op != "reshape" else [gathered]
            self.dropped += [a.node for a in args if a not in new_args]
        elif rec.op in ("add", "sub", "mul", "div", "maximum", "minimum", "pow") and len(rec.outputs) == 1:
            new_args, pos = [], None
            for i, a in enumerate(args):
                if i not in lazy_args:
                    t = g.type_of(a)
                    if t.rank != rec.type.rank or t.shape[1] != 1:
                        return f"{rec.op} combines shuffled channels with unshuffled ones"
                    new_args.append(a)
                    continue
                gathered, p = self.materialize(ins[i], rec.source)
                if (pos is not None and not np.array_equal(p, pos)) or len(set(ins[i])) != len(ins[i]):
                    return f"{rec.op} combines tensors shuffled differently"
                pos = p
                new_args.append(gathered)
        else:
            return f"shuffled channels reach {rec.op}, which can neither absorb nor pass a permutation"
        node = g.add_op(rec.op, new_args, rec.attrs, name=f"{name}_p", source=rec.source)
        self.lazy[Value(name)] = tuple((Value(node.name), int(p)) for p in pos)
        self.region.append(name)
        return None

    def absorb(self, name: str, lazy_args: list[int]) -> str | None:
        g = self.g
        rec = g.record(name)
        args = g.args(name)
        if lazy_args != [0]:
            return f"shuffled channels reach argument {lazy_args} of {rec.op}"
        if g.constant(args[1]) is None:
            return f"{rec.op} absorbing the shuffle has non-constant weights"
        if rec.op == "linear" and g.type_of(args[0]).rank != 2:
            return "linear reads shuffled channels on an axis other than its input features"
        chans = self.lazy[args[0]]
        gathered, pos = self.materialize(chans, rec.source)
        groups = rec.attrs.get("groups", 1)
        bijective = len(set(chans)) == len(chans)
        if groups > 1 and not (bijective and keeps_groups(pos, groups)):
            why = _grouped_reason(g, name, self.densify_ok, self.mode, "consumer")
            if why is not None:
                return why
            densify(g, name)
            args, groups = g.args(name), 1
        w = g.constant(args[1])
        if groups == 1:
            new_w = np.zeros((w.shape[0], g.type_of(gathered).shape[1], *w.shape[2:]), w.dtype)
            np.add.at(new_w, (slice(None), pos), w)
        else:
            cg = len(pos) // groups
            og = w.shape[0] // groups
            local = pos - (np.arange(len(pos)) // cg) * cg
            new_w = np.empty_like(w)
            for k in range(groups):
                rows = np.arange(k * og, (k + 1) * og)
                new_w[rows[:, None], local[None, k * cg:(k + 1) * cg]] = w[rows]
        g.set_args(name, [gathered, _const(g, new_w, args[1]), *args[2:]])
        self.dropped.append(args[1].node)
        return None


def _into_consumers(graph: Graph, name: str, densify_ok: bool, mode: str) -> Graph | str:
    g = graph.copy()
    order = g.topo_order()
    push = _Push(g, densify_ok, mode)
    (src,) = g.args(name)
    push.lazy[Value(name)] = tuple((src, int(p)) for p in _perm(g, name))
    push.region.append(name)
    for node in order[order.index(name) + 1:]:
        if any(a in push.lazy for a in g.args(node)):
            reason = push.step(node)
            if reason is not None:
                return reason
    if any(g.is_output(v) for v in push.lazy):
        return "shuffled channels reach a graph output"
    prune(g, [*push.region, *push.dropped])
    return g


# ---- the pass -------------------------------------------------------------------------------------------

@graph_pass("fold_channel_shuffle")
def fold_channel_shuffle(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Fold every channel_shuffle into the convs around it; ``matches`` counts the shuffles removed."""
    mode = rule(rules, "grouped_pointwise")
    densify_ok = mode != "grouped"
    g = graph.copy()
    kept: set[str] = set()
    while True:
        todo = [n for n in g.topo_order() if g.record(n).op == "channel_shuffle" and n not in kept]
        if not todo:
            return g
        name = todo[0]
        before = g.op_counts().get("channel_shuffle", 0)
        reasons: list[str] = []
        for dens in [False, True] if densify_ok else [False]:
            for strategy in (_into_producer, _into_consumers):
                out = strategy(g, name, dens, mode)
                if isinstance(out, Graph):
                    g = out
                    stats.matches += before - g.op_counts().get("channel_shuffle", 0)
                    break
                reasons.append(out)
            else:
                continue
            break
        else:
            kept.add(name)
            stats.refuse(f"into producer: {reasons[-2]}; into consumers: {reasons[-1]}")


PASS = fold_channel_shuffle
