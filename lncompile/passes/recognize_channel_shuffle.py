"""Recognize ShuffleNet's channel shuffle written as reshape -> transpose -> reshape, as one ``channel_shuffle``.

Pattern on x of shape (N, C, H, W): ``reshape(N, a, b, H, W)`` with ``a * b == C`` -> ``transpose(0, 2, 1, 3, 4)``
-> ``reshape(N, C, H, W)``. Output channel ``j*a + i`` reads input channel ``i*b + j``: a fixed permutation,
``channel_shuffle(groups=a)`` (see :func:`lncompile.ir.ops.channel_shuffle_perm`). Both conventions met in
the wild are this one pattern: the paper's view (N, g, C/g, H, W) is ``groups=g``; Megvii's v1 code views
(N, C/g, g, H, W), which is ``groups=C/g`` (the inverse permutation). Exact: it is the same index map.

Refused: intermediate tensors read elsewhere or returned (the 5-d view would still be needed).
"""

from __future__ import annotations

from ..ir import Graph, Value
from ._match import exclusive_reason, matches, only_user, prune
from .base import PassStats, graph_pass

PRIORITY = 20


def _match(g: Graph, name: str) -> tuple[str, str, int] | str | None:
    """(transpose, last reshape, groups) for a shuffle starting at reshape ``name``; a reason; or None."""
    first = g.record(name)
    (src,) = g.args(name)
    xt = g.type_of(src)
    if first.op != "reshape" or xt.rank != 4 or first.type.rank != 5:
        return None
    n, c, h, w = xt.shape
    n2, a, b, h2, w2 = first.type.shape
    if (n2, h2, w2) != (n, h, w) or a * b != c:
        return None
    use = only_user(g, Value(name))
    if use is None or g.record(use[0]).op != "transpose" or tuple(g.record(use[0]).attrs["perm"]) != (0, 2, 1, 3, 4):
        return None
    transpose = use[0]
    last = only_user(g, Value(transpose))
    if last is None or g.record(last[0]).op != "reshape" or g.record(last[0]).type.shape != xt.shape:
        return exclusive_reason(g, Value(transpose), "the transposed view") or "transpose not followed by a reshape"
    return transpose, last[0], a


@graph_pass("recognize_channel_shuffle")
def recognize_channel_shuffle(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Replace reshape -> transpose(0, 2, 1, 3, 4) -> reshape on NCHW by ``channel_shuffle(groups)``."""
    g = graph.copy()
    for name, (_, last, groups) in matches(graph, g, ("reshape",), _match, stats):
        (src,) = g.args(name)
        node = g.add_op("channel_shuffle", [src], {"groups": groups}, name=f"{last}_shuffle",
                        source=g.record(last).source)
        g.replace_uses(Value(last), Value(node.name))
        prune(g, [last])
        stats.matches += 1
    return g


PASS = recognize_channel_shuffle
