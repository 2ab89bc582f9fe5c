"""Re-ranking: measure each task's best schedules again under the threads the library will run with.

Tuning on a shared 2-core box is fastest with one TVM worker per tuning job (two jobs at a time), but a
schedule that wins on one thread need not win on two: the shipped mobilenet_v3_small log's best classifier
GEMV had no parallel loop at all, so at 2 threads it ran on one core. Re-ranking builds the ``top_k``
fastest distinct schedules of every task again, runs them with ``threads`` TVM workers, and appends the
new measurements to the log. The build then picks, per kernel, the fastest record overall: a parallel
schedule's new (faster) time beats its old one, while a serial schedule runs the same on one or two
threads, so its old record stays comparable.

Re-ranking *from* other logs (``sources``) starts a log for this CPU out of logs tuned on another one: their
timings cannot be compared with this CPU's, so instead of appending to them, each task's ``top_k`` best
schedules there are measured here and recorded in ``log_dir``. Tuning that log afterwards resumes from those
schedules (MetaSchedule's evolutionary search starts from a workload's best records), not from scratch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backend import tvm_api
from ..errors import UsageError
from . import logdb
from .tasks import TuningProblem
from .tuner import (
    DEFAULT_BUILDER_TIMEOUT_S,
    estimated_ms,
    heaviest_tasks,
    measured_task_rows,
    measured_with_threads,
    prepare_log_dir,
    quiet_metaschedule,
    update_manifest,
    worker_startup_fix,
)

BATCH = 64  # schedules per build call


@dataclass
class RerankOutcome:
    log_dir: Path
    measured: int  # schedules built and run again
    failed: int
    wall_seconds: float
    before_ms: float | None  # sum of weight x best task latency, before and after
    after_ms: float | None


def measure_into(db: Any, records: list[Any], problem: TuningProblem, *, threads: int, builder_timeout_s: float,
                 desc: str, show_progress: bool = True) -> tuple[int, int]:
    """Build and run each record's schedule on ``threads`` TVM workers and commit it to ``db`` with the new
    run times (measured on ``problem``'s target); returns (measured, failed)."""
    from tqdm import tqdm

    measured = failed = 0
    bar = tqdm(total=len(records), unit="schedule", desc=desc, disable=not show_progress, dynamic_ncols=True)
    try:
        with worker_startup_fix(problem.target_json), quiet_metaschedule(), measured_with_threads(threads, force=True):
            builder = tvm_api.ms_local_builder(None, builder_timeout_s, None)
            runner = tvm_api.local_runner()
            for start in range(0, len(records), BATCH):
                batch = records[start:start + BATCH]
                for record, seconds in zip(batch, tvm_api.remeasure_records(batch, problem.target, builder, runner),
                                           strict=True):
                    if seconds is None:
                        failed += 1
                    else:
                        tvm_api.commit_remeasured(db, record, seconds, problem.target)
                        measured += 1
                bar.update(len(batch))
    finally:
        bar.close()
    return measured, failed


def _source_databases(problem: TuningProblem, sources: list[Path]) -> list[Any]:
    """The databases of ``sources``, each checked to be a log of this TVM for this target, on any CPU of its
    architecture (one with extensions this CPU lacks too: its schedules are compiled for this one here)."""
    databases = []
    for directory in sources:
        if not logdb.has_database(directory):
            raise UsageError(f"--from {directory}: no tuning log there (expected {logdb.WORKLOADS})")
        manifest = logdb.read_manifest(directory)
        why, fallback = logdb.assess(manifest, problem.target_json)
        if why is not None and fallback is None:
            raise UsageError(f"--from {directory}: {why}")
        databases.append(tvm_api.json_database(str(directory)))
    return databases


def _best_rows(problem: TuningProblem, databases: list[Any]) -> list[dict[str, Any]]:
    """:func:`measured_task_rows` with each task's best time over ``databases`` (None where none has the task)."""
    per_database = [measured_task_rows(problem, db) for db in databases]
    rows = per_database[0]
    for n, row in enumerate(rows):
        times = [r[n]["best_ms"] for r in per_database if r[n]["best_ms"] is not None]
        row["best_ms"] = min(times) if times else None
    return rows


def _records_to_measure(tasks: list[Any], db: Any, sources: list[Any], top_k: int) -> tuple[list[Any], int]:
    """Per task, the ``top_k`` best distinct schedules of each source not yet measured into ``db``, as records
    of the task's own kernel (see :func:`tvm_api.replayed_on`); and how many did not replay on it."""
    records, unreplayable = [], 0
    for task in tasks:
        mod = tvm_api.task_workload_module(task)
        seen = {str(group[0].trace) for group in tvm_api.distinct_top_records(db, mod, 1 << 30)}
        for source in sources:
            for group in tvm_api.distinct_top_records(source, mod, top_k):
                if str(group[0].trace) in seen:
                    continue
                seen.add(str(group[0].trace))
                record = tvm_api.replayed_on(db, group[0], mod)
                if record is None:
                    unreplayable += 1
                else:
                    records.append(record)
    return records, unreplayable


def _label(directory: Path) -> str:
    """How a log's manifest names a source log: ``shipped:<preset>/<name>`` for a shipped one (not this
    machine's path to it), else the path as given."""
    from .apply import shipped_dir

    try:
        return f"shipped:{directory.resolve().relative_to(shipped_dir().resolve()).as_posix()}"
    except ValueError:
        return str(directory)


def rerank(problem: TuningProblem, log_dir: Path, *, top_k: int, threads: int, share: float = 1.0,
           builder_timeout_s: float = DEFAULT_BUILDER_TIMEOUT_S, show_progress: bool = True,
           sources: list[Path] | None = None) -> RerankOutcome:
    """Re-measure the ``top_k`` best schedules of the tasks of ``problem`` in ``log_dir`` on ``threads``.

    ``share`` < 1 limits it to the heaviest tasks covering that share of the estimated time. A schedule
    re-measured before (its trace recorded twice) is not measured again, so a second run with a larger
    ``top_k`` measures only the schedules the first one did not reach. With ``sources``, the schedules come
    from those logs (any CPU) and their measurements go into ``log_dir`` (created if need be), skipping the
    schedules ``log_dir`` already holds; ``before_ms`` is then the sources' estimate, from their CPU.
    """
    if top_k < 1 or threads < 1:
        raise UsageError("--rerank and --threads must be positive")
    source_dbs = _source_databases(problem, sources) if sources else []
    if not source_dbs and not logdb.has_database(log_dir):
        raise UsageError(f"{log_dir} holds no tuning log to re-rank; tune first")
    existing = prepare_log_dir(log_dir, problem)
    db = tvm_api.json_database(str(log_dir))
    before = _best_rows(problem, source_dbs) if source_dbs else measured_task_rows(problem, db)
    tasks = heaviest_tasks(problem, before, share) if share < 1 else problem.tasks
    unreplayable = 0
    if source_dbs:
        records, unreplayable = _records_to_measure(tasks, db, source_dbs, top_k)
    else:
        records = [r for task in tasks for r in tvm_api.top_records(db, tvm_api.task_workload_module(task), top_k)]
    started = time.monotonic()
    measured, failed = measure_into(db, records, problem, threads=threads, builder_timeout_s=builder_timeout_s,
                                    desc=f"re-ranking {problem.name}", show_progress=show_progress)
    failed += unreplayable
    wall = time.monotonic() - started
    rows = measured_task_rows(problem, db)  # the database holds what was just committed
    session: dict[str, Any] = {"reranked_top_k": top_k, "reranked_tasks": len(tasks), "measured_threads": threads,
                               "remeasured": measured}
    if sources:
        session["from"] = [_label(directory) for directory in sources]
    update_manifest(log_dir, existing, problem, rows, 0, wall, None, session=session)
    return RerankOutcome(log_dir, measured, failed, wall, estimated_ms(before), estimated_ms(rows))
