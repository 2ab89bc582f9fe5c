"""Tune the reference set into shipped logs: targets/logs/<target>/<model>/ (resumable: run it again to go on).

    python bench/tune_reference.py [--target x86] [--models a,b] [--trials-per-task 32] [--time-budget MIN]
    python bench/tune_reference.py --rerank 12 [--threads 2] [--share 0.8]   # re-measure, no search
    python bench/tune_reference.py --migrate 8 [--threads 2]  # logs from before pre-packed weights: measure again
    python bench/tune_reference.py --in-situ 6 [--threads 2]  # per kernel, the schedule fastest inside the model

Each model gets its own log directory (a MetaSchedule JSON database + manifest); `lncompile build` applies
every shipped log whose TVM version and target match. Ctrl-C keeps every record measured so far. Only the
database files and the manifest are meant to be committed (not the per-task ``logs/`` sub-directory).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from lncompile.bench_cmd import REFERENCE_MODELS
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.apply import shipped_dir
from lncompile.tune.in_situ import select_in_situ
from lncompile.tune.migrate import migrate_to_packed_weights
from lncompile.tune.rerank import rerank
from lncompile.tune.tasks import prepare
from lncompile.tune.tuner import tune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="x86")
    parser.add_argument("--models", default=",".join(REFERENCE_MODELS))
    parser.add_argument("--trials-per-task", type=int, default=32)
    parser.add_argument("--trials-per-iter", type=int, default=16)
    parser.add_argument("--time-budget", type=float, help="minutes per model")
    parser.add_argument("--root", type=Path, help="default: lncompile/targets/logs/<target>")
    parser.add_argument("--rerank", type=int, metavar="K", help="re-measure each task's K best schedules instead")
    parser.add_argument("--share", type=float, default=1.0,
                        help="tune / re-rank only the heaviest tasks covering this share of the estimated time")
    parser.add_argument("--migrate", type=int, metavar="K",
                        help="measure each task's K best schedules again on kernels with pre-packed weights")
    parser.add_argument("--in-situ", type=int, metavar="K",
                        help="choose per kernel among its K best schedules by timing them inside the model")
    parser.add_argument("--threads", type=int, default=2,
                        help="TVM workers for --rerank, --migrate and --in-situ measurements")
    args = parser.parse_args()
    preset = get_target(args.target)
    root = args.root or shipped_dir() / preset.name
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        imported = import_model(name)
        problem = prepare(name, imported.graph, preset)
        log_dir = root / name
        print(f"{name}: {len(problem.tasks)} tasks -> {log_dir}", flush=True)
        if args.in_situ:
            done = select_in_situ(problem, imported, log_dir, top_k=args.in_situ, threads=args.threads)
            print(f"{name}: {done.changed} of {done.kernels} kernels chose another schedule; latency "
                  f"{done.baseline_ms:.3f} -> {done.chosen_ms:.3f} ms side by side; "
                  f"{'written' if done.written else 'not written'}; {done.wall_seconds:.0f} s", flush=True)
            continue
        if args.migrate:
            staged = log_dir.with_name(log_dir.name + ".packed")
            done = migrate_to_packed_weights(problem, log_dir, staged, top_k=args.migrate, threads=args.threads)
            shutil.rmtree(log_dir)
            staged.rename(log_dir)
            print(f"{name}: measured {done.measured} schedules with packed weights on {args.threads} thread(s) "
                  f"({done.failed} failed, {done.tasks_without_records} tasks without records), estimate "
                  f"{done.before_ms} -> {done.after_ms} ms", flush=True)
            continue
        if args.rerank:
            done = rerank(problem, log_dir, top_k=args.rerank, threads=args.threads, share=args.share)
            print(f"{name}: re-measured {done.measured} schedules ({done.failed} failed) on {args.threads} "
                  f"thread(s) in {done.wall_seconds:.0f} s, estimate {done.before_ms} -> {done.after_ms} ms",
                  flush=True)
            continue
        outcome = tune(problem, log_dir, trials_per_task=args.trials_per_task, trials_per_iter=args.trials_per_iter,
                       time_budget_s=args.time_budget * 60 if args.time_budget else None, share=args.share)
        shutil.rmtree(log_dir / "logs", ignore_errors=True)  # per-task text logs: not shipped
        print(f"{name}: {outcome.trials} trials in {outcome.wall_seconds:.0f} s, {outcome.records} records, "
              f"estimate {outcome.estimate_ms} ms, stopped: {outcome.stopped}", flush=True)
        if outcome.stopped == "interrupted":
            print(f"interrupted; run the same command again to resume {name}")
            break


if __name__ == "__main__":
    main()
