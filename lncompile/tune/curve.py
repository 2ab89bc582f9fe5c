"""The tuning curve of a log directory: estimated model latency against trials, from the records on disk.

Records are appended in measurement order, so replaying them gives, after each trial, the best latency found
so far for every kernel. The estimate is ``sum(weight_k * best_k)`` over the model's tasks (weight: how often
the kernel runs per inference), defined once every task has a valid measurement. It is the kernels' time
only (no VM overhead), which is why it sits below a benchmarked latency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import logdb

FAILED_S = 1e9  # MetaSchedule stores failed runs as huge run times


def _mean(run_secs: Any) -> float | None:
    try:
        values = [float(v) for v in run_secs]
    except (TypeError, ValueError):
        return None
    if not values or max(values) >= FAILED_S:
        return None
    return sum(values) / len(values)


def model_tasks(manifest: dict[str, Any] | None, name: str | None = None) -> dict[str, int]:
    """workload hash -> weight for the model called ``name`` (or the log's only / latest model)."""
    models = list((manifest or {}).get("models", {}).values())
    if name is not None:
        models = [m for m in models if m.get("name") == name] or models
    if not models:
        return {}
    chosen = models[-1]
    return {t["workload_hash"]: int(t["weight"]) for t in chosen.get("tasks", [])}


def tuning_curve(directory: Path, name: str | None = None) -> list[tuple[int, float]]:
    """[(trials so far, estimated latency in ms)] from the first trial at which every task was measured."""
    parsed = logdb.parse_log(directory)
    weights = model_tasks(logdb.read_manifest(directory), name)
    if not weights:  # no manifest: every workload in the log counts once
        weights = {w[0]: 1 for w in parsed.workloads}
    best: dict[str, float] = {}
    points = []
    for trial, (index, body) in enumerate(parsed.records, start=1):
        key = parsed.workloads[index][0]
        seconds = _mean(body[1]) if len(body) > 1 else None
        if key in weights and seconds is not None and seconds < best.get(key, float("inf")):
            best[key] = seconds
        if len(best) == len(weights):
            points.append((trial, sum(w * best[k] for k, w in weights.items()) * 1e3))
    return points
