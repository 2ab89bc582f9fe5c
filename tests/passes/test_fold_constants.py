"""fold_constants: ops whose inputs are all constants become one constant computed by the interpreter."""

from __future__ import annotations

import numpy as np

from lncompile.ir import Graph, TensorType, Value
from lncompile.passes import fold_constants
from tests.passes._util import count, max_error, run_pass


def _graph() -> tuple[Graph, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(4).astype(np.float32), rng.random(4).astype(np.float32) + 0.5
    g = Graph()
    x = g.add_input("x", TensorType((2, 4)))
    ca, cb = g.add_constant(a, "a"), g.add_constant(b, "b")
    root = g.add_op("sqrt", [cb])
    scale = g.add_op("div", [ca, Value(root.name)])
    parts = g.add_op("split", [g.add_constant(np.arange(6, dtype=np.float32))], {"axis": 0, "sizes": (4, 2)})
    shifted = g.add_op("add", [Value(scale.name), Value(parts.name, 0)])
    y = g.add_op("mul", [x, Value(shifted.name)])
    g.set_outputs([Value(y.name), Value(parts.name, 1)])
    return g, a, b


def test_constant_chains_fold_to_one_constant() -> None:
    g, a, b = _graph()
    after, stats = run_pass(fold_constants, g)
    # sqrt(b), div(a, .), the split and the add: everything but the mul reading x.
    assert after.op_counts() == {"mul": 1}
    assert stats.matches == 4
    (mul,) = [r.name for r in after.records() if r.op == "mul"]
    folded = after.constant(after.args(mul)[1])
    np.testing.assert_allclose(folded, a / np.sqrt(b) + np.arange(4), rtol=1e-6)
    np.testing.assert_array_equal(after.constant(after.outputs[1]), [4.0, 5.0])
    assert max_error(g, after) <= 1e-6


def test_op_reading_an_input_is_not_folded() -> None:
    g = Graph()
    x = g.add_input("x", TensorType((3,)))
    y = g.add_op("add", [x, g.add_constant(np.ones(3, np.float32))])
    g.set_outputs([Value(y.name)])
    after, stats = run_pass(fold_constants, g)
    assert stats.matches == 0 and after.op_counts() == {"add": 1}


def test_huge_result_is_refused() -> None:
    g = Graph()
    x = g.add_input("x", TensorType((1,)))
    big = g.add_op("broadcast_to", [g.add_constant(np.ones((1,), np.float32))], {"shape": (4096, 2048)})
    y = g.add_op("mul", [Value(big.name), x])
    g.set_outputs([Value(y.name)])
    after, stats = run_pass(fold_constants, g)
    assert stats.matches == 0 and count(after, "broadcast_to") == 1
    assert any("larger than" in reason for reason in stats.refused)
