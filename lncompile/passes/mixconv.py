"""MixConv: split(channels) -> one depthwise conv per part, kernel sizes differing -> concat, as ONE depthwise conv.

A depthwise conv with kernel k and top/left padding p reads ``x[i*s - p + t]`` for taps t < k. Placing that
kernel inside a K x K one at offset ``d = P - p`` (P: the padding of the largest kernel) reads
``x[i*s - P + T]`` with ``T = t + d``, the same pixels; the other taps are zeros. So with every part's kernel
zero-padded to the largest size (centred for 'same' padding: d = (K - k) / 2), one depthwise conv over all
channels (weights and biases concatenated in split order) equals the split/convs/concat exactly, provided
strides agree, dilation is 1 and the bottom/right padding lines up too (``K - k - d == P_hi - p_hi``).

Cost: every channel then pays the largest kernel (K^2 instead of k^2 MACs), in exchange for one kernel launch
and no split/concat copies. Target rule ``mixconv``: ``merge`` rewrites, ``split`` keeps the parts.
Refused (with the reason): parts that are not depthwise, strides that differ, dilation != 1, padding that does
not line up, tensors read elsewhere, a part reading its input through a folded channel shuffle.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Value
from ..ir.ops import input_shuffle_groups
from ._grouping import is_depthwise, rule
from ._match import matches, only_user, prune
from .base import PassStats, graph_pass

PRIORITY = 22


def _match(g: Graph, split: str) -> tuple[list[str], str] | str | None:
    """(the per-part convs in order, the concat) for a MixConv at ``split``; a refusal reason; or None."""
    rec = g.record(split)
    if rec.attrs["axis"] % rec.type.rank != 1 or rec.type.rank != 4:
        return None
    convs = []
    for i in range(len(rec.outputs)):
        use = only_user(g, Value(split, i))
        if use is None or use[1] != 0 or g.record(use[0]).op != "conv2d":
            return None
        convs.append(use[0])
    cats = [only_user(g, Value(c)) for c in convs]
    if any(u is None for u in cats) or len({u[0] for u in cats}) != 1:
        return None
    cat = cats[0][0]
    if g.record(cat).op != "concat" or g.args(cat) != [Value(c) for c in convs] or g.record(cat).attrs["axis"] != 1:
        return None
    recs = [g.record(c) for c in convs]
    if not all(is_depthwise(g, r) for r in recs):
        return "a part is not a depthwise conv"
    if any(input_shuffle_groups(r.attrs) for r in recs):
        return "a part reads its input through a channel shuffle"
    if len({tuple(r.attrs["strides"]) for r in recs}) != 1:
        return "parts have different strides"
    if any(tuple(r.attrs["dilation"]) != (1, 1) for r in recs):
        return "a part has dilation != 1"
    if any(g.constant(a) is None for c in convs for a in g.args(c)[1:]):
        return "a part has non-constant weights"
    kernels = [g.arg_types(c)[1].shape[2:] for c in convs]
    big = int(np.argmax([kh * kw for kh, kw in kernels]))
    kh_max, kw_max = kernels[big]
    top, left, bottom, right = recs[big].attrs["padding"]
    for (kh, kw), r in zip(kernels, recs, strict=True):
        t, lft, b, rt = r.attrs["padding"]
        dh, dw = top - t, left - lft
        if not (0 <= dh <= kh_max - kh and 0 <= dw <= kw_max - kw) or (kh_max - kh - dh, kw_max - kw - dw) != (
            bottom - b,
            right - rt,
        ):
            return "padding of the parts does not line up inside the largest kernel"
    return convs, cat


@graph_pass("mixconv")
def mixconv(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """With rule mixconv=merge, rewrite split -> depthwise convs (mixed kernels) -> concat as one depthwise conv."""
    mode = rule(rules, "mixconv")
    g = graph.copy()
    for name, (convs, cat) in matches(graph, g, ("split",), _match, stats):
        if mode != "merge":
            stats.refuse(f"rule mixconv={mode} keeps MixConv parts as separate convs")
            continue
        recs = [g.record(c) for c in convs]
        kernels = [g.arg_types(c)[1].shape[2:] for c in convs]
        big = int(np.argmax([kh * kw for kh, kw in kernels]))
        kh_max, kw_max = kernels[big]
        top, left = recs[big].attrs["padding"][:2]
        weights, biases = [], []
        for c, r, (kh, kw) in zip(convs, recs, kernels, strict=True):
            args = g.args(c)
            w = g.constant(args[1])
            dh, dw = top - r.attrs["padding"][0], left - r.attrs["padding"][1]
            padded = np.zeros((w.shape[0], 1, kh_max, kw_max), w.dtype)
            padded[:, :, dh:dh + kh, dw:dw + kw] = w
            weights.append(padded)
            biases.append(g.constant(args[2]) if len(args) > 2 else np.zeros(w.shape[0], w.dtype))
        (x,) = g.args(name)
        channels = g.type_of(x).shape[1]
        args = [x, g.add_constant(np.concatenate(weights), f"{cat}_weight", recs[big].source)]
        if any(len(g.args(c)) > 2 for c in convs):
            args.append(g.add_constant(np.concatenate(biases), f"{cat}_bias", recs[big].source))
        attrs = {**recs[big].attrs, "groups": channels}
        node = g.add_op("conv2d", args, attrs, name=f"{cat}_mixconv", source=g.record(cat).source)
        g.replace_uses(Value(cat), Value(node.name))
        prune(g, [cat])
        stats.matches += 1
    return g


PASS = mixconv
