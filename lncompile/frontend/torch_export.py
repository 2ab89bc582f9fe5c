"""PyTorch frontend: ``torch.export`` an ``nn.Module`` and translate its ATen graph into lncompile's IR.

One handler per ATen op (keyed by the overload packet name, e.g. ``conv2d``); handlers read arguments by
their schema names, so positional and keyword calls look the same. Parameters, buffers and lifted
constants become ``constant`` nodes holding numpy arrays.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.fx

from ..errors import UnsupportedOpError, UsageError
from ..ir import Graph, TensorType, Value, verify
from ..ir.ops import ShapeError

Handler = Callable[["_Context", dict[str, Any]], Value | list[Value]]
HANDLERS: dict[str, Handler] = {}


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn

    return deco


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


class _Context:
    """Translation state for one exported program: the graph being built and fx-name -> value bindings."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.env: dict[str, Value | list[Value]] = {}
        self.node: torch.fx.Node | None = None
        self.source = ""

    def value(self, arg: Any) -> Value:
        """An fx argument as an IR value; Python scalars become 0-d constants."""
        if isinstance(arg, torch.fx.Node):
            bound = self.env[arg.name]
            if isinstance(bound, list):
                raise UnsupportedOpError(f"tuple result {arg.name} used as a tensor at {self.source}")
            return bound
        if isinstance(arg, (bool, int, float)):
            return self.graph.add_constant(np.array(arg, dtype=np.float32), "scalar")
        raise UnsupportedOpError(f"cannot use {type(arg).__name__} argument {arg!r} as a tensor at {self.source}")

    def type(self, arg: Any) -> TensorType:
        return self.graph.type_of(self.value(arg))

    def emit(self, op: str, args: Sequence[Value], **attrs: Any) -> Value:
        node = self.graph.add_op(op, args, attrs, name=self.node.name if self.node else op, source=self.source)
        return Value(node.name)

    def emit_multi(self, op: str, args: Sequence[Value], **attrs: Any) -> list[Value]:
        node = self.graph.add_op(op, args, attrs, name=self.node.name if self.node else op, source=self.source)
        return [Value(node.name, i) for i in range(len(node.outputs))]

    def const(self, array: np.ndarray, hint: str = "const") -> Value:
        return self.graph.add_constant(np.asarray(array, dtype=np.float32), hint)

    def out_shape(self) -> tuple[int, ...]:
        val = self.node.meta.get("val") if self.node is not None else None
        if not isinstance(val, torch.Tensor):
            raise UnsupportedOpError(f"{self.node.target} at {self.source}: output shape unknown")
        return tuple(int(d) for d in val.shape)


def _axis(axis: int, rank: int) -> int:
    return axis % rank if rank else 0


# ---- convolution, normalization, dense -----------------------------------------------------------------

@_handles("conv2d", "convolution", "_convolution")
def _conv(ctx: _Context, a: dict[str, Any]) -> Value:
    if a.get("transposed"):
        raise UnsupportedOpError(f"transposed convolution is not supported (at {ctx.source})")
    x, w = ctx.value(a["input"]), ctx.value(a["weight"])
    wt = ctx.graph.type_of(w)
    if wt.rank != 4:
        raise UnsupportedOpError(f"only 2-d convolution is supported, got weight {wt} at {ctx.source}")
    stride, dilation = _pair(a["stride"]), _pair(a["dilation"])
    padding = a["padding"]
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        else:  # 'same' at stride 1: extra padding goes after, as PyTorch does
            total = [dilation[i] * (wt.shape[2 + i] - 1) for i in range(2)]
            pads = (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
    else:
        ph, pw = _pair(padding)
        pads = (ph, pw, ph, pw)
    args = [x, w] + ([ctx.value(a["bias"])] if a.get("bias") is not None else [])
    return ctx.emit("conv2d", args, strides=stride, padding=pads, dilation=dilation, groups=a["groups"])


@_handles("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm", "_native_batch_norm_legit")
def _batch_norm(ctx: _Context, a: dict[str, Any]) -> Value | list[Value]:
    if a.get("training"):
        raise UnsupportedOpError(f"batch norm in training mode at {ctx.source}: call model.eval() first")
    x = ctx.value(a["input"])
    channels = ctx.graph.type_of(x).shape[1]
    weight = ctx.value(a["weight"]) if a.get("weight") is not None else ctx.const(np.ones(channels), "bn_scale")
    bias = ctx.value(a["bias"]) if a.get("bias") is not None else ctx.const(np.zeros(channels), "bn_bias")
    mean, var = ctx.value(a["running_mean"]), ctx.value(a["running_var"])
    out = ctx.emit("batch_norm", [x, weight, bias, mean, var], eps=float(a["eps"]))
    # The legit_no_training variants return (out, save_mean, save_rstd); only out is ever used.
    return [out, out, out] if "legit" in str(ctx.node.target) or "native" in str(ctx.node.target) else out


@_handles("layer_norm")
def _layer_norm(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["input"])
    shape = tuple(a["normalized_shape"])
    weight = ctx.value(a["weight"]) if a.get("weight") is not None else ctx.const(np.ones(shape), "ln_scale")
    bias = ctx.value(a["bias"]) if a.get("bias") is not None else ctx.const(np.zeros(shape), "ln_bias")
    return ctx.emit("layer_norm", [x, weight, bias], eps=float(a["eps"]))


@_handles("linear")
def _linear(ctx: _Context, a: dict[str, Any]) -> Value:
    args = [ctx.value(a["input"]), ctx.value(a["weight"])]
    if a.get("bias") is not None:
        args.append(ctx.value(a["bias"]))
    return ctx.emit("linear", args)


@_handles("matmul", "mm", "bmm")
def _matmul(ctx: _Context, a: dict[str, Any]) -> Value:
    lhs, rhs = ctx.value(a["self"]), ctx.value(a.get("other", a.get("mat2")))
    return ctx.emit("matmul", [lhs, rhs])


@_handles("addmm")
def _addmm(ctx: _Context, a: dict[str, Any]) -> Value:
    prod = ctx.emit("matmul", [ctx.value(a["mat1"]), ctx.value(a["mat2"])])
    return ctx.emit("add", [prod, ctx.value(a["self"])])


@_handles("scaled_dot_product_attention")
def _sdpa(ctx: _Context, a: dict[str, Any]) -> Value:
    if a.get("attn_mask") is not None or a.get("is_causal"):
        raise UnsupportedOpError(f"masked attention is not supported (at {ctx.source})")
    q, k, v = ctx.value(a["query"]), ctx.value(a["key"]), ctx.value(a["value"])
    qt = ctx.graph.type_of(q)
    scale = a.get("scale") or 1.0 / math.sqrt(qt.shape[-1])
    perm = list(range(qt.rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    scores = ctx.emit("matmul", [q, ctx.emit("transpose", [k], perm=perm)])
    scores = ctx.emit("mul", [scores, ctx.const(np.array(scale), "scale")])
    return ctx.emit("matmul", [ctx.emit("softmax", [scores], axis=-1), v])


# ---- elementwise ---------------------------------------------------------------------------------------

_UNARY = {
    "relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "silu": "silu", "silu_": "silu",
    "hardswish": "hardswish", "hardswish_": "hardswish", "hardsigmoid": "hardsigmoid", "tanh": "tanh",
    "exp": "exp", "sqrt": "sqrt", "erf": "erf", "neg": "neg", "reciprocal": "reciprocal", "abs": "abs",
}  # fmt: skip


def _unary(op: str) -> Handler:
    return lambda ctx, a: ctx.emit(op, [ctx.value(a["self"])])


for _aten, _op in _UNARY.items():
    HANDLERS[_aten] = _unary(_op)


@_handles("rsqrt")
def _rsqrt(ctx: _Context, a: dict[str, Any]) -> Value:
    return ctx.emit("reciprocal", [ctx.emit("sqrt", [ctx.value(a["self"])])])


@_handles("gelu")
def _gelu(ctx: _Context, a: dict[str, Any]) -> Value:
    return ctx.emit("gelu", [ctx.value(a["self"])], approximate=a.get("approximate", "none"))


@_handles("relu6")
def _relu6(ctx: _Context, a: dict[str, Any]) -> Value:
    return ctx.emit("clip", [ctx.value(a["self"])], min=0.0, max=6.0)


@_handles("hardtanh", "hardtanh_")
def _hardtanh(ctx: _Context, a: dict[str, Any]) -> Value:
    return ctx.emit("clip", [ctx.value(a["self"])], min=float(a["min_val"]), max=float(a["max_val"]))


@_handles("clamp", "clamp_min", "clamp_max", "clip")
def _clamp(ctx: _Context, a: dict[str, Any]) -> Value:
    lo, hi = a.get("min"), a.get("max")
    if isinstance(lo, torch.fx.Node) or isinstance(hi, torch.fx.Node):
        raise UnsupportedOpError(f"clamp with tensor bounds is not supported (at {ctx.source})")
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    return ctx.emit("clip", [ctx.value(a["self"])], min=lo, max=hi)


@_handles("leaky_relu", "leaky_relu_")
def _leaky_relu(ctx: _Context, a: dict[str, Any]) -> Value:
    return ctx.emit("leaky_relu", [ctx.value(a["self"])], alpha=float(a.get("negative_slope", 0.01)))


@_handles("prelu", "_prelu_kernel")
def _prelu(ctx: _Context, a: dict[str, Any]) -> Value:
    return ctx.emit("prelu", [ctx.value(a["self"]), ctx.value(a["weight"])])


def _binary(op: str) -> Handler:
    def handler(ctx: _Context, a: dict[str, Any]) -> Value:
        lhs, rhs = ctx.value(a["self"]), ctx.value(a["other"])
        alpha = a.get("alpha", 1)
        if alpha != 1:
            rhs = ctx.emit("mul", [rhs, ctx.const(np.array(alpha), "alpha")])
        return ctx.emit(op, [lhs, rhs])

    return handler


for _aten, _op in {"add": "add", "add_": "add", "sub": "sub", "mul": "mul", "mul_": "mul", "div": "div",
                   "maximum": "maximum", "minimum": "minimum"}.items():  # fmt: skip
    HANDLERS[_aten] = _binary(_op)


@_handles("rsub")
def _rsub(ctx: _Context, a: dict[str, Any]) -> Value:
    return ctx.emit("sub", [ctx.value(a["other"]), ctx.value(a["self"])])


@_handles("pow")
def _pow(ctx: _Context, a: dict[str, Any]) -> Value:
    exponent = a["exponent"]
    if isinstance(exponent, (int, float)):
        return ctx.emit("pow_scalar", [ctx.value(a["self"])], exponent=float(exponent))
    return ctx.emit("pow", [ctx.value(a["self"]), ctx.value(exponent)])


# ---- reductions and pooling ----------------------------------------------------------------------------

def _reduce(op: str) -> Handler:
    def handler(ctx: _Context, a: dict[str, Any]) -> Value:
        x = ctx.value(a["self"])
        rank = ctx.graph.type_of(x).rank
        dims = a.get("dim")
        axes = list(range(rank)) if dims is None or dims == [] else [_axis(d, rank) for d in (
            [dims] if isinstance(dims, int) else dims)]
        return ctx.emit(op, [x], axes=sorted(axes), keepdims=bool(a.get("keepdim", False)))

    return handler


HANDLERS["mean"] = _reduce("mean")
HANDLERS["sum"] = _reduce("reduce_sum")
HANDLERS["amax"] = _reduce("reduce_max")


@_handles("softmax", "_softmax")
def _softmax(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    return ctx.emit("softmax", [x], axis=_axis(a["dim"], ctx.graph.type_of(x).rank))


@_handles("adaptive_avg_pool2d", "_adaptive_avg_pool2d")
def _adaptive_avg_pool2d(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    h, w = ctx.graph.type_of(x).shape[2:]
    oh, ow = (d if d is not None else s for d, s in zip(_pair(a["output_size"]), (h, w), strict=True))
    if (oh, ow) == (1, 1):
        return ctx.emit("mean", [x], axes=[2, 3], keepdims=True)
    return ctx.emit("adaptive_avg_pool2d", [x], output_size=(oh, ow))


@_handles("max_pool2d", "max_pool2d_with_indices")
def _max_pool2d(ctx: _Context, a: dict[str, Any]) -> Value | list[Value]:
    kernel = _pair(a["kernel_size"])
    stride = _pair(a["stride"]) if a.get("stride") else kernel
    ph, pw = _pair(a["padding"])
    out = ctx.emit("max_pool2d", [ctx.value(a["self"])], kernel=kernel, strides=stride, padding=(ph, pw, ph, pw),
                   dilation=_pair(a["dilation"]), ceil_mode=bool(a["ceil_mode"]))
    return [out, out] if "with_indices" in str(ctx.node.target) else out


@_handles("avg_pool2d")
def _avg_pool2d(ctx: _Context, a: dict[str, Any]) -> Value:
    if a.get("divisor_override"):
        raise UnsupportedOpError(f"avg_pool2d with divisor_override is not supported (at {ctx.source})")
    kernel = _pair(a["kernel_size"])
    stride = _pair(a["stride"]) if a.get("stride") else kernel
    ph, pw = _pair(a["padding"])
    return ctx.emit("avg_pool2d", [ctx.value(a["self"])], kernel=kernel, strides=stride, padding=(ph, pw, ph, pw),
                    ceil_mode=bool(a["ceil_mode"]), count_include_pad=bool(a["count_include_pad"]))


# ---- data movement -------------------------------------------------------------------------------------

@_handles("view", "reshape", "_unsafe_view", "flatten", "squeeze", "unsqueeze", "unflatten", "view_copy")
def _reshape(ctx: _Context, a: dict[str, Any]) -> Value:
    # The exported program already knows every static output shape; use it instead of re-deriving.
    x = ctx.value(a["self"])
    shape = ctx.out_shape()
    if shape == ctx.graph.type_of(x).shape:
        return x
    return ctx.emit("reshape", [x], shape=shape)


@_handles("permute")
def _permute(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    rank = ctx.graph.type_of(x).rank
    return ctx.emit("transpose", [x], perm=[_axis(d, rank) for d in a["dims"]])


@_handles("transpose", "t", "swapaxes")
def _transpose(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    rank = ctx.graph.type_of(x).rank
    d0, d1 = (_axis(a["dim0"], rank), _axis(a["dim1"], rank)) if "dim0" in a else (0, 1)
    if rank < 2 or d0 == d1:
        return x
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return ctx.emit("transpose", [x], perm=perm)


@_handles("contiguous", "clone", "alias", "detach", "lift_fresh_copy", "_to_copy", "to", "type_as")
def _identity(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    dtype = a.get("dtype")
    if dtype is not None and dtype != torch.float32:
        raise UnsupportedOpError(f"conversion to {dtype} is not supported (at {ctx.source})")
    return x


@_handles("dropout", "dropout_", "feature_dropout", "alpha_dropout", "native_dropout")
def _dropout(ctx: _Context, a: dict[str, Any]) -> Value | list[Value]:
    out = ctx.emit("dropout", [ctx.value(a["input"])], p=float(a.get("p", 0.0)))
    return [out, out] if "native" in str(ctx.node.target) else out


@_handles("cat", "concat")
def _cat(ctx: _Context, a: dict[str, Any]) -> Value:
    values = [ctx.value(t) for t in a["tensors"]]
    rank = ctx.graph.type_of(values[0]).rank
    if len(values) == 1:
        return values[0]
    return ctx.emit("concat", values, axis=_axis(a["dim"], rank))


def _split_sizes(total: int, a: dict[str, Any]) -> list[int]:
    if "chunks" in a:  # torch.chunk: ceil-sized chunks, the last one smaller
        step = math.ceil(total / a["chunks"])
        return [min(step, total - i) for i in range(0, total, step)]
    size = a.get("split_size", a.get("split_sizes", a.get("split_size_or_sections")))
    if isinstance(size, int):
        return [min(size, total - i) for i in range(0, total, size)]
    return list(size)


@_handles("split", "split_with_sizes", "chunk", "tensor_split", "unsafe_split")
def _split(ctx: _Context, a: dict[str, Any]) -> list[Value]:
    x = ctx.value(a["self"])
    xt = ctx.graph.type_of(x)
    axis = _axis(a.get("dim", 0), xt.rank)
    sizes = _split_sizes(xt.shape[axis], a)
    if len(sizes) == 1:
        return [x]
    return ctx.emit_multi("split", [x], axis=axis, sizes=sizes)


@_handles("unbind")
def _unbind(ctx: _Context, a: dict[str, Any]) -> list[Value]:
    x = ctx.value(a["self"])
    xt = ctx.graph.type_of(x)
    axis = _axis(a.get("dim", 0), xt.rank)
    parts = ctx.emit_multi("split", [x], axis=axis, sizes=[1] * xt.shape[axis])
    shape = xt.shape[:axis] + xt.shape[axis + 1:]
    return [ctx.emit("reshape", [p], shape=shape) for p in parts]


def _slice_bounds(start: int | None, end: int | None, dim: int) -> tuple[int, int]:
    start = 0 if start is None else start
    end = dim if end is None else end
    start = max(0, min(dim, start + dim if start < 0 else start))
    end = max(0, min(dim, end + dim if end < 0 else end))
    return start, end


@_handles("slice", "slice_copy")
def _slice(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    xt = ctx.graph.type_of(x)
    axis = _axis(a.get("dim", 0), xt.rank)
    start, end = _slice_bounds(a.get("start"), a.get("end"), xt.shape[axis])
    step = a.get("step", 1)
    if (start, end, step) == (0, xt.shape[axis], 1):
        return x
    return ctx.emit("slice", [x], axis=axis, start=start, end=end, step=step)


@_handles("narrow")
def _narrow(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    xt = ctx.graph.type_of(x)
    axis = _axis(a["dim"], xt.rank)
    start = a["start"] % xt.shape[axis]
    return ctx.emit("slice", [x], axis=axis, start=start, end=start + a["length"], step=1)


@_handles("select")
def _select(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    xt = ctx.graph.type_of(x)
    axis = _axis(a["dim"], xt.rank)
    index = a["index"] % xt.shape[axis]
    part = ctx.emit("slice", [x], axis=axis, start=index, end=index + 1, step=1)
    return ctx.emit("reshape", [part], shape=xt.shape[:axis] + xt.shape[axis + 1:])


@_handles("expand", "expand_as", "broadcast_to")
def _expand(ctx: _Context, a: dict[str, Any]) -> Value:
    x = ctx.value(a["self"])
    shape = ctx.out_shape()
    return x if shape == ctx.graph.type_of(x).shape else ctx.emit("broadcast_to", [x], shape=shape)


@_handles("pad", "constant_pad_nd")
def _pad(ctx: _Context, a: dict[str, Any]) -> Value:
    if a.get("mode", "constant") != "constant":
        raise UnsupportedOpError(f"pad mode {a['mode']!r} is not supported (at {ctx.source})")
    x = ctx.value(a["self"])
    rank = ctx.graph.type_of(x).rank
    flat = list(a["pad"])
    pads = [(0, 0)] * rank
    for i in range(len(flat) // 2):
        pads[rank - 1 - i] = (flat[2 * i], flat[2 * i + 1])
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        raise UnsupportedOpError(f"negative padding (cropping) is not supported (at {ctx.source})")
    return ctx.emit("pad", [x], pads=pads, value=float(a.get("value") or 0.0))


@_handles("upsample_nearest2d", "upsample_bilinear2d", "_upsample_nearest_exact2d")
def _upsample(ctx: _Context, a: dict[str, Any]) -> Value:
    method = "nearest" if "nearest" in str(ctx.node.target) else "bilinear"
    if "exact" in str(ctx.node.target):
        raise UnsupportedOpError(f"nearest-exact upsampling is not supported (at {ctx.source})")
    size = ctx.out_shape()[2:]
    return ctx.emit("resize2d", [ctx.value(a["input"] if "input" in a else a["self"])], size=size,
                    method=method, align_corners=bool(a.get("align_corners") or False))


# ---- driver --------------------------------------------------------------------------------------------

def _normalized_args(node: torch.fx.Node) -> dict[str, Any]:
    schema = node.target._schema  # type: ignore[union-attr]
    values: dict[str, Any] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            values[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            values[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            values[arg.name] = arg.default_value
    return values


def _source_of(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, cls = list(stack.values())[-1]
        cls_name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
        return f"{path or '<root>'} ({cls_name.rsplit('.', 1)[-1]})"
    trace = node.meta.get("stack_trace")
    if trace:
        lines = [ln.strip() for ln in trace.strip().splitlines() if ln.strip().startswith("File")]
        if lines:
            return lines[-1]
    return "<model>"


def _op_key(target: Any) -> str:
    packet = getattr(target, "overloadpacket", None)
    return packet.__name__ if packet is not None else getattr(target, "__name__", str(target))


def export_program(module: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    module = module.eval()
    try:
        return torch.export.export(module, (example,))
    except Exception as e:  # torch raises many types; the first line says what could not be traced
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedOpError(f"torch.export could not trace {type(module).__name__}: {first}") from e


def from_exported_program(ep: torch.export.ExportedProgram, name: str = "model") -> Graph:
    graph = Graph(name=name)
    ctx = _Context(graph)
    sig = ep.graph_signature
    lifted: dict[str, torch.Tensor] = {}
    for spec in sig.input_specs:
        if spec.kind.name in ("PARAMETER", "BUFFER"):
            lifted[spec.arg.name] = ep.state_dict[spec.target] if spec.target in ep.state_dict else ep.constants[
                spec.target]
        elif spec.kind.name in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
            value = ep.constants.get(spec.target)
            if not isinstance(value, torch.Tensor):
                raise UnsupportedOpError(f"constant {spec.target} of type {type(value).__name__} is not supported")
            lifted[spec.arg.name] = value

    for node in ep.graph.nodes:
        ctx.node = node
        if node.op == "placeholder":
            if node.name in lifted:
                tensor = lifted[node.name].detach().cpu()
                if tensor.dtype.is_floating_point:
                    tensor = tensor.float()
                ctx.env[node.name] = graph.add_constant(tensor.numpy(), node.name)
            else:
                val = node.meta["val"]
                if val.dtype != torch.float32:
                    raise UsageError(f"input {node.name} has dtype {val.dtype}; lncompile compiles float32 models")
                ctx.env[node.name] = graph.add_input(node.name, TensorType(tuple(val.shape), "float32"))
        elif node.op == "call_function":
            ctx.source = _source_of(node)
            if node.target is operator.getitem:
                seq, index = node.args
                bound = ctx.env[seq.name]
                if not isinstance(bound, list):
                    raise UnsupportedOpError(f"indexing a tensor result {seq.name} at {ctx.source}")
                ctx.env[node.name] = bound[index]
                continue
            key = _op_key(node.target)
            if key.startswith("_assert") or key in ("sym_size", "sym_constrain_range_for_size"):
                continue
            handler = HANDLERS.get(key)
            if handler is None or not hasattr(node.target, "_schema"):
                raise UnsupportedOpError(f"unsupported op {node.target} at {ctx.source}")
            try:
                ctx.env[node.name] = handler(ctx, _normalized_args(node))
            except ShapeError as e:
                raise UnsupportedOpError(f"{node.target} at {ctx.source}: {e}") from e
        elif node.op == "output":
            outs = node.args[0]
            outs = outs if isinstance(outs, (tuple, list)) else [outs]
            graph.set_outputs([ctx.value(o) for o in outs])
        elif node.op == "get_attr":
            raise UnsupportedOpError(f"unexpected get_attr {node.target} in exported program")
    graph.remove_dead()
    verify(graph)
    return graph


def from_torch(module: torch.nn.Module, example: torch.Tensor | np.ndarray, name: str | None = None) -> Graph:
    """Translate ``module`` (called on one float32 tensor like ``example``) into verified IR."""
    if isinstance(example, np.ndarray):
        example = torch.from_numpy(example)
    ep = export_program(module, example)
    return from_exported_program(ep, name or type(module).__name__.lower())
