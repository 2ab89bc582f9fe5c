"""The per-target pass pipeline.

Every module in this package that defines ``PASS`` (a :class:`~lncompile.passes.base.Pass`) and ``PRIORITY``
(an int; lower runs first) joins the pipeline, so adding a pass is adding a file. Priority bands:
10-19 clean-up (dropout/identity, constants, pads), 20-39 grouped/depthwise rewrites, 40-59 folding and
fusion, 90-99 final clean-up. Target presets steer passes through their ``pass_rules``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..ir import Graph
from .base import Pass
from .manager import PipelineResult, run_pipeline

_INFRA = {"base", "manager", "pipeline", "__init__"}


def discover() -> list[tuple[int, Pass]]:
    package = importlib.import_module(__package__)
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _INFRA or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        if hasattr(module, "PASS"):
            found.append((int(module.PRIORITY), module.PASS))
    return sorted(found, key=lambda item: (item[0], item[1].name))


def default_passes(disabled: set[str] | None = None) -> list[Pass]:
    disabled = disabled or set()
    return [p for _, p in discover() if p.name not in disabled]


def optimize(graph: Graph, preset: Any = None, disabled: set[str] | None = None) -> PipelineResult:
    """Run the default pipeline with the target's pass rules."""
    rules = dict(getattr(preset, "pass_rules", {}) or {})
    return run_pipeline(graph, default_passes(disabled), rules)
