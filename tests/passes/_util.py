"""Helpers for the pass tests: import a torch module, run one pass, compare with the interpreter."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

from lncompile.frontend import import_model
from lncompile.ir import Graph, ir_hash, run_graph
from lncompile.passes import PassStats, run_pipeline
from tests.conftest import relative_error


def graph_of(module: torch.nn.Module, shape: tuple[int, ...]) -> Graph:
    """The IR of ``module`` (eval mode, BN statistics randomized so folding is not a no-op)."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return import_model(module.eval(), shape).graph


def run_pass(pass_module: ModuleType, graph: Graph, rules: dict[str, str] | None = None) -> tuple[Graph, PassStats]:
    """Run one pass through the manager (which verifies the IR), with target ``rules``, and check the input graph
    is untouched."""
    before = ir_hash(graph)
    result = run_pipeline(graph, [pass_module.PASS], rules)
    assert ir_hash(graph) == before, "the pass modified its input graph"
    return result.graph, result.stats[0]


def inputs_for(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(graph.record(n).type.shape).astype(graph.record(n).type.dtype)
            for n in graph.input_names]


def max_error(before: Graph, after: Graph, seed: int = 0) -> float:
    """Largest relative error (max |diff| / max |expected|) over the outputs, on the same random inputs."""
    xs = inputs_for(before, seed)
    return max(relative_error(a, b) for a, b in zip(run_graph(after, *xs), run_graph(before, *xs), strict=True))


def count(graph: Graph, op: str) -> int:
    return graph.op_counts().get(op, 0)
