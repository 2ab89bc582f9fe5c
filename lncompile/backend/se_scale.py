"""The end of a squeeze-and-excitation block as one hand-scheduled channels-last kernel: the gate, then x scaled.

    g[n, c] = gate(b2[c] + sum_k h[n, k] * w2[k, c])      gate: sigmoid | hardsigmoid (C values)
    y[n, i, j, c] = x[n, i, j, c] * g[n, c]

Left to FuseOps, the expand conv, its gate and the multiply are one kernel whose schedules inline the gate into
the multiply: EfficientNet's sigmoid (a polynomial exp and a division) ran once per element of x, 401K times
over 112x112x32 instead of 32. Here the C gate values are computed first (channels vectorized, the reduction
over the squeezed channels outside them), then rows of x are scaled in parallel, channels vectorized, in place:
x is read and written back where it lies, still in cache, where a new output would be written to memory that
has left it (EfficientNet-B0's 16 SE blocks in the model: 194 us as FuseOps' kernels, 157 us writing a new
tensor, 105 us in place). The kernel is marked scheduled, so tuning leaves it alone.
"""

from __future__ import annotations

from typing import Any

from . import tvm_api
from .pointwise_depthwise import inline_elementwise, scheduled_func, vector_width
from .tvm_api import relax, tir_schedule, tvm


def _gate(t: Any, name: str, fast_math: bool) -> Any:
    """``t`` through the SE gate, as the build's other gates compute it (fast-math sigmoid under ``fast_math``;
    hardsigmoid = clip(t + 3, 0, 6) / 6, as PyTorch defines it)."""
    if name == "sigmoid":
        return tvm_api.fast_sigmoid(t) if fast_math else tvm.topi.sigmoid(t)
    dtype = t.dtype

    def hard(*i: Any) -> Any:
        clipped = tvm.te.min(tvm.te.max(t(*i) + tvm.tirx.const(3.0, dtype), tvm.tirx.const(0.0, dtype)),
                             tvm.tirx.const(6.0, dtype))
        return clipped / tvm.tirx.const(6.0, dtype)

    return tvm.te.compute(t.shape, hard, name="hardsigmoid")


def _compute(shape: tuple[int, int, int, int], hidden: int, gate: str, dtype: str, fast_math: bool) -> Any:
    te = tvm.te
    n, c = shape[0], shape[3]
    x = te.placeholder(shape, dtype, name="x")
    squeezed = te.placeholder((n, 1, 1, hidden), dtype, name="h")
    weight = te.placeholder((hidden, c), dtype, name="w2")
    bias = te.placeholder((c,), dtype, name="b2")
    k = te.reduce_axis((0, hidden), name="k")
    total = te.compute((n, c), lambda b, ch: te.sum(squeezed[b, 0, 0, k] * weight[k, ch], axis=k), name="gate_sum")
    biased = te.compute((n, c), lambda b, ch: total[b, ch] + bias[ch], name="gate_bias")
    gated = _gate(biased, gate, fast_math)
    g = te.compute((n, c), lambda *i: gated(*i), name="gate")
    out = te.compute(shape, lambda b, y, xx, ch: x[b, y, xx, ch] * g[b, ch], name="out")
    return te.create_prim_func([x, squeezed, weight, bias, out])


def scheduled_kernel(shape: tuple[int, int, int, int], hidden: int, gate: str, dtype: str = "float32",
                     fast_math: bool = False) -> Any:
    """The kernel for NHWC ``shape`` and ``hidden`` squeezed channels as a scheduled PrimFunc taking (x, h, w2, b2)
    and writing its result into x (see the module doc)."""
    sch = tir_schedule(_compute(shape, hidden, gate, dtype, fast_math))
    inline_elementwise(sch, ("gate_sum", "gate", "out"))
    vector = vector_width(shape[3])
    total, g, out = sch.get_sblock("gate_sum"), sch.get_sblock("gate"), sch.get_sblock("out")
    _, channels, k = sch.get_loops(total)
    outer, inner = sch.split(channels, [None, vector])
    sch.reorder(outer, k, inner)
    sch.vectorize(inner)
    sch.decompose_reduction(total, k)
    sch.vectorize(sch.split(sch.get_loops(g)[-1], [None, vector])[1])
    batch, y, _, ch = sch.get_loops(out)
    sch.parallel(sch.fuse(batch, y))
    sch.vectorize(sch.split(ch, [None, vector])[1])
    func = scheduled_func(sch)
    return func.specialize({func.params[-1]: func.params[0]})  # ``out`` is ``x``: the kernel scales x in place


def emit_se_scale(bb: Any, data: Any, squeezed: Any, weight: Any, bias: Any, gate: str, fast_math: bool = False) -> Any:
    """Emit the kernel on NCHW ``data`` and the SE's squeezed activation ``squeezed`` [N, K, 1, 1] (weight
    [C, K, 1, 1], bias [C]), between permute_dims that cancel against the NHWC ops around it once ConvertLayout
    has run (``tvm_api.cancel_permutes``). The kernel overwrites ``data``: the caller makes sure nothing else
    reads it (the SE's mean, which the gate depends on, runs before)."""
    R = relax.op
    n, c, h, w = (int(d) for d in data.ty.shape)
    hidden = int(weight.ty.shape[1])
    dtype = str(data.ty.dtype)
    kernel = bb.add_func(scheduled_kernel((n, h, w, c), hidden, gate, dtype, fast_math), "se_scale_nhwc")
    x_nhwc = bb.emit(R.permute_dims(data, [0, 2, 3, 1]))
    h_nhwc = bb.emit(R.permute_dims(squeezed, [0, 2, 3, 1]))
    w_kc = bb.emit(R.permute_dims(R.reshape(weight, relax.ShapeExpr([c, hidden])), [1, 0]))
    y = bb.emit(relax.call_tir_inplace(kernel, [x_nhwc, h_nhwc, w_kc, bias], [0],
                                       relax.TensorType((n, h, w, c), dtype)))
    return R.permute_dims(y, [0, 3, 1, 2])
