"""Compute dense 3x3 stride-1 convolutions with Winograd's algorithm where they have enough input channels
(target rule ``winograd``: the least input channels, or ``off``, the default).

    conv3x3(x, w)[m x m tile] = A^T [ U (.) (B^T d B) ] A,   U = G w G^T     (lncompile.ir.winograd, F(m x m, 3 x 3))

Pattern: a ``conv2d`` or ``fused_conv2d`` (any activation but prelu, residual or not) whose weight is a constant
[O, C, 3, 3], stride 1, dilation 1, one group, no folded channel shuffle. Check: C is at least the rule's
value. Rewrite: a ``winograd_conv2d`` node with the same data, bias, activation, residual and padding, and the
weight replaced by its transform U [m + 2, m + 2, O, C], computed here in float64 and rounded once. The identity
is exact in real arithmetic; in float32 the transforms' constants (up to 8 in A, 5 in B for m = 4) round
differently from the direct sum, a relative error of about 1e-6 of the output's scale.

Why: per m x m output tile and channel pair the multiplies drop from 9 m^2 to (m + 2)^2 (m = 2: 36 -> 16,
m = 4: 144 -> 36). The input transform's cost grows with C and the output transform's with O only, so it pays
where C is not small. Measured on this project's x86 box (2 threads, each kernel alone, against the shipped
log's direct conv): SqueezeNet's expand convs, 55x55 16->64 267 us direct, F(4x4) 165 us; 27x27 32->128 263
-> 168 us (F(4x4)); 13x13 48->192 144 -> 111 us and 64->256 227 -> 162 us (F(2x2); F(4x4) 266 us there, its
tiles sticking out of 13 pixels by 3).

The tile: F(2x2, 3x3) by default. Target rule ``winograd_tile=4`` allows F(4x4, 3x3) where the output has at
least ``LARGE_TILE_FROM`` pixels a side; it is faster there but rounds worse (its matrices hold 4, 5, 8 and
1/24): in SENet-154 at 64 px with random weights, which amplifies round-off ~1000x, two F(4x4) stem convs put
the output 7.1e-4 from float64 where PyTorch's float32 is 1.5e-4 away and F(2x2) 1.3e-4.
"""

from __future__ import annotations

from ..ir import Graph, Value
from ..ir.winograd import transform_weight
from ._grouping import count_rule, rule
from ._match import matches, remove, weight_and_bias
from .base import PassStats, graph_pass

PRIORITY = 58  # after the conv fusions (50-55): the fused node's activation and residual come along
RULE = "winograd"
TILE_RULE = "winograd_tile"
LARGE_TILE_FROM = 24  # output pixels per side from which F(4x4, 3x3) is used, where the rule allows it


def tile_for(out_height: int, out_width: int, largest: int) -> int:
    """The output tile side for a conv with this output size."""
    return 4 if largest == 4 and min(out_height, out_width) >= LARGE_TILE_FROM else 2


def least_channels(rules: dict[str, str]) -> int | None:
    """The least input channels the target's rule rewrites; None when the rule is off."""
    return count_rule(rules, RULE, 1, "a least number of input channels")


def _match(g: Graph, name: str) -> tuple[int] | str | None:
    """(input channels,) of a dense 3x3 stride-1 conv with a constant weight; a refusal; None otherwise."""
    rec = g.record(name)
    at = rec.attrs
    weight = g.constant(g.args(name)[1])
    dense_3x3 = (weight is not None and weight.ndim == 4 and weight.shape[2:] == (3, 3) and at["groups"] == 1
                 and tuple(at["strides"]) == (1, 1) and tuple(at["dilation"]) == (1, 1)
                 and not at.get("input_shuffle_groups", 0))
    if not dense_3x3:
        return None
    if at.get("activation") == "prelu":  # the kernel's epilogue runs channels-last; prelu's slope is on axis 1
        return "a prelu activation keeps its conv direct"
    return (int(weight.shape[1]),)


@graph_pass("winograd_conv")
def winograd_conv(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Rewrite dense 3x3 stride-1 convs with at least the rule's input channels to ``winograd_conv2d``."""
    least, largest = least_channels(rules), int(rule(rules, TILE_RULE))
    g = graph.copy()
    for name, (channels,) in matches(graph, g, ("conv2d", "fused_conv2d"), _match, stats):
        if least is None or channels < least:
            kept = "every conv" if least is None else f"convs with under {least} input channels"
            stats.refuse(f"rule {RULE}={rules.get(RULE, 'off')} keeps {kept} direct")
            continue
        rec = g.record(name)
        args = g.args(name)
        weight, bias = weight_and_bias(g, name)
        tile = tile_for(*rec.type.shape[2:], largest)
        u = g.add_constant(transform_weight(g.constant(weight), tile), f"{name}_winograd_weight")
        if rec.op == "fused_conv2d":
            activation = {k: v for k, v in rec.attrs.items() if k == "activation" or k.startswith("act_")}
            residual, rest = bool(rec.attrs["residual"]), args[3:]
        else:
            activation, residual, rest = {"activation": "none"}, False, []
        attrs = {"tile": tile, "padding": rec.attrs["padding"], **activation, "residual": residual}
        node = g.add_op("winograd_conv2d", [args[0], u, bias, *rest], attrs, name=f"{name}_winograd",
                        source=rec.source)
        g.replace_uses(Value(name), Value(node.name))
        remove(g, name)
        stats.matches += 1
    return g


PASS = winograd_conv
