"""Max pooling of a channels-last tensor, as one hand-scheduled kernel.

    y[n, i, j, c] = max over (u, v) in the window, inside the image, of x[n, i*sh + u - top, j*sw + v - left, c]

Window cells that fall in the padding (or past the edge, with ceil_mode) are skipped, as -inf would be.
MetaSchedule's NHWC pools stay slow in the trials a model spends on them (SqueezeNet's 3x3 stride-2 pool over
111x111x64: 34-40 us tuned, 2 threads, znver5). Here output rows run in parallel and each output pixel keeps
one channel vector in a register over its window (unrolled), channels vectorized: exact, the max is
order-free. The kernel is marked scheduled, so tuning leaves it alone and the build compiles it as is.
"""

from __future__ import annotations

from typing import Any

from .pointwise_depthwise import scheduled_func, vector_width
from .tvm_api import relax, tir_schedule, tvm


def _compute(shape: tuple[int, int, int, int], out_hw: tuple[int, int], kernel: tuple[int, int],
             strides: tuple[int, int], padding: tuple[int, int, int, int], dtype: str) -> Any:
    te, tirx = tvm.te, tvm.tirx
    n, h, w, c = shape
    (kh, kw), (sh, sw), (top, left) = kernel, strides, padding[:2]
    x = te.placeholder(shape, dtype, name="x")
    u, v = te.reduce_axis((0, kh), name="u"), te.reduce_axis((0, kw), name="v")
    lowest = tvm.tirx.min_value(dtype)

    def window(b: Any, i: Any, j: Any, ch: Any) -> Any:
        row, col = i * sh + u - top, j * sw + v - left
        inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
        value = tirx.if_then_else(inside, x[b, tirx.max(tirx.min(row, h - 1), 0),
                                            tirx.max(tirx.min(col, w - 1), 0), ch], lowest)
        return te.max(value, axis=[u, v])

    y = te.compute((n, *out_hw, c), window, name="pool")
    return te.create_prim_func([x, y])


def scheduled_kernel(shape: tuple[int, int, int, int], out_hw: tuple[int, int], kernel: tuple[int, int],
                     strides: tuple[int, int], padding: tuple[int, int, int, int], dtype: str = "float32") -> Any:
    """The kernel for NHWC ``shape`` pooled to ``out_hw`` as a scheduled PrimFunc (see the module doc)."""
    sch = tir_schedule(_compute(shape, out_hw, kernel, strides, padding, dtype))
    block = sch.get_sblock("pool")
    batch, row, col, channels, u, v = sch.get_loops(block)
    outer, inner = sch.split(channels, [None, vector_width(shape[3])])
    sch.reorder(batch, row, col, outer, u, v, inner)
    sch.parallel(sch.fuse(batch, row))
    sch.unroll(u)
    sch.unroll(v)
    sch.vectorize(inner)
    sch.decompose_reduction(block, u)
    return scheduled_func(sch)


def emit_max_pool(bb: Any, data: Any, out_hw: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
                  padding: tuple[int, int, int, int]) -> Any:
    """Emit the kernel on NCHW ``data`` (pooled to ``out_hw``, as the IR's max_pool2d computed it), between a
    permute_dims pair that cancels against the NHWC ops around it (``tvm_api.cancel_permutes``)."""
    R = relax.op
    n, c, h, w = (int(d) for d in data.ty.shape)
    dtype = str(data.ty.dtype)
    func = bb.add_func(scheduled_kernel((n, h, w, c), out_hw, kernel, strides, padding, dtype), "max_pool_nhwc")
    x_nhwc = bb.emit(R.permute_dims(data, [0, 2, 3, 1]))
    y = bb.emit(relax.call_tir(func, [x_nhwc], relax.TensorType((n, *out_hw, c), dtype)))
    return R.permute_dims(y, [0, 3, 1, 2])
