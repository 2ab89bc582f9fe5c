"""Fold inference BatchNorm into the conv2d / linear before it; a BN that cannot fold becomes one affine op.

BatchNorm at inference is a per-channel affine map: with ``s = gamma / sqrt(var + eps)``,
``bn(y) = (y - mean) * s + beta = y * s + (beta - mean * s)``. When ``y = conv(x, w) + b`` (plain, grouped or
depthwise: output channel ``o`` only ever uses ``w[o]``) or ``y = x @ w.T + b``, scaling output channel ``o``
is scaling ``w[o]``:

    w'[o] = w[o] * s[o]          b'[o] = (b[o] - mean[o]) * s[o] + beta[o]     (b = 0 when absent)

This is only sound when nothing else reads ``y``: another consumer, or ``y`` being a graph output, would then
see the scaled values, so such BNs are refused with the reason. Linear folds only on a 2-d output (BN's channel
axis 1 is then the linear's output features).

A BN with no foldable producer (pre-activation BN -> ReLU -> conv as in CondenseNet, a BN after concat, or a
refused one) becomes ``channel_affine(x, s, beta - mean * s)``: one node instead of BN's five-input op. The
next pass (fold_affine_into_conv) may fold it forward into the conv it feeds.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Value
from ._match import constants, exclusive_reason, matches, remove
from .base import PassStats, graph_pass

PRIORITY = 40


def _fold_reason(graph: Graph, producer: Value) -> str | None:
    rec = graph.record(producer.node)
    if rec.op not in ("conv2d", "linear"):
        return f"producer is {rec.op}, not conv2d/linear"
    if rec.op == "linear" and rec.type.rank != 2:
        return "linear output is not 2-d (BN channel axis is not its feature axis)"
    reason = exclusive_reason(graph, producer, f"{rec.op} output")
    if reason is not None:
        return reason
    if constants(graph, graph.args(producer.node)[1:]) is None:
        return f"{rec.op} weight or bias is not a constant"
    return None


def _params(graph: Graph, name: str) -> tuple[Value, list[np.ndarray]] | str:
    """(input, [gamma, beta, mean, var]) of batch_norm ``name``, or a reason if its parameters are not constants."""
    x, *param_values = graph.args(name)
    params = constants(graph, param_values)
    if params is None:
        return "batch_norm parameters are not constants (kept as batch_norm)"
    return x, params


@graph_pass("fold_batchnorm")
def fold_batchnorm(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Fold each constant-parameter batch_norm into its conv2d/linear, else turn it into channel_affine."""
    g = graph.copy()
    for name, (x, params) in matches(graph, g, ("batch_norm",), _params, stats):
        rec = g.record(name)
        gamma, beta, mean, var = (np.asarray(p, np.float64) for p in params)
        scale = gamma / np.sqrt(var + rec.attrs["eps"])
        shift = beta - mean * scale
        reason = _fold_reason(g, x)
        if reason is None:
            _fold_into_producer(g, x.node, scale, shift)
            g.replace_uses(Value(name), x)
        else:
            stats.refuse(f"not folded ({reason}): became channel_affine")
            dtype = rec.type.dtype
            affine = g.add_op("channel_affine", [x, g.add_constant(scale.astype(dtype), f"{name}_scale"),
                                                 g.add_constant(shift.astype(dtype), f"{name}_shift")],
                              name=f"{name}_affine", source=rec.source)
            g.replace_uses(Value(name), Value(affine.name))
        remove(g, name)
        stats.matches += 1
    return g


def _fold_into_producer(g: Graph, producer: str, scale: np.ndarray, shift: np.ndarray) -> None:
    """Rewrite ``producer`` (conv2d or linear) in place on the copy: w' = w*s per output row, b' = b*s + shift."""
    rec = g.record(producer)
    x, w_value, *b_value = g.args(producer)
    w = np.asarray(g.constant(w_value), np.float64)
    b = np.asarray(g.constant(b_value[0]), np.float64) if b_value else np.zeros(w.shape[0])
    dtype = rec.type.dtype
    w_new = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    b_new = b * scale + shift  # == (b - mean) * s + beta
    g.set_args(producer, [x, g.add_constant(w_new.astype(dtype), f"{producer}_w_bn"),
                          g.add_constant(b_new.astype(dtype), f"{producer}_b_bn")])


PASS = fold_batchnorm
