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


# ---- ops added by the fusion passes ------------------------------------------------------------------------
# Fused ops carry their activation as a name plus ``act_*`` attributes (the activation op's own attributes with
# an ``act_`` prefix: clip -> act_min/act_max, leaky_relu -> act_alpha, gelu -> act_approximate).

FUSED_ACTIVATIONS = (
    "none", "relu", "clip", "hardswish", "hardsigmoid", "silu", "sigmoid", "gelu", "prelu", "leaky_relu", "tanh",
)  # fmt: skip


def _fused_activation(attrs: Attrs, key: str = "activation") -> str:
    act = attrs[key]
    _check(act in FUSED_ACTIVATIONS, f"unknown fused activation {act!r}; known: {', '.join(FUSED_ACTIVATIONS)}")
    return act


@_op("channel_affine", 3, doc="y = x * scale[c] + shift[c] on axis 1 (inference BatchNorm with no conv to fold into)")
def _channel_affine(inputs, attrs):
    x, scale, shift = inputs
    _check(x.rank >= 2, f"channel_affine wants rank >= 2, got {x}")
    for p in (scale, shift):
        _check(p.shape == (x.shape[1],), f"channel_affine: parameter {p} does not match {x.shape[1]} channels")
    return (x,)


@_op("fused_conv2d", 3, 5, doc="act(conv2d(x, w) + b) [+ residual]; inputs x, w, b, [residual], [prelu slope]; "
     "attrs: conv2d's, activation, act_*, residual")
def _fused_conv2d(inputs, attrs):
    act = _fused_activation(attrs)
    residual = bool(attrs["residual"])
    expected = 3 + residual + (act == "prelu")
    _check(len(inputs) == expected, f"fused_conv2d with residual={residual}, activation={act} takes {expected} "
           f"inputs, got {len(inputs)}")
    (y,) = _conv2d(inputs[:3], attrs)
    if residual:
        _check(inputs[3] == y, f"fused_conv2d: residual {inputs[3]} does not match the conv output {y}")
    if act == "prelu":
        _check(inputs[-1].rank == 1 and inputs[-1].shape[0] in (1, y.shape[1]),
               f"fused_conv2d: prelu slope {inputs[-1]} does not match {y.shape[1]} channels")
    return (y,)


POINTWISE_DEPTHWISE_ACTIVATIONS = ("none", "relu", "clip", "hardswish", "silu")
# the attributes of a plain 1x1 conv: the pointwise half of fused_pointwise_depthwise, the convs of squeeze_excite
POINTWISE_CONV = Attrs(strides=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1)


@_op("fused_pointwise_depthwise", 5, doc="act(dwconv(pw_act(conv1x1(x, w1) + b1), w2) + b2); inputs x, w1[E,C,1,1], "
     "b1, w2[E,1,KH,KW], b2; attrs: the depthwise conv's strides/padding/dilation, activation, act_*, "
     "pw_activation, pw_act_*")
def _fused_pointwise_depthwise(inputs, attrs):
    x, w1, b1, w2, b2 = inputs
    for key in ("pw_activation", "activation"):
        known = ", ".join(POINTWISE_DEPTHWISE_ACTIVATIONS)
        _check(attrs[key] in POINTWISE_DEPTHWISE_ACTIVATIONS,
               f"fused_pointwise_depthwise: {key} {attrs[key]!r} is not one of {known}")
    _check(x.rank == 4 and w1.rank == 4 and w1.shape[2:] == (1, 1),
           f"fused_pointwise_depthwise: wants NCHW data and a 1x1 weight, got {x} and {w1}")
    (mid,) = _conv2d([x, w1, b1], POINTWISE_CONV)
    e = mid.shape[1]
    _check(tuple(attrs["dilation"]) == (1, 1), "fused_pointwise_depthwise: dilation must be 1")
    return _conv2d([mid, w2, b2], Attrs({**attrs, "groups": e}))


def depthwise_concat_conv_attrs(attrs: Attrs, channels: int) -> Attrs:
    """The attributes of a depthwise_concat node's conv: its padding and ``act_*``, stride 1, dilation 1, one
    group per channel (the shape inference, the interpreter and the lowering all read the conv this way)."""
    return Attrs({**attrs, "strides": (1, 1), "dilation": (1, 1), "groups": channels})


@_op("depthwise_concat", 3, 4, doc="concat([x, act(dwconv(x, w) + b)], axis=1) [+ residual]: a ghost module's "
     "cheap op beside its input; inputs x, w[C,1,KH,KW], b, [residual]; attrs: padding (an output of x's size), "
     "activation, act_*, residual")
def _depthwise_concat(inputs, attrs):
    x, w = inputs[0], inputs[1]
    act = attrs["activation"]
    known = ", ".join(POINTWISE_DEPTHWISE_ACTIVATIONS)
    _check(act in POINTWISE_DEPTHWISE_ACTIVATIONS, f"depthwise_concat: activation {act!r} is not one of {known}")
    _check(x.rank == 4 and w.rank == 4 and w.shape[:2] == (x.shape[1], 1),
           f"depthwise_concat: wants NCHW data and a depthwise weight [C,1,KH,KW], got {x} and {w}")
    (y,) = _conv2d(inputs[:3], depthwise_concat_conv_attrs(attrs, x.shape[1]))
    _check(y == x, f"depthwise_concat: the conv's output {y} is not the size of its input {x}")
    out = TensorType((x.shape[0], 2 * x.shape[1], *x.shape[2:]), x.dtype)
    residual = bool(attrs["residual"])
    _check(len(inputs) == 3 + residual, f"depthwise_concat with residual={residual} takes {3 + residual} inputs, "
           f"got {len(inputs)}")
    if residual:
        _check(inputs[3] == out, f"depthwise_concat: residual {inputs[3]} does not match the output {out}")
    return (out,)


@_op("winograd_conv2d", 3, 4, doc="fused_conv2d of a 3x3, stride-1, ungrouped conv computed as Winograd "
     "F(m x m, 3 x 3) (lncompile.ir.winograd); inputs x, u[alpha,alpha,O,C] (the transformed weight), b, [residual]; "
     "attrs: tile (m), padding, activation (not prelu), act_*, residual")
def _winograd_conv2d(inputs, attrs):
    from .winograd import TILE_SIZES, alpha

    x, u = inputs[0], inputs[1]
    tile = attrs["tile"]
    _check(tile in TILE_SIZES, f"winograd_conv2d: tile {tile!r} is not one of {TILE_SIZES}")
    _check(attrs["activation"] != "prelu", "winograd_conv2d: a prelu activation is not supported")
    side = alpha(tile)
    _check(x.rank == 4 and u.rank == 4 and u.shape[:2] == (side, side) and u.shape[3] == x.shape[1],
           f"winograd_conv2d: wants NCHW data and a transformed weight [{side},{side},O,C], got {x} and {u}")
    weight = TensorType((u.shape[2], u.shape[3], 3, 3), u.dtype)
    conv_attrs = Attrs({**attrs, "strides": (1, 1), "dilation": (1, 1), "groups": 1})
    return _fused_conv2d([x, weight, *inputs[2:]], conv_attrs)


@_op("fused_linear", 3, 4, doc="act(x @ w.T + b); inputs x, w, b, [prelu slope]; attrs: activation, act_*")
def _fused_linear(inputs, attrs):
    act = _fused_activation(attrs)
    expected = 3 + (act == "prelu")
    _check(len(inputs) == expected, f"fused_linear with activation={act} takes {expected} inputs, got {len(inputs)}")
    (y,) = _linear(inputs[:3], attrs)
    _check(inputs[2].shape == (y.shape[-1],), f"fused_linear: bias {inputs[2]} does not match {y.shape[-1]} outputs")
    return (y,)


@_op("squeeze_excite", 5, doc="x * gate(conv1x1(act(conv1x1(mean_hw(x), w1, b1)), w2, b2)); inputs x, w1, b1, w2, "
     "b2; attrs: act, act_*, gate ('sigmoid'|'hardsigmoid')")
def _squeeze_excite(inputs, attrs):
    x, w1, b1, w2, b2 = inputs
    _check(x.rank == 4, f"squeeze_excite wants NCHW, got {x}")
    _fused_activation(attrs, "act")
    _check(attrs["act"] != "prelu", "squeeze_excite does not take a prelu activation")
    _check(attrs["gate"] in ("sigmoid", "hardsigmoid"), f"squeeze_excite: gate {attrs['gate']!r} unknown")
    c = x.shape[1]
    _check(w1.rank == 4 and w1.shape[1:] == (c, 1, 1), f"squeeze_excite: reduce weight {w1} does not fit {x}")
    r = w1.shape[0]
    _check(b1.shape == (r,) and w2.shape == (c, r, 1, 1) and b2.shape == (c,),
           f"squeeze_excite: parameters {b1}, {w2}, {b2} do not fit {r} reduced and {c} channels")
    return (x,)


def activation_params(attrs: Attrs) -> Attrs:
    """The attributes of a fused node's activation op: its ``act_*`` attributes without the prefix."""
    return Attrs({k[4:]: v for k, v in attrs.items() if k.startswith("act_")})


def pointwise_activation_attrs(attrs: Attrs) -> Attrs:
    """A fused_pointwise_depthwise node's first activation as ``act_*`` attributes (it keeps them as ``pw_act_*``,
    beside its second activation's ``act_*``), for the helpers that read a fused node's activation."""
    return Attrs({k[3:]: v for k, v in attrs.items() if k.startswith("pw_act_")})


def prefixed_activation_params(attrs: Attrs) -> dict[str, object]:
    """An activation op's attributes as ``act_*`` attributes for a fused node (inverse of the above)."""
    return {f"act_{k}": v for k, v in attrs.items()}


# ---- ops added by the grouped/depthwise passes ---------------------------------------------------------------

def channel_shuffle_perm(channels: int, groups: int) -> np.ndarray:
    """The source channel of each output channel of ``channel_shuffle``: ``y[:, c] == x[:, perm[c]]``.

    Viewing C as (g, C/g) and transposing to (C/g, g): output ``b*g + k`` reads input ``k*(C/g) + b``.
    """
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


@_op("channel_shuffle", 1, doc="groups: reshape (N, g, C/g, H, W) -> transpose(0, 2, 1, 3, 4) -> reshape (N, C, H, W)")
def _channel_shuffle(inputs, attrs):
    x = inputs[0]
    _check(x.rank == 4, f"channel_shuffle wants NCHW, got {x}")
    groups = attrs["groups"]
    _check(isinstance(groups, int) and groups >= 1 and x.shape[1] % groups == 0,
           f"channel_shuffle: {x.shape[1]} channels do not split into {groups} groups")
    return (x,)


INPUT_SHUFFLE = "input_shuffle_groups"


def input_shuffle_groups(attrs: Attrs) -> int:
    """The ``input_shuffle_groups`` of a (fused) depthwise conv: g when it reads ``channel_shuffle(x, g)``, else 0.

    Output channel c of such a conv reads input channel ``channel_shuffle_perm(C, g)[c]`` with filter c (a
    depthwise conv acts per channel, so ``dw(x[:, P], w) == dw_P(x, w)``); shape inference is unchanged.
    """
    return int(attrs.get(INPUT_SHUFFLE, 0) or 0)


def _check_input_shuffle(op: str, inputs: Sequence[TensorType], attrs: Attrs, out: TensorType) -> None:
    if INPUT_SHUFFLE not in attrs:
        return
    groups = attrs[INPUT_SHUFFLE]
    _check(isinstance(groups, int) and not isinstance(groups, bool) and groups >= 0,
           f"{op}: {INPUT_SHUFFLE}={groups!r} is not a non-negative int")
    if groups == 0:
        return
    c, o = inputs[0].shape[1], out.shape[1]
    _check(attrs["groups"] == c == o,
           f"{op}: {INPUT_SHUFFLE} needs a depthwise conv, got groups={attrs['groups']}, in={c}, out={o}")
    _check(c % groups == 0, f"{op}: {INPUT_SHUFFLE}={groups} does not divide {c} channels")


def _conv2d_checking_depthwise(inputs, attrs):
    """conv2d's inference, plus: a ``depthwise=True`` marker must be true (groups == in == out channels), and
    ``input_shuffle_groups`` (see :func:`input_shuffle_groups`) only on a depthwise conv whose channels it divides.

    Other conv2d attributes are free-form (``depthwise`` is read by no kernel or emitter); checking the marker
    here makes the verifier catch a stale one left behind by a rewrite.
    """
    out = _conv2d(inputs, attrs)
    if attrs.get("depthwise", False):
        c, o = inputs[0].shape[1], out[0].shape[1]
        _check(attrs["groups"] == c == o, f"conv2d marked depthwise but groups={attrs['groups']}, in={c}, out={o}")
    _check_input_shuffle("conv2d", inputs, attrs, out[0])
    return out


def _fused_conv2d_checking_shuffle(inputs, attrs):
    out = _fused_conv2d(inputs, attrs)
    _check_input_shuffle("fused_conv2d", inputs, attrs, out[0])
    return out


_SHUFFLE_DOC = f"; {INPUT_SHUFFLE} (depthwise only: reads channel_shuffle(x, g))"
OPS["conv2d"] = OpSchema("conv2d", 2, 3, _conv2d_checking_depthwise,
                         OPS["conv2d"].doc + "; depthwise (marker)" + _SHUFFLE_DOC)
OPS["fused_conv2d"] = OpSchema("fused_conv2d", 3, 5, _fused_conv2d_checking_shuffle,
                               OPS["fused_conv2d"].doc + _SHUFFLE_DOC)
