"""A pointwise conv and the depthwise conv reading it, as one hand-scheduled channels-last kernel.

    y = act2(depthwise_conv2d(act1(conv1x1(x, w1) + b1), w2) + b2)

Tuned separately, the two kernels pass the expanded activation through memory: MobileNetV2's first inverted
residual expands 16 -> 96 channels at 112x112, a 4.8 MB tensor written by one kernel and read by the next. Inside
the model that tensor does not stay in cache (the rest of the network's weights and activations push it out
between inferences), so both kernels run 1.5-3x slower than when tuned alone. Here the depthwise conv's output
rows are computed in tiles, and each tile first computes the expanded rows it reads (its rows plus the halo,
recomputed by the neighbouring tile) into a small buffer that stays in cache: the expanded tensor never exists.

The schedule is fixed (MetaSchedule's rules would not place one reduction inside another's tiles): tiles of
output rows (:func:`tile_rows`) run in parallel; within a tile both convolutions vectorize over channels, the
innermost axis of NHWC, each pixel's sums accumulating in registers before its activated values are stored.
The kernel is marked scheduled, so tuning leaves it alone and the build compiles it as is.
"""

from __future__ import annotations

from typing import Any

from . import tvm_api
from .tvm_api import relax, tir_schedule, tvm

TILE_BYTES = 640 * 1024  # a tile's expanded rows, at most: well inside a 1 MiB L2 (see tile_rows)
MIN_TILES = 4  # two per thread on two cores, and an even count: 7 tiles on 2 threads leave one waiting
OPAQUE = 8  # TVM's OpPatternKind::kOpaque: FuseOps fuses nothing into the kernel (its schedule stays)


def _scalar_activation(value: Any, name: str, params: dict[str, float], dtype: str) -> Any:
    def const(v: float) -> Any:
        return tvm.tirx.const(v, dtype)

    if name == "relu":
        return tvm.te.max(value, const(0.0))
    if name == "clip":
        return tvm.te.min(tvm.te.max(value, const(params["min"])), const(params["max"]))
    if name == "hardswish":
        return value * tvm.te.min(tvm.te.max(value + const(3.0), const(0.0)), const(6.0)) / const(6.0)
    return value


def activate(t: Any, name: str, params: dict[str, float], fast_math: bool) -> Any:
    """``t`` through the activation, as TE stages that the schedule inlines (see :func:`inline_elementwise`)."""
    if name == "silu":  # the same TE as the build's other SiLUs: polynomial exp under fast math (vectorizes)
        return tvm_api.fast_silu(t) if fast_math else tvm.topi.multiply(t, tvm.topi.sigmoid(t))
    return tvm.te.compute(t.shape, lambda *i: _scalar_activation(t(*i), name, params, t.dtype), name=f"act_{name}")


def output_size(size: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
                 padding: tuple[int, int, int, int]) -> tuple[int, int]:
    """The depthwise conv's output rows and columns."""
    (h, w), (kh, kw), (sh, sw), (pt, pl, pb, pr) = size, kernel, strides, padding
    return (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1


def _compute(shape: tuple[int, int, int, int], expanded: int, kernel: tuple[int, int], strides: tuple[int, int],
             padding: tuple[int, int, int, int], activations: tuple[tuple[str, dict[str, float]], ...],
             dtype: str, fast_math: bool) -> Any:
    """The TE definition (NHWC data, w1 [C, E], w2 [KH, KW, E]) as a PrimFunc."""
    te = tvm.te
    n, h, w, c = shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, strides, padding
    ph, pw = h + pt + pb, w + pl + pr
    oh, ow = output_size((h, w), kernel, strides, padding)
    x = te.placeholder((n, h, w, c), dtype, name="x")
    w1 = te.placeholder((c, expanded), dtype, name="w1")
    b1 = te.placeholder((expanded,), dtype, name="b1")
    w2 = te.placeholder((kh, kw, expanded), dtype, name="w2")
    b2 = te.placeholder((expanded,), dtype, name="b2")

    def inside(y: Any, xx: Any) -> Any:
        return tvm.tirx.all(y >= pt, y < pt + h, xx >= pl, xx < pl + w)

    zero = tvm.tirx.const(0.0, dtype)
    k = te.reduce_axis((0, c), name="k")
    # expanded rows over the padded extent; the padding ring is zeroed after the activation
    x_padded = te.compute((n, ph, pw, c), lambda b, y, xx, i: tvm.tirx.if_then_else(
        inside(y, xx), x[b, y - pt, xx - pl, i], zero), name="x_padded")
    expand_sum = te.compute((n, ph, pw, expanded), lambda b, y, xx, e: te.sum(x_padded[b, y, xx, k] * w1[k, e], axis=k),
                            name="expand_sum")
    expand_bias = te.compute((n, ph, pw, expanded), lambda b, y, xx, e: expand_sum[b, y, xx, e] + b1[e],
                             name="expand_bias")
    expand_act = activate(expand_bias, *activations[0], fast_math)
    expand = te.compute((n, ph, pw, expanded), lambda b, y, xx, e: tvm.tirx.if_then_else(
        inside(y, xx), expand_act[b, y, xx, e], zero), name="expand")
    ry, rx = te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, kw), name="rx")
    depthwise_sum = te.compute((n, oh, ow, expanded), lambda b, y, xx, e: te.sum(
        expand[b, y * sh + ry, xx * sw + rx, e] * w2[ry, rx, e], axis=[ry, rx]), name="depthwise_sum")
    depthwise_bias = te.compute((n, oh, ow, expanded), lambda b, y, xx, e: depthwise_sum[b, y, xx, e] + b2[e],
                                name="depthwise_bias")
    out_act = activate(depthwise_bias, *activations[1], fast_math)
    out = te.compute((n, oh, ow, expanded), lambda *i: out_act(*i), name="out")
    return te.create_prim_func([x, w1, b1, w2, b2, out])


# the blocks the schedule places; every other block of ``_compute`` is elementwise and inlined into its reader
_KEPT_BLOCKS = ("expand_sum", "expand", "depthwise_sum", "out")


def vector_width(channels: int) -> int:
    """The widest vector of at most 16 lanes that divides ``channels`` (the channels-last inner loop)."""
    return next(v for v in (16, 8, 4, 2, 1) if channels % v == 0)


def scheduled_func(sch: Any) -> Any:
    """A hand kernel's finished schedule as the PrimFunc lowering adds: marked scheduled (tuning leaves it alone,
    the build compiles it as is) and opaque (FuseOps fuses nothing into it), with no global symbol
    (``bb.add_func`` names it)."""
    func = sch.mod["main"].without_attr("global_symbol")
    return func.with_attrs({"tirx.is_scheduled": True, "op_pattern": OPAQUE})


def inline_elementwise(sch: Any, kept: tuple[str, ...]) -> None:
    """Inline into their readers the blocks of a hand kernel's TE definition that its schedule does not place
    (``kept``): padding, biases, activations, all elementwise."""
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sch.get(block).name_hint not in kept:
            sch.compute_inline(block)


def tile_rows(out_rows: int, kernel_rows: int, stride: int, row_bytes: int) -> int:
    """Output rows per parallel tile: the largest divisor of ``out_rows`` that leaves an even number of tiles, at
    least ``MIN_TILES`` (no partial tile), whose expanded rows (``row_bytes`` each, padded width x expanded
    channels) fit in ``TILE_BYTES``.

    Each tile recomputes the expanded rows its depthwise window shares with its neighbours (kernel - stride rows),
    so taller tiles do less extra work while their expanded rows still stay in cache. Measured on znver5, 2
    threads, against 4-row tiles: inside MobileNetV2, the 56x56x144 stride-1 pair 145 -> 125 us and the stride-2
    one 102 -> 88 us, while its 112 -> 56 pair (96 channels) took 135 -> 150 us with 14-row tiles (1.3 MiB of
    expanded rows; this rule keeps 4); alone, 5x5 pairs 20-22% faster (56x56x72 stride 1, 56 -> 28 x 144).
    """
    def expanded_bytes(rows: int) -> int:
        return ((rows - 1) * stride + kernel_rows) * row_bytes

    fits = [r for r in range(1, out_rows + 1)
            if out_rows % r == 0 and out_rows // r >= MIN_TILES and out_rows // r % 2 == 0
            and expanded_bytes(r) <= TILE_BYTES]
    return max(fits, default=1)


def scheduled_kernel(shape: tuple[int, int, int, int], expanded: int, kernel: tuple[int, int],
                     strides: tuple[int, int], padding: tuple[int, int, int, int],
                     activations: tuple[tuple[str, dict[str, float]], ...], dtype: str = "float32",
                     fast_math: bool = False) -> Any:
    """The fused kernel as a scheduled PrimFunc (see the module doc)."""
    sch = tir_schedule(_compute(shape, expanded, kernel, strides, padding, activations, dtype, fast_math))
    inline_elementwise(sch, _KEPT_BLOCKS)

    out, depthwise_sum = sch.get_sblock("out"), sch.get_sblock("depthwise_sum")
    expand, expand_sum = sch.get_sblock("expand"), sch.get_sblock("expand_sum")
    b, y, _, _ = sch.get_loops(out)
    padded_width = shape[2] + padding[1] + padding[3]
    row_bytes = padded_width * expanded * tvm.runtime.DataType(dtype).bits // 8
    tile, _ = sch.split(y, [None, tile_rows(int(sch.get(y).extent), kernel[0], strides[0], row_bytes)])
    sch.parallel(sch.fuse(b, tile))
    tiles, _, out_x, _ = sch.get_loops(out)
    vector = vector_width(expanded)

    def per_pixel(block: Any, at: Any, reductions: int, vectors_inside: bool) -> None:
        """Place the reduction ``block`` under its reader's pixel loop ``at``: one pixel's channels accumulate in
        a buffer the size of the pixel (kept in registers), vectorized; with ``vectors_inside`` the pixel's channel
        vectors are unrolled inside the reduction, else each vector runs the whole reduction in turn."""
        sch.compute_at(block, at)
        loops = sch.get_loops(block)
        channels, reduction = loops[-1 - reductions], loops[-reductions:]
        outer, inner = sch.split(channels, [None, vector])
        if vectors_inside:
            sch.reorder(*reduction, outer, inner)
            sch.unroll(outer)
        sch.vectorize(inner)
        sch.decompose_reduction(block, reduction[0])

    # Measured alone on znver5, 2 threads (MobileNetV2's and EfficientNet-B0's pairs): per-pixel accumulators
    # 3-12% faster than accumulating into the tile's buffers; the expand's vectors unrolled inside its
    # reduction 20% faster on a stride-2 3x3 pair but 20-60% slower on stride-1 and 5x5 ones.
    per_pixel(depthwise_sum, out_x, reductions=2, vectors_inside=True)
    sch.compute_at(expand, tiles)  # the tile's expanded rows (and halo), in cache
    per_pixel(expand_sum, sch.get_loops(expand)[-2], reductions=1, vectors_inside=False)
    for block in (expand, out):
        sch.vectorize(sch.split(sch.get_loops(block)[-1], [None, vector])[1])
    return scheduled_func(sch)


def emit_pointwise_depthwise(bb: Any, data: Any, w1: Any, b1: Any, w2: Any, b2: Any, strides: tuple[int, int],
                             padding: tuple[int, int, int, int],
                             activations: tuple[tuple[str, dict[str, float]], ...], fast_math: bool = False) -> Any:
    """Emit the fused kernel on NCHW ``data`` (weights OIHW: w1 [E, C, 1, 1], w2 [E, 1, KH, KW]).

    The kernel runs channels-last between a permute_dims pair (its weights re-laid-out by constant folding),
    which cancels against the NHWC ops around it once ConvertLayout has run (``tvm_api.cancel_permutes``); in
    an NCHW model the pair stays. ``fast_math``: SiLU's exp as the build's polynomial (``tvm_api.fast_math``).
    """
    R = relax.op
    n, c, h, w = (int(d) for d in data.ty.shape)
    expanded, _, kh, kw = (int(d) for d in w2.ty.shape)
    dtype = str(data.ty.dtype)
    func = scheduled_kernel((n, h, w, c), expanded, (kh, kw), strides, padding, activations, dtype, fast_math)
    kernel = bb.add_func(func, "pointwise_depthwise_nhwc")
    x_nhwc = bb.emit(R.permute_dims(data, [0, 2, 3, 1]))
    w1_ce = bb.emit(R.reshape(R.permute_dims(w1, [1, 0, 2, 3]), relax.ShapeExpr([c, expanded])))
    w2_hwe = bb.emit(R.reshape(R.permute_dims(w2, [2, 3, 0, 1]), relax.ShapeExpr([kh, kw, expanded])))
    oh, ow = output_size((h, w), (kh, kw), strides, padding)
    y = bb.emit(relax.call_tir(kernel, [x_nhwc, w1_ce, b1, w2_hwe, b2],
                               relax.TensorType((n, oh, ow, expanded), dtype)))
    return R.permute_dims(y, [0, 3, 1, 2])
