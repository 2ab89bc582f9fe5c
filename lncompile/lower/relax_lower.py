"""Lowering: lncompile IR -> a TVM Relax IRModule (one ``main`` function, weights embedded as constants).

One emitter per IR op. Ops Relax lacks are written out (hardswish = x * clip(x + 3, 0, 6) / 6). A depthwise
conv with ``input_shuffle_groups`` (a channel shuffle folded into it) is one TE kernel that gathers the
shuffled channels in its input indexing (:func:`~lncompile.backend.tvm_api.emit_depthwise_conv2d_shuffled`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backend.depthwise import emit_depthwise, emit_depthwise_concat
from ..backend.depthwise import suits as depthwise_suits
from ..backend.max_pool import emit_max_pool
from ..backend.pointwise_conv import emit_pointwise_conv
from ..backend.pointwise_conv import suits as pointwise_conv_suits
from ..backend.pointwise_depthwise import emit_pointwise_depthwise
from ..backend.se_scale import emit_se_scale
from ..backend.spatial_mean import emit_spatial_mean
from ..backend.stem_conv import emit_stem_conv
from ..backend.stem_conv import suits as stem_suits
from ..backend.tvm_api import emit_depthwise_conv2d_shuffled, relax
from ..backend.winograd import emit_winograd_conv2d
from ..errors import UnsupportedOpError
from ..ir import Attrs, Graph, Node, Value
from ..ir.ops import (
    POINTWISE_CONV,
    POINTWISE_DEPTHWISE_ACTIVATIONS,
    UNARY_OPS,
    depthwise_concat_conv_attrs,
    input_shuffle_groups,
)

R = relax.op
Expr = Any
Emitter = Callable[["_Lowering", Node, Sequence[Expr]], Expr]
EMITTERS: dict[str, Emitter] = {}
# ops whose lowered result may be another tensor's storage (an in-place kernel must not overwrite it)
VIEW_OPS = frozenset({"input", "constant", "reshape", "identity", "dropout", "transpose", "broadcast_to"})


def _emits(*ops: str) -> Callable[[Emitter], Emitter]:
    def deco(fn: Emitter) -> Emitter:
        for op in ops:
            EMITTERS[op] = fn
        return fn

    return deco


def _hand_kernel_activation(name: str, attrs: Attrs) -> tuple[str, dict[str, float]]:
    """A fused node's activation as the hand-scheduled kernels take it: (name, its ``act_*`` parameters)."""
    from ..ir.ops import activation_params

    return name, {k: float(v) for k, v in activation_params(attrs).items()}


class _Lowering:
    def __init__(self, graph: Graph, layout: str = "NCHW", fast_math: bool = False, device: str = "cpu") -> None:
        self.graph = graph
        self.layout = layout  # the layout the module will be converted to (see lncompile.lower.layout)
        self.fast_math = fast_math  # hand-written TE kernels compute exp-based activations as the build's do
        self.device = device
        self.bb = relax.BlockBuilder()
        # nodes whose op a kernel emitted before them already computed (their value is their input's)
        self.absorbed: set[str] = set()

    @property
    def hand_kernels(self) -> bool:
        """Whether this build uses the hand-scheduled channels-last CPU kernels (lncompile.backend) where they
        apply: NHWC builds for CPUs."""
        return self.layout == "NHWC" and self.device == "cpu"

    def mean_hw(self, x: Expr, keepdims: bool) -> Expr:
        """The mean of NCHW ``x`` over H and W: a hand-scheduled kernel in channels-last CPU builds
        (MetaSchedule's schedules for it are 10x slower there), else Relax's mean."""
        if self.hand_kernels:
            return emit_spatial_mean(self.bb, x, keepdims)
        return R.mean(x, [2, 3], keepdims)

    def hand_conv(self, at: Attrs, a: Sequence[Expr], activation: str, residual: Expr | None = None,
                  node: Node | None = None, sum_activation: Node | None = None) -> Expr | None:
        """A conv (inputs x, w, [b]) with ``activation`` (its parameters in ``at``'s ``act_*``) [+ ``residual``]
        as one of the hand-scheduled channels-last kernels, where the build uses them and one applies: the
        depthwise kernel where it is the faster one (:func:`lncompile.backend.depthwise.suits`), the stem kernel
        for a dense conv over the model's NCHW image (:mod:`lncompile.backend.stem_conv`: no transpose of the
        image), the pointwise kernel for a 1x1 conv whose channels do not fill 16-lane vectors
        (:mod:`lncompile.backend.pointwise_conv`, the only one taking a residual; ``node``, the graph's node, tells
        whether it is the first half of a split conv; ``sum_activation``, the activation node reading a residual
        conv's sum, which the pointwise kernel then computes too); None otherwise."""
        # the activations the hand kernels compute are the fused pointwise->depthwise op's
        if not (self.hand_kernels and activation in POINTWISE_DEPTHWISE_ACTIVATIONS
                and tuple(at["dilation"]) == (1, 1)):
            return None
        x, w = a[0], a[1]
        channels, out_channels = int(x.ty.shape[1]), int(w.ty.shape[0])
        kernel, strides, padding = (int(w.ty.shape[2]), int(w.ty.shape[3])), tuple(at["strides"]), tuple(at["padding"])
        bias = a[2] if len(a) > 2 else relax.const(np.zeros(out_channels, dtype=str(x.ty.dtype)))
        hand_activation = _hand_kernel_activation(activation, at)
        # the function's parameters are its only non-dataflow Vars: a model input, in NCHW as the caller passes it
        stem = (isinstance(x, relax.Var) and not isinstance(x, relax.DataflowVar)
                and stem_suits(channels, at["groups"]) and residual is None)
        depthwise = (at["groups"] == channels == out_channels and not input_shuffle_groups(at)
                     and depthwise_suits(channels, kernel) and residual is None)
        if stem or depthwise:
            emit = emit_stem_conv if stem else emit_depthwise
            return emit(self.bb, x, w, bias, strides, padding, hand_activation, self.fast_math)
        if (pointwise_conv_suits(kernel, strides, padding, at["groups"], channels, out_channels,
                                 (int(x.ty.shape[2]), int(x.ty.shape[3])), activation)
                and not input_shuffle_groups(at) and not (node is not None and self.feeds_split_sum(node))):
            after = None if sum_activation is None else (  # an activation node's own attributes, unprefixed
                sum_activation.op,
                {k: float(v) for k, v in sum_activation.attrs.items() if isinstance(v, (int, float))})
            return emit_pointwise_conv(self.bb, x, w, bias, hand_activation, residual, self.fast_math, after)
        return None

    def feeds_split_sum(self, n: Node) -> bool:
        """Whether ``n``'s output is the residual of a conv whose sum is then activated by a tuned kernel: the
        first half of a conv that distribute_concat split, the second half not a hand kernel (see
        ``_fused_conv2d``). That kernel's tuning records are for the workload that reads this half's tuned
        output, so this half stays tuned too."""
        return n.name in self.graph and any(
            self.graph.record(user).op == "fused_conv2d" and position == 3 and self.then_activated(user)
            and self.sum_activation(self.graph.record(user)) is None
            for user, position in self.graph.users(n.name))

    def then_activated(self, name: str) -> bool:
        """Whether every reader of node ``name``'s output is an activation (or other unary op)."""
        users = self.graph.users(name)
        return bool(users) and all(self.graph.record(user).op in UNARY_OPS for user, _ in users)

    def sum_activation(self, n: Node) -> Node | None:
        """For a ``fused_conv2d`` with a residual whose sum is read by one activation alone (distribute_concat's
        split conv: act(conv(a) + b + conv(b')), and ResNet-style blocks), that activation node, where the
        pointwise hand kernel computes conv, sum and activation in one (the activation's node is then absorbed);
        None otherwise."""
        if not (self.hand_kernels and n.attrs["residual"] and n.attrs["activation"] == "none"
                and n.name in self.graph and not self.graph.is_output(Value(n.name))):
            return None
        users = self.graph.users(n.name)
        if len(users) != 1:
            return None
        reader = self.graph.record(users[0][0])
        if reader.op not in POINTWISE_DEPTHWISE_ACTIVATIONS:
            return None
        weight = self.graph.type_of(self.graph.args(n.name)[1])
        x = self.graph.type_of(self.graph.args(n.name)[0])
        fits = pointwise_conv_suits((weight.shape[2], weight.shape[3]), tuple(n.attrs["strides"]),
                                    tuple(n.attrs["padding"]), n.attrs["groups"], x.shape[1], weight.shape[0],
                                    (x.shape[2], x.shape[3]), reader.op)
        return reader if fits and tuple(n.attrs["dilation"]) == (1, 1) else None

    def owns_input(self, n: Node) -> bool:
        """Whether node ``n`` may overwrite its first input: ``n`` is its only reader, and it is a tensor of its
        own, not the model's input or output, a constant, or what a view-like op (which lowers to its input's
        tensor, or a permute_dims that layout conversion may cancel) makes of another tensor."""
        value = self.graph.args(n.name)[0]
        producer = self.graph.record(value.node).op
        return (self.graph.users(value) == [(n.name, 0)] and not self.graph.is_output(value)
                and producer not in VIEW_OPS)

    def scalar(self, value: float, dtype: str = "float32") -> Expr:
        return relax.const(np.array(value, dtype=dtype))

    def clip(self, x: Expr, lo: float, hi: float) -> Expr:
        if np.isinf(lo) and np.isinf(hi):
            return x
        if np.isinf(lo):
            return R.minimum(x, self.scalar(hi))
        if np.isinf(hi):
            return R.maximum(x, self.scalar(lo))
        return R.clip(x, float(lo), float(hi))


# ---- convolution, normalization, dense -----------------------------------------------------------------

@_emits("conv2d")
def _conv2d(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    hand = lw.hand_conv(n.attrs, a, "none", node=n)
    return hand if hand is not None else _relax_conv2d(lw, n.attrs, a)


def _relax_conv2d(lw: _Lowering, at: Attrs, a: Sequence[Expr]) -> Expr:
    """The conv as Relax's conv2d (+ bias), or the shuffled-depthwise TE kernel where it reads a shuffle."""
    shuffle = input_shuffle_groups(at)
    if shuffle:  # a depthwise conv reading channel_shuffle(x, g): one TE kernel gathering in its input indexing
        return emit_depthwise_conv2d_shuffled(lw.bb, a[0], a[1], tuple(at["strides"]), tuple(at["padding"]),
                                              tuple(at["dilation"]), shuffle, a[2] if len(a) > 2 else None,
                                              lw.layout)
    y = R.nn.conv2d(a[0], a[1], at["strides"], at["padding"], at["dilation"], at["groups"])
    if len(a) > 2:
        y = R.add(y, R.reshape(a[2], (1, -1, 1, 1)))
    return y


@_emits("batch_norm")
def _batch_norm(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    out = R.nn.batch_norm(a[0], a[1], a[2], a[3], a[4], axis=1, epsilon=n.attrs["eps"], training=False)
    return relax.TupleGetItem(lw.bb.emit(out), 0)


@_emits("layer_norm")
def _layer_norm(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    k = lw.graph.type_of(lw.graph.args(n.name)[1]).rank
    rank = n.type.rank
    return R.nn.layer_norm(a[0], a[1], a[2], list(range(rank - k, rank)), n.attrs["eps"])


@_emits("linear")
def _linear(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    return R.linear(a[0], a[1], a[2] if len(a) > 2 else None)


_emits("matmul")(lambda lw, n, a: R.matmul(a[0], a[1]))

# ---- elementwise ---------------------------------------------------------------------------------------

for _op, _fn in {
    "relu": R.nn.relu, "sigmoid": R.sigmoid, "silu": R.nn.silu, "tanh": R.tanh, "exp": R.exp, "sqrt": R.sqrt,
    "erf": R.erf, "neg": R.negative, "abs": R.abs, "add": R.add, "sub": R.subtract, "mul": R.multiply,
    "div": R.divide, "maximum": R.maximum, "minimum": R.minimum, "pow": R.power,
}.items():  # fmt: skip
    EMITTERS[_op] = (lambda fn: lambda lw, n, a: fn(*a))(_fn)

_emits("identity", "dropout")(lambda lw, n, a: a[0])
_emits("reciprocal")(lambda lw, n, a: R.divide(lw.scalar(1.0), a[0]))
_emits("clip")(lambda lw, n, a: lw.clip(a[0], n.attrs["min"], n.attrs["max"]))
_emits("leaky_relu")(lambda lw, n, a: R.nn.leakyrelu(a[0], n.attrs["alpha"]))
_emits("prelu")(lambda lw, n, a: R.nn.prelu(a[0], a[1], axis=1))
_emits("pow_scalar")(lambda lw, n, a: R.power(a[0], lw.scalar(n.attrs["exponent"])))


@_emits("gelu")
def _gelu(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    return R.nn.gelu_tanh(a[0]) if n.attrs.get("approximate", "none") == "tanh" else R.nn.gelu(a[0])


@_emits("hardsigmoid")
def _hardsigmoid(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    # relu6(x + 3) / 6, as PyTorch defines it
    return R.divide(lw.clip(R.add(a[0], lw.scalar(3.0)), 0.0, 6.0), lw.scalar(6.0))


@_emits("hardswish")
def _hardswish(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    return R.multiply(a[0], _hardsigmoid(lw, n, a))


# ---- reductions and pooling ----------------------------------------------------------------------------

@_emits("mean")
def _mean(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    rank = len(a[0].ty.shape)
    if rank == 4 and sorted(axis % rank for axis in n.attrs["axes"]) == [2, 3]:
        return lw.mean_hw(a[0], n.attrs["keepdims"])
    return R.mean(a[0], list(n.attrs["axes"]), n.attrs["keepdims"])


_emits("reduce_sum")(lambda lw, n, a: R.sum(a[0], list(n.attrs["axes"]), n.attrs["keepdims"]))
_emits("reduce_max")(lambda lw, n, a: R.max(a[0], list(n.attrs["axes"]), n.attrs["keepdims"]))
_emits("softmax")(lambda lw, n, a: R.nn.softmax(a[0], n.attrs["axis"]))
_emits("adaptive_avg_pool2d")(lambda lw, n, a: R.nn.adaptive_avg_pool2d(a[0], n.attrs["output_size"]))


@_emits("max_pool2d")
def _max_pool2d(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    at = n.attrs
    if lw.hand_kernels and tuple(at.get("dilation", (1, 1))) == (1, 1):  # the hand kernel: see backend/max_pool.py
        return emit_max_pool(lw.bb, a[0], n.type.shape[2:], tuple(at["kernel"]), tuple(at["strides"]),
                             tuple(at["padding"]))
    return R.nn.max_pool2d(a[0], at["kernel"], at["strides"], at["padding"], at.get("dilation", (1, 1)),
                           at.get("ceil_mode", False))


@_emits("avg_pool2d")
def _avg_pool2d(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    at = n.attrs
    return R.nn.avg_pool2d(a[0], at["kernel"], at["strides"], at["padding"], (1, 1), at.get("ceil_mode", False),
                           at.get("count_include_pad", True))


# ---- data movement -------------------------------------------------------------------------------------

_emits("reshape")(lambda lw, n, a: R.reshape(a[0], n.attrs["shape"]))
_emits("transpose")(lambda lw, n, a: R.permute_dims(a[0], list(n.attrs["perm"])))
_emits("concat")(lambda lw, n, a: R.concat(list(a), n.attrs["axis"]))
_emits("broadcast_to")(lambda lw, n, a: R.broadcast_to(a[0], n.attrs["shape"]))


@_emits("split")
def _split(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    indices = list(np.cumsum(n.attrs["sizes"])[:-1].tolist())
    return R.split(a[0], indices, n.attrs["axis"])


@_emits("slice")
def _slice(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    at = n.attrs
    return R.strided_slice(a[0], [at["axis"]], [at["start"]], [at["end"]], [at["step"]], assume_inbound=True)


@_emits("pad")
def _pad(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    flat = [p for pair in n.attrs["pads"] for p in pair]
    return R.nn.pad(a[0], flat, "constant", n.attrs.get("value", 0.0))


@_emits("resize2d")
def _resize2d(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    at: Attrs = n.attrs
    if at["method"] == "nearest":  # PyTorch 'nearest': floor(out_index * in / out)
        return R.image.resize2d(a[0], at["size"], method="nearest_neighbor",
                                coordinate_transformation_mode="asymmetric", rounding_method="floor")
    mode = "align_corners" if at.get("align_corners") else "half_pixel"
    return R.image.resize2d(a[0], at["size"], method="linear", coordinate_transformation_mode=mode)


# ---- driver --------------------------------------------------------------------------------------------

def to_relax(graph: Graph, emitters: dict[str, Emitter] | None = None, layout: str = "NCHW",
             fast_math: bool = False, device: str = "cpu") -> Any:
    """Lower a verified IR graph to a Relax IRModule whose ``main`` takes the graph inputs in order.

    The module is NCHW whatever ``layout`` says; ops that ConvertLayout cannot convert (hand-written TE
    kernels) are emitted in ``layout`` between permute_dims pairs that the conversion then cancels.
    ``fast_math`` and ``device`` (the preset's) shape those hand-written kernels.
    """
    table = {**EMITTERS, **(emitters or {})}
    lw = _Lowering(graph, layout, fast_math, device)
    params = []
    env: dict[str, Expr] = {}
    for name in graph.input_names:
        t = graph.record(name).type
        var = relax.Var(name, relax.TensorType(t.shape, t.dtype))
        params.append(var)
        env[name] = var
    with lw.bb.function("main", params):
        with lw.bb.dataflow():
            for name in graph.topo_order():
                rec = graph.record(name)
                if rec.op == "input":
                    continue
                if rec.op == "constant":
                    env[name] = relax.const(np.ascontiguousarray(rec.value))
                    continue
                emitter = table.get(rec.op)
                if emitter is None:
                    raise UnsupportedOpError(f"no lowering for op {rec.op!r} (node %{name}, from {rec.source})")
                args = [_value(env, lw, graph, v) for v in graph.args(name)]
                env[name] = args[0] if name in lw.absorbed else lw.bb.emit(emitter(lw, rec, args))
            outs = [_value(env, lw, graph, v) for v in graph.outputs]
            result = lw.bb.emit_output(outs[0] if len(outs) == 1 else relax.Tuple(outs))
        lw.bb.emit_func_output(result)
    return lw.bb.get()


def _value(env: dict[str, Expr], lw: _Lowering, graph: Graph, v: Any) -> Expr:
    expr = env[v.node]
    if len(graph.record(v.node).outputs) > 1:
        return lw.bb.emit(relax.TupleGetItem(expr, v.index))
    return expr


# ---- ops added by the fusion passes ------------------------------------------------------------------------
# A fused node is emitted as its decomposed Relax ops in sequence (conv2d, bias add, activation, residual add;
# SE: mean, conv, act, conv, gate, mul): TVM's FuseOps then schedules the chain as one kernel.

def _emit_activation(lw: _Lowering, n: Node, name: str, x: Expr, slope: Expr | None = None) -> Expr:
    from ..ir.ops import activation_params

    if name == "none":
        return x
    if name == "prelu":
        return lw.bb.emit(R.nn.prelu(x, slope, axis=1))
    act = Node(f"{n.name}_{name}", name, activation_params(n.attrs), n.outputs)
    return lw.bb.emit(EMITTERS[name](lw, act, [x]))


@_emits("fused_conv2d")
def _fused_conv2d(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    act = n.attrs["activation"]
    residual = a[3] if n.attrs["residual"] else None
    sum_activation = lw.sum_activation(n)
    if sum_activation is not None:  # the hand kernel computes the activation after the sum: its node is absorbed
        hand = lw.hand_conv(n.attrs, a[:3], act, residual, n, sum_activation)
        if hand is not None:
            lw.absorbed.add(sum_activation.name)
            return hand
    # conv + residual then an activation the hand kernel does not take: FuseOps puts all three in one tuned
    # kernel, where the hand kernel would leave the activation to a kernel of its own
    split_sum = residual is not None and lw.then_activated(n.name)
    hand = None if split_sum else lw.hand_conv(n.attrs, a[:3], act, residual, n)
    if hand is not None:
        return hand
    y = lw.bb.emit(_relax_conv2d(lw, n.attrs, a[:3]))
    y = _emit_activation(lw, n, act, y, a[-1] if act == "prelu" else None)
    return R.add(y, a[3]) if n.attrs["residual"] else y


@_emits("fused_pointwise_depthwise")
def _fused_pointwise_depthwise(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    from ..ir.ops import pointwise_activation_attrs

    activations = (_hand_kernel_activation(n.attrs["pw_activation"], pointwise_activation_attrs(n.attrs)),
                   _hand_kernel_activation(n.attrs["activation"], n.attrs))
    return emit_pointwise_depthwise(lw.bb, *a, tuple(n.attrs["strides"]), tuple(n.attrs["padding"]), activations,
                                    lw.fast_math)


@_emits("depthwise_concat")
def _depthwise_concat(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    """One hand kernel in channels-last CPU builds (backend/depthwise.py, ``concat``), else the conv, its
    activation, the concat and the add."""
    x, w, b = a[:3]
    at = depthwise_concat_conv_attrs(n.attrs, int(x.ty.shape[1]))
    residual = a[3] if n.attrs["residual"] else None
    if lw.hand_kernels:
        return emit_depthwise_concat(lw.bb, x, w, b, tuple(at["padding"]),
                                     _hand_kernel_activation(at["activation"], at), residual, lw.fast_math)
    y = lw.bb.emit(_relax_conv2d(lw, at, [x, w, b]))
    y = lw.bb.emit(R.concat([x, _emit_activation(lw, n, at["activation"], y)], 1))
    return R.add(y, residual) if residual is not None else y


@_emits("winograd_conv2d")
def _winograd_conv2d(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    """The NHWC kernel between permute_dims (see :func:`~lncompile.backend.winograd.emit_winograd_conv2d`)."""
    def nhwc(t: Expr) -> Expr:
        return lw.bb.emit(R.permute_dims(t, [0, 2, 3, 1]))

    y = lw.bb.emit(emit_winograd_conv2d(lw.bb, nhwc(a[0]), a[1], a[2], n.attrs["tile"], tuple(n.attrs["padding"])))
    y = _emit_activation(lw, n, n.attrs["activation"], y)  # elementwise (the pass keeps prelu's convs direct)
    if n.attrs["residual"]:
        y = lw.bb.emit(R.add(y, nhwc(a[3])))
    return R.permute_dims(y, [0, 3, 1, 2])


@_emits("fused_linear")
def _fused_linear(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    act = n.attrs["activation"]
    y = lw.bb.emit(R.linear(a[0], a[1], a[2]))
    return _emit_activation(lw, n, act, y, a[-1] if act == "prelu" else None)


@_emits("squeeze_excite")
def _squeeze_excite(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    x, w1, b1, w2, b2 = a
    pointwise = Node(f"{n.name}_conv", "conv2d", POINTWISE_CONV)
    s = lw.bb.emit(lw.mean_hw(x, True))
    s = lw.bb.emit(EMITTERS["conv2d"](lw, pointwise, [s, w1, b1]))
    s = _emit_activation(lw, n, n.attrs["act"], s)
    if lw.hand_kernels and lw.owns_input(n):  # the gate once per channel, then x scaled in place: backend/se_scale.py
        return emit_se_scale(lw.bb, x, s, w2, b2, n.attrs["gate"], lw.fast_math)
    s = lw.bb.emit(EMITTERS["conv2d"](lw, pointwise, [s, w2, b2]))
    gate = lw.bb.emit(EMITTERS[n.attrs["gate"]](lw, Node(f"{n.name}_gate", n.attrs["gate"]), [s]))
    return R.multiply(x, gate)


@_emits("channel_affine")
def _channel_affine(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    shape = (1, -1) + (1,) * (n.type.rank - 2)
    return R.add(R.multiply(a[0], R.reshape(a[1], shape)), R.reshape(a[2], shape))


# ---- ops added by the grouped/depthwise passes ---------------------------------------------------------------

@_emits("channel_shuffle")
def _channel_shuffle(lw: _Lowering, n: Node, a: Sequence[Expr]) -> Expr:
    nb, c, h, w = n.type.shape
    g = n.attrs["groups"]
    y = lw.bb.emit(R.reshape(a[0], (nb, g, c // g, h, w)))
    y = lw.bb.emit(R.permute_dims(y, [0, 2, 1, 3, 4]))
    return R.reshape(y, (nb, c, h, w))
