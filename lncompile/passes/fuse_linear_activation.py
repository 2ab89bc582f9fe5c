"""Fuse linear -> activation into one ``fused_linear`` node: ``fused_linear(x, w, b, [slope]) = act(x @ w.T + b)``.

Same rules as the conv fusion: the linear output must have the activation as its only reader and must not be a
graph output; a missing bias becomes zeros; prelu's slope becomes the last input.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Value
from ._match import Activation, activation_of, exclusive_reason, matches, remove
from .base import PassStats, graph_pass

PRIORITY = 51


def _match(g: Graph, name: str) -> tuple[str, Activation] | str | None:
    """(the activation node alone reading linear ``name``, what it is); a refusal reason; or None."""
    uses = g.users(Value(name))
    if not uses or uses[0][1] != 0:
        return None
    act = activation_of(g, g.record(uses[0][0]))
    if act is None:
        return None
    reason = exclusive_reason(g, Value(name), "linear output")
    if reason is not None:
        return reason
    return uses[0][0], act


@graph_pass("fuse_linear_activation")
def fuse_linear_activation(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Fuse each linear with the activation that alone consumes it."""
    g = graph.copy()
    for name, (act_node, (act_name, act_params, slope)) in matches(graph, g, ("linear",), _match, stats):
        rec = g.record(name)
        x, w, *b = g.args(name)
        bias = b[0] if b else g.add_constant(np.zeros(rec.type.shape[-1], rec.type.dtype), f"{name}_bias")
        args = [x, w, bias] + ([slope] if slope is not None else [])
        fused = g.add_op("fused_linear", args, {"activation": act_name, **act_params}, name=f"{name}_fused",
                         source=rec.source)
        g.replace_uses(Value(act_node), Value(fused.name))
        remove(g, act_node, name)
        stats.matches += 1
    return g


PASS = fuse_linear_activation
