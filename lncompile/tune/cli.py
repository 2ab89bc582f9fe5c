"""``lncompile tune``: MetaSchedule tuning of a model's kernels into a resumable log directory."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import LncompileError, UsageError
from . import logdb


def default_log_dir(name: str, target: str) -> Path:
    return Path("logs") / f"{name}-{Path(target).stem if target.endswith('.json') else target}"


def _remote(rpc: str | None, key: str | None, preset: Any, builder_timeout_s: float) -> tuple[Any, Any]:
    """(runner, builder) measuring on the boards behind an RPC tracker; (None, None) for local tuning."""
    if rpc is None:
        return None, None
    if not key:
        raise UsageError("--rpc needs --key (the device key the RPC servers registered with)")
    try:
        from .. import remote
    except ImportError:
        raise LncompileError("remote tuning needs lncompile.remote, which this installation lacks") from None
    builder = None
    if preset.cross_compiler:  # candidates must be linked for the board, here
        builder = remote.metaschedule_cross_builder(preset.cross_compiler, tuple(preset.cross_compiler_options),
                                                    timeout_s=builder_timeout_s)
    return remote.metaschedule_rpc_runner(rpc, key), builder


def _source_logs(sources: tuple[str, ...], problem: Any) -> list[Path]:
    """``--from`` values as log directories; ``shipped`` is the target's shipped logs that tuned this model
    (all of them if none did)."""
    from .apply import shipped_log_dirs

    found: list[Path] = []
    for source in sources:
        if source != "shipped":
            found.append(Path(source))
            continue
        shipped = shipped_log_dirs(problem.preset.shipped_logs)
        if not shipped:
            raise UsageError(f"--from shipped: target {problem.preset.name!r} ships no tuning logs")
        tuned_this = [d for d in shipped if problem.ir_sha256 in ((logdb.read_manifest(d) or {}).get("models") or {})]
        found.extend(tuned_this or shipped)
    return found


def make_command(context: dict[str, Any], model_options: Any, import_model: Any) -> click.Command:
    """The ``tune`` command, given the main CLI's context settings, model options and importer.

    (Passed in rather than imported: ``python -m lncompile.cli`` runs that module as ``__main__``.)
    """

    @click.command("tune", context_settings=context)
    @click.argument("model")
    @click.option("--target", "-t", default="x86", show_default=True, help="Target preset name or preset .json file.")
    @click.option("--trials", type=int, help="Trials in this run (default: --trials-per-task x tasks).")
    @click.option("--trials-per-task", type=int, default=64, show_default=True, help="Most trials for one kernel.")
    @click.option("--trials-per-iter", type=int, default=16, show_default=True, help="Candidates measured per batch.")
    @click.option("--time-budget", type=float, metavar="MIN", help="Stop after MIN minutes (records are kept).")
    @click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path),
                  help="Log directory (default: logs/<name>-<target>/); an existing one is resumed.")
    @click.option("--no-passes", is_flag=True, help="Tune the IR without lncompile's pass pipeline.")
    @click.option("--builder-timeout", type=float, default=120.0, show_default=True, help="Seconds per build batch.")
    @click.option("--quick", is_flag=True, help="Small search and no minimum measurement time (smoke tests).")
    @click.option("--rpc", metavar="HOST:PORT", help="Measure on remote devices through this RPC tracker.")
    @click.option("--key", help="Device key for --rpc.")
    @click.option("--rerank", type=int, metavar="K",
                  help="Instead of searching, re-measure the K best schedules of every task in the log with "
                       "--threads TVM workers (e.g. a log tuned on 1 thread, deployed on 2).")
    @click.option("--from", "sources", multiple=True, metavar="DIR|shipped",
                  help="With --rerank: take the K best schedules of every task from this log instead (repeatable; "
                       "`shipped`: the target's shipped logs) and record their measurements here in --log-dir: "
                       "starts a log for this CPU from one tuned on another, to tune on from there.")
    @click.option("--in-situ", "in_situ", type=int, metavar="K",
                  help="Instead of searching, choose per kernel which of its K fastest schedules in the log the "
                       "build applies, by timing them inside the model (builds it twice and each schedule alone; "
                       "writes in_situ.json into the log if the choices run faster).")
    @click.option("--threads", type=int,
                  help="TVM workers for --rerank and --in-situ measurements (default: the target's cores).")
    @click.option("--share", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
                  help="Resume (or re-rank) only the heaviest tasks of the log, covering this share of its estimate.")
    @model_options
    def tune(model: str, target: str, trials: int | None, trials_per_task: int, trials_per_iter: int,
             time_budget: float | None, log_dir: Path | None, no_passes: bool, builder_timeout: float, quick: bool,
             rpc: str | None, key: str | None, rerank: int | None, sources: tuple[str, ...], in_situ: int | None,
             threads: int | None, share: float, **model_opts: Any) -> None:
        """Tune MODEL's kernels for TARGET with MetaSchedule; `lncompile build --tuning-log DIR` applies the result."""
        from ..targets import get as get_target
        from .tasks import prepare, tuning_target_json
        from .tuner import tune as run_tuning

        preset = get_target(target)
        if rerank is not None and in_situ is not None:
            raise UsageError("--rerank and --in-situ are separate steps: run one, then the other")
        if (rerank is not None or in_situ is not None) and rpc is not None:
            raise UsageError("--rerank and --in-situ measure on this machine; they cannot be combined with --rpc")
        if sources and rerank is None:
            raise UsageError("--from goes with --rerank K (how many schedules per task to take from those logs)")
        if threads is not None and rerank is None and in_situ is None:
            raise UsageError("--threads goes with --rerank or --in-situ (tuning measures on the target's cores)")
        runner, builder = _remote(rpc, key, preset, builder_timeout)
        imported = import_model(model, **model_opts)
        problem = prepare(imported.name, imported.graph, preset, passes=not no_passes, remote=runner is not None)
        log_dir = log_dir or default_log_dir(imported.name, target)
        click.echo(f"{imported.name}: {len(problem.tasks)} tasks for {preset.name} "
                   f"({problem.target_json.get('mcpu', problem.target_json['kind'])}); log {log_dir}", err=True)
        if in_situ is not None:
            from .in_situ import select_in_situ

            chosen = select_in_situ(problem, imported, log_dir, top_k=in_situ, threads=threads or 0)
            verdict = (f"wrote {log_dir / logdb.IN_SITU}" if chosen.written
                       else f"{logdb.IN_SITU} left as it was (the choices were not faster)")
            click.echo(f"in-situ: {chosen.changed} of {chosen.kernels} kernels chose another schedule; "
                       f"latency {chosen.baseline_ms:.3f} -> {chosen.chosen_ms:.3f} ms (side by side); {verdict}; "
                       f"{chosen.wall_seconds:.0f} s")
            return
        if rerank is not None:
            from .rerank import rerank as run_rerank

            threads = threads or int(tuning_target_json(problem.target_json).get("num-cores") or 1)
            done = run_rerank(problem, log_dir, top_k=rerank, threads=threads, share=share,
                              builder_timeout_s=builder_timeout, sources=_source_logs(sources, problem))
            estimate = "n/a (some tasks unmeasured)"
            if done.before_ms is not None and done.after_ms is not None:
                estimate = f"{done.before_ms:.3f} -> {done.after_ms:.3f} ms"
            click.echo(f"re-measured {done.measured} schedules on {threads} thread(s) in {done.wall_seconds:.0f} s"
                       f"{f' ({done.failed} failed)' if done.failed else ''}; kernel-time estimate {estimate}")
            return
        outcome = run_tuning(problem, log_dir, trials=trials, trials_per_task=trials_per_task,
                             trials_per_iter=trials_per_iter, time_budget_s=time_budget * 60 if time_budget else None,
                             runner=runner, builder=builder, builder_timeout_s=builder_timeout,
                             quick_search=quick, share=share)
        rate = outcome.trials / max(outcome.wall_seconds / 60, 1e-9)
        estimate = f"{outcome.estimate_ms:.3f} ms" if outcome.estimate_ms is not None else "n/a (some tasks unmeasured)"
        click.echo(f"{outcome.trials} trials in {outcome.wall_seconds:.0f} s ({rate:.1f}/min); {outcome.records} "
                   f"records in {log_dir}; {outcome.total_trials} trials for this model so far; "
                   f"kernel-time estimate {estimate}")
        untuned = [t["name"] for t in outcome.tasks if t["best_ms"] is None]
        if untuned:
            click.echo(f"untuned tasks ({len(untuned)}): {', '.join(untuned[:8])}{' ...' if len(untuned) > 8 else ''}",
                       err=True)
        if outcome.stopped:
            resume = "lncompile " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            click.echo(f"stopped ({outcome.stopped}); everything measured is kept in {log_dir}; resume with: {resume}",
                       err=True)
            if outcome.stopped == "interrupted":
                sys.exit(130)
            if outcome.stopped != "time budget":
                sys.exit(1)

    return tune
