"""Fuse a channel concat of a tensor and the depthwise conv of it (a ghost module's ``[y, cheap(y)]``) into one
``depthwise_concat`` node, with the residual add that alone reads the concat if there is one (target rule
``depthwise_concat``: ``on``, or ``off``, the default).

    depthwise_concat(y, w, b[, r]) = concat([y, act(dwconv(y, w) + b)], axis=1) [+ r]

The conv is a ``conv2d`` or ``fused_conv2d`` (activation none, relu, clip, hardswish or silu; no residual) with
groups == channels, stride 1, dilation 1 and an output of y's size, read by the concat only, as its second
part after y itself; the add is ``add(concat, r)`` or ``add(r, concat)`` with r of the concat's shape. The
expression is the nodes' composition, so outputs are unchanged.

Why: concats that ``distribute_concat`` cannot remove (GhostNet's feed a residual add or a squeeze-and-excitation:
22 of 32) are kernels of their own that read y and the conv's output back from memory to copy them; the backend
(:mod:`lncompile.backend.depthwise`) writes y beside the conv while both are in registers or cache.
"""

from __future__ import annotations

from ..ir import Graph, Value
from ..ir.ops import POINTWISE_DEPTHWISE_ACTIVATIONS, input_shuffle_groups
from ._grouping import rule
from ._match import conv_activation, exclusive_reason, matches, only_user, remove, weight_and_bias
from .base import PassStats, graph_pass

PRIORITY = 56  # after distribute_concat (44), which removes the concats a conv reads, and the conv fusions (50-55)
RULE = "depthwise_concat"

Match = tuple[Value, str, str | None]  # (y, the depthwise conv, the add reading the concat or None)


def _match(g: Graph, name: str) -> Match | str | None:
    """(y, conv, add) for concat ``name`` of y and a depthwise conv of y; a refusal reason; None (not the pattern)."""
    rec = g.record(name)
    args = g.args(name)
    if rec.attrs["axis"] != 1 or len(args) != 2 or g.record(args[1].node).op not in ("conv2d", "fused_conv2d"):
        return None
    y, conv = args[0], g.record(args[1].node)
    if g.args(conv.name)[0] != y:
        return None
    at = conv.attrs
    channels = g.arg_types(name)[0].shape[1]
    activation, _ = conv_activation(conv)
    if not (at["groups"] == channels == conv.type.shape[1] and not input_shuffle_groups(at)
            and tuple(at["strides"]) == (1, 1) and tuple(at["dilation"]) == (1, 1) and not at.get("residual")
            and conv.type == g.arg_types(name)[0] and activation in POINTWISE_DEPTHWISE_ACTIVATIONS):
        return "the conv is not a stride-1 depthwise conv of the concat's first part with a kernel's activation"
    reason = exclusive_reason(g, Value(conv.name), "the depthwise conv's output")
    if reason:
        return reason
    use = only_user(g, Value(name))
    add = use[0] if use and g.record(use[0]).op == "add" else None
    if add is not None and not all(t == rec.type for t in g.arg_types(add)):
        add = None  # a broadcast add stays
    return y, conv.name, add


@graph_pass("fuse_depthwise_concat")
def fuse_depthwise_concat(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Fuse concat(y, depthwise_conv(y)) [+ r] into depthwise_concat nodes where the target rule is on."""
    on = rule(rules, RULE) == "on"
    g = graph.copy()
    for cat, (y, conv, add) in matches(graph, g, ("concat",), _match, stats):
        if not on:
            stats.refuse(f"rule {RULE}=off keeps the concat and the depthwise conv apart")
            continue
        conv_rec = g.record(conv)
        w, b = weight_and_bias(g, conv)
        activation, params = conv_activation(conv_rec)
        attrs = {"padding": conv_rec.attrs["padding"], "activation": activation, "residual": add is not None,
                 **params}
        inputs = [y, w, b]
        if add is not None:
            inputs.append(next(v for v in g.args(add) if v != Value(cat)))
        fused = g.add_op("depthwise_concat", inputs, attrs, name=f"{cat}_{conv}", source=g.record(cat).source)
        replaced = add if add is not None else cat
        g.replace_uses(Value(replaced), Value(fused.name))
        remove(g, *([add] if add is not None else []), cat, conv)
        stats.matches += 1
    return g


PASS = fuse_depthwise_concat
