"""In-situ selection: per kernel, among the log's fastest few schedules, the one that runs fastest inside
the model.

Tuning times each kernel alone, run after run on the same buffers, so its input, weights and output sit in
cache. Inside the model they do not: the kernels before it have pushed them out (the model's weights and
activations outgrow the caches), and schedules as fast as each other hot differ widely cold. mobilenet_v2's
stride-2 depthwise conv on the 112x112x96 activation: the six fastest schedules measured 123-150 us hot and
214-372 us inside the model; the tuner's pick was the slowest of them there.

Selection builds the model with each kernel's fastest record, records its kernel calls
(:func:`tvm_api.kernel_calls`), and compiles each candidate schedule alone. It then replays the model's calls
in order with one kernel's calls swapped for a candidate (same input and output buffers; the candidate's
weights in its own packed layout), timing the swapped calls where the model makes them; candidates take
turns in blocks. A kernel changes schedule only if one is faster by ``min_gain`` (the medians are noisy on a
shared machine). The model is then built with the choices, and ``in_situ.json`` is written into the log only
if that build runs faster than the fastest-record build, the two timed side by side. (A first version built
the model once per rank instead, every kernel on its j-th schedule, and timed each kernel in those builds:
the neighbours then differ too, and its choices made efficientnet_b0 and ghostnet slower, 9.3 -> 10.4 ms
and 3.6 -> 3.8 ms, while one kernel swapped at a time measures each choice in the context it will run in.)
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import tvm_api
from ..errors import UsageError
from ..fileio import write_json_atomic
from ..manifest import now_iso
from . import logdb
from .tasks import TuningProblem
from .tuner import DEFAULT_BUILDER_TIMEOUT_S, quiet_metaschedule, worker_startup_fix


@dataclass
class InSituOutcome:
    log_dir: Path
    kernels: int  # workloads with at least two schedules to choose from
    changed: int  # of those, chosen other than the fastest record
    baseline_ms: float  # median latency with the fastest records, and with the choices (side by side)
    chosen_ms: float
    written: bool  # in_situ.json written (the choices ran faster)
    wall_seconds: float


def ranked_schedules(parsed: logdb.ParsedLog, top_k: int) -> dict[str, list[Any]]:
    """Per workload hash, the record bodies of its ``top_k`` fastest distinct schedules, fastest first
    (a schedule measured more than once counts with its fastest record)."""
    fastest: dict[str, dict[str, tuple[float, Any]]] = {}
    for index, body in parsed.records:
        seconds = logdb.mean_run_secs(body)
        if seconds is None:
            continue
        schedules = fastest.setdefault(str(parsed.workloads[index][0]), {})
        key = logdb.schedule_id(body)
        if key not in schedules or seconds < schedules[key][0]:
            schedules[key] = (seconds, body)
    return {workload: [body for _, body in sorted(schedules.values(), key=lambda sb: sb[0])[:top_k]]
            for workload, schedules in fastest.items()}


def write_single_schedule_log(source: Path, parsed: logdb.ParsedLog, destination: Path,
                              pick: dict[str, Any]) -> Path:
    """A log directory holding ``source``'s manifest and, per workload hash in ``pick``, that one record."""
    destination.mkdir(parents=True)
    shutil.copy(source / logdb.MANIFEST, destination / logdb.MANIFEST)
    index = {str(workload[0]): n for n, workload in enumerate(parsed.workloads)}
    (destination / logdb.WORKLOADS).write_text("".join(json.dumps(w) + "\n" for w in parsed.workloads))
    (destination / logdb.RECORDS).write_text("".join(json.dumps([index[h], body]) + "\n" for h, body in pick.items()))
    return destination


def kernel_workloads(names: list[str], workload_of_task: dict[str, str]) -> list[str | None]:
    """The workload hash of each called kernel (None for kernels that are not tuning tasks: layout copies).

    The build renames a kernel whose weights it pre-packs to ``<task>_prepacked`` (TVM's
    SplitLayoutRewritePreproc); the task keeps the name it had when it was extracted."""
    return [workload_of_task.get(name, workload_of_task.get(name.removesuffix("_prepacked"))) for name in names]


Trial = tuple[Any, dict[int, tuple[Any, ...]]]  # a candidate kernel, and its arguments at each call position


def swap_times(calls: list[tuple[str, Any, tuple[Any, ...]]], trials: list[Trial], blocks: int, replays: int,
               tick: Callable[[], None] = lambda: None) -> list[float]:
    """Per trial, the median time (us) its kernel's calls took in replays of ``calls`` with the calls at its
    positions made by its kernel instead: ``blocks`` rounds, each trial ``replays`` timed replays per round
    (after one untimed, which meets the previous trial's leftovers), trials taking turns."""
    samples: list[list[float]] = [[] for _ in trials]
    for round_ in range(blocks):
        for k in range(len(trials)):
            t = (round_ + k) % len(trials)
            kernel, swapped = trials[t]
            for replay in range(1 + replays):
                total = 0
                for i, (_, function, args) in enumerate(calls):
                    if i in swapped:
                        started = time.perf_counter_ns()
                        kernel(*swapped[i])
                        total += time.perf_counter_ns() - started
                    else:
                        function(*args)
                if replay:
                    samples[t].append(total / 1e3)
        tick()
    return [float(np.median(s)) for s in samples]


def trial_arguments(model_args: tuple[Any, ...], args_info: list[Any], device: Any,
                    rng: np.random.Generator) -> tuple[Any, ...]:
    """A candidate's arguments at one call: the model's tensor where shape and dtype agree (activations), else
    a random one (weights in the candidate's own packed layout: their values do not change its time)."""
    args = []
    for i, (_, dtype, shape) in enumerate(args_info):
        tensor = model_args[i] if i < len(model_args) else None
        if tensor is not None and list(tensor.shape) == list(shape) and str(tensor.dtype) == dtype:
            args.append(tensor)
        else:
            args.append(tvm_api.tensor(rng.uniform(-1, 1, shape).astype(dtype), device))
    return tuple(args)


def select_in_situ(problem: TuningProblem, imported: Any, log_dir: Path, *, top_k: int = 8, threads: int = 0,
                   blocks: int = 6, replays: int = 3, min_gain: float = 0.05, repeat: int = 200,
                   builder_timeout_s: float = DEFAULT_BUILDER_TIMEOUT_S, show_progress: bool = True) -> InSituOutcome:
    """Choose, per kernel of ``problem``, which of its ``top_k`` fastest schedules in ``log_dir`` the build
    applies, by timing them inside the model on ``threads`` TVM workers (0: the preset's); see the module doc.

    ``imported``: the model ``problem`` was prepared from (built twice). Choices for other models' workloads
    already in the log's ``in_situ.json`` are kept.
    """
    from tqdm import tqdm

    from ..api import compile_imported
    from ..bench_cmd import interleaved

    if top_k < 2:
        raise UsageError("in-situ selection compares at least 2 schedules per kernel")
    if problem.preset.is_cross or problem.preset.device != "cpu":
        raise UsageError(f"in-situ selection runs the model on this machine's CPU; target {problem.preset.name!r} "
                         f"is not this machine")
    if not logdb.has_database(log_dir):
        raise UsageError(f"{log_dir} holds no tuning log to choose from; tune first")
    logdb.check_compatible(log_dir, problem.target_json, same_cpu=True)  # its choice is timed here
    started = time.monotonic()
    tvm_api.set_runtime_threads(threads or problem.preset.threads or tvm_api.physical_cores())
    # each task's workload hash is a structural hash of its kernel: computed once
    workload_of_task = {row["name"]: row["workload_hash"] for row in problem.task_rows()}
    task_of_workload = {h: name for name, h in workload_of_task.items()}
    parsed = logdb.parse_log(log_dir, set(workload_of_task.values()))
    ranked = ranked_schedules(parsed, top_k)
    if all(len(bodies) < 2 for bodies in ranked.values()):
        raise UsageError(f"{log_dir} holds one schedule per kernel of {problem.name}: nothing to choose from")
    workload_lines = {str(w[0]): w for w in parsed.workloads}
    x = [np.asarray(a) for a in imported.example]
    bar = tqdm(total=blocks + 3, unit="step", desc=f"in-situ {problem.name}", disable=not show_progress,
               dynamic_ncols=True)
    try:
        with tempfile.TemporaryDirectory(prefix="lncompile-in-situ-") as scratch:
            def build(name: str, pick: dict[str, Any]) -> Any:
                variant = write_single_schedule_log(log_dir, parsed, Path(scratch) / name, pick)
                compiled = compile_imported(imported, problem.preset, passes=problem.passes, tuning_log=variant,
                                            traceable=True)
                bar.update()
                return compiled

            baseline = build("fastest", {h: bodies[0] for h, bodies in ranked.items()})
            calls = baseline.kernel_calls(*x)
            workloads = kernel_workloads([name for name, _, _ in calls], workload_of_task)
            positions = {h: [i for i, w in enumerate(workloads) if w == h] for h in ranked}
            compared = [(h, j) for h, bodies in ranked.items() if len(bodies) > 1 and positions[h]
                        for j in range(len(bodies))]
            with worker_startup_fix(problem.target_json), quiet_metaschedule():
                kernels = tvm_api.compile_schedules([(workload_lines[h], ranked[h][j]) for h, j in compared],
                                                    problem.target,
                                                    tvm_api.ms_local_builder(None, builder_timeout_s, None))
            bar.update()
            rng, device = np.random.default_rng(0), tvm_api.cpu_device()
            compiled = [(hj, kernel) for hj, kernel in zip(compared, kernels, strict=True) if kernel is not None]
            trials: list[Trial] = [
                (kernel, {i: trial_arguments(calls[i][2], ranked[h][j][3], device, rng) for i in positions[h]})
                for (h, j), kernel in compiled]
            timed = dict(zip([hj for hj, _ in compiled], swap_times(calls, trials, blocks, replays, bar.update),
                             strict=True))
            del calls, trials, compiled  # the model's buffers
            choices: dict[str, dict[str, Any]] = {}
            for h, bodies in ranked.items():
                totals = [timed.get((h, j)) for j in range(len(bodies))]
                if len(bodies) < 2 or totals[0] is None:
                    continue
                best = min((j for j, t in enumerate(totals) if t is not None), key=lambda j: totals[j])
                if totals[best] > totals[0] * (1 - min_gain):
                    best = 0  # within the noise: the fastest record stays
                choices[h] = {
                    "kernel": task_of_workload[h], "calls": len(positions[h]), "chosen_rank": best,
                    "chosen": logdb.schedule_id(bodies[best]),
                    "candidates": [logdb.schedule_id(b) for j, b in enumerate(bodies) if totals[j] is not None],
                    "in_situ_us": [None if t is None else round(t, 1) for t in totals],
                    "alone_us": [round(logdb.mean_run_secs(b) * 1e6 * len(positions[h]), 1) for b in bodies],
                }
            chosen = build("chosen", {h: bodies[choices[h]["chosen_rank"]] if h in choices else bodies[0]
                                      for h, bodies in ranked.items()})
            times = interleaved({"fastest": lambda: baseline(*x), "chosen": lambda: chosen(*x)}, repeat)
    finally:
        bar.close()
    baseline_ms, chosen_ms = (float(np.median(times[k])) * 1e3 for k in ("fastest", "chosen"))
    changed = sum(c["chosen_rank"] != 0 for c in choices.values())
    written = chosen_ms < baseline_ms and changed > 0
    if written:
        _write_choices(log_dir, problem, choices, baseline_ms, chosen_ms, top_k)
    return InSituOutcome(log_dir, len(choices), changed, baseline_ms, chosen_ms, written,
                         time.monotonic() - started)


def _write_choices(log_dir: Path, problem: TuningProblem, kernels: dict[str, dict[str, Any]], baseline_ms: float,
                   chosen_ms: float, top_k: int) -> Path:
    """Merge ``kernels`` into the log's ``in_situ.json`` (other models' choices stay), atomically."""
    path = log_dir / logdb.IN_SITU
    data: dict[str, Any] = {"format": logdb.IN_SITU_FORMAT, "kernels": {}}
    if logdb.read_in_situ(log_dir):  # a readable file holding choices: keep them (an unreadable one is replaced)
        data = json.loads(path.read_text(encoding="utf-8"))
    data["kernels"].update(kernels)
    data.setdefault("models", {})[problem.ir_sha256] = {
        "name": problem.name, "updated": now_iso(), "threads": tvm_api.runtime_threads(), "top_k": top_k,
        "latency_ms": {"fastest_records": round(baseline_ms, 4), "in_situ_choices": round(chosen_ms, 4)},
    }
    return write_json_atomic(path, data)
