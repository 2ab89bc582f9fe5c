"""Where a tuned model loses to ONNX Runtime: each kernel's tuned time next to ORT's time for the same layer.

    python bench/layers_vs_ort.py mobilenet_v2 [--threads 1] [--runs 200] [--top 8] [--log DIR]

lncompile's side: the kernels ``main`` calls, in order, each with the best time its tuning log measured for it
(MetaSchedule's runner: the kernel alone, warm caches, the log's thread count). ORT's side: ORT_ENABLE_ALL with
its profiler on, each node's mean kernel time over ``--runs`` inferences. Convolutions are paired in execution
order by size: among the next few unpaired ORT convs (parallel branches may run in another order), the one with
as many output elements (up to channel padding) and the closest parameter count. The other kernels are summed.
The table ends with the layers where lncompile loses the most time.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np

from lncompile.backend import tvm_api
from lncompile.bench_cmd import _export_onnx
from lncompile.frontend import ImportedModel, import_model
from lncompile.targets import get as get_target
from lncompile.tune import logdb
from lncompile.tune.apply import shipped_dir
from lncompile.tune.tasks import prepare

ORT_CONVS = {"Conv", "FusedConv", "NhwcFusedConv", "NhwcConv"}


WINDOW = 4  # how far ahead in ORT's order a conv's partner may be


def tuned_kernel_ms(imported: ImportedModel, preset: object,
                    log_dir: Path) -> list[tuple[str, float | None, int, int]]:
    """(kernel, best tuned ms or None, output elements, weight elements) per kernel call of the model's main."""
    problem = prepare(imported.name, imported.graph, preset)
    db = tvm_api.memory_database()
    logdb.load_into(db, [log_dir], tvm_api.kernel_workload_hashes(problem.fused, problem.target))
    by_kernel = {}
    for task in problem.tasks:
        seconds, _ = tvm_api.best_record_seconds(db, tvm_api.task_workload_module(task))
        by_kernel[str(task.task_name)] = None if seconds is None else seconds * 1e3
    return [(kernel, by_kernel.get(kernel), out, weights)
            for kernel, out, weights in tvm_api.kernel_call_order(problem.fused)]


def ort_node_ms(onnx_path: Path, x: np.ndarray, threads: int,
                runs: int) -> list[tuple[str, str, float, int, int]]:
    """(node name, op type, mean kernel ms, output elements, parameter elements) per ORT node, in the order of one
    inference."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        for _ in range(10):  # warm-up: not in the averages below (first runs allocate)
            session.run(None, feed)
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    kernel_events = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    durations: dict[str, list[float]] = collections.defaultdict(list)
    op_types: dict[str, str] = {}
    outputs: dict[str, int] = {}
    parameters: dict[str, int] = {}
    for event in kernel_events:
        node = event["name"].removesuffix("_kernel_time")
        durations[node].append(event["dur"] / 1e3)
        op_types[node] = event.get("args", {}).get("op_name", "?")
        outputs[node] = int(event.get("args", {}).get("output_size", 0)) // 4  # bytes of float32
        parameters[node] = int(event.get("args", {}).get("parameter_size", 0)) // 4
    warm = {node: ms[10:] or ms for node, ms in durations.items()}  # the profiler also saw the warm-up runs
    return [(node, op_types[node], float(np.mean(warm[node])), outputs[node], parameters[node]) for node in durations]


def pair_convs(ours: list[tuple[str, float | None, int, int]],
               theirs: list[tuple[str, str, float, int, int]]) -> list[tuple[int, str, float | None, str, float]]:
    """(index, our kernel, our ms, ORT node, ORT ms) for each of our convs that found a partner."""
    unpaired = list(theirs)
    pairs = []
    for i, (kernel, ms, elements, weights) in enumerate(ours):
        # blocked layouts (NCHW8c/16c) pad channels: 1000 classes are 1008 in ORT's output
        candidates = [t for t in unpaired[:WINDOW] if abs(t[3] - elements) <= 0.02 * elements]
        # closest parameter count by ratio: ORT pads blocked weights, and a Winograd kernel's transformed
        # weights are (m + 2)^2 / 9 times the conv's
        match = min(candidates, key=lambda t: abs(np.log(max(t[4], 1) / max(weights, 1))), default=None)
        if match is not None:
            unpaired.remove(match)
            pairs.append((i, kernel, ms, f"{match[0]} {match[1]}", match[2]))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--target", default="x86")
    parser.add_argument("--threads", type=int, default=1, help="ORT threads (match the log's measurement)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--log", type=Path, help="tuning log (default: the shipped one of the model)")
    args = parser.parse_args()
    preset = get_target(args.target)
    log_dir = args.log or shipped_dir() / preset.name / args.model
    imported = import_model(args.model)
    ours = tuned_kernel_ms(imported, preset, log_dir)
    x = imported.example[0]
    with tempfile.TemporaryDirectory() as tmp:
        theirs = ort_node_ms(_export_onnx(imported.reference, x, Path(tmp)), x, args.threads, args.runs)

    our_convs = [row for row in ours if row[0].startswith(("fused_conv2d", "conv2d")) or "winograd" in row[0]]
    their_convs = [row for row in theirs if row[1] in ORT_CONVS]
    print(f"{args.model}: {len(ours)} lncompile kernels ({len(our_convs)} convs), "
          f"{len(theirs)} ORT nodes ({len(their_convs)} convs); log {log_dir}, ORT {args.threads} thread(s)")
    pairs = pair_convs(our_convs, their_convs)
    print(f"{'#':>3} {'lncompile kernel':<44} {'ms':>7}   {'ORT node':<36} {'ms':>7}  ratio")
    for i, k, ms, node, their in pairs:
        shown = f"{ms:7.3f}" if ms is not None else "untuned"
        ratio = f"{ms / their:5.2f}x" if ms is not None and their > 0 else ""
        print(f"{i:>3} {k[:44]:<44} {shown}   {node[-36:]:<36} {their:7.3f}  {ratio}")
    print(f"paired {len(pairs)} of {len(our_convs)} convs")
    known = [row[1] for row in ours if row[1] is not None]
    print(f"sum: lncompile kernels {sum(known):.3f} ms ({len(known)}/{len(ours)} tuned), ORT nodes "
          f"{sum(row[2] for row in theirs):.3f} ms; convs {sum(r[1] for r in our_convs if r[1] is not None):.3f} "
          f"vs {sum(row[2] for row in their_convs):.3f} ms")
    losses = sorted(((ms - their, i, k, ms, their) for i, k, ms, _, their in pairs if ms is not None),
                    reverse=True)[: args.top]
    if losses:
        print("layers losing the most time (lncompile - ORT): " + ", ".join(
            f"#{i} {k} +{d:.3f} ms ({ms:.3f} vs {their:.3f})" for d, i, k, ms, their in losses if d > 0))


if __name__ == "__main__":
    main()
