"""The mean over H and W of a channels-last tensor, as one hand-scheduled kernel.

    y[n, 0, 0, c] = (1 / (H W)) * sum_h sum_w x[n, h, w, c]

Squeeze-and-excitation blocks and classifier heads take this mean. MetaSchedule's reduction rules find poor
schedules for it in NHWC (the reduced axes are outer, the kept one inner): EfficientNet-B0's SE means over
112x112x32 and 56x56x144 took 112-117 us tuned, against 8-13 us here (2 threads, znver5). Here each row h sums
its W pixels into a row of partial sums, vectorized over channels, rows in parallel; then the H partial rows
(a few KB) are summed and scaled. Summation order changes, so results differ from a single-loop sum by
rounding only.

The kernel is marked scheduled, so tuning leaves it alone and the build compiles it as is.
"""

from __future__ import annotations

from typing import Any

from .pointwise_depthwise import scheduled_func, vector_width
from .tvm_api import relax, tir_schedule, tvm


def _compute(shape: tuple[int, int, int, int], dtype: str, keepdims: bool) -> Any:
    te = tvm.te
    n, h, w, c = shape
    x = te.placeholder(shape, dtype, name="x")
    col = te.reduce_axis((0, w), name="col")
    rows = te.compute((n, h, c), lambda b, y, ch: te.sum(x[b, y, col, ch], axis=col), name="rows")
    row = te.reduce_axis((0, h), name="row")
    total = te.compute((n, c), lambda b, ch: te.sum(rows[b, row, ch], axis=row), name="total")
    scale = tvm.tirx.const(1.0 / (h * w), dtype)
    if keepdims:
        out = te.compute((n, 1, 1, c), lambda b, i, j, ch: total[b, ch] * scale, name="out")
    else:
        out = te.compute((n, c), lambda b, ch: total[b, ch] * scale, name="out")
    return te.create_prim_func([x, out])


def scheduled_kernel(shape: tuple[int, int, int, int], dtype: str = "float32", keepdims: bool = True) -> Any:
    """The kernel for NHWC ``shape`` as a scheduled PrimFunc (see the module doc): its output [N, 1, 1, C], or
    [N, C] without ``keepdims``."""
    sch = tir_schedule(_compute(shape, dtype, keepdims))
    vector = vector_width(shape[3])

    def channels_inner(block_name: str) -> None:
        """Reduction loops outside, channels innermost and vectorized; the init split off the reduction."""
        block = sch.get_sblock(block_name)
        *_, channels, reduced = sch.get_loops(block)
        outer, inner = sch.split(channels, [None, vector])
        sch.reorder(reduced, outer, inner)
        sch.vectorize(inner)
        sch.decompose_reduction(block, reduced)

    batch, row = sch.get_loops(sch.get_sblock("rows"))[:2]
    sch.parallel(sch.fuse(batch, row))
    channels_inner("rows")
    channels_inner("total")
    out = sch.get_sblock("out")
    sch.vectorize(sch.split(sch.get_loops(out)[-1], [None, vector])[1])
    return scheduled_func(sch)


def emit_spatial_mean(bb: Any, data: Any, keepdims: bool) -> Any:
    """Emit the kernel on NCHW ``data``: the mean over axes 2 and 3, shaped as ``R.mean(data, [2, 3], keepdims)``.

    The kernel runs channels-last between a permute_dims pair, which cancels against the NHWC ops around it
    once ConvertLayout has run (``tvm_api.cancel_permutes``).
    """
    R = relax.op
    n, c, h, w = (int(d) for d in data.ty.shape)
    dtype = str(data.ty.dtype)
    kernel = bb.add_func(scheduled_kernel((n, h, w, c), dtype, keepdims), "spatial_mean_nhwc")
    x_nhwc = bb.emit(R.permute_dims(data, [0, 2, 3, 1]))
    if not keepdims:
        return relax.call_tir(kernel, [x_nhwc], relax.TensorType((n, c), dtype))
    y = bb.emit(relax.call_tir(kernel, [x_nhwc], relax.TensorType((n, 1, 1, c), dtype)))
    return R.permute_dims(y, [0, 3, 1, 2])
