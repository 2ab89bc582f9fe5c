"""dead_code: nodes and constants no output depends on are removed; graph inputs stay."""

from __future__ import annotations

import numpy as np

from lncompile.ir import Graph, TensorType, Value
from lncompile.passes import dead_code
from tests.passes._util import max_error, run_pass


def test_dead_nodes_and_unused_constants_go_inputs_stay() -> None:
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    unused_input = g.add_input("mask", TensorType((2, 3)))
    c = g.add_constant(np.ones(3, np.float32), "w")
    g.add_constant(np.zeros(3, np.float32), "orphan")
    dead = g.add_op("mul", [unused_input, c])
    g.add_op("relu", [Value(dead.name)])
    live = g.add_op("add", [x, c])
    g.set_outputs([Value(live.name)])
    after, stats = run_pass(dead_code, g)
    assert stats.matches == 3  # mul, relu, the orphan constant
    assert set(after.nodes) == {"x", "mask", "w", live.name}
    assert after.input_names == ["x", "mask"]
    assert max_error(g, after) == 0.0
