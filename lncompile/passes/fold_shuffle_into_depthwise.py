"""Fold a ``channel_shuffle`` that only a depthwise conv reads into that conv's input indexing.

A depthwise conv acts per channel: output channel c is ``conv(x[:, c], w[c]) + b[c]``. So for a shuffle
``y = x[:, P]`` (``P = channel_shuffle_perm(C, g)``, output channel c reads input channel P[c]),

    dw(x[:, P], w, b)[:, c] = conv(x[:, P[c]], w[c]) + b[c]

is a depthwise conv that reads input channel P[c] for output channel c, with unchanged weights and bias: the
conv gets the attribute ``input_shuffle_groups=g`` and the shuffle node goes. Lowering emits such a conv as one
TE kernel that gathers in its input indexing (``(c % g) * (C / g) + c // g``), so no transpose is left to
run; the bias, activation and residual add that follow fuse into that kernel as before.

This is the fallback for what :mod:`fold_channel_shuffle` refuses: ShuffleNet v1's shuffle between a grouped
1x1 conv (+BN+ReLU) and a depthwise 3x3 conv feeding another grouped 1x1 conv, under the CPU rule
``grouped_pointwise=grouped`` (the permutation mixes the groups of both grouped convs and densifying them is
not allowed). Priority 55 puts it after that pass (26: folding into weights, which costs nothing at run time,
stays preferred, e.g. ``dense_for_shuffle`` on CUDA presets) and after BN folding and activation fusion
(40-51), so every pass before it sees the shuffle as before and no pass that reads a conv's input channels
(affine folding, MixConv merging, pushing a permutation through a depthwise conv) meets the attribute; the
consumer may then be a ``conv2d`` or a ``fused_conv2d``.

Refused (with the reason; the shuffle stays, lowered as reshape/permute/reshape): the shuffle output has
another reader or is a graph output, its reader is not a depthwise conv's data input (a grouped non-depthwise
conv, a conv with a channel multiplier, any other op), or the conv already reads its input through a shuffle.
"""

from __future__ import annotations

from ..ir import Graph, Node, Value
from ..ir.ops import INPUT_SHUFFLE, input_shuffle_groups
from ._match import exclusive_reason, matches, prune
from .base import PassStats, graph_pass

PRIORITY = 55


def _match(g: Graph, name: str) -> Node | str:
    """The record of the depthwise conv that shuffle ``name`` folds into, or why it may not fold."""
    reason = exclusive_reason(g, Value(name), "shuffle output")
    if reason is not None:
        return reason
    uses = g.users(Value(name))
    if not uses:
        return "shuffle output is unused"
    ((consumer, arg),) = uses
    rec = g.record(consumer)
    if rec.op not in ("conv2d", "fused_conv2d") or arg != 0:
        return f"shuffle feeds {rec.op} (argument {arg}), not a conv's data input"
    c, o, groups = g.type_of(Value(name)).shape[1], rec.type.shape[1], rec.attrs["groups"]
    if not groups == c == o:
        return f"shuffle feeds a {rec.op} that is not depthwise (groups={groups}, in={c}, out={o})"
    if input_shuffle_groups(rec.attrs):
        return f"the depthwise {rec.op} already reads its input through a shuffle"
    return rec


@graph_pass("fold_shuffle_into_depthwise")
def fold_shuffle_into_depthwise(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Fold each channel_shuffle read only by a depthwise conv into it; ``matches`` counts the shuffles removed."""
    g = graph.copy()
    for name, rec in matches(graph, g, ("channel_shuffle",), _match, stats):
        consumer = rec.name
        attrs = rec.attrs.updated(**{INPUT_SHUFFLE: g.record(name).attrs["groups"]})
        g.replace_record(consumer, rec.with_(attrs=attrs))
        g.set_args(consumer, [g.args(name)[0], *g.args(consumer)[1:]])
        prune(g, [name])
        stats.matches += 1
    return g


PASS = fold_shuffle_into_depthwise
