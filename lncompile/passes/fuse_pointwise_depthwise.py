"""Fuse a pointwise conv and the depthwise conv that alone reads it into one ``fused_pointwise_depthwise`` node,
where the tensor between them is large (target rule ``fuse_pointwise_depthwise``: the least size in MiB, or
``off``, the default).

    fused_pointwise_depthwise(x, w1, b1, w2, b2) = act(dwconv(pw_act(conv1x1(x, w1) + b1), w2) + b2)

Both nodes are ``fused_conv2d`` (this runs after ``fuse_conv_activation``) or plain ``conv2d`` (activation none,
a zero bias if it has none): the first 1x1, stride 1, unpadded, ungrouped; the second depthwise (groups ==
channels) with dilation 1; neither with a residual add; activations none, relu, clip, hardswish or silu. The expression
is the two nodes' composition, so outputs are unchanged: the node is only a promise to the backend that nobody
else reads the expanded tensor.

Why: an inverted residual's expanded activation (MobileNetV2's 16 -> 96 channels at 112x112: 4.6 MiB) falls out
of cache between the kernel writing it and the one reading it; the backend computes it tile by tile instead
(:mod:`lncompile.backend.pointwise_depthwise`). Smaller tensors stay in cache, where the tuned separate kernels
are as fast or faster (MobileNetV2's 56x56x144 -> 28x28 pair: 168 us separate, 207 us fused, inside the
model), hence the size rule.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..ir import Graph, Node, Value
from ..ir.ops import POINTWISE_DEPTHWISE_ACTIVATIONS
from ._match import conv_activation, exclusive_reason, matches, remove, weight_and_bias
from .base import PassStats, graph_pass

PRIORITY = 55  # after fuse_conv_activation (50)
RULE = "fuse_pointwise_depthwise"


def min_bytes(rules: dict[str, str]) -> int | None:
    """The least expanded-tensor size the target's rule fuses, in bytes; None when the rule is off."""
    value = rules.get(RULE, "off")
    if value == "off":
        return None
    try:
        mib = float(value)
    except ValueError:
        mib = -1.0
    if mib < 0:
        raise UsageError(f"target pass rule {RULE}={value!r} is unknown; use off or a size in MiB")
    return int(mib * 2**20)


def _fusable(rec: Node) -> bool:
    """A conv2d, or a fused_conv2d with no residual add and an activation the fused kernel computes; dilation 1."""
    if rec.op == "fused_conv2d":
        fused_ok = not rec.attrs["residual"] and rec.attrs["activation"] in POINTWISE_DEPTHWISE_ACTIVATIONS
    else:
        fused_ok = rec.op == "conv2d"
    return fused_ok and tuple(rec.attrs["dilation"]) == (1, 1)


def _match(g: Graph, name: str) -> tuple[str] | str | None:
    """(the depthwise node reading pointwise ``name``,); a refusal reason; or None (not this pattern)."""
    rec = g.record(name)
    pointwise = (_fusable(rec) and rec.attrs["groups"] == 1 and tuple(rec.attrs["strides"]) == (1, 1)
                 and not any(rec.attrs["padding"]) and g.arg_types(name)[1].shape[2:] == (1, 1))
    uses = g.users(Value(name))
    if not pointwise or not uses or uses[0][1] != 0:
        return None
    dw = g.record(uses[0][0])
    channels = rec.type.shape[1]
    if not (_fusable(dw) and dw.attrs["groups"] == channels == dw.type.shape[1]
            and not dw.attrs.get("input_shuffle_groups", 0)):
        return None
    return exclusive_reason(g, Value(name), "expanded tensor") or (dw.name,)


@graph_pass("fuse_pointwise_depthwise")
def fuse_pointwise_depthwise(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Fuse pointwise -> depthwise conv pairs whose expanded tensor is at least the target rule's size."""
    least = min_bytes(rules)
    g = graph.copy()
    for pw, (dw,) in matches(graph, g, ("conv2d", "fused_conv2d"), _match, stats):
        pw_rec, dw_rec = g.record(pw), g.record(dw)
        size = int(np.prod(pw_rec.type.shape)) * np.dtype(pw_rec.type.dtype).itemsize
        if least is None or size < least:
            kept = "every pair" if least is None else f"expanded tensors under {rules[RULE]} MiB"
            stats.refuse(f"rule {RULE}={rules.get(RULE, 'off')} keeps {kept} as two kernels")
            continue
        x = g.args(pw)[0]
        (w1, b1), (w2, b2) = weight_and_bias(g, pw), weight_and_bias(g, dw)
        (pw_act, pw_params), (dw_act, dw_params) = conv_activation(pw_rec), conv_activation(dw_rec)
        conv_attrs = {k: dw_rec.attrs[k] for k in ("strides", "padding", "dilation")}
        attrs = {**conv_attrs, "activation": dw_act, **dw_params, "pw_activation": pw_act,
                 **{f"pw_{k}": v for k, v in pw_params.items()}}
        fused = g.add_op("fused_pointwise_depthwise", [x, w1, b1, w2, b2], attrs, name=f"{pw}_{dw}",
                         source=pw_rec.source)
        g.replace_uses(Value(dw), Value(fused.name))
        remove(g, dw, pw)
        stats.matches += 1
    return g


PASS = fuse_pointwise_depthwise
