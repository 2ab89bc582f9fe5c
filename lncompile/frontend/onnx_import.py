"""ONNX frontend: translate an ONNX model (opsets 11-21, mostly also older ones) into lncompile's IR.

Every IR shape is static, so the importer keeps, for each ONNX tensor name, either an IR value or a numpy
array known at import time. ``Shape`` of any tensor is such a constant, and a node whose inputs are all
constants is evaluated with numpy (:data:`FOLDS`): the shape-computation subgraphs that PyTorch's exporters
emit (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, Slice with tensor bounds, Split with a sizes tensor,
Range, ConstantOfShape, Where...) disappear at import. The remaining nodes go through one handler per ONNX op
type (:data:`HANDLERS`), which emit IR ops; a constant consumed by a real tensor op becomes an IR
``constant`` (float32 only: integer tensors never enter the IR).

Model files are untrusted: nothing in them is executed, and external data may only live next to the model
(no absolute locations, nothing that leaves the model's folder).
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import onnx
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from ..errors import ModelFormatError, UnsupportedOpError, UsageError
from ..ir import Graph, TensorType, Value, verify
from ..ir.ops import ShapeError

Result = Value | np.ndarray
Handler = Callable[["_Context", "_Op"], Sequence[Result]]
Fold = Callable[["_Op", list[np.ndarray | None]], Sequence[np.ndarray]]
HANDLERS: dict[str, Handler] = {}
FOLDS: dict[str, Fold] = {}
_DEFAULT_DOMAINS = ("", "ai.onnx")


def _handles(*op_types: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for t in op_types:
            HANDLERS[t] = fn
        return fn

    return deco


def _folds(*op_types: str) -> Callable[[Fold], Fold]:
    def deco(fn: Fold) -> Fold:
        for t in op_types:
            FOLDS[t] = fn
        return fn

    return deco


# ---- one ONNX node ---------------------------------------------------------------------------------------

def _printable(text: str, limit: int = 80) -> str:
    """A name from the file, safe for a one-line message: control characters escaped, length capped."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[:limit] + "..."


def _dtype_name(code: int) -> str:
    """The ONNX name of an element type code, also for codes this onnx does not know (untrusted files)."""
    try:
        return onnx.TensorProto.DataType.Name(code)
    except ValueError:
        return f"unknown element type {code}"


_MAX_TENSOR_ELEMENTS = 2**31 - 1  # TVM indexes tensors with int32 by default; larger tensors are not supported


def _tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """``numpy_helper.to_array`` for an untrusted tensor: bad dims, dtypes or data sizes are one-line errors."""
    dims = list(tensor.dims)
    if any(d < 0 for d in dims) or math.prod(dims) > _MAX_TENSOR_ELEMENTS:
        raise ModelFormatError(f"{what} has invalid dims {dims}")
    if tensor.data_type == onnx.TensorProto.UNDEFINED or tensor.data_type not in onnx.TensorProto.DataType.values():
        raise ModelFormatError(f"{what} has {_dtype_name(tensor.data_type)}")
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError) as e:
        raise ModelFormatError(f"{what} ({_dtype_name(tensor.data_type)}, dims {dims}) is "
                               f"corrupt: {_one_line(e)}") from e


def _attr_value(attr: onnx.AttributeProto) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    if isinstance(value, onnx.TensorProto):
        return _tensor_array(value, f"tensor attribute {attr.name!r}")
    return value


class _Op:
    """An ONNX node with its attributes decoded, its position and the opset it runs under."""

    def __init__(self, proto: onnx.NodeProto, index: int, opset: int) -> None:
        self.proto = proto
        self.index = index
        self.opset = opset
        self.type = proto.op_type
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.source = f"ONNX node {_printable(proto.name) or '#' + str(index)} ({_printable(proto.op_type)})"
        try:
            self.attrs = {a.name: _attr_value(a) for a in proto.attribute}
        except ModelFormatError as e:
            raise ModelFormatError(f"{self.source}: {e}") from e
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:  # e.g. an attribute of unknown type
            raise ModelFormatError(f"{self.source}: unreadable attribute: {_one_line(e)}") from e

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    def unsupported(self, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.source}: {why}")

    def where(self) -> str:
        domain = self.proto.domain or "ai.onnx"
        return (f"op {_printable(self.type)} (domain {_printable(domain)}) at node "
                f"{_printable(self.proto.name) or '<unnamed>'} (#{self.index})")


# ---- translation state -----------------------------------------------------------------------------------

class _Context:
    """The graph being built and, per ONNX tensor name, its IR value or its numpy constant."""

    def __init__(self, graph: Graph, uses: Counter[str]) -> None:
        self.graph = graph
        self.uses = uses
        self.values: dict[str, Value] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.missing: dict[str, str] = {}  # outputs a handler does not produce -> why
        self.biasless_linear: dict[str, Value] = {}  # ONNX name -> linear without bias (MatMul/Gemm)
        self.hardsigmoid_of: dict[str, str] = {}  # ONNX name of a hardsigmoid output -> its input's name
        self.op: _Op | None = None

    # -- reading
    def _check_known(self, name: str) -> None:
        if name in self.missing:
            raise UnsupportedOpError(self.missing[name])
        if name not in self.values and name not in self.consts:
            where = self.op.source if self.op else "the graph outputs"
            raise ModelFormatError(f"{where} reads tensor {name!r}, which no earlier node or initializer defines")

    def is_const(self, name: str) -> bool:
        self._check_known(name)
        return name in self.consts

    def const(self, name: str) -> np.ndarray | None:
        """The numpy value of ``name`` when known at import time, else None."""
        return self.consts[name] if self.is_const(name) else None

    def need_const(self, op: _Op, i: int, what: str) -> np.ndarray:
        value = self.const(op.inputs[i])
        if value is None:
            raise op.unsupported(f"{what} (input {i}) must be known at import time, it depends on the model input")
        return value

    def opt_const(self, op: _Op, i: int, what: str) -> np.ndarray | None:
        return self.need_const(op, i, what) if op.has_input(i) else None

    def value(self, name: str) -> Value:
        """``name`` as an IR value; a float constant becomes a float32 ``constant`` node on first use."""
        self._check_known(name)
        if name in self.values:
            return self.values[name]
        array = self.consts[name]
        if array.dtype.kind != "f":
            where = self.op.source if self.op else "graph output"
            raise UnsupportedOpError(f"{where}: {array.dtype} tensor {name!r} used as data; lncompile is float32")
        value = self.graph.add_constant(np.ascontiguousarray(array, dtype=np.float32), _hint(name))
        self.values[name] = value
        return value

    def type(self, name: str) -> TensorType:
        array = self.const(name)
        if array is not None:
            return TensorType(array.shape, "float32" if array.dtype.kind == "f" else str(array.dtype))
        return self.graph.type_of(self.values[name])

    def shape(self, name: str) -> tuple[int, ...]:
        return self.type(name).shape

    # -- building
    def emit(self, op: str, args: Sequence[Value], **attrs: Any) -> Value:
        assert self.op is not None
        hint = _hint(self.op.outputs[0] if self.op.outputs else op)
        try:
            node = self.graph.add_op(op, args, attrs, name=hint, source=self.op.source)
        except ShapeError as e:
            raise UnsupportedOpError(f"{self.op.source}: cannot translate to {op}: {e}") from e
        return Value(node.name)

    def emit_multi(self, op: str, args: Sequence[Value], **attrs: Any) -> list[Value]:
        first = self.emit(op, args, **attrs)
        return [Value(first.node, i) for i in range(len(self.graph.record(first.node).outputs))]

    def scalar(self, x: float) -> Value:
        return self.graph.add_constant(np.array(x, dtype=np.float32), "scalar")

    def array(self, x: np.ndarray, hint: str = "const") -> Value:
        return self.graph.add_constant(np.ascontiguousarray(x, dtype=np.float32), hint)


def _hint(name: str) -> str:
    return name.strip("/:._") or "v"


# ---- shared shape arithmetic (used by folds and handlers) ------------------------------------------------

def _axes(axes: Sequence[int] | np.ndarray, rank: int) -> list[int]:
    out = []
    for a in np.asarray(axes, dtype=np.int64).reshape(-1).tolist():
        if not -rank <= a < rank:
            raise ValueError(f"axis {a} out of range for rank {rank}")
        out.append(a % rank)
    return out


def _reshape_target(in_shape: Sequence[int], spec: np.ndarray, allowzero: bool) -> tuple[int, ...]:
    dims = [int(d) for d in np.asarray(spec).reshape(-1)]
    if not allowzero:
        dims = [in_shape[i] if d == 0 else d for i, d in enumerate(dims)]
    if dims.count(-1) > 1:
        raise ValueError(f"reshape spec {dims} has more than one -1")
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = math.prod(in_shape) // known if known else 0
    if math.prod(dims) != math.prod(in_shape):
        raise ValueError(f"cannot reshape {tuple(in_shape)} to {tuple(dims)}")
    return tuple(dims)


def _squeeze_target(shape: Sequence[int], axes: Sequence[int] | None) -> tuple[int, ...]:
    drop = [i for i, d in enumerate(shape) if d == 1] if axes is None else _axes(axes, len(shape))
    return tuple(d for i, d in enumerate(shape) if i not in drop)


def _unsqueeze_target(shape: Sequence[int], axes: Sequence[int]) -> tuple[int, ...]:
    rank = len(shape) + len(list(axes))
    new = set(_axes(axes, rank))
    it = iter(shape)
    return tuple(1 if i in new else next(it) for i in range(rank))


def _flatten_target(shape: Sequence[int], axis: int) -> tuple[int, int]:
    axis = axis + len(shape) if axis < 0 else axis
    return (math.prod(shape[:axis]), math.prod(shape[axis:]))


def _axes_arg(ctx: _Context | None, op: _Op, args: list[np.ndarray | None] | None = None) -> list[int] | None:
    """Squeeze/Unsqueeze/Reduce* axes: an attribute in old opsets, an optional input (1) in newer ones
    (Squeeze/Unsqueeze/ReduceSum from opset 13, the other reductions from opset 18)."""
    if "axes" in op.attrs:
        return list(op.attrs["axes"])
    if not op.has_input(1):
        return None
    array = args[1] if args is not None else ctx.need_const(op, 1, "axes")  # type: ignore[union-attr]
    if np.asarray(array).dtype.kind not in "iu":
        raise ModelFormatError(f"{op.source}: axes (input 1) must be integers, got {np.asarray(array).dtype}")
    return [int(a) for a in np.asarray(array).reshape(-1)]


def _slice_params(op: _Op, shape: Sequence[int], get: Callable[[int], np.ndarray | None]) -> list[slice]:
    """One python slice per axis of ``shape`` for ONNX Slice (attributes before opset 10, inputs after)."""
    if op.opset < 10:
        starts, ends = op.attr("starts"), op.attr("ends")
        axes, steps = op.attr("axes"), None
    else:
        starts, ends, axes, steps = get(1), get(2), get(3), get(4)
    starts = [int(v) for v in np.asarray(starts).reshape(-1)]
    ends = [int(v) for v in np.asarray(ends).reshape(-1)]
    axes = list(range(len(starts))) if axes is None else _axes(axes, len(shape))
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.asarray(steps).reshape(-1)]
    index = [slice(None)] * len(shape)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        index[axis] = slice(start, end, step)
    return index


def _split_sizes(op: _Op, dim: int, sizes: np.ndarray | None) -> list[int]:
    if sizes is None and "split" in op.attrs:
        sizes = np.asarray(op.attrs["split"])
    if sizes is not None:
        out = [int(s) for s in np.asarray(sizes).reshape(-1)]
    elif "num_outputs" in op.attrs:
        step = math.ceil(dim / op.attrs["num_outputs"])
        out = [min(step, dim - i) for i in range(0, dim, step)]
    else:
        n = len(op.outputs)
        if dim % n:
            raise ValueError(f"cannot split {dim} into {n} equal parts")
        out = [dim // n] * n
    if sum(out) != dim or len(out) != len(op.outputs):
        raise ValueError(f"split sizes {out} do not fit dim {dim} and {len(op.outputs)} outputs")
    return out


def _reduce_axes(op: _Op, rank: int, axes: list[int] | None) -> list[int] | None:
    """Normalized reduce axes; None means 'no reduction' (noop_with_empty_axes)."""
    if not axes:
        return None if op.attr("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(_axes(axes, rank))


# ---- constant folding ------------------------------------------------------------------------------------

_MAX_FOLD_ELEMENTS = 1 << 26  # folds that allocate (Expand, Tile, Range, ConstantOfShape) stay below this


def _guard(op: _Op, shape: Sequence[int]) -> tuple[int, ...]:
    """Refuse shapes that would make import allocate absurd amounts (model files are untrusted)."""
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims) or math.prod(dims) > _MAX_FOLD_ELEMENTS:
        raise ModelFormatError(f"{op.source}: constant of shape {dims} is negative or too large to fold")
    return dims


def _arr(x: Any, like: np.ndarray | None = None) -> np.ndarray:
    out = np.asarray(x)
    return out.astype(like.dtype) if like is not None and out.dtype != like.dtype else out


@_folds("Constant")
def _f_constant(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in op.attrs:
            return [np.asarray(op.attrs[key], dtype=dtype)]
    raise op.unsupported(f"Constant with attributes {sorted(op.attrs)} is not supported")


@_folds("Identity", "Dropout")
def _f_identity(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    if op.type == "Dropout" and len(op.outputs) > 1:
        return [a[0], np.ones(a[0].shape, dtype=bool)]
    return [a[0]]


@_folds("Shape")
def _f_shape(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [_shape_array(a[0].shape, op)]


def _shape_array(shape: Sequence[int], op: _Op) -> np.ndarray:
    return np.array(shape, dtype=np.int64)[slice(op.attr("start", 0), op.attr("end"))]


@_folds("Size")
def _f_size(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [np.array(a[0].size, dtype=np.int64)]


@_folds("Cast")
def _f_cast(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [a[0].astype(onnx.helper.tensor_dtype_to_np_dtype(op.attrs["to"]))]


@_folds("CastLike")
def _f_cast_like(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [a[0].astype(a[1].dtype)]


@_folds("Gather")
def _f_gather(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [np.take(a[0], a[1].astype(np.int64), axis=op.attr("axis", 0))]


@_folds("Unsqueeze")
def _f_unsqueeze(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [a[0].reshape(_unsqueeze_target(a[0].shape, _axes_arg(None, op, a) or []))]


@_folds("Squeeze")
def _f_squeeze(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [a[0].reshape(_squeeze_target(a[0].shape, _axes_arg(None, op, a)))]


@_folds("Concat")
def _f_concat(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    parts = [x for x in a if x is not None]
    return [np.concatenate([p.reshape(-1) if p.ndim == 0 else p for p in parts], axis=op.attrs["axis"])]


@_folds("Slice")
def _f_slice(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    index = _slice_params(op, a[0].shape, lambda i: a[i] if i < len(a) else None)
    return [a[0][tuple(index)]]


@_folds("Split")
def _f_split(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    axis = op.attr("axis", 0)
    sizes = _split_sizes(op, a[0].shape[axis], a[1] if len(a) > 1 else None)
    return np.split(a[0], np.cumsum(sizes)[:-1], axis=axis)


@_folds("Reshape")
def _f_reshape(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    spec = a[1] if op.opset >= 5 else np.asarray(op.attrs["shape"])
    return [a[0].reshape(_reshape_target(a[0].shape, spec, bool(op.attr("allowzero", 0))))]


@_folds("Flatten")
def _f_flatten(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [a[0].reshape(_flatten_target(a[0].shape, op.attr("axis", 1)))]


@_folds("Transpose")
def _f_transpose(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [np.transpose(a[0], op.attr("perm"))]


@_folds("Expand")
def _f_expand(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    shape = _guard(op, np.broadcast_shapes(a[0].shape, tuple(int(d) for d in a[1])))
    return [np.broadcast_to(a[0], shape).copy()]


@_folds("Tile")
def _f_tile(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    reps = [int(r) for r in a[1]]
    _guard(op, [d * r for d, r in zip((1,) * (len(reps) - a[0].ndim) + a[0].shape, reps, strict=False)])
    return [np.tile(a[0], reps)]


@_folds("Range")
def _f_range(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    start, limit, delta = a[0].item(), a[1].item(), a[2].item()
    _guard(op, [max(math.ceil((limit - start) / delta), 0)] if delta else [-1])
    return [np.arange(start, limit, delta).astype(a[0].dtype)]


@_folds("ConstantOfShape")
def _f_constant_of_shape(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    fill = op.attr("value", np.zeros(1, dtype=np.float32))
    return [np.full(_guard(op, a[0].reshape(-1)), fill.reshape(-1)[0], dtype=fill.dtype)]


@_folds("Where")
def _f_where(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [np.where(a[0], a[1], a[2]).astype(a[1].dtype)]


@_folds("NonZero")
def _f_nonzero(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [np.array(np.nonzero(a[0]), dtype=np.int64).reshape(a[0].ndim, -1)]


def _int_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu":
        return _arr(np.trunc(np.true_divide(x, y)), x)  # ONNX integer Div truncates, like C
    return _arr(np.true_divide(x, y), x)


_BINARY_FOLDS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _int_div, "Pow": np.power,
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}  # fmt: skip


def _binary_fold(fn: Callable[[np.ndarray, np.ndarray], Any], op_type: str) -> Fold:
    keep_type = op_type in ("Add", "Sub", "Mul", "Div", "Pow")
    return lambda op, a: [_arr(fn(a[0], a[1]), a[0] if keep_type else None)]


for _t, _fn in _BINARY_FOLDS.items():
    FOLDS[_t] = _binary_fold(_fn, _t)


@_folds("Mod")
def _f_mod(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
    return [_arr((np.fmod if op.attr("fmod", 0) else np.mod)(a[0], a[1]), a[0])]


_VARIADIC_FOLDS = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add}


def _variadic_fold(fn: Callable[[np.ndarray, np.ndarray], Any]) -> Fold:
    return lambda op, a: [_arr(functools.reduce(fn, [x for x in a if x is not None]), a[0])]


for _t, _fn in _VARIADIC_FOLDS.items():
    FOLDS[_t] = _variadic_fold(_fn)

_UNARY_FOLDS: dict[str, Callable[[np.ndarray], Any]] = {
    "Neg": np.negative, "Abs": np.abs, "Floor": np.floor, "Ceil": np.ceil, "Sqrt": np.sqrt, "Exp": np.exp,
    "Reciprocal": np.reciprocal, "Relu": lambda x: np.maximum(x, 0), "Sign": np.sign, "Not": np.logical_not,
    "Round": np.round, "Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Tanh": np.tanh, "Log": np.log,
}  # fmt: skip


def _unary_fold(fn: Callable[[np.ndarray], Any]) -> Fold:
    return lambda op, a: [_arr(fn(a[0]), a[0])]


for _t, _fn in _UNARY_FOLDS.items():
    FOLDS[_t] = _unary_fold(_fn)

_REDUCE_FOLDS = {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min,
                 "ReduceMean": np.mean}


def _reduce_fold(fn: Callable[..., Any]) -> Fold:
    def fold(op: _Op, a: list[np.ndarray | None]) -> list[np.ndarray]:
        axes = _reduce_axes(op, a[0].ndim, _axes_arg(None, op, a))
        if axes is None:
            return [a[0]]
        return [_arr(fn(a[0], axis=tuple(axes), keepdims=bool(op.attr("keepdims", 1))), a[0])]

    return fold


for _t, _fn in _REDUCE_FOLDS.items():
    FOLDS[_t] = _reduce_fold(_fn)


# ---- handlers: convolution, normalization, dense ---------------------------------------------------------

def _window_ints(op: _Op, name: str, default: Sequence[int], length: int, low: int) -> tuple[int, ...]:
    """A 2-d window attribute (kernel_shape, strides, dilations, pads) checked for length and range."""
    value = tuple(op.attr(name, default))
    if len(value) != length or any(v < low for v in value) or any(v > _MAX_TENSOR_ELEMENTS for v in value):
        raise ModelFormatError(f"{op.source}: attribute {name}={list(value)} is invalid for a 2-d window op "
                               f"({length} values >= {low} expected)")
    return value


def _auto_pads(op: _Op, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
               dilations: Sequence[int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from ``auto_pad`` / ``pads`` for a 2-d window op."""
    mode = op.attr("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        pads = _window_ints(op, "pads", (0, 0, 0, 0), 4, 0)
        return (pads[0], pads[1], pads[2], pads[3])
    if mode not in ("VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ModelFormatError(f"{op.source}: unknown auto_pad {_printable(str(mode))!r}")
    if mode == "VALID":
        return (0, 0, 0, 0)
    lo, hi = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        lo.append(small if mode == "SAME_UPPER" else big)
        hi.append(big if mode == "SAME_UPPER" else small)
    return (lo[0], lo[1], hi[0], hi[1])


@_handles("Conv")
def _conv(ctx: _Context, op: _Op) -> list[Result]:
    wshape = ctx.shape(op.inputs[1])
    if len(wshape) != 4:
        raise op.unsupported(f"only 2-d convolution is supported, weight shape is {wshape}")
    x, w = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    strides = _window_ints(op, "strides", (1, 1), 2, 1)
    dilations = _window_ints(op, "dilations", (1, 1), 2, 1)
    kernel = _window_ints(op, "kernel_shape", wshape[2:], 2, 1)
    if kernel != tuple(wshape[2:]):
        raise ModelFormatError(f"{op.source}: kernel_shape {list(kernel)} does not match the weight's {wshape}")
    if ctx.graph.type_of(x).rank != 4:
        raise op.unsupported(f"only 2-d convolution is supported, input is {ctx.graph.type_of(x)}")
    groups = op.attr("group", 1)
    if groups < 1:
        raise ModelFormatError(f"{op.source}: group={groups} must be >= 1")
    pads = _auto_pads(op, ctx.graph.type_of(x).shape[2:], kernel, strides, dilations)
    args = [x, w] + ([ctx.value(op.inputs[2])] if op.has_input(2) else [])
    return [ctx.emit("conv2d", args, strides=strides, padding=pads, dilation=dilations, groups=groups)]


@_handles("BatchNormalization")
def _batch_norm(ctx: _Context, op: _Op) -> list[Result]:
    if op.attr("training_mode", 0):
        raise op.unsupported("batch normalization in training mode; export the model in eval mode")
    args = [ctx.value(n) for n in op.inputs[:5]]
    return [ctx.emit("batch_norm", args, eps=float(op.attr("epsilon", 1e-5)))]


@_handles("LayerNormalization")
def _layer_norm(ctx: _Context, op: _Op) -> list[Result]:
    xt = ctx.type(op.inputs[0])
    axis = _axes([op.attr("axis", -1)], xt.rank)[0]
    norm_shape = xt.shape[axis:]
    params = []
    for i, default in ((1, 1.0), (2, 0.0)):
        if op.has_input(i) and not ctx.is_const(op.inputs[i]) and ctx.shape(op.inputs[i]) == norm_shape:
            params.append(ctx.value(op.inputs[i]))
            continue
        array = ctx.opt_const(op, i, "layer norm scale/bias")
        array = np.full(norm_shape, default, np.float32) if array is None else np.broadcast_to(array, norm_shape)
        params.append(ctx.array(array, "ln_scale" if i == 1 else "ln_bias"))
    return [ctx.emit("layer_norm", [ctx.value(op.inputs[0]), *params], eps=float(op.attr("epsilon", 1e-5)))]


def _linear_weight(ctx: _Context, w: np.ndarray, alpha: float = 1.0) -> Value:
    return ctx.array(np.ascontiguousarray(w.T * np.float32(alpha)), "weight")


@_handles("MatMul")
def _matmul(ctx: _Context, op: _Op) -> list[Result]:
    a_name, b_name = op.inputs[0], op.inputs[1]
    at, bt = ctx.type(a_name), ctx.type(b_name)
    b_const = ctx.const(b_name)
    if b_const is not None and bt.rank == 2 and at.rank >= 1:
        out = ctx.emit("linear", [ctx.value(a_name), _linear_weight(ctx, b_const)])
        ctx.biasless_linear[op.outputs[0]] = out
        return [out]
    a, b = ctx.value(a_name), ctx.value(b_name)
    if at.rank == 1:
        a = ctx.emit("reshape", [a], shape=(1, at.shape[0]))
    if bt.rank == 1:
        b = ctx.emit("reshape", [b], shape=(bt.shape[0], 1))
    out = ctx.emit("matmul", [a, b])
    if at.rank == 1 or bt.rank == 1:
        shape = ctx.graph.type_of(out).shape
        shape = shape[:-2] + shape[-2 + (at.rank == 1):-1 if bt.rank == 1 else None]
        out = ctx.emit("reshape", [out], shape=shape)
    return [out]


@_handles("Gemm")
def _gemm(ctx: _Context, op: _Op) -> list[Result]:
    alpha, beta = float(op.attr("alpha", 1.0)), float(op.attr("beta", 1.0))
    a = ctx.value(op.inputs[0])
    if op.attr("transA", 0):
        a = ctx.emit("transpose", [a], perm=(1, 0))
    b_const = ctx.const(op.inputs[1])
    if b_const is not None:
        w = b_const.T if op.attr("transB", 0) else b_const  # as (K, N)
        out = ctx.emit("linear", [a, _linear_weight(ctx, w, alpha)])
    else:
        b = ctx.value(op.inputs[1])
        if op.attr("transB", 0):
            b = ctx.emit("transpose", [b], perm=(1, 0))
        out = ctx.emit("matmul", [a, b])
        if alpha != 1.0:
            out = ctx.emit("mul", [out, ctx.scalar(alpha)])
    if not op.has_input(2) or beta == 0.0:
        if b_const is not None:
            ctx.biasless_linear[op.outputs[0]] = out
        return [out]
    c = ctx.const(op.inputs[2])
    n = ctx.graph.type_of(out).shape[-1]
    if b_const is not None and c is not None and c.size in (1, n) and c.ndim <= 2 and c.shape[:-1] in ((), (1,)):
        bias = np.broadcast_to(c.reshape(-1) * np.float32(beta), (n,))
        return [ctx.emit("linear", [*ctx.graph.args(out.node), ctx.array(bias, "bias")])]
    cv = ctx.value(op.inputs[2])
    if beta != 1.0:
        cv = ctx.emit("mul", [cv, ctx.scalar(beta)])
    return [ctx.emit("add", [out, cv])]


# ---- handlers: elementwise -------------------------------------------------------------------------------

_UNARY = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Erf": "erf", "Exp": "exp", "Sqrt": "sqrt",
    "Reciprocal": "reciprocal", "Neg": "neg", "Abs": "abs", "HardSwish": "hardswish",
}  # fmt: skip


def _unary(ir_op: str) -> Handler:
    return lambda ctx, op: [ctx.emit(ir_op, [ctx.value(op.inputs[0])])]


for _t, _ir in _UNARY.items():
    HANDLERS[_t] = _unary(_ir)


@_handles("Identity", "Dropout")
def _identity(ctx: _Context, op: _Op) -> list[Result]:
    if op.type == "Dropout" and len(op.outputs) > 1 and ctx.uses[op.outputs[1]]:
        raise op.unsupported("the dropout mask output is not supported")
    return [ctx.value(op.inputs[0])]


@_handles("Cast", "CastLike")
def _cast(ctx: _Context, op: _Op) -> list[Result]:
    to = op.attrs.get("to") if op.type == "Cast" else onnx.helper.np_dtype_to_tensor_dtype(
        np.dtype(ctx.type(op.inputs[1]).dtype))
    if to != onnx.TensorProto.FLOAT:
        raise op.unsupported(f"cast of a model tensor to {_dtype_name(to)} is not supported")
    return [ctx.value(op.inputs[0])]


@_handles("Gelu")
def _gelu(ctx: _Context, op: _Op) -> list[Result]:
    return [ctx.emit("gelu", [ctx.value(op.inputs[0])], approximate=op.attr("approximate", "none"))]


@_handles("LeakyRelu")
def _leaky_relu(ctx: _Context, op: _Op) -> list[Result]:
    return [ctx.emit("leaky_relu", [ctx.value(op.inputs[0])], alpha=float(op.attr("alpha", 0.01)))]


def _bound(ctx: _Context, op: _Op, i: int, attr: str, default: float) -> float:
    if op.opset < 11:
        return float(op.attr(attr, default))
    array = ctx.opt_const(op, i, f"clip {attr}")
    return default if array is None else float(array.reshape(-1)[0])


@_handles("Clip")
def _clip(ctx: _Context, op: _Op) -> list[Result]:
    lo, hi = _bound(ctx, op, 1, "min", -math.inf), _bound(ctx, op, 2, "max", math.inf)
    return [ctx.emit("clip", [ctx.value(op.inputs[0])], min=lo, max=hi)]


@_handles("HardSigmoid")
def _hard_sigmoid(ctx: _Context, op: _Op) -> list[Result]:
    alpha, beta = float(op.attr("alpha", 0.2)), float(op.attr("beta", 0.5))
    x = ctx.value(op.inputs[0])
    if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5):
        ctx.hardsigmoid_of[op.outputs[0]] = op.inputs[0]
        return [ctx.emit("hardsigmoid", [x])]
    y = ctx.emit("add", [ctx.emit("mul", [x, ctx.scalar(alpha)]), ctx.scalar(beta)])
    return [ctx.emit("clip", [y], min=0.0, max=1.0)]


@_handles("PRelu")
def _prelu(ctx: _Context, op: _Op) -> list[Result]:
    xt = ctx.type(op.inputs[0])
    slope = ctx.const(op.inputs[1])
    if slope is not None and xt.rank >= 2:
        channels = xt.shape[1]
        per_axis1 = np.broadcast_shapes(slope.shape, xt.shape) == xt.shape and all(
            d == 1 for i, d in enumerate((1,) * (xt.rank - slope.ndim) + slope.shape) if i != 1)
        if per_axis1 and slope.size in (1, channels):
            return [ctx.emit("prelu", [ctx.value(op.inputs[0]), ctx.array(slope.reshape(-1), "slope")])]
    # General broadcasting slope: relu(x) - slope * relu(-x).
    x = ctx.value(op.inputs[0])
    neg_part = ctx.emit("relu", [ctx.emit("neg", [x])])
    return [ctx.emit("sub", [ctx.emit("relu", [x]), ctx.emit("mul", [ctx.value(op.inputs[1]), neg_part])])]


@_handles("Softmax")
def _softmax(ctx: _Context, op: _Op) -> list[Result]:
    xt = ctx.type(op.inputs[0])
    x = ctx.value(op.inputs[0])
    axis = _axes([op.attr("axis", -1 if op.opset >= 13 else 1)], xt.rank)[0]
    if op.opset >= 13 or axis == xt.rank - 1:
        return [ctx.emit("softmax", [x], axis=axis)]
    # Before opset 13, Softmax flattens the input to 2-d at `axis` and normalizes each row.
    flat = ctx.emit("reshape", [x], shape=_flatten_target(xt.shape, axis))
    return [ctx.emit("reshape", [ctx.emit("softmax", [flat], axis=1)], shape=xt.shape)]


_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "maximum", "Min": "minimum",
           "Sum": "add"}


def _fused_bias(ctx: _Context, op: _Op) -> Value | None:
    """Add(linear_without_bias, bias[N]) -> one linear with bias, when nothing else reads the product."""
    for prod, other in ((op.inputs[0], op.inputs[1]), (op.inputs[1], op.inputs[0])):
        lin = ctx.biasless_linear.get(prod)
        bias = ctx.const(other)
        if lin is None or bias is None or ctx.uses[prod] != 1 or bias.dtype.kind != "f":
            continue
        out_shape = ctx.graph.type_of(lin).shape
        if bias.ndim > len(out_shape) or bias.size != out_shape[-1] or bias.shape[-1] != out_shape[-1]:
            continue
        return ctx.emit("linear", [*ctx.graph.args(lin.node), ctx.array(bias.reshape(-1), "bias")])
    return None


def _fused_hardswish(ctx: _Context, op: _Op) -> Value | None:
    """Mul(x, HardSigmoid(x)) -> hardswish(x) (the TorchScript exporter's spelling of hardswish at opset < 14)."""
    for gate, other in ((op.inputs[0], op.inputs[1]), (op.inputs[1], op.inputs[0])):
        if ctx.hardsigmoid_of.get(gate) == other and ctx.uses[gate] == 1:
            return ctx.emit("hardswish", [ctx.value(other)])
    return None


_FUSIONS: dict[str, Callable[[_Context, _Op], Value | None]] = {"Add": _fused_bias, "Mul": _fused_hardswish}


def _binary(ir_op: str) -> Handler:
    def handler(ctx: _Context, op: _Op) -> list[Result]:
        fuse = _FUSIONS.get(op.type)
        fused = fuse(ctx, op) if fuse is not None and len(op.inputs) == 2 else None
        if fused is not None:
            return [fused]
        names = [n for n in op.inputs if n]
        out = ctx.value(names[0])
        for name in names[1:]:
            out = ctx.emit(ir_op, [out, ctx.value(name)])
        return [out]

    return handler


for _t, _ir in _BINARY.items():
    HANDLERS[_t] = _binary(_ir)


@_handles("Pow")
def _pow(ctx: _Context, op: _Op) -> list[Result]:
    exponent = ctx.const(op.inputs[1])
    if exponent is not None and exponent.size == 1:
        e = float(exponent.reshape(-1)[0])
        return [ctx.emit("pow_scalar", [ctx.value(op.inputs[0])], exponent=e)]
    return [ctx.emit("pow", [ctx.value(op.inputs[0]), ctx.value(op.inputs[1])])]


# ---- handlers: reductions and pooling --------------------------------------------------------------------

_REDUCE = {"ReduceMean": "mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max", "ReduceMin": "reduce_min"}


def _reduce(ir_op: str) -> Handler:
    def handler(ctx: _Context, op: _Op) -> list[Result]:
        xt = ctx.type(op.inputs[0])
        x = ctx.value(op.inputs[0])
        axes = _reduce_axes(op, xt.rank, _axes_arg(ctx, op, None))
        if axes is None:
            return [x]
        keep = bool(op.attr("keepdims", 1))
        if ir_op == "reduce_min":  # min(x) = -max(-x)
            return [ctx.emit("neg", [ctx.emit("reduce_max", [ctx.emit("neg", [x])], axes=axes, keepdims=keep)])]
        return [ctx.emit(ir_op, [x], axes=axes, keepdims=keep)]

    return handler


for _t, _ir in _REDUCE.items():
    HANDLERS[_t] = _reduce(_ir)


@_handles("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: _Context, op: _Op) -> list[Result]:
    rank = ctx.type(op.inputs[0]).rank
    ir_op = "mean" if op.type == "GlobalAveragePool" else "reduce_max"
    return [ctx.emit(ir_op, [ctx.value(op.inputs[0])], axes=list(range(2, rank)), keepdims=True)]


@_handles("AveragePool", "MaxPool")
def _pool(ctx: _Context, op: _Op) -> list[Result]:
    xt = ctx.type(op.inputs[0])
    kernel = tuple(op.attrs["kernel_shape"])
    if xt.rank != 4 or len(kernel) != 2:
        raise op.unsupported(f"only 2-d pooling is supported, input is {xt}")
    if op.type == "MaxPool" and len(op.outputs) > 1 and ctx.uses[op.outputs[1]]:
        raise op.unsupported("the MaxPool indices output is not supported")
    kernel = _window_ints(op, "kernel_shape", (), 2, 1)
    strides = _window_ints(op, "strides", (1, 1), 2, 1)
    dilations = _window_ints(op, "dilations", (1, 1), 2, 1)
    pads = _auto_pads(op, xt.shape[2:], kernel, strides, dilations)
    attrs: dict[str, Any] = {"kernel": kernel, "strides": strides, "padding": pads,
                             "ceil_mode": bool(op.attr("ceil_mode", 0))}
    if op.type == "MaxPool":
        return [ctx.emit("max_pool2d", [ctx.value(op.inputs[0])], dilation=dilations, **attrs)]
    if dilations != (1, 1):
        raise op.unsupported(f"average pooling with dilations {dilations} is not supported")
    return [ctx.emit("avg_pool2d", [ctx.value(op.inputs[0])], count_include_pad=bool(
        op.attr("count_include_pad", 0)), **attrs)]


# ---- handlers: data movement -----------------------------------------------------------------------------

def _reshaped(ctx: _Context, name: str, shape: Sequence[int]) -> Value:
    x = ctx.value(name)
    return x if tuple(shape) == ctx.graph.type_of(x).shape else ctx.emit("reshape", [x], shape=tuple(shape))


@_handles("Reshape")
def _reshape(ctx: _Context, op: _Op) -> list[Result]:
    spec = ctx.need_const(op, 1, "the target shape") if op.opset >= 5 else np.asarray(op.attrs["shape"])
    try:
        shape = _reshape_target(ctx.shape(op.inputs[0]), spec, bool(op.attr("allowzero", 0)))
    except ValueError as e:
        raise ModelFormatError(f"{op.source}: {e} (was the model exported for another input shape?)") from e
    return [_reshaped(ctx, op.inputs[0], shape)]


@_handles("Flatten")
def _flatten(ctx: _Context, op: _Op) -> list[Result]:
    return [_reshaped(ctx, op.inputs[0], _flatten_target(ctx.shape(op.inputs[0]), op.attr("axis", 1)))]


@_handles("Squeeze")
def _squeeze(ctx: _Context, op: _Op) -> list[Result]:
    return [_reshaped(ctx, op.inputs[0], _squeeze_target(ctx.shape(op.inputs[0]), _axes_arg(ctx, op)))]


@_handles("Unsqueeze")
def _unsqueeze(ctx: _Context, op: _Op) -> list[Result]:
    axes = _axes_arg(ctx, op) or []
    return [_reshaped(ctx, op.inputs[0], _unsqueeze_target(ctx.shape(op.inputs[0]), axes))]


@_handles("Transpose")
def _transpose(ctx: _Context, op: _Op) -> list[Result]:
    rank = ctx.type(op.inputs[0]).rank
    perm = _axes(op.attr("perm", list(range(rank))[::-1]), rank)
    x = ctx.value(op.inputs[0])
    return [x if perm == list(range(rank)) else ctx.emit("transpose", [x], perm=perm)]


@_handles("Concat")
def _concat(ctx: _Context, op: _Op) -> list[Result]:
    values = [ctx.value(n) for n in op.inputs if n and math.prod(ctx.shape(n)) > 0]
    if len(values) == 1:
        return values
    rank = ctx.graph.type_of(values[0]).rank
    return [ctx.emit("concat", values, axis=_axes([op.attrs["axis"]], rank)[0])]


@_handles("Split")
def _split(ctx: _Context, op: _Op) -> list[Result]:
    xt = ctx.type(op.inputs[0])
    axis = _axes([op.attr("axis", 0)], xt.rank)[0]
    try:
        sizes = _split_sizes(op, xt.shape[axis], ctx.opt_const(op, 1, "split sizes"))
    except ValueError as e:
        raise ModelFormatError(f"{op.source}: {e}") from e
    if len(sizes) == 1:
        return [ctx.value(op.inputs[0])]
    return ctx.emit_multi("split", [ctx.value(op.inputs[0])], axis=axis, sizes=sizes)


@_handles("Slice")
def _slice(ctx: _Context, op: _Op) -> list[Result]:
    shape = ctx.shape(op.inputs[0])
    index = _slice_params(op, shape, lambda i: ctx.opt_const(op, i, "slice bounds"))
    out = ctx.value(op.inputs[0])
    for axis, (sl, dim) in enumerate(zip(index, shape, strict=True)):
        r = range(dim)[sl]
        if r.step < 0:
            raise op.unsupported(f"a negative slice step ({r.step}) is not supported")
        if len(r) == 0:
            raise op.unsupported(f"an empty slice on axis {axis} is not supported")
        if (r.start, r.stop, r.step) != (0, dim, 1):
            out = ctx.emit("slice", [out], axis=axis, start=r.start, end=min(r.stop, dim), step=r.step)
    return [out]


@_handles("Gather")
def _gather(ctx: _Context, op: _Op) -> list[Result]:
    xt = ctx.type(op.inputs[0])
    axis = _axes([op.attr("axis", 0)], xt.rank)[0]
    indices = ctx.need_const(op, 1, "gather indices")
    if indices.ndim > 1:
        raise op.unsupported("gathering a model tensor with multi-dimensional indices is not supported")
    picks = [int(i) % xt.shape[axis] for i in indices.reshape(-1)]
    x = ctx.value(op.inputs[0])
    step = picks[1] - picks[0] if len(picks) > 1 else 1
    if step >= 1 and picks == list(range(picks[0], picks[0] + step * len(picks), step)):
        parts = [ctx.emit("slice", [x], axis=axis, start=picks[0], end=picks[-1] + 1, step=step)]
    else:
        parts = [ctx.emit("slice", [x], axis=axis, start=p, end=p + 1, step=1) for p in picks]
    out = parts[0] if len(parts) == 1 else ctx.emit("concat", parts, axis=axis)
    shape = xt.shape[:axis] + indices.shape + xt.shape[axis + 1:]
    return [out if ctx.graph.type_of(out).shape == shape else ctx.emit("reshape", [out], shape=shape)]


@_handles("Expand")
def _expand(ctx: _Context, op: _Op) -> list[Result]:
    xt = ctx.type(op.inputs[0])
    target = tuple(int(d) for d in ctx.need_const(op, 1, "the expanded shape"))
    shape = tuple(np.broadcast_shapes(xt.shape, target))
    x = ctx.value(op.inputs[0])
    return [x if shape == xt.shape else ctx.emit("broadcast_to", [x], shape=shape)]


@_handles("Pad")
def _pad(ctx: _Context, op: _Op) -> list[Result]:
    mode = op.attr("mode", "constant")
    if mode != "constant":
        raise op.unsupported(f"pad mode {mode!r} is not supported (only 'constant')")
    rank = ctx.type(op.inputs[0]).rank
    if op.opset < 11:
        flat, value, axes = list(op.attr("pads")), float(op.attr("value", 0.0)), list(range(rank))
    else:
        flat = [int(p) for p in ctx.need_const(op, 1, "pads").reshape(-1)]
        cval = ctx.opt_const(op, 2, "the pad value")
        value = 0.0 if cval is None or cval.size == 0 else float(cval.reshape(-1)[0])
        axes_arr = ctx.opt_const(op, 3, "pad axes")
        axes = list(range(rank)) if axes_arr is None else _axes(axes_arr, rank)
    pads = [(0, 0)] * rank
    for i, axis in enumerate(axes):
        pads[axis] = (int(flat[i]), int(flat[i + len(axes)]))
    x = ctx.value(op.inputs[0])
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
    if any(lo or hi for lo, hi in grow):
        x = ctx.emit("pad", [x], pads=grow, value=value)
    shape = ctx.graph.type_of(x).shape
    for axis, (lo, hi) in enumerate(pads):  # negative pads crop
        if lo < 0 or hi < 0:
            x = ctx.emit("slice", [x], axis=axis, start=max(-lo, 0), end=shape[axis] - max(-hi, 0), step=1)
    return [x]


# ---- Resize / Upsample -----------------------------------------------------------------------------------

def _onnx_coords(mode: str, size: int, out: int, scale: float) -> np.ndarray:
    """ONNX Resize source coordinate of every output index along one axis."""
    x = np.arange(out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        return x * (size - 1) / (out - 1) if out > 1 else np.zeros(out)
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    raise ValueError(f"coordinate_transformation_mode {mode!r} is not supported")


_NEAREST = {
    "floor": np.floor, "ceil": np.ceil,
    "round_prefer_floor": lambda c: np.ceil(c - 0.5), "round_prefer_ceil": lambda c: np.floor(c + 0.5),
}  # fmt: skip


def _matches_torch(method: str, coord_mode: str, nearest_mode: str, size: int, out: int, scale: float) -> str | None:
    """The IR resize2d mode ('nearest', 'bilinear' or 'bilinear_ac') that samples exactly like ONNX, or None."""
    try:
        src = _onnx_coords(coord_mode, size, out, scale)
    except ValueError:
        return None
    x = np.arange(out, dtype=np.float32)
    if method == "nearest":
        mine = np.clip(_NEAREST[nearest_mode](src), 0, size - 1)
        torch_idx = np.minimum(np.floor(x * np.float32(size / out)), size - 1)
        return "nearest" if np.array_equal(mine, torch_idx) else None
    mine = np.clip(src, 0, size - 1)
    half = np.clip(np.maximum((x + 0.5) * (size / out) - 0.5, 0), 0, size - 1)
    corners = x * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    if np.allclose(mine, half, atol=1e-5 * size):
        return "bilinear"
    return "bilinear_ac" if np.allclose(mine, corners, atol=1e-5 * size) else None


def _resize_plan(ctx: _Context, op: _Op, shape: tuple[int, ...]) -> tuple[tuple[int, ...], list[float]]:
    """Output shape and per-axis scales of a Resize/Upsample node."""
    rank = len(shape)
    if op.type == "Upsample" or op.opset < 11:
        scales = ctx.need_const(op, 1, "scales") if op.has_input(1) else np.asarray(op.attrs["scales"])
        sizes = None
    else:
        scales, sizes = ctx.opt_const(op, 2, "scales"), ctx.opt_const(op, 3, "sizes")
        if scales is not None and scales.size == 0:
            scales = None
    axes = _axes(op.attr("axes", list(range(rank))), rank)
    full_scales, full_sizes = [1.0] * rank, list(shape)
    if sizes is not None:
        if op.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise op.unsupported("keep_aspect_ratio_policy other than 'stretch' is not supported")
        for axis, s in zip(axes, sizes.reshape(-1), strict=True):
            full_sizes[axis], full_scales[axis] = int(s), int(s) / shape[axis]
    elif scales is not None:
        for axis, s in zip(axes, scales.reshape(-1), strict=True):
            full_scales[axis] = float(s)
            full_sizes[axis] = math.floor(shape[axis] * float(s))
    else:
        raise ModelFormatError(f"{op.source}: neither scales nor sizes given")
    return tuple(full_sizes), full_scales


@_handles("Resize", "Upsample")
def _resize(ctx: _Context, op: _Op) -> list[Result]:
    shape = ctx.shape(op.inputs[0])
    out, scales = _resize_plan(ctx, op, shape)
    if len(shape) != 4 or out[:2] != shape[:2]:
        raise op.unsupported(f"only spatial resizing of NCHW tensors is supported ({shape} -> {out})")
    method = op.attr("mode", "nearest")
    old = op.type == "Upsample" or op.opset < 11
    coord_mode = "asymmetric" if old else op.attr("coordinate_transformation_mode", "half_pixel")
    nearest_mode = "floor" if old else op.attr("nearest_mode", "round_prefer_floor")
    if method not in ("nearest", "linear", "bilinear"):
        raise op.unsupported(f"resize mode {method!r} is not supported (nearest and linear are)")
    if op.attr("antialias", 0) and min(scales[2:]) < 1:
        raise op.unsupported("antialiased downsampling is not supported")
    method = "nearest" if method == "nearest" else "linear"
    modes = {_matches_torch(method, coord_mode, nearest_mode, shape[a], out[a], scales[a]) for a in (2, 3)}
    if len(modes) != 1 or None in modes:
        raise op.unsupported(f"{method} resize with coordinate_transformation_mode={coord_mode!r}"
                             + (f", nearest_mode={nearest_mode!r}" if method == "nearest" else "")
                             + f" from {shape[2:]} to {out[2:]} has no exact equivalent in lncompile")
    mode = modes.pop()
    x = ctx.value(op.inputs[0])
    if out == shape:
        return [x]
    return [ctx.emit("resize2d", [x], size=out[2:], method="nearest" if mode == "nearest" else "bilinear",
                     align_corners=mode == "bilinear_ac")]


@_handles("Shape", "Size")
def _shape(ctx: _Context, op: _Op) -> list[Result]:
    shape = ctx.shape(op.inputs[0])
    if op.type == "Size":
        return [np.array(math.prod(shape), dtype=np.int64)]
    return [_shape_array(shape, op)]


# ---- loading ---------------------------------------------------------------------------------------------

def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for g in attr.graphs:
                yield from _graph_tensors(g)


def _external_location(tensor: onnx.TensorProto) -> str:
    info = {e.key: e.value for e in tensor.external_data}
    return info.get("location", "")


def _check_external_location(location: str, base: Path, tensor: str) -> None:
    """Refuse external data that is absolute, leaves the model's folder, or is missing."""
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if (not location or os.path.isabs(location) or PureWindowsPath(location).is_absolute()
            or PureWindowsPath(location).drive or ".." in parts or (parts and parts[0] == "/")):
        raise ModelFormatError(
            f"tensor {tensor!r} keeps its data at {location!r}, outside the model's folder; "
            "lncompile only reads external data stored next to the model")
    try:
        target = (base / location).resolve()
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"tensor {tensor!r}: invalid external data location {location!r}") from e
    if not target.is_relative_to(base.resolve()):
        raise ModelFormatError(f"tensor {tensor!r}: external data {location!r} resolves outside the model's folder")
    if not target.is_file():
        raise ModelFormatError(f"tensor {tensor!r}: external data file {location!r} not found next to the model")


def _load_external(model: onnx.ModelProto, base: Path | None) -> None:
    external = [t for t in _graph_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if not external:
        return
    if base is None:
        raise ModelFormatError(
            f"tensor {external[0].name!r} keeps its data in an external file; pass the model's path instead "
            "of a ModelProto")
    for tensor in external:
        _check_external_location(_external_location(tensor), base, tensor.name)
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(base))
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelFormatError(f"cannot read the model's external data: {_one_line(e)}") from e


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _check_strings(message: Any, label: str) -> None:
    """Every string field holds text. protobuf hands an invalid-UTF-8 string field (a flipped byte in a
    name, say) to Python as ``bytes``, which no code reading names expects."""
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for sub in values:
                _check_strings(sub, label)
        elif field.type == FieldDescriptor.TYPE_STRING and any(not isinstance(v, str) for v in values):
            raise ModelFormatError(f"{label}: field {field.name!r} of {message.DESCRIPTOR.name} is not valid "
                                   "UTF-8 text (corrupt file?)")


def _read_model(model: str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        _load_external(model, None)
        return model
    path = Path(model)
    if not path.exists():
        raise ModelFormatError(f"ONNX model {str(path)!r} does not exist")
    if not path.is_file():
        raise ModelFormatError(f"ONNX model {str(path)!r} is not a file")
    if path.stat().st_size == 0:
        raise ModelFormatError(f"ONNX model {str(path)!r} is empty (0 bytes)")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError, UnicodeDecodeError) as e:
        raise ModelFormatError(
            f"{str(path)!r} is not a readable ONNX model (truncated or corrupt?): {_one_line(e)}") from e
    _check_strings(proto, repr(str(path)))
    _load_external(proto, path.parent)
    return proto


def _check_structure(model: onnx.ModelProto, label: str) -> int:
    """Basic sanity of a parsed model; returns its ai.onnx opset."""
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelFormatError(f"{label} holds no ONNX graph (truncated or not an ONNX file?)")
    if not model.graph.output:
        raise ModelFormatError(f"{label}: the ONNX graph declares no outputs (truncated file?)")
    opsets = {o.domain: o.version for o in model.opset_import}
    version = opsets.get("", opsets.get("ai.onnx"))
    if version is None:
        raise ModelFormatError(f"{label} imports no ai.onnx opset (truncated or not an ONNX file?)")
    if version < 1:
        raise ModelFormatError(f"{label} imports ai.onnx opset {version}; opsets start at 1 (corrupt file?)")
    return int(version)


# ---- driver ----------------------------------------------------------------------------------------------

def _input_type(vi: onnx.ValueInfoProto, input_shapes: dict[str, tuple[int, ...]] | None) -> TensorType:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or tt.elem_type != onnx.TensorProto.FLOAT:
        kind = _dtype_name(tt.elem_type) if vi.type.HasField("tensor_type") else "non-tensor"
        raise UsageError(f"input {vi.name!r} is {kind}; lncompile compiles models with float32 inputs")
    dims = list(tt.shape.dim) if tt.HasField("shape") else None
    given = (input_shapes or {}).get(vi.name)
    if given is not None:
        given = tuple(int(d) for d in given)
        if dims is not None and (len(dims) != len(given) or any(
                d.HasField("dim_value") and d.dim_value != g for d, g in zip(dims, given, strict=False))):
            declared = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims)
            raise UsageError(f"input {vi.name!r}: given shape {given} does not match the model's {declared}")
        if any(g <= 0 for g in given):
            raise UsageError(f"input {vi.name!r}: shape {given} has a non-positive dimension")
        if math.prod(given) > _MAX_TENSOR_ELEMENTS:
            raise UsageError(f"input {vi.name!r}: shape {given} has more than 2**31-1 elements")
        return TensorType(given)
    if dims is None:
        raise UsageError(f"input {vi.name!r} has no declared shape; pass its shape (input_shapes / --input-shape)")
    for axis, d in enumerate(dims):
        if not d.HasField("dim_value") or d.dim_value <= 0:
            sym = d.dim_param or "unknown"
            raise UsageError(f"input {vi.name!r} has a dynamic dimension {sym!r} at axis {axis}; pass its static "
                             f"shape (input_shapes={{{vi.name!r}: (...)}} or --input-shape {vi.name}=...)")
    shape = tuple(d.dim_value for d in dims)
    if math.prod(shape) > _MAX_TENSOR_ELEMENTS:
        raise ModelFormatError(f"input {vi.name!r} declares shape {shape}, more than 2**31-1 elements "
                               f"(corrupt file? else pass a smaller --input-shape {vi.name}=...)")
    return TensorType(shape)


def _uses(graph: onnx.GraphProto) -> Counter[str]:
    uses: Counter[str] = Counter(n for node in graph.node for n in node.input if n)
    uses.update(o.name for o in graph.output)
    return uses


_ATTR_WIDENS = {(onnx.AttributeProto.FLOAT, onnx.AttributeProto.INT),
                (onnx.AttributeProto.FLOATS, onnx.AttributeProto.INTS)}  # (expected, got) that still mean it


def _check_schema(op: _Op) -> None:
    """The node's input/output counts and attribute types agree with the ONNX schema of its op at its opset.

    Model files are untrusted: a handler may assume what the schema promises (a required input exists, an
    ``INTS`` attribute is a list of ints), so a node that breaks its schema is refused here, in one line.
    Ops the installed onnx has no schema for (at this opset) are left to their handler.
    """
    try:
        schema = onnx.defs.get_schema(op.type, op.opset, "")
    except onnx.defs.SchemaError:
        return
    n_in, n_out = len(op.inputs), len(op.outputs)
    if not schema.min_input <= n_in <= schema.max_input:
        raise ModelFormatError(f"{op.source}: has {n_in} inputs; {op.type} (opset {op.opset}) takes "
                               f"{schema.min_input}..{schema.max_input}")
    if not schema.min_output <= n_out <= schema.max_output:
        raise ModelFormatError(f"{op.source}: has {n_out} outputs; {op.type} (opset {op.opset}) has "
                               f"{schema.min_output}..{schema.max_output}")
    single = onnx.defs.OpSchema.FormalParameterOption.Single
    for i, formal in enumerate(schema.inputs[:n_in]):
        if formal.option == single and op.inputs[i] == "":
            raise ModelFormatError(f"{op.source}: required input {i} ({formal.name}) is empty")
    for attr in op.proto.attribute:
        spec = schema.attributes.get(attr.name)
        if spec is not None and int(spec.type) != attr.type and (int(spec.type), attr.type) not in _ATTR_WIDENS:
            got = (onnx.AttributeProto.AttributeType.Name(attr.type)
                   if attr.type in onnx.AttributeProto.AttributeType.values() else f"type {attr.type}")
            raise ModelFormatError(f"{op.source}: attribute {_printable(attr.name)!r} is {got}, "
                                   f"{op.type} wants {spec.type.name}")
    for name, spec in schema.attributes.items():
        if spec.required and name not in op.attrs:
            raise ModelFormatError(f"{op.source}: required attribute {name!r} is missing")


_MALFORMED = (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError, ZeroDivisionError,
              MemoryError)


def _run_node(ctx: _Context, op: _Op) -> None:
    ctx.op = op
    if op.proto.domain not in _DEFAULT_DOMAINS:
        raise UnsupportedOpError(f"unsupported ONNX {op.where()}")
    if op.type not in HANDLERS and op.type not in FOLDS:
        raise UnsupportedOpError(f"unsupported ONNX {op.where()}")
    _check_schema(op)
    present = [n for n in op.inputs if n]
    for n in present:
        ctx._check_known(n)
    fold = FOLDS.get(op.type)
    if fold is not None and all(n in ctx.consts for n in present):
        args = [ctx.consts[n] if n else None for n in op.inputs]
        try:
            results: Sequence[Result] = [np.asarray(r) for r in fold(op, args)]
        except _MALFORMED as e:
            raise ModelFormatError(f"{op.source}: cannot evaluate on constants: {_one_line(e)}") from e
    else:
        handler = HANDLERS.get(op.type)
        if handler is None:
            raise UnsupportedOpError(f"unsupported ONNX {op.where()}")
        try:
            results = handler(ctx, op)
        except _MALFORMED as e:  # attributes or inputs no handler expects (checked where known, this is the net)
            raise ModelFormatError(f"{op.source}: malformed node, cannot translate it: "
                                   f"{type(e).__name__}: {_one_line(e)}") from e
    for i, name in enumerate(op.outputs):
        if not name:
            continue
        if name in ctx.values or name in ctx.consts:
            raise ModelFormatError(f"{op.source}: output {_printable(name)!r} is already defined by an earlier "
                                   "node, initializer or graph input (ONNX tensors are assigned once)")
        if i >= len(results):
            ctx.missing[name] = f"{op.source}: output {i} ({name!r}) is not supported"
        elif isinstance(results[i], np.ndarray):
            ctx.consts[name] = np.asarray(results[i])
        else:
            ctx.values[name] = results[i]  # type: ignore[assignment]


def from_onnx(
    model: str | os.PathLike[str] | onnx.ModelProto,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    name: str | None = None,
) -> Graph:
    """Translate an ONNX model (a path or a ``ModelProto``) into verified IR.

    ``input_shapes`` fixes the shape of inputs with symbolic dimensions (a dynamic batch, say). The IR's
    outputs follow the ONNX graph's output order.
    """
    label = repr(str(model)) if not isinstance(model, onnx.ModelProto) else "the ONNX model"
    proto = _read_model(model)
    opset = _check_structure(proto, label)
    onnx_graph = proto.graph
    default_name = Path(model).stem if not isinstance(model, onnx.ModelProto) else onnx_graph.name or "model"
    graph = Graph(name=name or default_name or "model")
    ctx = _Context(graph, _uses(onnx_graph))
    for init in onnx_graph.initializer:
        ctx.consts[init.name] = _tensor_array(init, f"initializer {init.name!r}")
    graph_inputs = [vi for vi in onnx_graph.input if vi.name not in ctx.consts]
    unknown = sorted(set(input_shapes or {}) - {vi.name for vi in graph_inputs})
    if unknown:
        raise UsageError(f"input_shapes names {unknown}, but the model's inputs are "
                         f"{[vi.name for vi in graph_inputs]}")
    for vi in graph_inputs:
        ctx.values[vi.name] = graph.add_input(_hint(vi.name), _input_type(vi, input_shapes))
    for index, node in enumerate(onnx_graph.node):
        _run_node(ctx, _Op(node, index, opset))
    ctx.op = None
    graph.set_outputs([ctx.value(o.name) for o in onnx_graph.output])
    graph.remove_dead()
    verify(graph)
    return graph


__all__ = ["FOLDS", "HANDLERS", "from_onnx"]
