"""Helpers for the grouped/depthwise pass tests: run passes with target rules, zoo graphs at small sizes."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from types import ModuleType

import numpy as np
import torch

from lncompile import graphs
from lncompile.frontend.torch_export import from_torch
from lncompile.ir import Graph, ir_hash
from lncompile.passes import PassStats, run_pipeline


def run_passes(modules: Sequence[ModuleType], graph: Graph, rules: dict[str, str] | None = None
               ) -> tuple[Graph, list[PassStats]]:
    """Run passes through the manager (which verifies the IR after each) and check the input is untouched."""
    before = ir_hash(graph)
    result = run_pipeline(graph, [m.PASS for m in modules], rules or {})
    assert ir_hash(graph) == before, "a pass modified its input graph"
    return result.graph, result.stats


@cache
def zoo_graph(name: str, resolution: int = 64) -> Graph:
    """A zoo model's IR at a reduced resolution (cached: importing costs seconds; passes never mutate it)."""
    model = graphs.create(name, resolution=resolution)
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, resolution, resolution),
                                                                        dtype=np.float32))
    return from_torch(model, example)


def neighbours_1x1(graph: Graph, name: str) -> bool:
    """True if a 1x1 conv reads ``name`` (directly or through a split) or produces its input (through BN/ReLU)."""
    def is_1x1(node: str) -> bool:
        rec = graph.record(node)
        return rec.op in ("conv2d", "fused_conv2d") and graph.arg_types(node)[1].shape[2:] == (1, 1)

    producer = graph.args(name)[0].node
    while graph.record(producer).op in ("batch_norm", "relu", "channel_affine"):
        producer = graph.args(producer)[0].node
    readers = [c for c, _ in graph.users(name)]
    readers += [c for r in readers if graph.record(r).op == "split" for c, _ in graph.users(r)]
    return is_1x1(producer) or any(is_1x1(c) for c in readers)
