"""A network's stem conv (few input channels, read from the model's NCHW input) as one hand-scheduled kernel
that writes channels-last.

    y[n, i, j, o] = act(b[o] + sum_{c, ry, rx} x_padded[n, c, i * sh + ry, j * sw + rx] * w[c, ry, rx, o])

Channels-last builds would transpose the NCHW input image before the stem conv (a kernel of its own: 15-38 us
for 3x224x224 on znver5, 2 threads), and MetaSchedule's schedules for a conv reducing over 3 channels x 3 x 3
taps leave much of the machine idle (MobileNetV2's 3 -> 32 stem: 136 us tuned). Here the conv reads the NCHW
input where it lies: output rows run in parallel; within a row, each run of ``columns`` output pixels keeps
``columns x output channels`` accumulators in registers while the (c, ry, rx) taps loop outside them, each input
value broadcast once to every output-channel vector; the epilogue (bias, activation) is applied before the
results leave registers. The kernel is marked scheduled, so tuning leaves it alone.
"""

from __future__ import annotations

from typing import Any

from .pointwise_depthwise import activate, inline_elementwise, output_size, scheduled_func, vector_width
from .tvm_api import relax, tir_schedule, tvm

MAX_INPUT_CHANNELS = 4  # an image's channels (RGB, RGBA); wider inputs are ordinary convs
ACCUMULATORS = 14  # vector accumulators per register block (measured: 16 or more spill, 2x slower)


def suits(input_channels: int, groups: int) -> bool:
    """Whether a conv is a stem this kernel computes: dense, over an image's few channels."""
    return groups == 1 and input_channels <= MAX_INPUT_CHANNELS


def block_columns(out_columns: int, out_channels: int) -> int:
    """Output columns per register block: every output-channel vector of the block's columns stays in registers
    (at most ``ACCUMULATORS``), and the block divides the row (a partial block measured up to 2.5x slower: the
    unrolled columns each get a bounds check). Measured on znver5, 2 threads, 3x224x224 input: 32 channels x
    7 columns 46 us (8 columns: 68 us), 16 x 14 27 us, 64 x 3 over 111 columns 87 us (x 4 or 6: 93-132 us)."""
    vectors = out_channels // vector_width(out_channels)
    budget = max(1, ACCUMULATORS // vectors)
    return next(c for c in range(min(budget, out_columns), 0, -1) if out_columns % c == 0)


def _compute(shape: tuple[int, int, int, int], out_channels: int, kernel: tuple[int, int],
             strides: tuple[int, int], padding: tuple[int, int, int, int],
             activation: tuple[str, dict[str, float]], dtype: str, fast_math: bool) -> Any:
    te = tvm.te
    n, c, h, w = shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, strides, padding
    oh, ow = output_size((h, w), kernel, strides, padding)
    x = te.placeholder(shape, dtype, name="x")
    weight = te.placeholder((c, kh, kw, out_channels), dtype, name="w")
    bias = te.placeholder((out_channels,), dtype, name="b")
    zero = tvm.tirx.const(0.0, dtype)
    x_padded = te.compute((n, c, h + pt + pb, w + pl + pr), lambda b, ch, y, xx: tvm.tirx.if_then_else(
        tvm.tirx.all(y >= pt, y < pt + h, xx >= pl, xx < pl + w), x[b, ch, y - pt, xx - pl], zero), name="x_padded")
    rc = te.reduce_axis((0, c), name="rc")
    ry, rx = te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, kw), name="rx")
    total = te.compute((n, oh, ow, out_channels), lambda b, y, xx, o: te.sum(
        x_padded[b, rc, y * sh + ry, xx * sw + rx] * weight[rc, ry, rx, o], axis=[rc, ry, rx]), name="stem_sum")
    biased = te.compute((n, oh, ow, out_channels), lambda b, y, xx, o: total[b, y, xx, o] + bias[o],
                        name="stem_bias")
    activated = activate(biased, *activation, fast_math)
    out = te.compute((n, oh, ow, out_channels), lambda *i: activated(*i), name="out")
    return te.create_prim_func([x, weight, bias, out])


def scheduled_kernel(shape: tuple[int, int, int, int], out_channels: int, kernel: tuple[int, int],
                     strides: tuple[int, int], padding: tuple[int, int, int, int],
                     activation: tuple[str, dict[str, float]], dtype: str = "float32",
                     fast_math: bool = False) -> Any:
    """The kernel for NCHW input ``shape`` (weight [C, KH, KW, O]) as a scheduled PrimFunc (see the module doc)."""
    sch = tir_schedule(_compute(shape, out_channels, kernel, strides, padding, activation, dtype, fast_math))
    inline_elementwise(sch, ("stem_sum", "out"))
    out, total = sch.get_sblock("out"), sch.get_sblock("stem_sum")
    batch, y, x, ch = sch.get_loops(out)
    x_block, x_in = sch.split(x, [None, block_columns(int(sch.get(x).extent), out_channels)])
    c_outer, c_inner = sch.split(ch, [None, vector_width(out_channels)])
    sch.reorder(batch, y, x_block, x_in, c_outer, c_inner)
    sch.parallel(sch.fuse(batch, y))  # one output row per task (2-row tiles measured the same)
    sch.vectorize(c_inner)
    sch.compute_at(total, x_block, preserve_unit_loops=True)  # the register block: columns x channel vectors
    x_acc, c_acc, rc, ry, rx = sch.get_loops(total)[-5:]
    c_acc_outer, c_acc_inner = sch.split(c_acc, [None, vector_width(out_channels)])
    sch.reorder(rc, ry, rx, x_acc, c_acc_outer, c_acc_inner)
    sch.unroll(x_acc)
    sch.unroll(c_acc_outer)
    sch.vectorize(c_acc_inner)
    sch.decompose_reduction(total, rc)
    return scheduled_func(sch)


def emit_stem_conv(bb: Any, data: Any, weight: Any, bias: Any, strides: tuple[int, int],
                   padding: tuple[int, int, int, int], activation: tuple[str, dict[str, float]],
                   fast_math: bool = False) -> Any:
    """Emit the kernel on NCHW ``data`` (weight OIHW, bias [O]), its output put back to NCHW by a permute_dims
    that cancels against the NHWC ops after it once ConvertLayout has run (``tvm_api.cancel_permutes``)."""
    R = relax.op
    n, c, h, w = (int(d) for d in data.ty.shape)
    out_channels, _, kh, kw = (int(d) for d in weight.ty.shape)
    dtype = str(data.ty.dtype)
    func = scheduled_kernel((n, c, h, w), out_channels, (kh, kw), strides, padding, activation, dtype, fast_math)
    kernel = bb.add_func(func, "stem_conv_nhwc")
    w_chwo = bb.emit(R.permute_dims(weight, [1, 2, 3, 0]))
    oh, ow = output_size((h, w), (kh, kw), strides, padding)
    y = bb.emit(relax.call_tir(kernel, [data, w_chwo, bias], relax.TensorType((n, oh, ow, out_channels), dtype)))
    return R.permute_dims(y, [0, 3, 1, 2])
