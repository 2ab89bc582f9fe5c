"""tvm_api.cancel_permutes: permute_dims pairs that undo each other go, after permutes are sunk below the ops
they commute with (a keepdims mean, an elementwise op of two operands permuted alike or of one and a scalar,
a max or average pool, a concat of parts permuted alike, a strided slice);
outputs unchanged, and nothing sunk where the op does not commute."""

from __future__ import annotations

import numpy as np

from lncompile.backend import tvm_api
from lncompile.backend.tvm_api import relax, tvm

R = relax.op
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _squeeze_excite_like(keepdims: bool = True, gate_axes: list[int] | None = None) -> tvm.IRModule:
    """main(a NHWC, g NHWC) = NHWC(mean(NCHW(a))) and NHWC(NCHW(a) * NCHW(g) * 2): what ConvertLayout leaves
    around a channels-last kernel's output feeding a squeeze-and-excitation."""
    a = relax.Var("a", relax.TensorType((1, 5, 6, 4), "float32"))
    g = relax.Var("g", relax.TensorType((1, 1, 1, 4) if gate_axes is None else (1, 4, 1, 1), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [a, g]):
        with bb.dataflow():
            a_nchw = bb.emit(R.permute_dims(a, TO_NCHW))
            g_nchw = bb.emit(R.permute_dims(g, TO_NCHW if gate_axes is None else gate_axes))
            m = bb.emit(R.mean(a_nchw, [2, 3], keepdims=keepdims))
            scaled = bb.emit(R.multiply(bb.emit(R.multiply(a_nchw, g_nchw)), relax.const(2.0, "float32")))
            m_out = bb.emit(R.permute_dims(m, TO_NHWC) if keepdims else m)
            out = bb.emit_output(relax.Tuple([bb.emit(R.permute_dims(scaled, TO_NHWC)), m_out]))
        bb.emit_func_output(out)
    return bb.get()


def _ops(mod: tvm.IRModule) -> list[str]:
    from tvm.relax.expr_functor import PyExprVisitor, visitor

    found: list[str] = []

    @visitor
    class _Visitor(PyExprVisitor):
        def visit_call_(self, call: relax.Call) -> None:
            if isinstance(call.op, tvm.ir.Op):
                found.append(call.op.name)

    _Visitor().visit_expr(mod["main"])
    return found


def _run(mod: tvm.IRModule, *inputs: np.ndarray) -> list[np.ndarray]:
    executable = tvm_api.build_executable(mod, tvm_api.make_target({"kind": "llvm"}, None))
    vm = tvm_api.VirtualMachine(executable, tvm_api.cpu_device())
    return [tvm_api.to_numpy(t) for t in vm["main"](*(tvm_api.tensor(x) for x in inputs))]


def _inputs(gate_shape: tuple[int, ...] = (1, 1, 1, 4)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((1, 5, 6, 4)).astype(np.float32),
            rng.standard_normal(gate_shape).astype(np.float32))


def test_permutes_sink_through_mean_and_elementwise_ops_and_cancel() -> None:
    mod = _squeeze_excite_like()
    assert _ops(mod).count("relax.permute_dims") == 4
    cancelled = tvm_api.cancel_permutes(mod)
    assert "relax.permute_dims" not in _ops(cancelled)
    assert sorted(_ops(cancelled)) == ["relax.mean", "relax.multiply", "relax.multiply"]
    a, g = _inputs()
    for before, after in zip(_run(mod, a, g), _run(cancelled, a, g), strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_run(cancelled, a, g)[1], a.mean(axis=(1, 2), keepdims=True), rtol=1e-5)


def test_no_sinking_where_the_op_does_not_commute_with_the_permute() -> None:
    # a mean without keepdims changes rank; a multiply of operands permuted differently stays as written
    mod = _squeeze_excite_like(keepdims=False, gate_axes=[0, 1, 2, 3])
    cancelled = tvm_api.cancel_permutes(mod)
    ops = _ops(cancelled)
    assert ops.count("relax.permute_dims") == 2  # a's (mean, multiply read it) and the output's
    assert "relax.mean" in ops
    a, g = _inputs((1, 4, 1, 1))
    for before, after in zip(_run(mod, a, g), _run(cancelled, a, g), strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)


def test_permutes_sink_through_pools_which_take_the_source_layout() -> None:
    """NHWC(pool(NCHW(a))): ConvertLayout leaves a pool reading a channels-last kernel's output in NCHW, between
    two transposes; sunk, the pool runs on the NHWC tensor itself."""
    a = relax.Var("a", relax.TensorType((1, 7, 9, 4), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [a]):
        with bb.dataflow():
            a_nchw = bb.emit(R.permute_dims(a, TO_NCHW))
            pooled = [bb.emit(R.nn.max_pool2d(a_nchw, (3, 3), (2, 2), (0, 1, 1, 0), ceil_mode=True)),
                      bb.emit(R.nn.avg_pool2d(a_nchw, (2, 3), (1, 2), (1, 1, 1, 1), count_include_pad=False))]
            out = bb.emit_output(relax.Tuple([bb.emit(R.permute_dims(p, TO_NHWC)) for p in pooled]))
        bb.emit_func_output(out)
    mod = bb.get()
    cancelled = tvm_api.cancel_permutes(mod)
    assert sorted(_ops(cancelled)) == ["relax.nn.avg_pool2d", "relax.nn.max_pool2d"]
    x = np.random.default_rng(1).standard_normal((1, 7, 9, 4)).astype(np.float32)
    for before, after in zip(_run(mod, x), _run(cancelled, x), strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


def _concat_of_permuted(second_order: list[int]) -> tvm.IRModule:
    """main(a NHWC, b NHWC) = NHWC(concat(NCHW(a), permute(b, second_order)) on channels)."""
    a = relax.Var("a", relax.TensorType((1, 5, 6, 4), "float32"))
    b = relax.Var("b", relax.TensorType((1, 5, 6, 3) if second_order == TO_NCHW else (1, 6, 5, 3), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [a, b]):
        with bb.dataflow():
            parts = [bb.emit(R.permute_dims(a, TO_NCHW)), bb.emit(R.permute_dims(b, second_order))]
            out = bb.emit_output(relax.Tuple([bb.emit(R.permute_dims(bb.emit(R.concat(parts, 1)), TO_NHWC))]))
        bb.emit_func_output(out)
    return bb.get()


def test_permutes_sink_through_a_concat_of_parts_permuted_alike() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 5, 6, 4)).astype(np.float32), rng.standard_normal((1, 5, 6, 3)).astype(np.float32)
    mod = _concat_of_permuted(TO_NCHW)
    cancelled = tvm_api.cancel_permutes(mod)
    assert _ops(cancelled) == ["relax.concat"]
    (out,) = _run(cancelled, a, b)
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=3))
    np.testing.assert_array_equal(out, _run(mod, a, b)[0])
    # parts permuted differently: nothing moves
    assert _ops(tvm_api.cancel_permutes(_concat_of_permuted([0, 3, 2, 1]))).count("relax.permute_dims") == 3


def _sliced_and_concatenated() -> tvm.IRModule:
    """main(a NHWC) = NHWC(concat(slice(NCHW(a), channels 4:8), slice(NCHW(a), channels 0:4))): ShuffleNetV2's
    channel split and shuffle after a channels-last kernel."""
    a = relax.Var("a", relax.TensorType((1, 5, 6, 8), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [a]):
        with bb.dataflow():
            a_nchw = bb.emit(R.permute_dims(a, TO_NCHW))
            parts = [bb.emit(R.strided_slice(a_nchw, [1], [begin], [begin + 4])) for begin in (4, 0)]
            out = bb.emit_output(relax.Tuple([bb.emit(R.permute_dims(bb.emit(R.concat(parts, 1)), TO_NHWC))]))
        bb.emit_func_output(out)
    return bb.get()


def test_permutes_sink_through_channel_slices() -> None:
    a = np.random.default_rng(0).standard_normal((1, 5, 6, 8)).astype(np.float32)
    mod = _sliced_and_concatenated()
    cancelled = tvm_api.cancel_permutes(mod)
    assert "relax.permute_dims" not in _ops(cancelled)
    (out,) = _run(cancelled, a)
    np.testing.assert_array_equal(out, np.concatenate([a[..., 4:], a[..., :4]], axis=3))
    np.testing.assert_array_equal(out, _run(mod, a)[0])
