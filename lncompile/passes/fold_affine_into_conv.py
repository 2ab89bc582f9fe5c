"""Fold a per-channel affine (a BN that had no conv before it) forward into the conv2d it feeds.

For ``y = conv(a * x + c, w) + b`` with per-input-channel ``a``, ``c``, and group ``g(o) = o // (O / groups)``
reading input channels ``g(o) * Cg + i`` (``Cg = C / groups``):

    w'[o, i, kh, kw] = w[o, i, kh, kw] * a[g(o) * Cg + i]
    b'[o] = b[o] + sum_{i, kh, kw} w[o, i, kh, kw] * c[g(o) * Cg + i]

Exact condition: the conv pads with zeros *after* the affine, so border taps see 0, not ``c``. The scale
commutes with zero padding (``a * 0 = 0``), the shift does not. So we fold only when the conv has no padding,
or when the shift is zero everywhere. Otherwise (and when the affine output has other readers, is a graph
output, or feeds something other than a conv's data input) the affine stays one fused node.

A depthwise conv with ``input_shuffle_groups`` (:mod:`fold_shuffle_into_depthwise`) reads x's channel
``perm[g(o) * Cg + i]`` instead (``perm = channel_shuffle_perm(C, that groups)``), and is indexed so.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.ops import channel_shuffle_perm, input_shuffle_groups
from ._match import constants, exclusive_reason, matches, remove
from .base import PassStats, graph_pass

PRIORITY = 42


def _match(g: Graph, name: str) -> Node | str:
    """The record of the conv2d that affine ``name`` folds into, or why it may not fold."""
    reason = exclusive_reason(g, Value(name), "affine output")
    if reason is not None:
        return reason
    uses = g.users(Value(name))
    if not uses:
        return "affine output is unused"
    consumer, arg = uses[0]
    crec = g.record(consumer)
    if crec.op != "conv2d" or arg != 0:
        return f"affine feeds {crec.op}, not a conv2d's data input"
    if constants(g, g.args(name)[1:]) is None or constants(g, g.args(consumer)[1:]) is None:
        return "affine parameters or conv weights are not constants"
    shift = g.constant(g.args(name)[2])
    if any(crec.attrs["padding"]) and np.any(shift != 0):
        return "conv pads with zeros and the shift is nonzero (does not commute with the padded border)"
    return crec


@graph_pass("fold_affine_into_conv")
def fold_affine_into_conv(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Fold channel_affine -> conv2d into the conv's weights and bias where exact."""
    g = graph.copy()
    for name, crec in matches(graph, g, ("channel_affine",), _match, stats):
        consumer = crec.name
        x, a_value, c_value = g.args(name)
        _, w_value, *b_value = g.args(consumer)
        w = np.asarray(g.constant(w_value), np.float64)
        b = np.asarray(g.constant(b_value[0]), np.float64) if b_value else np.zeros(w.shape[0])
        a = np.asarray(g.constant(a_value), np.float64)
        c = np.asarray(g.constant(c_value), np.float64)
        out_ch, cg = w.shape[:2]
        group = np.arange(out_ch) // (out_ch // crec.attrs["groups"])
        channel = group[:, None] * cg + np.arange(cg)[None, :]  # [O, Cg]: input channel each weight reads
        shuffle = input_shuffle_groups(crec.attrs)
        if shuffle:  # a depthwise conv reading channel_shuffle(x): its input channel j is x's channel perm[j]
            channel = channel_shuffle_perm(len(a), shuffle)[channel]
        w_new = w * a[channel][:, :, None, None]
        b_new = b + np.einsum("oikl,oi->o", w, c[channel])
        dtype = crec.type.dtype
        g.set_args(consumer, [x, g.add_constant(w_new.astype(dtype), f"{consumer}_w_affine"),
                              g.add_constant(b_new.astype(dtype), f"{consumer}_b_affine")])
        remove(g, name)
        stats.matches += 1
    return g


PASS = fold_affine_into_conv
