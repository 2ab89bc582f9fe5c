"""What gets tuned: the model's fused TIR kernels for the real target.

Tasks come from the same IR the build compiles (the pass pipeline's output when ``passes`` is on), lowered
with :func:`lncompile.lower.layout.lower` and fused by the first half of the target's default Relax
pipeline (:func:`tvm_api.fuse_for_target`). MetaSchedule files each record under the structural hash of its
kernel, so any drift between this and the build's fusion would leave every record unused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backend import tvm_api
from ..backend.build import resolve_host_json, resolve_target_json
from ..errors import UsageError
from ..ir import Graph, ir_hash
from ..lower.layout import lower


@dataclass
class TuningProblem:
    name: str
    graph: Graph  # the IR that was lowered (after passes, if any)
    preset: Any
    target_json: dict[str, Any]
    target: Any  # tvm.target.Target
    fused: Any  # the fused Relax module tasks were extracted from
    tasks: list[Any]  # MetaSchedule ExtractedTask
    ir_sha256: str
    passes: bool

    def task_rows(self) -> list[dict[str, Any]]:
        """Name, weight (how often the kernel runs per inference) and workload hash of every task."""
        return [{"name": str(t.task_name), "weight": int(t.weight),
                 "workload_hash": tvm_api.workload_hash(tvm_api.task_workload_module(t))} for t in self.tasks]


def tuning_target_json(target_json: dict[str, Any]) -> dict[str, Any]:
    """The build's target plus ``num-cores`` (MetaSchedule's parallel rules need it; codegen ignores it).

    Presets with ``threads: 0`` (all cores) leave it out of the build target; tuning uses the physical core
    count this process may use, as a loaded library's thread pool does (:func:`tvm_api.physical_cores`).
    """
    if target_json.get("kind") != "llvm" or "num-cores" in target_json:
        return dict(target_json)
    return {**target_json, "num-cores": tvm_api.physical_cores()}


def optimized_graph(graph: Graph, preset: Any) -> Graph:
    """The graph after lncompile's pass pipeline, as the build compiles it."""
    from ..passes.pipeline import optimize

    return optimize(graph, preset).graph


def prepare(name: str, graph: Graph, preset: Any, *, passes: bool = True, remote: bool = False) -> TuningProblem:
    """Lower, fuse and extract the tuning tasks of ``graph`` for ``preset`` (measured here unless ``remote``)."""
    if not remote and (preset.is_cross or preset.device != "cpu"):
        raise UsageError(f"tuning measures on this machine's CPU; target {preset.name!r} ({preset.arch}, "
                         f"{preset.device}) needs a remote runner: pass --rpc HOST:PORT --key KEY")
    if passes:
        graph = optimized_graph(graph, preset)
    target_json, host_json = resolve_target_json(preset), resolve_host_json(preset)
    target = tvm_api.make_target(tuning_target_json(target_json), host_json)
    relax_module = lower(graph, preset.layout, preset.fast_math, preset.device)
    fused = tvm_api.fuse_for_target(relax_module, target, preset.prepack_weights)
    tasks = tvm_api.extract_tasks(fused, target)
    return TuningProblem(name, graph, preset, target_json, target, fused, tasks, ir_hash(graph), passes)
