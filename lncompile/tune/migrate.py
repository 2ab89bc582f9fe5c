"""Carry a log over to pre-packed weights: schedules tuned before the kernels' weights were marked
layout-free, measured again as schedules of the marked kernels.

A preset with ``prepack_weights`` marks every kernel's constant arguments layout-free (see
:func:`tvm_api.fuse_for_target`). The mark changes each kernel's structural hash, so a log tuned without it
no longer applies. Its schedules still do: replayed on the marked kernel and finished with RewriteLayout
(what tuning now does to every candidate), the same loops read the weights from a copy stored in their
order. That copy's layout follows the loops, and for some schedules it is a poor one (squeezenet1_1's
classifier conv: its best schedule went from 0.92 ms to 4.4 ms packed, the next ones ran as before), so
every carried schedule is measured again: the new log holds measurements only, no carried times.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backend import tvm_api
from ..errors import UsageError
from . import logdb
from .rerank import measure_into
from .tasks import TuningProblem
from .tuner import DEFAULT_BUILDER_TIMEOUT_S, estimated_ms, measured_task_rows, quiet_metaschedule, update_manifest


@dataclass
class MigrateOutcome:
    log_dir: Path
    measured: int  # schedules carried over and measured
    failed: int  # schedules that did not replay, build or run on the marked kernel
    tasks_without_records: int  # tasks the new log has no record for
    before_ms: float | None  # the old log's estimate (sum of weight x best) and the new one's
    after_ms: float | None


def _unmarked_workload(task: Any) -> Any:
    """The workload an old log filed ``task``'s records under (before its weights were marked layout-free)."""
    return tvm_api.without_layout_free_mark(tvm_api.task_workload_module(task))


def migrate_to_packed_weights(problem: TuningProblem, old_dir: Path, new_dir: Path, *, top_k: int = 8,
                              threads: int = 1, builder_timeout_s: float = DEFAULT_BUILDER_TIMEOUT_S,
                              show_progress: bool = True) -> MigrateOutcome:
    """Write ``new_dir``: the ``top_k`` best schedules per task of ``problem`` from the log in ``old_dir``,
    measured on ``threads`` TVM workers as schedules of the kernels with layout-free weights. ``new_dir``
    appears whole or not at all."""
    if not problem.preset.prepack_weights:
        raise UsageError(f"target {problem.preset.name!r} does not pre-pack weights; its logs need no migration")
    if top_k < 1 or threads < 1:
        raise UsageError("the number of schedules per task and of threads must be positive")
    if not logdb.has_database(old_dir):
        raise UsageError(f"{old_dir} holds no tuning log to migrate")
    if new_dir.exists() and any(new_dir.iterdir()):
        raise UsageError(f"{new_dir} is not empty; migrate into a new directory")
    existing = logdb.read_manifest(old_dir)
    if existing is not None and (why := logdb.incompatibility(existing, problem.target_json)) is not None:
        raise UsageError(f"cannot migrate {old_dir}: {why}")
    started = time.monotonic()
    new_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{new_dir.name}.", dir=new_dir.parent))
    try:
        with quiet_metaschedule():
            old = tvm_api.json_database(str(old_dir))
            new = tvm_api.json_database(str(staging))
            before = measured_task_rows(problem, old, workload=_unmarked_workload)
            carried, unreplayable = [], 0
            for task in problem.tasks:
                marked = tvm_api.task_workload_module(task)
                for records in tvm_api.distinct_top_records(old, tvm_api.without_layout_free_mark(marked), top_k):
                    try:
                        carried.append(tvm_api.with_packed_weights(new, records[0], marked))
                    except Exception:  # TVM's own error types: a schedule that no longer replays is dropped
                        unreplayable += 1
        measured, failed = measure_into(new, carried, problem, threads=threads, builder_timeout_s=builder_timeout_s,
                                        desc=f"migrating {problem.name}", show_progress=show_progress)
        rows = measured_task_rows(problem, new)
        update_manifest(staging, existing, problem, rows, 0, time.monotonic() - started, None,
                        session={"migrated_to_packed_weights": measured, "migrated_top_k": top_k,
                                 "measured_threads": threads})
        if new_dir.exists():
            new_dir.rmdir()
        staging.rename(new_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return MigrateOutcome(new_dir, measured, failed + unreplayable, sum(r["best_ms"] is None for r in rows),
                          estimated_ms(before), estimated_ms(rows))
