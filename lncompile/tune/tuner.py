"""Running MetaSchedule on a model: progress, time budget, Ctrl-C, resumable log directories.

Resuming is MetaSchedule's own behaviour, which this module relies on: its JSONDatabase re-reads the records
in the log directory, the evolutionary search seeds its population from the best of them, and new records are
appended. ``max_trials_global`` counts the new trials of this run only, so trials add up across runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backend import tvm_api
from ..errors import UsageError
from ..manifest import now_iso
from . import logdb
from .tasks import TuningProblem, tuning_target_json
from .worker_site import apply_worker_site, environ_set, worker_environment

# A build worker's first candidate waits for the worker to import TVM: 20-40 s on a busy 2-core machine when
# workers were restarted every batch and imported torch too, and MetaSchedule's default 30 s build timeout then
# reported every candidate as failed.
DEFAULT_BUILDER_TIMEOUT_S = 120.0


@contextlib.contextmanager
def worker_startup_fix(target_json: dict[str, Any] | None = None) -> Iterator[None]:
    """Put the start-up fixes of ``_worker_site/sitecustomize.py`` on the workers' PYTHONPATH and apply them
    here too: the ``inspect.getmodule`` short-circuit, and with ``target_json`` importing only that target's
    tensorization intrinsics (a package imported that way here is dropped again afterwards, so a later
    import elsewhere in this process gets all of them). Workers started meanwhile run without torch (this
    process keeps its own)."""
    site = apply_worker_site()  # patches inspect and installs the import-only finder in this process
    modules = tvm_api.tensor_intrinsic_modules(target_json) if target_json else None
    package = tvm_api.TENSOR_INTRINSICS_PACKAGE
    import_only = f"{package}={','.join(modules)}" if modules else None
    with worker_environment(**{site.IMPORT_ONLY: import_only}):
        if modules:
            tvm_api.import_tensor_intrinsics(modules)  # the package may be here already, imported for another target
        try:
            yield
        finally:
            if hasattr(sys.modules.get(package), site.PARTIAL):
                del sys.modules[package]


@contextlib.contextmanager
def measured_with_threads(threads: int | None, force: bool = False) -> Iterator[int | None]:
    """Local runner workers measure with ``threads`` TVM workers: the ``num-cores`` the schedules are tuned
    for and the pool a built library uses. Left alone, TVM sizes a fresh worker's pool at half the logical
    CPUs (one thread on a 2-core box), so kernels tuned for 2 cores were timed on 1. TVM_NUM_THREADS set by
    the user wins, unless ``force``. Yields the worker count in force (None: TVM's default)."""
    saved = os.environ.get("TVM_NUM_THREADS")
    if not threads or (saved and not force):
        yield int(saved) if saved and saved.isdigit() else None
        return
    with environ_set(TVM_NUM_THREADS=str(threads)):
        yield threads


@contextlib.contextmanager
def quiet_metaschedule() -> Iterator[None]:
    """MetaSchedule logs every batch at INFO on the console; keep that in the per-task log files only.

    MetaSchedule also rebuilds its logger config on every run from the names of the handlers already on its
    logger, and fails ("'NoneType' object has no attribute 'format'") on one without a name, such as the log
    capture pytest attaches to every non-propagating logger: those are set aside for the run and put back.
    """
    loggers = [logging.getLogger(n) for n in ("tvm.s_tir.meta_schedule", "tvm.meta_schedule")]
    levels = [lg.level for lg in loggers]
    unnamed = [(lg, h) for lg in loggers for h in lg.handlers if h.get_name() is None]
    for lg, handler in unnamed:
        lg.removeHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for lg, handler in unnamed:
            lg.addHandler(handler)


class _Stop(Exception):
    """Raised from the measure callback to end tuning early (time budget or Ctrl-C)."""


@dataclass
class Progress:
    """Per-task best latency and trial counts, fed by MetaSchedule's measure callback."""

    weights: list[int]
    per_task_limit: int
    trials: int = 0
    errors: int = 0
    task_trials: list[int] = field(default_factory=list)
    best_s: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.task_trials = [0] * len(self.weights)
        self.best_s = [None] * len(self.weights)

    def add(self, task_id: int, seconds: list[float | None]) -> None:
        self.trials += len(seconds)
        self.task_trials[task_id] += len(seconds)
        for s in seconds:
            if s is None:
                self.errors += 1
            elif self.best_s[task_id] is None or s < self.best_s[task_id]:
                self.best_s[task_id] = s

    @property
    def tasks_done(self) -> int:
        return sum(t >= self.per_task_limit for t in self.task_trials)

    def estimate_ms(self) -> tuple[float, int]:
        """(sum of weight x best latency over measured tasks in ms, number of measured tasks)."""
        measured = [(w, b) for w, b in zip(self.weights, self.best_s, strict=True) if b is not None]
        return sum(w * b for w, b in measured) * 1e3, len(measured)


@dataclass
class FirstRound:
    """Whether MetaSchedule is inside the loop that joins its first round (tasks 0, 1, ..., n-1 in order).

    The gradient task scheduler sends every task once, then joins them all in one loop, each join committing
    that task's records. A stop raised inside that loop (time budget, a budget shorter than one round) drops
    every task not joined yet, so the budget waits for the loop to end: at task n-1, or at the first task id
    that does not increase (tasks already at their trial limit are not in the loop).
    """

    tasks: int
    joining: bool = True
    last: int = -1

    def saw(self, task_id: int) -> None:
        if task_id <= self.last or task_id == self.tasks - 1:
            self.joining = False
        self.last = task_id


@dataclass
class TuneOutcome:
    log_dir: Path
    trials: int  # measured in this run
    total_trials: int  # recorded in the manifest over all runs of this model
    records: int  # valid records in the database
    wall_seconds: float
    stopped: str | None  # None, "time budget", "interrupted", or the error that ended MetaSchedule
    tasks: list[dict[str, Any]]
    estimate_ms: float | None  # sum of weight x best task latency


def prepare_log_dir(log_dir: Path, problem: TuningProblem) -> dict[str, Any] | None:
    log_dir.mkdir(parents=True, exist_ok=True)
    existing = logdb.read_manifest(log_dir)
    if logdb.has_database(log_dir):
        if existing is not None:
            why = logdb.incompatibility(existing, problem.target_json, same_cpu=True)
            if why is not None:
                raise UsageError(f"cannot tune into {log_dir}: {why}; use another --log-dir")
        logdb.repair_in_place(log_dir)
    return existing


def measured_task_rows(problem: TuningProblem, db: Any,
                       workload: Callable[[Any], Any] = tvm_api.task_workload_module) -> list[dict[str, Any]]:
    """The task rows with each task's best time in ``db``, looked up under ``workload(task)``."""
    rows = problem.task_rows()
    for row, task in zip(rows, problem.tasks, strict=True):
        best, count = tvm_api.best_record_seconds(db, workload(task))
        row["best_ms"] = None if best is None else round(best * 1e3, 6)
        row["records"] = count
    return rows


def update_manifest(log_dir: Path, existing: dict[str, Any] | None, problem: TuningProblem, rows: list[dict],
                     trials: int, wall: float, stopped: str | None,
                     session: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
    manifest = dict(existing or {"format": logdb.FORMAT, "created": now_iso()})
    manifest["versions"] = logdb.versions()
    manifest["target"] = {"preset": problem.preset.name, "tvm_target": problem.target_json,
                          "tuning_target": tuning_target_json(problem.target_json)}
    models = manifest.setdefault("models", {})
    entry = models.setdefault(problem.ir_sha256, {"name": problem.name, "trials": 0, "wall_seconds": 0.0,
                                                  "sessions": []})
    entry.update(name=problem.name, passes=problem.passes, tasks=rows)
    entry["trials"] += trials
    entry["wall_seconds"] = round(entry["wall_seconds"] + wall, 1)
    entry["sessions"].append({"ended": now_iso(), "trials": trials, "wall_seconds": round(wall, 1),
                              "stopped": stopped, **(session or {})})
    entry["estimated_ms"] = estimated_ms(rows)
    manifest["trials"] = sum(m["trials"] for m in models.values())
    manifest["wall_seconds"] = round(sum(m["wall_seconds"] for m in models.values()), 1)
    manifest["records"] = logdb.count_records(log_dir)
    manifest["updated"] = now_iso()
    logdb.write_manifest(log_dir, manifest)
    return manifest, entry["trials"]


def estimated_ms(rows: list[dict[str, Any]]) -> float | None:
    """Sum of weight x best latency over the tasks (ms), or None while some task is unmeasured."""
    times = [r["best_ms"] * r["weight"] for r in rows if r["best_ms"] is not None]
    return round(sum(times), 6) if len(times) == len(rows) else None


def heaviest_tasks(problem: TuningProblem, rows: list[dict[str, Any]], share: float) -> list[Any]:
    """The tasks not measured yet (e.g. a kernel a new pass made), then those taking the largest part of the
    estimated time (weight x best), covering ``share`` of it."""
    pairs = list(zip(rows, problem.tasks, strict=True))
    timed = sorted(((r["best_ms"] * r["weight"], task) for r, task in pairs if r["best_ms"] is not None),
                   key=lambda pair: -pair[0])
    total, covered, chosen = sum(t for t, _ in timed), 0.0, [task for r, task in pairs if r["best_ms"] is None]
    for time_ms, task in timed:
        if covered >= share * total:
            break
        chosen.append(task)
        covered += time_ms
    return chosen


def tune(problem: TuningProblem, log_dir: Path, *, trials: int | None = None, trials_per_task: int = 64,
         trials_per_iter: int = 16, time_budget_s: float | None = None, runner: Any = None, builder: Any = None,
         builder_timeout_s: float = DEFAULT_BUILDER_TIMEOUT_S, runner_timeout_s: float = 30.0,
         quick_search: bool = False, show_progress: bool = True, share: float = 1.0) -> TuneOutcome:
    """Tune every task of ``problem`` into ``log_dir`` (resuming from what it holds) and write its manifest.

    ``trials`` defaults to ``trials_per_task`` x tasks: fewer leaves some tasks untuned (MetaSchedule
    spends the budget where the gradient scheduler expects gains, and a task with no trial keeps the
    naive schedule). ``share`` < 1 resumes only the heaviest tasks of the log, covering that share of its
    estimated time (every task is still reported in the manifest).
    """
    from tqdm import tqdm

    if not problem.tasks:
        raise UsageError(f"{problem.name} has no tunable kernels for {problem.preset.name}")
    if trials_per_task < 1 or not 0 < share <= 1:
        raise UsageError("--trials-per-task must be positive and the share of tasks in (0, 1]")
    existing = prepare_log_dir(log_dir, problem)
    tasks = problem.tasks
    if share < 1 and logdb.has_database(log_dir):
        tasks = heaviest_tasks(problem, measured_task_rows(problem, tvm_api.json_database(str(log_dir))), share)
    n = len(tasks)
    total = trials if trials is not None else trials_per_task * n
    if total < 1:
        raise UsageError("--trials must be positive")
    progress = Progress([int(t.weight) for t in tasks], trials_per_task)
    bar = tqdm(total=total, unit="trial", desc=f"tuning {problem.name}", disable=not show_progress,
               dynamic_ncols=True)
    started = time.monotonic()
    stop_reason: list[str] = []
    first_round = FirstRound(n)

    def on_measured(task_id: int, seconds: list[float | None]) -> None:
        progress.add(task_id, seconds)
        first_round.saw(task_id)
        estimate, measured = progress.estimate_ms()
        bar.set_postfix_str(f"tasks {progress.tasks_done}/{n}, est. {estimate:.3f} ms ({measured}/{n} measured)"
                            f"{f', {progress.errors} failed' if progress.errors else ''}", refresh=False)
        bar.update(len(seconds))
        if time_budget_s is not None and time.monotonic() - started > time_budget_s and not stop_reason:
            stop_reason.append("time budget")
        if stop_reason and not first_round.joining:
            raise _Stop(stop_reason[0])

    def on_sigint(signum: int, frame: Any) -> None:
        if not stop_reason:
            stop_reason.append("interrupted")
        raise KeyboardInterrupt

    session: dict[str, Any] = {}
    if len(tasks) < len(problem.tasks):
        session["tasks_tuned"] = len(tasks)
    previous = signal.signal(signal.SIGINT, on_sigint)
    stopped: str | None = None
    try:
        num_cores = tuning_target_json(problem.target_json).get("num-cores")
        with worker_startup_fix(problem.target_json), quiet_metaschedule(), measured_with_threads(num_cores) as threads:
            if runner is None:  # a remote runner measures with the board's own pool
                session["measured_threads"] = threads
            tvm_api.tune_tasks(tasks, str(log_dir), max_trials_global=total,
                               max_trials_per_task=trials_per_task, num_trials_per_iter=trials_per_iter,
                               builder_timeout_s=builder_timeout_s, runner=runner,
                               runner_timeout_s=runner_timeout_s, callbacks=[tvm_api.measure_callback(on_measured)],
                               quick_search=quick_search, builder=builder)
    except (Exception, KeyboardInterrupt) as e:
        # MetaSchedule wraps exceptions raised in callbacks; the recorded reason says whether we asked for it.
        if stop_reason:
            stopped = stop_reason[0]
        else:
            stopped = f"MetaSchedule stopped: {(str(e).strip().splitlines() or [type(e).__name__])[-1]}"
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    wall = time.monotonic() - started
    logdb.repair_in_place(log_dir)  # a kill mid-append leaves half a line
    db = tvm_api.json_database(str(log_dir))
    rows = measured_task_rows(problem, db)
    _, total_trials = update_manifest(log_dir, existing, problem, rows, progress.trials, wall, stopped, session)
    return TuneOutcome(log_dir, progress.trials, total_trials, logdb.count_records(log_dir), wall, stopped, rows,
                       estimated_ms(rows))
