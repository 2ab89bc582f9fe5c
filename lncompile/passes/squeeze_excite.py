"""Recognize squeeze-excitation as one ``squeeze_excite`` node.

Pattern (after BN folding, before activation fusion, so the SE's 1x1 convs are still plain)::

    s = mean(x, axes=(2, 3), keepdims=True)          # squeeze: [N, C, 1, 1]
    s = act(conv1x1(s, w1) + b1)                      # reduce to R channels
    g = gate(conv1x1(s, w2) + b2)                     # expand back to C; gate = sigmoid | hardsigmoid
    y = x * g                                         # excite (broadcast over H, W)

becomes ``y = squeeze_excite(x, w1, b1, w2, b2; act, gate)``. A missing conv bias becomes zeros. Every
intermediate (pooled tensor, both conv outputs, activation, gate) must have exactly one reader and not be a
graph output, or the fused node would hide a value someone else needs: such matches are refused. The 1x1
convs must be ungrouped, stride 1, unpadded.
"""

from __future__ import annotations

from ..ir import Graph, Value
from ._match import activation_of, exclusive_reason, matches, remove, weight_and_bias
from .base import PassStats, graph_pass

PRIORITY = 45
GATES = ("sigmoid", "hardsigmoid")


def _pointwise_reason(g: Graph, name: str, in_ch: int) -> str | None:
    rec = g.record(name)
    if rec.op != "conv2d":
        return f"expected a 1x1 conv2d, found {rec.op}"
    w = g.type_of(g.args(name)[1])
    at = rec.attrs
    if w.shape[2:] != (1, 1) or at["groups"] != 1 or tuple(at["strides"]) != (1, 1) or any(at["padding"]):
        return "SE conv is not an ungrouped, unpadded, stride-1 1x1 conv"
    if w.shape[1] != in_ch:
        return "SE conv input channels do not match"
    return None


def _next(g: Graph, name: str, what: str) -> tuple[str | None, str | None]:
    """The sole reader of ``name``'s output, or a refusal reason."""
    reason = exclusive_reason(g, Value(name), what)
    if reason is not None:
        return None, reason
    uses = g.users(Value(name))
    if not uses:
        return None, f"{what} is unused"
    return uses[0][0], None


def _match(g: Graph, mean: str) -> list[str] | str:
    """Node names [mean, conv1, act, conv2, gate, mul] of an SE block rooted at ``mean``, or a reason."""
    mrec = g.record(mean)
    (x,) = g.args(mean)
    xt = g.type_of(x)
    if xt.rank != 4 or sorted(a % 4 for a in mrec.attrs["axes"]) != [2, 3] or not mrec.attrs["keepdims"]:
        return "not a spatial mean with keepdims"
    chain = [mean]
    conv1, reason = _next(g, mean, "pooled tensor")
    if reason is None and (g.record(conv1).op != "conv2d" or g.users(Value(mean))[0][1] != 0):
        return f"pooled tensor feeds {g.record(conv1).op}, not a conv2d"
    if reason is None:
        reason = _pointwise_reason(g, conv1, xt.shape[1])
    if reason is not None:
        return reason
    chain.append(conv1)
    act, reason = _next(g, conv1, "SE reduce conv output")
    if reason is not None:
        return reason
    if activation_of(g, g.record(act)) is None or g.record(act).op == "prelu":
        return f"SE reduce conv is followed by {g.record(act).op}, not an activation"
    chain.append(act)
    conv2, reason = _next(g, act, "SE activation output")
    if reason is None and g.record(conv2).op != "conv2d":
        reason = f"SE activation feeds {g.record(conv2).op}, not a conv2d"
    if reason is None:
        reason = _pointwise_reason(g, conv2, g.record(conv1).type.shape[1])
    if reason is None and g.record(conv2).type.shape[1] != xt.shape[1]:
        reason = "SE expand conv does not restore the channel count"
    if reason is not None:
        return reason
    chain.append(conv2)
    gate, reason = _next(g, conv2, "SE expand conv output")
    if reason is None and g.record(gate).op not in GATES:
        reason = f"SE gate is {g.record(gate).op}, not sigmoid/hardsigmoid"
    if reason is not None:
        return reason
    chain.append(gate)
    mul, reason = _next(g, gate, "SE gate")
    if reason is not None:
        return reason
    if g.record(mul).op != "mul" or sorted(g.args(mul)) != sorted([x, Value(gate)]):
        return "SE gate does not multiply the pooled tensor's input"
    chain.append(mul)
    return chain


@graph_pass("squeeze_excite")
def squeeze_excite(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Replace mean -> conv -> act -> conv -> gate -> mul chains by one squeeze_excite node."""
    g = graph.copy()
    for _, (mean, conv1, act, conv2, gate, mul) in matches(graph, g, ("mean",), _match, stats):
        (x,) = g.args(mean)
        act_name, act_params, _ = activation_of(g, g.record(act))  # type: ignore[misc]
        params = [*weight_and_bias(g, conv1), *weight_and_bias(g, conv2)]
        se = g.add_op("squeeze_excite", [x, *params], {"act": act_name, **act_params, "gate": g.record(gate).op},
                      name=f"{mean}_se", source=g.record(conv1).source)
        g.replace_uses(Value(mul), Value(se.name))
        remove(g, mul, gate, conv2, act, conv1, mean)
        stats.matches += 1
    return g


PASS = squeeze_excite
