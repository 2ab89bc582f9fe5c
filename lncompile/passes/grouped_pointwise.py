"""Grouped 1x1 convolutions: keep them grouped, or lower them as dense 1x1 convs with a block-diagonal weight.

A grouped conv with g groups computes, for output channel o in group k = o // (O/g),
``y[o] = sum_j w[o, j] * x[k*Cg + j]`` (Cg = C/g). The dense conv with ``W[o, k*Cg + j] = w[o, j]`` and zeros
elsewhere computes the same sum (the extra terms are exact zeros), so the rewrite is exact, but it costs
**g times the MACs** (O*C instead of O*C/g per pixel) and g times the weight memory. It pays where grouped
kernels are badly served (few large groups on GPUs) and where a dense conv can absorb a channel shuffle.

Target rule ``grouped_pointwise``:
  ``grouped``            keep grouped 1x1 convs (CPU presets: the MACs are the cost there);
  ``dense``              rewrite every grouped 1x1 conv as dense;
  ``dense_for_shuffle``  keep them here; :mod:`fold_channel_shuffle` densifies only the ones a channel
                         shuffle must fold into (GPU presets: trade a few MACs for a transpose kernel).
Depthwise 1x1 convs (groups == channels) are never densified: that would cost C times the MACs.
"""

from __future__ import annotations

from ..ir import Attrs, Graph
from ._grouping import block_diagonal, is_depthwise, is_pointwise, rule
from ._match import prune
from .base import PassStats, graph_pass

PRIORITY = 24


def densify(g: Graph, name: str) -> None:
    """Rewrite grouped conv ``name`` (in place, on the caller's copy) as its dense block-diagonal equivalent."""
    rec = g.record(name)
    args = g.args(name)
    weight = g.constant(args[1])
    dense = g.add_constant(block_diagonal(weight, rec.attrs["groups"]), f"{args[1].node}_dense",
                           g.record(args[1].node).source)
    attrs = {k: v for k, v in rec.attrs.items() if k != "depthwise"}
    g.replace_record(name, rec.with_(attrs=Attrs({**attrs, "groups": 1})))
    g.set_args(name, [args[0], dense, *args[2:]])
    prune(g, [args[1].node])


def densify_reason(g: Graph, name: str) -> str | None:
    """Why grouped conv ``name`` cannot be lowered dense, or None."""
    rec = g.record(name)
    if is_depthwise(g, rec):
        return "depthwise conv: dense would cost C x the MACs"
    if not is_pointwise(g, rec):
        return "grouped conv is not 1x1 (only grouped 1x1 convs are densified)"
    if g.constant(g.args(name)[1]) is None:
        return "grouped conv weight is not a constant"
    return None


@graph_pass("grouped_pointwise")
def grouped_pointwise(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """With rule grouped_pointwise=dense, rewrite grouped 1x1 convs as dense block-diagonal 1x1 convs."""
    mode = rule(rules, "grouped_pointwise")
    g = graph.copy()
    for name in graph.topo_order():
        rec = g.record(name)
        if rec.op != "conv2d" or rec.attrs["groups"] == 1 or is_depthwise(g, rec) or not is_pointwise(g, rec):
            continue
        if mode != "dense":
            stats.refuse(f"rule grouped_pointwise={mode} keeps grouped 1x1 convs")
            continue
        reason = densify_reason(g, name)
        if reason is not None:
            stats.refuse(reason)
            continue
        densify(g, name)
        stats.matches += 1
    return g


PASS = grouped_pointwise
