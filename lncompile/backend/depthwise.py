"""A depthwise conv with its bias and activation, as one hand-scheduled channels-last kernel.

    y[n, i, j, c] = act(b[c] + sum_{ry, rx} x_padded[n, i * sh + ry, j * sw + rx, c] * w[ry, rx, c])

MetaSchedule finds poor NHWC depthwise schedules in the trials a model can afford: tuned on znver5,
EfficientNet-B0's 5x5 conv over 28x28x240 took 117 us and its 3x3 over 112x112x32 99 us, against 44 and 54 us
here. The schedule is fixed: tiles of output rows run in parallel; within a tile, each run of ``columns``
output pixels keeps its ``columns x vector`` accumulators in registers while the taps (ry, rx) loop outside
them, the channel vector innermost (NHWC's contiguous axis); the epilogue (bias, activation) is applied
before the tile's results leave registers. The kernel is marked scheduled, so tuning leaves it alone.

With ``concat`` (a ghost module: ``concat([x, y], channels) [+ r]``, passes/fuse_depthwise_concat.py) each
register block also writes the x it read beside y, so no concat kernel reads both back from memory.
"""

from __future__ import annotations

from typing import Any

from .pointwise_depthwise import activate, inline_elementwise, output_size, scheduled_func, vector_width
from .tvm_api import relax, tir_schedule, tvm


def suits(channels: int, kernel: tuple[int, int]) -> bool:
    """Whether this kernel is the faster one for a depthwise conv of ``channels`` and ``kernel``.

    Against the tuned kernels of the eight reference models (znver5, 2 threads, each alone): faster for every
    conv whose channels fill 16-lane vectors, and for the 3x3 convs filling 8-lane ones but one, 5% slower
    (MobileNetV3's 56x56x72: 52 -> 20 us; GhostNet's 112x112x24: 28 -> 29 us); slower for 5x5 convs on 8-lane
    vectors (56x56x72, stride 2: 22 -> 27 us) and for channel counts that leave 4- or 2-lane vectors
    (ShuffleNetV2's 28x28x58: 10 -> 15 us), which stay tuned.
    """
    lanes = vector_width(channels)
    return lanes == 16 or (lanes == 8 and tuple(kernel) == (3, 3))


def tiling(out_rows: int, out_columns: int) -> tuple[int, int]:
    """(output rows per parallel tile, output columns per register block) for an output of that size.

    Measured on znver5, 2 threads (rows 1/2/4 x columns 4/7/8): 4 rows for outputs of 56 rows and more, fewer
    below so each thread still gets several tiles; 8 columns unless 7 divides the width and 8 does not
    (7x7, 14x14, 28x28 maps: no partial block).
    """
    rows = 4 if out_rows >= 56 else 2 if out_rows >= 28 else 1
    columns = 7 if out_columns % 8 and not out_columns % 7 else 8
    return rows, min(columns, out_columns)


def _compute(shape: tuple[int, int, int, int], kernel: tuple[int, int], strides: tuple[int, int],
             padding: tuple[int, int, int, int], activation: tuple[str, dict[str, float]], dtype: str,
             fast_math: bool, concat: bool = False, residual: bool = False) -> Any:
    te = tvm.te
    n, h, w, c = shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, strides, padding
    oh, ow = output_size((h, w), kernel, strides, padding)
    x = te.placeholder(shape, dtype, name="x")
    weight = te.placeholder((kh, kw, c), dtype, name="w")
    bias = te.placeholder((c,), dtype, name="b")
    zero = tvm.tirx.const(0.0, dtype)
    x_padded = te.compute((n, h + pt + pb, w + pl + pr, c), lambda b, y, xx, ch: tvm.tirx.if_then_else(
        tvm.tirx.all(y >= pt, y < pt + h, xx >= pl, xx < pl + w), x[b, y - pt, xx - pl, ch], zero), name="x_padded")
    ry, rx = te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, kw), name="rx")
    total = te.compute((n, oh, ow, c), lambda b, y, xx, ch: te.sum(
        x_padded[b, y * sh + ry, xx * sw + rx, ch] * weight[ry, rx, ch], axis=[ry, rx]), name="depthwise_sum")
    biased = te.compute((n, oh, ow, c), lambda b, y, xx, ch: total[b, y, xx, ch] + bias[ch], name="depthwise_bias")
    activated = activate(biased, *activation, fast_math)
    if not concat:
        out = te.compute((n, oh, ow, c), lambda *i: activated(*i), name="out")
        return te.create_prim_func([x, weight, bias, out])
    # [x, conv(x)] on channels as [N, H, W, 2, C]: the half index is a loop of its own, unrolled around the
    # channel vector, so neither half's values depend on a channel comparison
    def both(b: Any, y: Any, xx: Any, half: Any, ch: Any) -> Any:
        return tvm.tirx.if_then_else(half == 0, x[b, y, xx, ch], activated[b, y, xx, ch])

    added = te.placeholder((n, oh, ow, 2, c), dtype, name="r") if residual else None
    out = te.compute((n, oh, ow, 2, c), lambda *i: both(*i) + added(*i) if residual else both(*i), name="out")
    return te.create_prim_func([x, weight, bias, *([added] if residual else []), out])


def scheduled_kernel(shape: tuple[int, int, int, int], kernel: tuple[int, int], strides: tuple[int, int],
                     padding: tuple[int, int, int, int], activation: tuple[str, dict[str, float]],
                     dtype: str = "float32", fast_math: bool = False, concat: bool = False,
                     residual: bool = False) -> Any:
    """The kernel for NHWC ``shape`` (weight [KH, KW, C]) as a scheduled PrimFunc (see the module doc).

    ``concat``: the output is [N, H, W, 2C], x beside its conv, ``[x, y]`` on channels (a ghost module's
    concat, written while both are in registers or cache); ``residual``: plus an input r of that shape."""
    sch = tir_schedule(_compute(shape, kernel, strides, padding, activation, dtype, fast_math, concat, residual))
    inline_elementwise(sch, ("depthwise_sum", "out"))  # padding too: a padded copy per tile measured 1.4x slower
    out, total = sch.get_sblock("out"), sch.get_sblock("depthwise_sum")
    if concat:  # the caller's tensors are [N, H, W, 2C]: a Relax reshape would be a kernel of its own
        c = shape[3]
        sch.transform_layout(out, "out", lambda b, y, x, half, ch: (b, y, x, half * c + ch))
        if residual:
            sch.transform_layout(out, "r", lambda b, y, x, half, ch: (b, y, x, half * c + ch))
    batch, y, x, *half, ch = sch.get_loops(out)
    rows, columns = tiling(int(sch.get(y).extent), int(sch.get(x).extent))
    y_tile, y_in = sch.split(y, [None, rows])
    x_block, x_in = sch.split(x, [None, columns])
    c_outer, c_inner = sch.split(ch, [None, vector_width(shape[3])])
    sch.reorder(batch, y_tile, x_block, y_in, c_outer, *half, x_in, c_inner)
    for loop in half:
        sch.unroll(loop)
    sch.parallel(sch.fuse(batch, y_tile))
    sch.vectorize(c_inner)
    sch.compute_at(total, c_outer, preserve_unit_loops=True)  # one register block: columns x vector accumulators
    x_acc, c_acc, ry, rx = sch.get_loops(total)[-4:]
    sch.reorder(ry, rx, x_acc, c_acc)
    sch.vectorize(c_acc)
    sch.decompose_reduction(total, ry)
    return scheduled_func(sch)


def emit_depthwise(bb: Any, data: Any, weight: Any, bias: Any, strides: tuple[int, int],
                   padding: tuple[int, int, int, int], activation: tuple[str, dict[str, float]],
                   fast_math: bool = False) -> Any:
    """Emit the kernel on NCHW ``data`` (weight OIHW [C, 1, KH, KW], bias [C]), between permute_dims that cancel
    against the NHWC ops around it once ConvertLayout has run (``tvm_api.cancel_permutes``)."""
    return _emit(bb, data, weight, bias, strides, padding, activation, fast_math)


def emit_depthwise_concat(bb: Any, data: Any, weight: Any, bias: Any, padding: tuple[int, int, int, int],
                          activation: tuple[str, dict[str, float]], residual: Any = None,
                          fast_math: bool = False) -> Any:
    """Emit ``concat([data, act(dwconv(data) + bias)], 1) [+ residual]`` (stride 1, an output of data's size) as
    the kernel with ``concat``, between permute_dims that cancel as :func:`emit_depthwise`'s do."""
    return _emit(bb, data, weight, bias, (1, 1), padding, activation, fast_math, concat=True, residual=residual)


def _emit(bb: Any, data: Any, weight: Any, bias: Any, strides: tuple[int, int], padding: tuple[int, int, int, int],
          activation: tuple[str, dict[str, float]], fast_math: bool, concat: bool = False,
          residual: Any = None) -> Any:
    R = relax.op
    n, c, h, w = (int(d) for d in data.ty.shape)
    kh, kw = int(weight.ty.shape[2]), int(weight.ty.shape[3])
    dtype = str(data.ty.dtype)
    func = scheduled_kernel((n, h, w, c), (kh, kw), strides, padding, activation, dtype, fast_math, concat,
                            residual is not None)
    kernel = bb.add_func(func, "depthwise_concat_nhwc" if concat else "depthwise_nhwc")
    x_nhwc = bb.emit(R.permute_dims(data, [0, 2, 3, 1]))
    w_hwc = bb.emit(R.reshape(R.permute_dims(weight, [2, 3, 0, 1]), relax.ShapeExpr([kh, kw, c])))
    added = [] if residual is None else [bb.emit(R.permute_dims(residual, [0, 2, 3, 1]))]
    oh, ow = output_size((h, w), (kh, kw), strides, padding)
    out_shape = (n, oh, ow, 2 * c if concat else c)
    y = bb.emit(relax.call_tir(kernel, [x_nhwc, w_hwc, bias, *added], relax.TensorType(out_shape, dtype)))
    return R.permute_dims(y, [0, 3, 1, 2])
