"""A reference interpreter for the IR (PyTorch eager), the oracle for frontend and pass tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .graph import Graph
from .node import Attrs

Kernel = Callable[[Sequence[torch.Tensor], Attrs], torch.Tensor | Sequence[torch.Tensor]]


def _pad_pairs(padding: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    top, left, bottom, right = padding
    return (left, right, top, bottom)  # F.pad order: last axis first


def _conv2d(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    x = a[0]
    shuffle = at.get("input_shuffle_groups", 0)
    if shuffle:  # a depthwise conv reading channel_shuffle(x, g): shuffle first, exactly as the op would
        x = _channel_shuffle([x], Attrs(groups=shuffle))
    x = F.pad(x, _pad_pairs(at["padding"]))
    bias = a[2] if len(a) > 2 else None
    return F.conv2d(x, a[1], bias, at["strides"], 0, at["dilation"], at["groups"])


def _pool(a: Sequence[torch.Tensor], at: Attrs, kind: str) -> torch.Tensor:
    x = a[0]
    top, left, bottom, right = at["padding"]
    if kind == "max":
        if (top, left) == (bottom, right) and top <= at["kernel"][0] // 2 and left <= at["kernel"][1] // 2:
            return F.max_pool2d(x, at["kernel"], at["strides"], (top, left), at.get("dilation", (1, 1)),
                                at.get("ceil_mode", False))
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, at["kernel"], at["strides"], 0, at.get("dilation", (1, 1)), at.get("ceil_mode", False))
    if (top, left) == (bottom, right) and top <= at["kernel"][0] // 2 and left <= at["kernel"][1] // 2:
        return F.avg_pool2d(x, at["kernel"], at["strides"], (top, left), at.get("ceil_mode", False),
                            at.get("count_include_pad", True))
    # Asymmetric padding: pad explicitly; counts then include the pad only if asked.
    ones = torch.ones_like(x[:1, :1])
    xs = F.pad(x, (left, right, top, bottom))
    total = F.avg_pool2d(xs, at["kernel"], at["strides"], 0, at.get("ceil_mode", False), True, divisor_override=1)
    if at.get("count_include_pad", True):
        count = F.avg_pool2d(F.pad(ones, (left, right, top, bottom), value=1.0), at["kernel"], at["strides"], 0,
                             at.get("ceil_mode", False), True, divisor_override=1)
    else:
        count = F.avg_pool2d(F.pad(ones, (left, right, top, bottom)), at["kernel"], at["strides"], 0,
                             at.get("ceil_mode", False), True, divisor_override=1)
    return total / count


def _slice(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    index = [slice(None)] * a[0].dim()
    index[at["axis"]] = slice(at["start"], at["end"], at["step"])
    return a[0][tuple(index)]


def _pad(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    flat: list[int] = []
    for lo, hi in reversed(at["pads"]):
        flat += [lo, hi]
    return F.pad(a[0], flat, value=at.get("value", 0.0))


def _resize(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    if at["method"] == "nearest":
        return F.interpolate(a[0], size=at["size"], mode="nearest")
    return F.interpolate(a[0], size=at["size"], mode="bilinear", align_corners=at.get("align_corners", False))


KERNELS: dict[str, Kernel] = {
    "conv2d": _conv2d,
    "batch_norm": lambda a, at: F.batch_norm(a[0], a[3], a[4], a[1], a[2], False, 0.0, at["eps"]),
    "layer_norm": lambda a, at: F.layer_norm(a[0], a[1].shape, a[1], a[2], at["eps"]),
    "linear": lambda a, at: F.linear(a[0], a[1], a[2] if len(a) > 2 else None),
    "matmul": lambda a, at: torch.matmul(a[0], a[1]),
    "relu": lambda a, at: F.relu(a[0]),
    "sigmoid": lambda a, at: torch.sigmoid(a[0]),
    "silu": lambda a, at: F.silu(a[0]),
    "hardswish": lambda a, at: F.hardswish(a[0]),
    "hardsigmoid": lambda a, at: F.hardsigmoid(a[0]),
    "tanh": lambda a, at: torch.tanh(a[0]),
    "gelu": lambda a, at: F.gelu(a[0], approximate=at.get("approximate", "none")),
    "exp": lambda a, at: torch.exp(a[0]),
    "sqrt": lambda a, at: torch.sqrt(a[0]),
    "erf": lambda a, at: torch.erf(a[0]),
    "neg": lambda a, at: -a[0],
    "reciprocal": lambda a, at: torch.reciprocal(a[0]),
    "abs": lambda a, at: torch.abs(a[0]),
    "identity": lambda a, at: a[0],
    "dropout": lambda a, at: a[0],
    "clip": lambda a, at: torch.clamp(a[0], at["min"], at["max"]),
    "leaky_relu": lambda a, at: F.leaky_relu(a[0], at["alpha"]),
    "pow_scalar": lambda a, at: torch.pow(a[0], at["exponent"]),
    "prelu": lambda a, at: F.prelu(a[0], a[1]),
    "add": lambda a, at: a[0] + a[1],
    "sub": lambda a, at: a[0] - a[1],
    "mul": lambda a, at: a[0] * a[1],
    "div": lambda a, at: a[0] / a[1],
    "maximum": lambda a, at: torch.maximum(a[0], a[1]),
    "minimum": lambda a, at: torch.minimum(a[0], a[1]),
    "pow": lambda a, at: torch.pow(a[0], a[1]),
    "mean": lambda a, at: a[0].mean(dim=tuple(at["axes"]), keepdim=at["keepdims"]),
    "reduce_sum": lambda a, at: a[0].sum(dim=tuple(at["axes"]), keepdim=at["keepdims"]),
    "reduce_max": lambda a, at: a[0].amax(dim=tuple(at["axes"]), keepdim=at["keepdims"]),
    "softmax": lambda a, at: torch.softmax(a[0], at["axis"]),
    "max_pool2d": lambda a, at: _pool(a, at, "max"),
    "avg_pool2d": lambda a, at: _pool(a, at, "avg"),
    "adaptive_avg_pool2d": lambda a, at: F.adaptive_avg_pool2d(a[0], at["output_size"]),
    "reshape": lambda a, at: a[0].reshape(at["shape"]),
    "transpose": lambda a, at: a[0].permute(at["perm"]),
    "concat": lambda a, at: torch.cat(list(a), at["axis"]),
    "split": lambda a, at: torch.split(a[0], list(at["sizes"]), at["axis"]),
    "slice": _slice,
    "pad": _pad,
    "resize2d": _resize,
    "broadcast_to": lambda a, at: a[0].expand(at["shape"]),
}


def run_graph(graph: Graph, *inputs: np.ndarray, kernels: dict[str, Kernel] | None = None) -> list[np.ndarray]:
    """Evaluate ``graph`` on numpy inputs; returns the graph outputs as numpy arrays.

    ``kernels`` extends or overrides the built-in op semantics (passes that introduce fused ops add theirs).
    """
    table = {**KERNELS, **(kernels or {})}
    if len(inputs) != len(graph.input_names):
        raise ValueError(f"graph takes {len(graph.input_names)} inputs, got {len(inputs)}")
    env: dict[str, list[torch.Tensor]] = {}
    for name, array in zip(graph.input_names, inputs, strict=True):
        env[name] = [torch.from_numpy(np.ascontiguousarray(array))]
    with torch.no_grad():
        for name in graph.topo_order():
            rec = graph.record(name)
            if rec.op == "input":
                continue
            if rec.op == "constant":
                env[name] = [torch.from_numpy(np.array(rec.value))]
                continue
            args = [env[v.node][v.index] for v in graph.args(name)]
            out = table[rec.op](args, rec.attrs)
            env[name] = list(out) if isinstance(out, (tuple, list)) else [out]
    return [env[v.node][v.index].numpy() for v in graph.outputs]


# ---- ops added by the fusion passes ------------------------------------------------------------------------

def _activation(x: torch.Tensor, name: str, attrs: Attrs, slope: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a fused node's activation with the same kernel the unfused op uses."""
    from .ops import activation_params

    if name == "none":
        return x
    if name == "prelu":
        return F.prelu(x, slope)
    return KERNELS[name]([x], activation_params(attrs))  # type: ignore[return-value]


def _fused_conv2d(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    y = _conv2d(a[:3], at)
    act = at["activation"]
    y = _activation(y, act, at, a[-1] if act == "prelu" else None)
    return y + a[3] if at["residual"] else y


def _fused_pointwise_depthwise(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    from .ops import POINTWISE_CONV, pointwise_activation_attrs

    x, w1, b1, w2, b2 = a
    mid = _activation(_conv2d([x, w1, b1], POINTWISE_CONV), at["pw_activation"], pointwise_activation_attrs(at))
    y = _conv2d([mid, w2, b2], Attrs({**at, "groups": int(w2.shape[0])}))
    return _activation(y, at["activation"], at)


def _depthwise_concat(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    from .ops import depthwise_concat_conv_attrs

    x, w, b = a[:3]
    conv = _conv2d([x, w, b], depthwise_concat_conv_attrs(at, int(x.shape[1])))
    y = torch.cat([x, _activation(conv, at["activation"], at)], 1)
    return y + a[3] if at["residual"] else y


def _winograd_conv2d(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    """The conv as the Winograd algorithm itself (not F.conv2d), so a test against the original conv checks the
    transformed weights and the matrices: tiles of alpha x alpha every m pixels, B^T d B, products summed over
    input channels, A^T (.) A, cropped."""
    from .winograd import alpha, matrices, tiles

    x, u = a[0], a[1]
    m = at["tile"]
    side = alpha(m)
    a_t, b_t, _ = (torch.from_numpy(t).to(x.dtype) for t in matrices(m))
    top, left, bottom, right = at["padding"]
    oh, ow = x.shape[2] + top + bottom - 2, x.shape[3] + left + right - 2
    th, tw = tiles(oh, m), tiles(ow, m)
    padded = F.pad(x, (left, right + tw * m - ow, top, bottom + th * m - oh))  # whole tiles
    d = padded.unfold(2, side, m).unfold(3, side, m)  # [N, C, th, tw, alpha, alpha]
    v = torch.einsum("ia,ncyxab,jb->ijncyx", b_t, d, b_t)
    prod = torch.einsum("ijoc,ijncyx->ijnoyx", u, v)
    y = torch.einsum("pi,ijnoyx,qj->noypxq", a_t, prod, a_t).reshape(x.shape[0], u.shape[2], th * m, tw * m)
    y = y[:, :, :oh, :ow] + a[2].reshape(1, -1, 1, 1)
    y = _activation(y, at["activation"], at)
    return y + a[3] if at["residual"] else y


def _fused_linear(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    act = at["activation"]
    return _activation(F.linear(a[0], a[1], a[2]), act, at, a[-1] if act == "prelu" else None)


def _squeeze_excite(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    x, w1, b1, w2, b2 = a
    s = F.conv2d(x.mean(dim=(2, 3), keepdim=True), w1, b1)
    s = F.conv2d(_activation(s, at["act"], at), w2, b2)
    gate = torch.sigmoid(s) if at["gate"] == "sigmoid" else F.hardsigmoid(s)
    return x * gate


def _channel_affine(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    shape = (1, -1) + (1,) * (a[0].dim() - 2)
    return a[0] * a[1].reshape(shape) + a[2].reshape(shape)


KERNELS.update({
    "channel_affine": _channel_affine,
    "depthwise_concat": _depthwise_concat,
    "fused_conv2d": _fused_conv2d,
    "fused_linear": _fused_linear,
    "fused_pointwise_depthwise": _fused_pointwise_depthwise,
    "squeeze_excite": _squeeze_excite,
    "winograd_conv2d": _winograd_conv2d,
})


# ---- ops added by the grouped/depthwise passes ---------------------------------------------------------------

def _channel_shuffle(a: Sequence[torch.Tensor], at: Attrs) -> torch.Tensor:
    n, c, h, w = a[0].shape
    g = at["groups"]
    return a[0].reshape(n, g, c // g, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


KERNELS["channel_shuffle"] = _channel_shuffle
