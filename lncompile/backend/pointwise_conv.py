"""A 1x1 conv as one hand-scheduled channels-last kernel, its output channels in padded blocks of 16-lane vectors.

    y[n, i, j, o] = act(b[o] + sum_c x[n, i, j, c] * w[c, o]) (+ r[n, i, j, o])      [then act2(y), with a residual]

MetaSchedule vectorizes a channels-last conv over its output channels with vector tiles that divide them, so
ShuffleNetV2's 58 / 116 / 232 channels get 2-, 4- or 8-lane vectors and MobileNetV2's 24 8-lane ones:
tuned on znver5 (2 threads, each alone) those kernels ran at 290-410 GFLOPS where this one reaches 400-480.
Here the output channels are computed padded up to whole blocks of 16-lane vectors (the weight gets zero
columns at compile time) and only the real channels are stored: ``columns`` output pixels x ``BLOCK``
padded channels stay in registers while the input channels loop outside them, each input value broadcast
once to every vector of the block; the epilogue (bias, activation, residual) is applied before the results
leave registers. Rows and channel blocks run in parallel; the row is computed in whole blocks of columns
(past its end the input reads as zero and nothing is stored). The kernel is marked scheduled, so tuning
leaves it alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .pointwise_depthwise import activate, inline_elementwise, scheduled_func, vector_width
from .tvm_api import relax, tir_schedule, tvm

LANES = 16  # the kernel's accumulator vectors (AVX-512: one register each)
ACCUMULATORS = 14  # vector accumulators per register block (as in stem_conv: 16 or more spill)
MAX_WEIGHTS = 160 * 1024  # the most weights of a conv whose channels fill whole vectors (see suits)


def suits(kernel: tuple[int, int], strides: tuple[int, int], padding: tuple[int, int, int, int], groups: int,
          channels: int, out_channels: int, out_size: tuple[int, int], activation: str) -> bool:
    """Whether this kernel computes a conv: dense 1x1, stride 1, unpadded, over a map of more than one pixel
    (a squeeze-and-excitation's convs over a 1x1 map are a few thousand multiply-adds, and FuseOps' kernel also
    takes the activation after them), and either

    - output channels not a multiple of ``LANES``: the tuned kernels' vectors are narrower, or
    - at most ``MAX_WEIGHTS`` weights and no SiLU. Measured inside the models (znver5, 2 threads, each call
      against the tuned kernel's): 0.5-1.0x the time for most convs (MobileNetV2's 32 -> 16 at 112x112 0.73-0.81x,
      576 -> 160 at 7x7 0.61x, MobileNetV3's 80 -> 480 hardswish 0.51x), but 1.03-1.06x for the largest
      (960 -> 320, 320 -> 1280, 1152 -> 192: the tuned kernels keep their weight tiles in cache, this one
      streams a channel block's weights once per row of pixels) and 1.02-1.08x for EfficientNet's SiLU ones.
    """
    if not (kernel == (1, 1) and strides == (1, 1) and not any(padding) and groups == 1
            and out_size[0] * out_size[1] > 1):
        return False
    return out_channels % LANES != 0 or (channels * out_channels <= MAX_WEIGHTS and activation != "silu")


def register_block(out_channels: int, width: int) -> tuple[int, int]:
    """(padded channels per block, output columns per block) for rows of ``width`` pixels. Measured on znver5,
    2 threads, against 16 x 14, 48 x 4 and 64 x 3: 32 x 7 the fastest or within 3% on ShuffleNetV2's and
    MobileNetV2's convs. A row narrower than 7 columns is one block."""
    block = 2 * LANES if out_channels > LANES else LANES
    return block, min(ACCUMULATORS // (block // LANES), width)


def _padded(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _compute(shape: tuple[int, int, int, int], out_channels: int, activation: tuple[str, dict[str, float]],
             residual: bool, dtype: str, fast_math: bool,
             sum_activation: tuple[str, dict[str, float]] | None = None) -> Any:
    """The TE definition: NHWC ``x``, ``w`` [padded O / block, C, block], ``b`` [O], [``r``] -> NHWC output
    (``sum_activation``: applied after the residual's add)."""
    te = tvm.te
    n, h, w, c = shape
    block, columns = register_block(out_channels, w)
    padded_channels, padded_width = _padded(out_channels, block), _padded(w, columns)
    x = te.placeholder(shape, dtype, name="x")
    weight = te.placeholder((padded_channels // block, c, block), dtype, name="w")
    bias = te.placeholder((out_channels,), dtype, name="b")
    zero = tvm.tirx.const(0.0, dtype)
    # columns past the row's end (a partial last block) read zeros; their sums are never stored
    x_wide = te.compute((n, h, padded_width, c), lambda b_, y, xx, ch: tvm.tirx.if_then_else(
        xx < w, x[b_, y, xx, ch], zero), name="x_wide")
    k = te.reduce_axis((0, c), name="k")
    total = te.compute((n, h, padded_width, padded_channels), lambda b_, y, xx, o: te.sum(
        x_wide[b_, y, xx, k] * weight[o // block, k, o % block], axis=k), name="total")
    biased = te.compute((n, h, w, out_channels), lambda b_, y, xx, o: total[b_, y, xx, o] + bias[o], name="biased")
    activated = activate(biased, *activation, fast_math)
    inputs = [x, weight, bias]
    if residual:
        r = te.placeholder((n, h, w, out_channels), dtype, name="r")
        inputs.append(r)
        summed = te.compute(biased.shape, lambda *i: activated(*i) + r(*i), name="summed")
        after = summed if sum_activation is None else activate(summed, *sum_activation, fast_math)
        out = te.compute(biased.shape, lambda *i: after(*i), name="out")
    else:
        out = te.compute(biased.shape, lambda *i: activated(*i), name="out")
    return te.create_prim_func([*inputs, out])


def scheduled_kernel(shape: tuple[int, int, int, int], out_channels: int, activation: tuple[str, dict[str, float]],
                     residual: bool = False, dtype: str = "float32", fast_math: bool = False,
                     sum_activation: tuple[str, dict[str, float]] | None = None) -> Any:
    """The kernel for NHWC input ``shape`` as a scheduled PrimFunc (see the module doc)."""
    sch = tir_schedule(_compute(shape, out_channels, activation, residual, dtype, fast_math, sum_activation))
    inline_elementwise(sch, ("total", "out"))
    out, total = sch.get_sblock("out"), sch.get_sblock("total")
    block, columns = register_block(out_channels, shape[2])
    batch, y, x, ch = sch.get_loops(out)
    c_block, c_in = sch.split(ch, [None, block])
    x_block, x_in = sch.split(x, [None, columns])
    sch.reorder(batch, y, c_block, x_block, x_in, c_in)
    sch.parallel(sch.fuse(batch, y, c_block))
    # Stores in whole vectors, the last one of a block predicated to the real channels (58 channels in 2-lane
    # stores 14.2 us, 16-lane 13.2 us; 116 in 4-lane 13.0 us, 16-lane 12.4 us), but a residual's loads in the
    # widest vectors that divide the channels: predicated, they cost more than they save (MobileNetV2's
    # 56x56x144 -> 24: 86 us in 16-lane vectors, 58 us in 8-lane ones).
    sch.vectorize(sch.split(c_in, [None, vector_width(out_channels) if residual else LANES])[1])
    sch.compute_at(total, x_block, preserve_unit_loops=True)  # the register block: columns x padded channels
    x_acc, c_acc, k = sch.get_loops(total)[-3:]
    c_acc_outer, c_acc_inner = sch.split(c_acc, [None, LANES])
    sch.reorder(k, x_acc, c_acc_outer, c_acc_inner)
    sch.unroll(x_acc)
    sch.unroll(c_acc_outer)
    sch.vectorize(c_acc_inner)
    sch.decompose_reduction(total, k)
    return scheduled_func(sch)


def emit_pointwise_conv(bb: Any, data: Any, weight: Any, bias: Any, activation: tuple[str, dict[str, float]],
                        residual: Any = None, fast_math: bool = False,
                        sum_activation: tuple[str, dict[str, float]] | None = None) -> Any:
    """Emit the kernel on NCHW ``data`` (weight OIHW [O, C, 1, 1], bias [O], residual NCHW or None; with a
    residual, ``sum_activation`` applied after adding it), between
    permute_dims that cancel against the NHWC ops around it once ConvertLayout has run
    (``tvm_api.cancel_permutes``). The weight's zero-padded, blocked layout is computed by Relax ops on the
    constant, which weight pre-packing folds at build time."""
    R = relax.op
    n, c, h, w = (int(d) for d in data.ty.shape)
    out_channels = int(weight.ty.shape[0])
    dtype = str(data.ty.dtype)
    block, _ = register_block(out_channels, w)
    padded_channels = _padded(out_channels, block)
    func = scheduled_kernel((n, h, w, c), out_channels, activation, residual is not None, dtype, fast_math,
                            sum_activation)
    kernel = bb.add_func(func, "pointwise_conv_nhwc")
    x_nhwc = bb.emit(R.permute_dims(data, [0, 2, 3, 1]))
    w_co = R.permute_dims(R.reshape(weight, relax.ShapeExpr([out_channels, c])), [1, 0])
    zeros = relax.const(np.zeros((c, padded_channels - out_channels), dtype=dtype))
    w_padded = R.concat([w_co, zeros], axis=1) if padded_channels > out_channels else w_co
    w_blocked = bb.emit(R.permute_dims(
        R.reshape(w_padded, relax.ShapeExpr([c, padded_channels // block, block])), [1, 0, 2]))
    added = [] if residual is None else [bb.emit(R.permute_dims(residual, [0, 2, 3, 1]))]
    y = bb.emit(relax.call_tir(kernel, [x_nhwc, w_blocked, bias, *added],
                               relax.TensorType((n, h, w, out_channels), dtype)))
    return R.permute_dims(y, [0, 3, 1, 2])
