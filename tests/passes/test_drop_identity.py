"""drop_identity: dropout and identity nodes disappear, consumers and outputs read the input directly."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lncompile.ir import Graph, TensorType, Value
from lncompile.passes import drop_identity
from tests.passes._util import count, graph_of, max_error, run_pass


def test_dropout_removed_and_numerics_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2),
                          nn.Linear(4 * 6 * 6, 5))
    graph = graph_of(model, (1, 3, 8, 8))
    assert count(graph, "dropout") == 2
    after, stats = run_pass(drop_identity, graph)
    assert stats.matches == 2 and count(after, "dropout") == 0
    assert stats.nodes_before - stats.nodes_after == 2
    assert max_error(graph, after) <= 1e-6


def test_identity_as_graph_output_rewires_the_output() -> None:
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    y = g.add_op("relu", [x])
    out = g.add_op("identity", [Value(y.name)])
    g.set_outputs([Value(out.name), Value(y.name)])
    after, stats = run_pass(drop_identity, g)
    assert stats.matches == 1 and count(after, "identity") == 0
    assert after.outputs == [Value(y.name), Value(y.name)]
    assert max_error(g, after) == 0.0


def test_nothing_to_drop_is_a_no_op() -> None:
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    g.set_outputs([Value(g.add_op("sigmoid", [x]).name)])
    after, stats = run_pass(drop_identity, g)
    assert stats.matches == 0 and after.op_counts() == {"sigmoid": 1}
    np.testing.assert_array_equal(after.record("x").type.shape, (2, 3))
