"""Pad a dense conv's output channels up to a multiple of the target's vector width (target rule
``pad_channels``: the multiple, or ``off``, the default), then slice the real channels back out.

    conv(x, [W; 0])[:, :O] + [b; 0][:O] == conv(x, W) + b        (W: [O, C, kh, kw], zero filters appended)

Pattern: a ``conv2d`` or ``fused_conv2d`` with a constant weight, one group, no residual and no prelu (their
extra inputs have O channels). Check: O is not a multiple of the rule's value and padding it adds at most
``MAX_EXTRA`` of the conv's work. Rewrite: the same op with weight and bias zero-padded to O' channels, followed
by ``slice(axis=1, 0, O)``. Exact: the padded filters' outputs (act(0 + 0), whatever the activation) are dropped
by the slice, and every real channel sums the same products in the same order.

Why: the tuned kernel vectorizes over output channels (channels-last), and its vector tile must divide O. For
SqueezeNet's classifier (1x1, 512 -> 1000 at 13x13) 1000 = 2^3 x 5^3 admits 8 lanes at most, half an AVX-512
register: measured on this project's znver5 box (2 threads, the kernel alone, tuned), 1000 channels 0.714 ms
after 164 trials, 1008 channels 0.415 ms after 128. The slice is injective and fuses into the consumer's
kernel (there, the global average pool).
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Value
from ._grouping import count_rule
from ._match import matches, remove, weight_and_bias
from .base import PassStats, graph_pass

PRIORITY = 57  # after the conv fusions (50-55), so the activation is inside the padded node
RULE = "pad_channels"
MAX_EXTRA = 1 / 32  # the most extra work padding may add (1000 -> 1008 adds 0.8%; 40 -> 48 would add 20%)


def multiple_of(rules: dict[str, str]) -> int | None:
    """The channel multiple the target's rule pads to; None when the rule is off."""
    return count_rule(rules, RULE, 2, "a channel multiple >= 2")


def _match(g: Graph, name: str, multiple: int) -> tuple[int, int] | str | None:
    """(output channels, channels to add) of a dense conv whose channels are not a multiple of ``multiple``;
    a refusal; None otherwise."""
    rec = g.record(name)
    weight = g.constant(g.args(name)[1])
    if weight is None or weight.ndim != 4 or rec.attrs["groups"] != 1:
        return None
    channels = int(weight.shape[0])
    extra = -channels % multiple
    if extra == 0:
        return None
    if rec.op == "fused_conv2d" and (rec.attrs["residual"] or rec.attrs["activation"] == "prelu"):
        return "a residual or prelu input has the conv's channel count"
    if extra > MAX_EXTRA * channels:
        return f"padding to a multiple of {multiple} would add over {MAX_EXTRA:.1%} work"
    return channels, extra


@graph_pass("pad_conv_channels")
def pad_conv_channels(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Pad dense convs' output channels to the rule's multiple where that adds at most MAX_EXTRA work."""
    multiple = multiple_of(rules)
    if multiple is None:
        return graph.copy()
    g = graph.copy()
    for name, (channels, extra) in matches(graph, g, ("conv2d", "fused_conv2d"),
                                           lambda g, n: _match(g, n, multiple), stats):
        rec = g.record(name)
        args = g.args(name)
        weight, bias = (g.constant(v) for v in weight_and_bias(g, name))
        padded_weight = np.concatenate([weight, np.zeros((extra, *weight.shape[1:]), weight.dtype)])
        padded_bias = np.concatenate([bias, np.zeros(extra, bias.dtype)])
        conv = g.add_op(rec.op, [args[0], g.add_constant(padded_weight, f"{name}_padded_weight"),
                                 g.add_constant(padded_bias, f"{name}_padded_bias")],
                        dict(rec.attrs), name=f"{name}_padded", source=rec.source)
        sliced = g.add_op("slice", [Value(conv.name)], {"axis": 1, "start": 0, "end": channels, "step": 1},
                          name=f"{name}_channels", source=rec.source)
        g.replace_uses(Value(name), Value(sliced.name))
        remove(g, name)
        stats.matches += 1
    return g


PASS = pad_conv_channels
