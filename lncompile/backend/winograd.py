"""A ``winograd_conv2d`` node as one channels-last TE kernel that MetaSchedule tunes.

    V = B^T d B per input tile and channel;  M = sum_c U[., ., o, c] V[., ., p, c];  Y = A^T M A, cropped

The stages are TOPI's Winograd NHWC ones (pad, input tile, data pack, batched GEMM, inverse, crop) with two
changes: the weight arrives transformed (the pass computed ``G w G^T`` at compile time, so no weight transform
runs per inference), and the matrices are lncompile's own (:mod:`lncompile.ir.winograd`). The data pack and
inverse blocks carry MetaSchedule's ``schedule_rule`` names for its CPU Winograd rules (their loops over the
constant matrices unrolled so the zero entries fold away); the batched GEMM gets multi-level tiling. The
kernel is out-elementwise fusable, so FuseOps folds the bias, activation and residual that follow into it.
"""

from __future__ import annotations

from typing import Any

from ..ir.winograd import alpha, matrices, tiles
from .tvm_api import tvm

OUT_ELEMWISE_FUSABLE = 4  # TVM's OpPatternKind::kOutEWiseFusable: elementwise consumers fuse into the kernel


def _output_size(size: tuple[int, int], padding: tuple[int, int, int, int]) -> tuple[int, int]:
    (h, w), (pt, pl, pb, pr) = size, padding
    return h + pt + pb - 2, w + pl + pr - 2


def _compute(x: Any, u: Any, bias: Any, tile: int, padding: tuple[int, int, int, int]) -> Any:
    """The TE definition: NHWC data ``x``, ``u`` [alpha, alpha, O, C], ``bias`` [O] -> NHWC output."""
    te, tirx = tvm.te, tvm.tirx
    const_matrix = tvm.topi.utils.const_matrix
    n, h, w, c = (int(d) for d in x.shape)
    out_channels, dtype = int(u.shape[2]), str(x.dtype)
    side = alpha(tile)
    pt, pl, _, _ = padding
    oh, ow = _output_size((h, w), padding)
    th, tw = tiles(oh, tile), tiles(ow, tile)
    count = n * th * tw
    a_t, b_t, _ = matrices(tile)
    a = const_matrix(a_t.T.astype(dtype), "A")  # [alpha, m]
    b = const_matrix(b_t.T.astype(dtype), "B")  # [alpha, alpha]
    zero = tirx.const(0.0, dtype)

    def padded(b_: Any, y: Any, xx: Any, ch: Any) -> Any:
        inside = tirx.all(y >= pt, y < pt + h, xx >= pl, xx < pl + w)
        return tirx.if_then_else(inside, x[b_, y - pt, xx - pl, ch], zero)

    data_pad = te.compute((n, th * tile + 2, tw * tile + 2, c), padded, name="data_pad",
                          attrs={"schedule_rule": "None"})
    input_tile = te.compute(
        (side, side, count, c),
        lambda eps, nu, p, ch: data_pad[p // (th * tw), (p // tw) % th * tile + eps, p % tw * tile + nu, ch],
        name="input_tile", attrs={"schedule_rule": "None"})
    r_a, r_b = te.reduce_axis((0, side), "r_a"), te.reduce_axis((0, side), "r_b")
    data_pack = te.compute(
        (side, side, count, c),
        lambda eps, nu, p, ch: te.sum(input_tile[r_a, r_b, p, ch] * b[r_a, eps] * b[r_b, nu], axis=[r_a, r_b]),
        name="data_pack", attrs={"schedule_rule": "conv2d_nhwc_winograd_data_pack"})
    k = te.reduce_axis((0, c), "ci")
    bgemm = te.compute((side, side, count, out_channels),
                       lambda eps, nu, p, o: te.sum(data_pack[eps, nu, p, k] * u[eps, nu, o, k], axis=[k]),
                       name="bgemm", attrs={"meta_schedule.write_cache_level": [2]})
    s_a, s_b = te.reduce_axis((0, side), "r_a"), te.reduce_axis((0, side), "r_b")
    inverse = te.compute(
        (tile, tile, count, out_channels),
        lambda vh, vw, p, o: te.sum(bgemm[s_a, s_b, p, o] * a[s_a, vh] * a[s_b, vw], axis=[s_a, s_b]),
        name="inverse", attrs={"schedule_rule": "conv2d_nhwc_winograd_inverse"})
    return te.compute(
        (n, oh, ow, out_channels),
        lambda b_, y, xx, o: inverse[y % tile, xx % tile, b_ * th * tw + y // tile * tw + xx // tile, o] + bias[o],
        name="conv2d_winograd")


def emit_winograd_conv2d(bb: Any, data_nhwc: Any, u: Any, bias: Any, tile: int,
                         padding: tuple[int, int, int, int]) -> Any:
    """The kernel's call on NHWC data (U [alpha, alpha, O, C]): the NHWC conv output plus bias.

    The caller wraps it in permute_dims to and from NCHW, which cancel against ConvertLayout's NHWC
    (``tvm_api.cancel_permutes``), and applies elementwise ops (activation, residual) before permuting back:
    ConvertLayout would not carry NHWC through a permute_dims into them.
    """
    call = bb.call_te(_compute, data_nhwc, u, bias, tile, padding, primfunc_name_hint="winograd_conv2d_nhwc")
    kernel = call.args[0]
    # AnnotateTIROpPattern would call a kernel of several reductions opaque, and nothing would fuse into it
    bb.update_func(kernel, bb.get()[kernel].with_attr("op_pattern", OUT_ELEMWISE_FUSABLE))
    return call
