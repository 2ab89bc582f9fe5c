"""tvm_api.evaluate_constant_calls: kernels whose inputs are all constants (a tuned build's weight packers) run
once at compile time, all compiled together; the result is FoldConstant's."""

from __future__ import annotations

import numpy as np

from lncompile.backend import tvm_api
from lncompile.backend.tvm_api import relax, tvm


def _module() -> tvm.IRModule:
    """main(x) = (x + transpose(transpose(W))) * (W + 1): two kernels on the constant W (the first with two
    outputs), two on the input x."""
    from tvm import topi

    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = relax.Var("x", relax.TensorType((3, 4), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            packed = bb.emit_te(lambda w: [topi.transpose(w), topi.add(w, 1.0)], relax.const(weight),
                                primfunc_name_hint="pack_two")
            back = bb.emit_te(topi.transpose, relax.TupleGetItem(packed, 0), primfunc_name_hint="on_constant")
            y = bb.emit_te(topi.add, x, back, primfunc_name_hint="on_input")
            out = bb.emit_output(bb.emit_te(topi.multiply, y, relax.TupleGetItem(packed, 1),
                                             primfunc_name_hint="scale"))
        bb.emit_func_output(out)
    return bb.get()


def _calls(mod: tvm.IRModule) -> list[tuple[str, bool]]:
    """(kernel, whether all its inputs are constants) for each call_tir in main, after canonicalization."""
    from tvm.relax.expr_functor import PyExprVisitor, visitor

    found: list[tuple[str, bool]] = []

    @visitor
    class _Visitor(PyExprVisitor):
        def visit_call_(self, call: relax.Call) -> None:
            if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.call_tir":
                found.append((call.args[0].name_hint,
                              all(isinstance(f, tvm.ir.Constant) for f in call.args[1].fields)))

    _Visitor().visit_expr(relax.transform.CanonicalizeBindings()(mod)["main"])
    return found


def _run(mod: tvm.IRModule, x: np.ndarray) -> np.ndarray:
    executable = tvm_api.build_executable(mod, tvm_api.make_target({"kind": "llvm"}, None))
    vm = tvm_api.VirtualMachine(executable, tvm_api.cpu_device())
    return vm["main"](tvm_api.tensor(x)).numpy()


def test_constant_kernels_run_now_and_input_kernels_stay() -> None:
    mod = _module()
    assert ("pack_two", True) in _calls(mod)
    evaluated = tvm_api.evaluate_constant_calls(mod)
    # pack_two ran at compile time; on_constant then met a constant and runs on the next evaluation.
    assert [name for name, _ in _calls(evaluated)] == ["on_constant", "on_input", "scale"]
    assert [name for name, _ in _calls(tvm_api.evaluate_constant_calls(evaluated))] == ["on_input", "scale"]
    assert _calls(mod)[0] == ("pack_two", True)  # the caller's module is unchanged


def test_results_equal_fold_constant_and_the_unfolded_module() -> None:
    mod = _module()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    ours = tvm_api.evaluate_constant_calls(mod)
    theirs = relax.transform.FoldConstant()(mod)
    assert _calls(ours) == _calls(theirs) == [("on_constant", True), ("on_input", False), ("scale", False)]
    twice = tvm_api.evaluate_constant_calls(ours)
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    expected = (x + weight) * (weight + 1)
    for module in (mod, ours, theirs, twice):
        np.testing.assert_array_equal(_run(module, x), expected)


def test_a_module_without_constant_kernels_is_returned_as_is() -> None:
    mod = tvm_api.evaluate_constant_calls(_module())
    mod = tvm_api.evaluate_constant_calls(mod)
    assert tvm_api.evaluate_constant_calls(mod) is mod
