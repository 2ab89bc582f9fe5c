"""``lncompile bench``: lncompile's latency next to PyTorch eager and ONNX Runtime, measured fairly.

Fair means: one process, the same input, the same thread count for all three (TVM's pool, torch's intra-op
pool, ORT's intra-op pool), and interleaved rounds (each round runs every engine for a block of calls, in a
rotating order) so that load from other processes and CPU frequency changes hit all engines alike; untimed
settle runs at the start of each block keep one engine's spinning worker threads from being billed to the
next (see :func:`interleaved`). PyTorch runs in rounds of its own after the others (see :func:`side_by_side`).
Latency is wall time of one Python call per inference, including the conversion to and from numpy, for every
engine.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from .errors import LncompileError, UsageError

ENGINES = ("lncompile", "torch", "ort")
# The reference set of issue #6: the models with shipped x86 tuning logs, benchmarked against ONNX Runtime.
REFERENCE_MODELS = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2",
                    "ghostnet", "mnasnet_a1", "squeezenet1_1")


def percentiles(samples_s: list[float]) -> dict[str, float]:
    a = np.asarray(samples_s) * 1e3
    return {"median": round(float(np.median(a)), 4), "p90": round(float(np.percentile(a, 90)), 4)}


def interleaved(runs: dict[str, Callable[[], Any]], repeat: int, warmup: int = 3, block: int = 10,
                settle: int = 3) -> dict[str, list[float]]:
    """Per engine, ``repeat`` wall times (s), taken in rounds of blocks: in round r every engine, starting at
    engine r mod n, runs ``settle`` times untimed, then up to ``block`` timed runs back to back.

    Rounds make load from other processes and CPU clock changes hit every engine alike. Blocks, not single
    alternating calls, because every engine keeps its worker threads spinning for a while after an inference:
    on 2 cores, a call timed right after another engine's shares the cores with that engine's spinning pool
    (alternating single calls measured TVM 1.3x slower on mobilenet_v3_small than TVM alone, ORT 1.0x). A
    deployed model runs alone, which is what a block measures once its settle runs have let the previous
    engine's threads go to sleep.
    """
    names = list(runs)
    for name in names:
        for _ in range(warmup):
            runs[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(-(-repeat // block)):
        count = min(block, repeat - r * block)
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            for _ in range(settle):
                runs[name]()
            for _ in range(count):
                started = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - started)
    return times


def side_by_side(runs: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """``interleaved`` for every engine but torch, then torch in rounds of its own.

    Torch's OpenMP pool keeps the cores busy after an inference long enough that, interleaved on 2 cores, ORT
    and TVM both measured 1.3-1.6x slower at 2 threads, which made neither ratio honest.
    """
    times = interleaved({name: run for name, run in runs.items() if name != "torch"}, repeat)
    if "torch" in runs:
        times.update(interleaved({"torch": runs["torch"]}, repeat))
    return times


def _torch_runner(module: Any, x: np.ndarray, threads: int) -> Callable[[], Any]:
    import torch

    torch.set_num_threads(threads)
    module = module.eval()

    def run() -> Any:
        with torch.no_grad():
            return module(torch.from_numpy(x))

    return run


def _ort_runner(onnx_path: Path, x: np.ndarray, threads: int) -> Callable[[], Any]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError("--compare ort needs onnxruntime: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def _export_onnx(module: Any, x: np.ndarray, directory: Path) -> Path:
    import torch

    path = directory / "model.onnx"
    torch.onnx.export(module.eval(), (torch.from_numpy(x),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"])
    return path


def _reference_from_manifest(manifest: dict[str, Any]) -> Any:
    """The torch module (zoo) or ONNX path a library was built from, or None if it cannot be rebuilt here."""
    source = manifest.get("source") or {}
    if source.get("kind") == "zoo":
        from . import graphs

        return graphs.create(source["name"], resolution=source.get("resolution"), **source.get("knobs", {}))
    if source.get("kind") == "onnx" and source.get("path") and Path(source["path"]).is_file():
        return Path(source["path"])
    return None


def plot_curve(points: list[tuple[int, float]], path: Path, title: str) -> Path:
    """Best estimated latency against trials, as a PNG written atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'lncompile[viz]'") from None
    from .fileio import write_atomic

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], drawstyle="steps-post")
    ax.set_xlabel("trials")
    ax.set_ylabel("estimated kernel time (ms)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path


def _remote_bench(library: Path, rpc: str, key: str | None, repeat: int, number: int) -> dict[str, float]:
    if not key:
        raise UsageError("--rpc needs --key (the device key the RPC servers registered with)")
    try:
        from .remote import benchmark_remote
    except ImportError:
        raise LncompileError("remote benchmarks need lncompile.remote, which this installation lacks") from None
    return benchmark_remote(library, rpc, key, repeat, number)


def make_command(context: dict[str, Any], model_options: Any, import_model: Any) -> click.Command:
    """The ``bench`` command, given the main CLI's context settings, model options and importer."""

    @click.command("bench", context_settings=context)
    @click.argument("model")
    @click.option("--target", "-t", default="x86", show_default=True, help="Target preset (when MODEL is built).")
    @click.option("--compare", default="torch,ort", show_default=True,
                  help="Engines to measure beside lncompile: torch, ort (comma-separated; '' for none).")
    @click.option("--repeat", type=int, default=50, show_default=True, help="Timed rounds (one run per engine).")
    @click.option("--number", type=int, default=1, show_default=True, help="Runs per timing (--rpc only).")
    @click.option("--threads", type=int, help="Threads for every engine (default: all cores).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
                  help="Write the tuning curve (best latency vs trials) of the tuning log to this PNG.")
    @click.option("--tuning-log", type=click.Path(file_okay=False, path_type=Path),
                  help="Apply this tuning log when building MODEL (and plot it with --plot).")
    @click.option("--no-tuning-log", is_flag=True, help="Build MODEL without any tuning log.")
    @click.option("--no-passes", is_flag=True, help="Build MODEL without lncompile's graph passes.")
    @click.option("--rpc", metavar="HOST:PORT", help="Measure lncompile on a remote board through this tracker.")
    @click.option("--key", help="Device key for --rpc.")
    @model_options
    def bench(model: str, target: str, compare: str, repeat: int, number: int, threads: int | None, as_json: bool,
              plot: Path | None, tuning_log: Path | None, no_tuning_log: bool, no_passes: bool, rpc: str | None,
              key: str | None, **model_opts: Any) -> None:
        """Latency (median, p90) of MODEL (a zoo name, an .onnx file or a built .so) next to torch and ORT."""
        threads = threads or os.cpu_count() or 1
        os.environ["TVM_NUM_THREADS"] = str(threads)  # read when TVM's pool starts; set again below
        if repeat < 1:
            raise UsageError("--repeat must be at least 1")
        wanted = [e.strip() for e in compare.split(",") if e.strip()]
        unknown = sorted(set(wanted) - {"torch", "ort"})
        if unknown:
            raise UsageError(f"unknown --compare engine(s) {', '.join(unknown)}; choose from torch, ort")
        from .backend import tvm_api
        from .targets import get as get_target

        tvm_api.set_runtime_threads(threads)
        preset = get_target(target)
        compiled, reference, x = None, None, None
        with tempfile.TemporaryDirectory(prefix="lncompile-bench-") as tmp:
            if model.endswith(".so"):
                library = Path(model)
                if rpc is None:
                    from .runtime import load

                    compiled = load(library)
                    reference = _reference_from_manifest(compiled.manifest)
                name = compiled.manifest["name"] if compiled is not None else library.stem
            else:
                from .api import compile_imported
                from .tune.report import describe_tuning

                imported = import_model(model, **model_opts)
                name, reference, x = imported.name, imported.reference, imported.example[0]
                compiled = compile_imported(imported, preset, passes=not no_passes,
                                            tuning_log=False if no_tuning_log else tuning_log)
                for line in describe_tuning(compiled.manifest.get("tuning")):
                    click.echo(line, err=True)
                library = compiled.export(Path(tmp) / f"{name}-{preset.name}.so") if rpc else None
            built_for = compiled.manifest["target"]["preset"] if compiled is not None else preset.name
            result: dict[str, Any] = {"model": name, "target": built_for, "threads": threads}
            if rpc is not None:
                assert library is not None
                result["latency_ms"] = {"lncompile": _remote_bench(library, rpc, key, repeat, number)}
                result["remote"] = {"tracker": rpc, "key": key}
            else:
                assert compiled is not None
                if x is None:
                    from .frontend import example_input

                    x = example_input(tuple(compiled.inputs[0]["shape"]))
                runs: dict[str, Callable[[], Any]] = {"lncompile": lambda: compiled(x)}
                missing = []
                for engine in wanted:
                    if engine == "torch":
                        if hasattr(reference, "forward"):
                            runs["torch"] = _torch_runner(reference, x, threads)
                        else:
                            missing.append("torch (no PyTorch module for this model)")
                    elif engine == "ort":
                        onnx_path = reference if isinstance(reference, Path) else None
                        if onnx_path is None and hasattr(reference, "forward"):
                            onnx_path = _export_onnx(reference, x, Path(tmp))
                        if onnx_path is None:
                            missing.append("ort (no ONNX model for this model)")
                        else:
                            runs["ort"] = _ort_runner(onnx_path, x, threads)
                times = side_by_side(runs, repeat)
                result["latency_ms"] = {engine: percentiles(t) for engine, t in times.items()}
                result["repeat"] = repeat
                if missing:
                    result["not_measured"] = missing
                ours = result["latency_ms"]["lncompile"]["median"]
                result["ratios"] = {f"lncompile/{e}": round(ours / v["median"], 4)
                                    for e, v in result["latency_ms"].items() if e != "lncompile" and v["median"] > 0}
        if plot is not None:
            from .tune.cli import default_log_dir
            from .tune.curve import tuning_curve

            log_dir = tuning_log or default_log_dir(name, result["target"])
            points = tuning_curve(log_dir) if log_dir.is_dir() else []
            if not points:
                raise UsageError(f"no tuning curve in {log_dir} (needs a `lncompile tune` log with every task "
                                 f"measured); pass --tuning-log DIR")
            plot_curve(points, plot, f"{name} on {preset.name}: tuning curve")
            result["plot"] = str(plot)
        if as_json:
            click.echo(json.dumps(result, indent=2))
            return
        click.echo(f"{result['model']} on {result['target']}, {threads} thread(s), "
                   f"{repeat} timed runs each in interleaved blocks (torch in rounds of its own):")
        for engine, stats in result["latency_ms"].items():
            ratio = result.get("ratios", {}).get(f"lncompile/{engine}")
            extra = f"   lncompile/{engine} = {ratio:.2f}x" if ratio else ""
            click.echo(f"  {engine:<10} median {stats['median']:9.3f} ms   p90 {stats['p90']:9.3f} ms{extra}")
        for item in result.get("not_measured", []):
            click.echo(f"  not measured: {item}")
        if plot is not None:
            click.echo(f"tuning curve -> {plot}")

    return bench
