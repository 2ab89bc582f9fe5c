"""The reference comparison: lncompile vs PyTorch eager vs ONNX Runtime on the reference set, one process,
rounds interleaving lncompile with ORT (torch in rounds of its own after them), the same thread count for all
three (see lncompile/bench_cmd.py for the method).

    python bench/reference_bench.py [--target x86] [--models a,b] [--repeat 30] [--threads N]
                                    [--resolution R] [--tuning-log-root DIR] [--out bench/results/reference]

Each model is built with the tuning logs that apply: ``--tuning-log-root DIR`` uses DIR/<model>/ when it
exists (e.g. ``logs`` from ``lncompile tune``), otherwise the target's shipped logs. The "tuned" column says
how many of the model's kernels had a tuned schedule. Writes <out>.md (a markdown table) and <out>.png (medians
per model), both atomically. Medians on a machine shared with other work are noisy: compare the ratios, which
interleaving keeps fair, more than the absolute numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import traceback
from pathlib import Path

from lncompile.api import compile_imported
from lncompile.backend import tvm_api
from lncompile.bench_cmd import REFERENCE_MODELS, _export_onnx, _ort_runner, _torch_runner, percentiles, side_by_side
from lncompile.fileio import write_atomic, write_text_atomic
from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune import logdb

HEADER = ("| model | res | tuned kernels | tuning trials (min) | lncompile ms (p90) | torch ms (p90) | ORT ms (p90) "
          "| lncompile/torch | lncompile/ORT |\n|---|---|---|---|---|---|---|---|---|")


def bench_one(name: str, preset: object, repeat: int, threads: int, resolution: int | None,
              log_root: Path | None) -> dict:
    imported = import_model(name, resolution=resolution)
    log = log_root / name if log_root is not None and (log_root / name).is_dir() else None
    compiled = compile_imported(imported, preset, tuning_log=log)
    tuning = compiled.manifest.get("tuning") or {}
    x = imported.example[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"lncompile": lambda: compiled(x),
                "ort": _ort_runner(_export_onnx(imported.reference, x, Path(tmp)), x, threads),
                "torch": _torch_runner(imported.reference, x, threads)}
        times = side_by_side(runs, repeat)
    stats = {engine: percentiles(t) for engine, t in times.items()}
    tuned = f"{tuning.get('kernels_tuned', 0)}/{tuning['kernels']}" if tuning.get("kernels") else "0 (no log)"
    return {"model": name, "res": x.shape[-1], "tuned": tuned, "tuning": tuning_effort(tuning, name), **stats}


def tuning_effort(tuning: dict, name: str) -> str:
    """Trials and minutes spent on ``name`` in the applied logs (their manifests), e.g. ``1220 (36)``."""
    trials = seconds = 0.0
    for log in tuning.get("logs", []):
        manifest = logdb.read_manifest(Path(log["path"])) or {}
        for model in manifest.get("models", {}).values():
            if model.get("name") == name:
                trials += model.get("trials", 0)
                seconds += model.get("wall_seconds", 0)
    return f"{trials:.0f} ({seconds / 60:.0f})" if trials else "-"


def geomean_line(rows: list[dict]) -> str:
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return ""
    ratios = [r["lncompile"]["median"] / r["ort"]["median"] for r in ok]
    at_least_ort = sum(q <= 1 for q in ratios)
    return (f"\nGeometric mean lncompile/ORT over {len(ok)} models: {math.prod(ratios) ** (1 / len(ok)):.2f}x "
            f"(ORT/lncompile {math.prod(ratios) ** (-1 / len(ok)):.2f}x); at least as fast as ORT on {at_least_ort} "
            f"of {len(ok)}.\n")


def row(r: dict) -> str:
    if "error" in r:
        return f"| {r['model']} | | | | error: {r['error']} | | | | |"
    cell = {e: f"{r[e]['median']:.2f} ({r[e]['p90']:.2f})" for e in ("lncompile", "torch", "ort")}
    ratio = {e: r["lncompile"]["median"] / r[e]["median"] for e in ("torch", "ort")}
    return (f"| {r['model']} | {r['res']} | {r['tuned']} | {r['tuning']} | {cell['lncompile']} | {cell['torch']} "
            f"| {cell['ort']} "
            f"| {ratio['torch']:.2f}x | {ratio['ort']:.2f}x |")


def chart(rows: list[dict], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart (pip install 'lncompile[viz]')")
        return
    ok = [r for r in rows if "error" not in r]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(ok)), 4))
    width = 0.27
    for k, engine in enumerate(("lncompile", "torch", "ort")):
        ax.bar([i + (k - 1) * width for i in range(len(ok))], [r[engine]["median"] for r in ok], width, label=engine)
    ax.set_xticks(range(len(ok)), [r["model"] for r in ok], rotation=30, ha="right")
    ax.set_ylabel("median latency (ms)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="x86")
    parser.add_argument("--models", default=",".join(REFERENCE_MODELS))
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--resolution", type=int)
    parser.add_argument("--tuning-log-root", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/results/reference"))
    args = parser.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    tvm_api.set_runtime_threads(args.threads)
    preset = get_target(args.target)
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        try:
            rows.append(bench_one(name, preset, args.repeat, args.threads, args.resolution, args.tuning_log_root))
        except Exception as e:  # one broken model must not hide the others' numbers
            traceback.print_exc()
            rows.append({"model": name, "error": (str(e).strip().splitlines() or [type(e).__name__])[-1]})
        print(row(rows[-1]), flush=True)
    title = f"{args.target}, {args.threads} thread(s), {args.repeat} timed runs each, interleaved blocks"
    text = f"# Reference set: {title}\n\n{HEADER}\n" + "\n".join(row(r) for r in rows) + "\n" + geomean_line(rows)
    print(geomean_line(rows))
    write_text_atomic(args.out.with_suffix(".md"), text)
    chart(rows, args.out.with_suffix(".png"), title)
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
