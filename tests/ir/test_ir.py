"""The IR: frozen records, graph building, the verifier, the printer and the interpreter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lncompile.errors import IRVerificationError
from lncompile.ir import Attrs, Graph, Node, TensorType, Value, format_graph, ir_hash, run_graph, verify


def small_graph() -> Graph:
    g = Graph(name="small")
    x = g.add_input("x", TensorType((1, 4, 8, 8)))
    w = g.add_constant(np.ones((4, 1, 3, 3), np.float32), "w")
    conv = g.add_op("conv2d", [x, w], dict(strides=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=4))
    act = g.add_op("relu", [Value(conv.name)])
    total = g.add_op("add", [Value(act.name), x])
    g.set_outputs([Value(total.name)])
    return g


def test_records_are_frozen() -> None:
    node = Node("n", "relu", Attrs(a=[1, 2]), (TensorType((1, 2)),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.op = "sigmoid"  # type: ignore[misc]
    assert node.attrs["a"] == (1, 2)  # lists are frozen into tuples
    assert hash(node.attrs) == hash(Attrs(a=(1, 2)))
    const = Node("c", "constant", outputs=(TensorType((2,)),), value=np.zeros(2, np.float32))
    with pytest.raises(ValueError):
        const.value[0] = 1.0  # constants are read-only


def test_graph_infers_types_and_orders_arguments() -> None:
    g = small_graph()
    verify(g)
    add = next(r for r in g.records() if r.op == "add")
    assert [v.node for v in g.args(add.name)] == ["relu", "x"]
    assert add.type == TensorType((1, 4, 8, 8))
    assert g.op_counts() == {"add": 1, "conv2d": 1, "relu": 1}


def test_same_tensor_used_twice_keeps_both_edges() -> None:
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    sq = g.add_op("mul", [x, x])
    g.set_outputs([Value(sq.name)])
    verify(g)
    out = run_graph(g, np.full((2, 3), 3.0, np.float32))[0]
    np.testing.assert_allclose(out, 9.0)


def test_verifier_rejects_wrong_declared_shape() -> None:
    g = small_graph()
    relu = g.record("relu")
    g.replace_record("relu", relu.with_(outputs=(TensorType((1, 4, 4, 4)),)))
    with pytest.raises(IRVerificationError, match=r"%relu .*declared"):
        verify(g)


def test_verifier_rejects_cycles_and_missing_arguments() -> None:
    g = small_graph()
    g.add_edge("add", "relu", arg=1, out=0)  # relu now has 2 args and a cycle
    with pytest.raises(IRVerificationError, match="cycle"):
        verify(g)
    g = small_graph()
    g.remove_edge("x", "conv2d")  # conv2d lost its data argument
    with pytest.raises(IRVerificationError, match="conv2d"):
        verify(g)


def test_verifier_rejects_unlisted_inputs_and_bad_constants() -> None:
    g = small_graph()
    g.graph["inputs"] = []
    with pytest.raises(IRVerificationError, match="graph inputs"):
        verify(g)
    g = small_graph()
    w = g.record("w")
    g.replace_record("w", w.with_(outputs=(TensorType((4, 1, 3, 3), "float16"),)))
    with pytest.raises(IRVerificationError, match="constant value"):
        verify(g)


def test_printer_and_hash() -> None:
    g = small_graph()
    text = format_graph(g)
    assert "graph small(%x: f32[1,4,8,8])" in text
    assert "%conv2d = conv2d(%x, %w) {" in text and "groups=4" in text
    assert text.strip().endswith("return %add\n}")
    h = ir_hash(g)
    g2 = small_graph()
    assert ir_hash(g2) == h
    g2.replace_record("w", Node("w", "constant", outputs=g2.record("w").outputs,
                                value=np.full((4, 1, 3, 3), 2.0, np.float32)))
    assert ir_hash(g2) != h  # weights are part of the hash


def test_interpreter_matches_numpy() -> None:
    g = small_graph()
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    box = sum(padded[:, :, i:i + 8, j:j + 8] for i in range(3) for j in range(3))
    np.testing.assert_allclose(run_graph(g, x)[0], np.maximum(box, 0) + x, rtol=1e-5, atol=1e-5)


def test_remove_dead_keeps_inputs() -> None:
    g = small_graph()
    g.add_op("sigmoid", [Value("x")])
    assert g.remove_dead() == 1
    assert "x" in g and "sigmoid" not in g
