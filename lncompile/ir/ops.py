"""Op schemas: arity and type inference for every op the IR knows.

Layout is NCHW throughout; convolution weights are OIHW. Shape inference here is the single definition the
frontends use to type new nodes and the verifier uses to check them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .node import Attrs, TensorType

InferFn = Callable[[Sequence[TensorType], Attrs], tuple[TensorType, ...]]


@dataclass(frozen=True)
class OpSchema:
    name: str
    min_inputs: int
    max_inputs: int
    infer: InferFn
    doc: str = ""


OPS: dict[str, OpSchema] = {}


def _op(name: str, min_inputs: int, max_inputs: int | None = None, doc: str = "") -> Callable[[InferFn], InferFn]:
    def deco(fn: InferFn) -> InferFn:
        OPS[name] = OpSchema(name, min_inputs, min_inputs if max_inputs is None else max_inputs, fn, doc)
        return fn

    return deco


def schema(op: str) -> OpSchema:
    return OPS[op]


class ShapeError(ValueError):
    """Inputs whose shapes an op cannot take."""


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError as e:
        raise ShapeError(f"shapes {list(shapes)} do not broadcast") from e


def _norm_axis(axis: int, rank: int) -> int:
    _check(-rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    return axis % rank


# ---- sources --------------------------------------------------------------------------------------------

@_op("input", 0, doc="graph input; attrs: none")
def _input(inputs, attrs):  # pragma: no cover - inputs carry their declared type
    raise ShapeError("input nodes are typed by declaration")


@_op("constant", 0, doc="a weight or constant array held in Node.value")
def _constant(inputs, attrs):  # pragma: no cover
    raise ShapeError("constant nodes are typed by their value")


# ---- convolution, normalization, dense -----------------------------------------------------------------

def _pool_out(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int, ceil: bool) -> int:
    span = size + pad_lo + pad_hi - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad_lo:
        out -= 1  # PyTorch/ONNX: the last window must start inside the input or left padding
    return out


@_op("conv2d", 2, 3, doc="x[N,C,H,W], w[O,C/groups,KH,KW], bias[O]?; strides, padding(t,l,b,r), dilation, groups")
def _conv2d(inputs, attrs):
    x, w = inputs[0], inputs[1]
    _check(x.rank == 4 and w.rank == 4, f"conv2d wants 4-d data and weight, got {x} and {w}")
    groups = attrs["groups"]
    n, c, h, wd = x.shape
    o, ci, kh, kw = w.shape
    _check(c == ci * groups, f"conv2d: input channels {c} != weight in-channels {ci} x groups {groups}")
    _check(o % groups == 0, f"conv2d: out channels {o} not divisible by groups {groups}")
    if len(inputs) == 3:
        _check(inputs[2].shape == (o,), f"conv2d: bias {inputs[2]} does not match {o} out channels")
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = attrs["strides"], attrs["padding"], attrs["dilation"]
    oh = _pool_out(h, kh, sh, pt, pb, dh, False)
    ow = _pool_out(wd, kw, sw, pl, pr, dw, False)
    _check(oh > 0 and ow > 0, f"conv2d: input {h}x{wd} too small for kernel {kh}x{kw}")
    return (TensorType((n, o, oh, ow), x.dtype),)


@_op("batch_norm", 5, doc="inference batch norm: x, scale, bias, mean, var (per channel, axis 1); eps")
def _batch_norm(inputs, attrs):
    x = inputs[0]
    _check(x.rank >= 2, f"batch_norm wants rank >= 2, got {x}")
    for p in inputs[1:]:
        _check(p.shape == (x.shape[1],), f"batch_norm: parameter {p} does not match {x.shape[1]} channels")
    return (x,)


@_op("layer_norm", 3, doc="x, scale, bias; normalizes the trailing len(scale.shape) axes; eps")
def _layer_norm(inputs, attrs):
    x, scale = inputs[0], inputs[1]
    k = scale.rank
    _check(x.shape[-k:] == scale.shape, f"layer_norm: scale {scale} does not match trailing dims of {x}")
    return (x,)


@_op("linear", 2, 3, doc="y = x @ w.T + b; x[..., in], w[out, in], b[out]?")
def _linear(inputs, attrs):
    x, w = inputs[0], inputs[1]
    _check(w.rank == 2 and x.shape[-1] == w.shape[1], f"linear: {x} does not match weight {w}")
    return (TensorType((*x.shape[:-1], w.shape[0]), x.dtype),)


@_op("matmul", 2, doc="batched matrix product with numpy broadcasting")
def _matmul(inputs, attrs):
    a, b = inputs
    _check(a.rank >= 2 and b.rank >= 2, f"matmul wants rank >= 2 operands, got {a} and {b}")
    _check(a.shape[-1] == b.shape[-2], f"matmul: inner dims of {a} and {b} differ")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return (TensorType((*batch, a.shape[-2], b.shape[-1]), a.dtype),)


# ---- elementwise ---------------------------------------------------------------------------------------

UNARY_OPS = (
    "relu", "sigmoid", "silu", "hardswish", "hardsigmoid", "tanh", "gelu", "exp", "sqrt", "erf", "neg",
    "reciprocal", "abs", "identity", "dropout", "clip", "leaky_relu", "pow_scalar",
)  # fmt: skip


def _same(inputs, attrs):
    return (inputs[0],)


for _name in UNARY_OPS:
    _op(_name, 1)(_same)
# clip: min, max (relu6 is clip(0, 6)); leaky_relu: alpha; gelu: approximate ('none'|'tanh');
# pow_scalar: exponent; dropout: identity at inference (kept so passes can count what they remove).

BINARY_OPS = ("add", "sub", "mul", "div", "maximum", "minimum", "pow")


def _binary(inputs, attrs):
    a, b = inputs
    return (TensorType(broadcast_shapes(a.shape, b.shape), a.dtype),)


for _name in BINARY_OPS:
    _op(_name, 2)(_binary)


@_op("prelu", 2, doc="x, slope[C] broadcast on axis 1")
def _prelu(inputs, attrs):
    return (inputs[0],)


# ---- reductions and pooling ----------------------------------------------------------------------------

def _reduce(inputs, attrs):
    x = inputs[0]
    axes = {_norm_axis(a, x.rank) for a in attrs["axes"]}
    if attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return (TensorType(shape, x.dtype),)


for _name in ("mean", "reduce_max", "reduce_sum"):
    _op(_name, 1)(_reduce)


@_op("softmax", 1, doc="axis")
def _softmax(inputs, attrs):
    _norm_axis(attrs["axis"], inputs[0].rank)
    return (inputs[0],)


def _pool2d(inputs, attrs):
    x = inputs[0]
    _check(x.rank == 4, f"pool2d wants NCHW, got {x}")
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel"], attrs["strides"], attrs["padding"]
    dh, dw = attrs.get("dilation", (1, 1))
    ceil = attrs.get("ceil_mode", False)
    oh = _pool_out(x.shape[2], kh, sh, pt, pb, dh, ceil)
    ow = _pool_out(x.shape[3], kw, sw, pl, pr, dw, ceil)
    _check(oh > 0 and ow > 0, f"pool2d: input {x} too small for kernel {kh}x{kw}")
    return (TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype),)


_op("max_pool2d", 1, doc="kernel, strides, padding(t,l,b,r), dilation, ceil_mode")(_pool2d)
_op("avg_pool2d", 1, doc="kernel, strides, padding(t,l,b,r), ceil_mode, count_include_pad")(_pool2d)


@_op("adaptive_avg_pool2d", 1, doc="output_size (oh, ow)")
def _adaptive_avg_pool2d(inputs, attrs):
    x = inputs[0]
    _check(x.rank == 4, f"adaptive_avg_pool2d wants NCHW, got {x}")
    oh, ow = attrs["output_size"]
    return (TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype),)


# ---- data movement -------------------------------------------------------------------------------------

@_op("reshape", 1, doc="shape (fully static)")
def _reshape(inputs, attrs):
    x, shape = inputs[0], tuple(attrs["shape"])
    _check(math.prod(shape) == x.size, f"reshape: cannot view {x} as {shape}")
    return (TensorType(shape, x.dtype),)


@_op("transpose", 1, doc="perm")
def _transpose(inputs, attrs):
    x, perm = inputs[0], attrs["perm"]
    _check(sorted(perm) == list(range(x.rank)), f"transpose: {perm} is not a permutation of {x.rank} axes")
    return (TensorType(tuple(x.shape[p] for p in perm), x.dtype),)


@_op("concat", 1, 1 << 16, doc="axis")
def _concat(inputs, attrs):
    first = inputs[0]
    axis = _norm_axis(attrs["axis"], first.rank)
    for t in inputs[1:]:
        _check(
            t.rank == first.rank and all(t.shape[i] == first.shape[i] for i in range(t.rank) if i != axis),
            f"concat on axis {axis}: {t} does not match {first}",
        )
    total = sum(t.shape[axis] for t in inputs)
    return (TensorType((*first.shape[:axis], total, *first.shape[axis + 1:]), first.dtype),)


@_op("split", 1, doc="axis, sizes: one output per size")
def _split(inputs, attrs):
    x = inputs[0]
    axis = _norm_axis(attrs["axis"], x.rank)
    sizes = attrs["sizes"]
    _check(sum(sizes) == x.shape[axis], f"split: sizes {sizes} do not add up to {x.shape[axis]}")
    return tuple(TensorType((*x.shape[:axis], s, *x.shape[axis + 1:]), x.dtype) for s in sizes)


@_op("slice", 1, doc="axis, start, end, step (normalized: 0 <= start, end <= dim, step >= 1)")
def _slice(inputs, attrs):
    x = inputs[0]
    axis = _norm_axis(attrs["axis"], x.rank)
    start, end, step = attrs["start"], attrs["end"], attrs["step"]
    _check(0 <= start <= end <= x.shape[axis] and step >= 1, f"slice: bad range {start}:{end}:{step} of {x}")
    n = len(range(start, end, step))
    _check(n > 0, f"slice: empty range {start}:{end}:{step}")
    return (TensorType((*x.shape[:axis], n, *x.shape[axis + 1:]), x.dtype),)


@_op("pad", 1, doc="pads per axis ((lo, hi), ...), value; constant mode")
def _pad(inputs, attrs):
    x = inputs[0]
    pads = attrs["pads"]
    _check(len(pads) == x.rank, f"pad: {len(pads)} pad pairs for rank {x.rank}")
    return (TensorType(tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, pads, strict=True)), x.dtype),)


@_op("broadcast_to", 1, doc="shape: numpy broadcasting of the input to a static shape")
def _broadcast_to(inputs, attrs):
    x, shape = inputs[0], tuple(attrs["shape"])
    _check(broadcast_shapes(x.shape, shape) == shape, f"broadcast_to: cannot broadcast {x} to {shape}")
    return (TensorType(shape, x.dtype),)


@_op("resize2d", 1, doc="size (oh, ow), method 'nearest'|'bilinear', align_corners")
def _resize2d(inputs, attrs):
    x = inputs[0]
    _check(x.rank == 4, f"resize2d wants NCHW, got {x}")
    oh, ow = attrs["size"]
    return (TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype),)
