"""Whole-zoo check of the graph passes: every model at its default resolution, optimized IR vs unoptimized IR
with the reference interpreter (no TVM), plus how much the pipeline shrank it.

    python bench/passes_zoo.py [--models a,b] [--target x86] [--out bench/results/passes_zoo.md]

Columns: nodes before/after (ops, constants excluded), batch_norm ops left, max relative error
(max |optimized - unoptimized| / max |unoptimized|, float32, same random input). Prints a markdown table as it
goes and writes it (atomically) to --out when given.
"""

from __future__ import annotations

import argparse
import time
import traceback

import numpy as np
import torch

from lncompile import graphs
from lncompile.fileio import write_text_atomic
from lncompile.frontend import example_input, import_model
from lncompile.ir import run_graph
from lncompile.ir.precision import as_float64
from lncompile.passes.base import node_count
from lncompile.passes.pipeline import optimize
from lncompile.targets import get as get_target

HEADER = ("| model | res | nodes before | nodes after | batch_norm left | fused nodes | max rel err float64 | "
          "max rel err float32 | passes s |\n|---|---|---|---|---|---|---|---|---|")
FUSED = ("fused_conv2d", "fused_linear", "squeeze_excite", "channel_affine")


def _max_rel(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    return max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)) for a, b in zip(got, expected, strict=True))


def check(name: str, preset: object) -> str:
    spec = graphs.spec(name)
    try:
        graph = import_model(name).graph
        started = time.perf_counter()
        optimized = optimize(graph, preset).graph
        seconds = time.perf_counter() - started
        xs = [example_input(graph.record(n).type.shape) for n in graph.input_names]
        error = _max_rel(run_graph(optimized, *xs), run_graph(graph, *xs))
        # The passes' algebra is exact: in float64 the graphs must agree to round-off (~1e-13).
        wide = optimize(as_float64(graph), preset).graph
        xs64 = [x.astype(np.float64) for x in xs]
        error64 = _max_rel(run_graph(wide, *xs64), run_graph(as_float64(graph), *xs64))
        counts = optimized.op_counts()
        fused = sum(counts.get(op, 0) for op in FUSED)
        return (f"| {name} | {spec.resolution} | {node_count(graph)} | {node_count(optimized)} | "
                f"{counts.get('batch_norm', 0)} | {fused} | {error64:.1e} | {error:.1e} | {seconds:.2f} |")
    except Exception as e:  # the table records failures instead of stopping the sweep
        traceback.print_exc()
        return f"| {name} | {spec.resolution} | | | | | | ERROR: {str(e).splitlines()[0][:80]} | |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="x86", help="preset whose pass rules apply")
    parser.add_argument("--models", help="comma-separated subset (default: the whole zoo)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = get_target(args.target)
    names = args.models.split(",") if args.models else graphs.names()
    rows = [HEADER]
    print(HEADER, flush=True)
    for name in names:
        rows.append(check(name, preset))
        print(rows[-1], flush=True)
    if args.out:
        write_text_atomic(args.out, "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
