"""Fuse conv2d -> [activation] -> [residual add] into one ``fused_conv2d`` node.

    fused_conv2d(x, w, b, [r], [slope]) = act(conv2d(x, w) + b) [+ r]

``act`` is one of relu, clip (relu6), hardswish, hardsigmoid, silu, sigmoid, gelu, prelu (its slope becomes
the last input), leaky_relu, tanh — or none, when the conv feeds a residual add directly (MobileNetV2's
"project, then add"). The residual ``r`` is the add's other operand and must have exactly the result's type
(no broadcasting). A conv without bias gets a zero bias. Every absorbed intermediate (conv output, activation
output) must have exactly one reader and not be a graph output; otherwise the match is refused with the reason
(the intermediate would have to be materialized anyway, so fusing would compute it twice).

A lone conv (no activation, no add) is left as it is: there is nothing to fuse. Lowering emits the same chain of
Relax ops, so TVM's FuseOps schedules the fused node as one kernel.
"""

from __future__ import annotations

from ..ir import Graph, Value
from ._match import Activation, activation_of, exclusive_reason, matches, remove, weight_and_bias
from .base import PassStats, graph_pass

PRIORITY = 50


def _residual(g: Graph, name: str) -> tuple[str, Value] | None:
    """(add node, its other operand) if ``name``'s sole reader is a same-shape residual add."""
    if exclusive_reason(g, Value(name), "output") is not None:
        return None
    uses = g.users(Value(name))
    if not uses or g.record(uses[0][0]).op != "add":
        return None
    add = uses[0][0]
    a, b = g.args(add)
    other = b if a == Value(name) else a
    if g.type_of(other) != g.record(name).type or g.record(add).type != g.record(name).type:
        return None
    return add, other


def _match(g: Graph, conv: str) -> tuple[list[str], Activation | None, tuple[str, Value] | None] | str | None:
    """(chain [conv, act?, add?], its activation, its residual (add, other operand)); a refusal reason; or None.

    A conv read elsewhere or returned is refused only when its first reader is an activation; a lone conv (no
    activation, no residual add alone reads it) is None: there is nothing to fuse.
    """
    reason = exclusive_reason(g, Value(conv), "conv output")
    uses = g.users(Value(conv))
    if reason is not None or not uses:
        return reason if uses and activation_of(g, g.record(uses[0][0])) is not None else None
    chain = [conv]
    act = activation_of(g, g.record(uses[0][0]))
    if act is not None and uses[0][1] == 0:
        chain.append(uses[0][0])
    else:
        act = None
    residual = _residual(g, chain[-1])
    if act is None and residual is None:
        return None  # nothing to fuse
    if residual is not None:
        chain.append(residual[0])
    return chain, act, residual


@graph_pass("fuse_conv_activation")
def fuse_conv_activation(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Fuse each conv2d with the activation and/or residual add that alone consume it."""
    g = graph.copy()
    for conv, (chain, act, residual) in matches(graph, g, ("conv2d",), _match, stats):
        act_name, act_params, slope = act if act is not None else ("none", {}, None)
        rec = g.record(conv)
        x = g.args(conv)[0]
        w, bias = weight_and_bias(g, conv)
        args = [x, w, bias] + ([residual[1]] if residual else []) + ([slope] if slope is not None else [])
        attrs = {**dict(rec.attrs), "activation": act_name, **act_params, "residual": residual is not None}
        fused = g.add_op("fused_conv2d", args, attrs, name=f"{conv}_fused", source=rec.source)
        g.replace_uses(Value(chain[-1]), Value(fused.name))
        remove(g, *reversed(chain))
        stats.matches += 1
    return g


PASS = fuse_conv_activation
