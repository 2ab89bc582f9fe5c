"""Whole-zoo check: every model at its paper resolution traces to the IR, compiles for a target and matches
PyTorch; params and MACs (counted on the IR) next to the published figures.

    python bench/zoo_compile.py [--target x86] [--models a,b] [--out bench/results/zoo_compile.md]

Prints a markdown table as it goes and writes it (atomically) to --out.
"""

from __future__ import annotations

import argparse
import copy
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from lncompile import graphs
from lncompile.analysis.profile import profile
from lncompile.api import compile_imported
from lncompile.fileio import write_text_atomic
from lncompile.frontend import import_model

HEADER = ("| model | res | params (IR) | published | Δ | MACs (IR) | published | Δ | build s | err vs torch | "
          "err vs fp64 (torch fp32's) | status |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def _delta(ours: float, published: float | None) -> str:
    return "–" if not published else f"{(ours / published - 1) * 100:+.1f}%"


def _rel(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual.astype(np.float64) - expected).max() / np.abs(expected).max())


def check(name: str, target: str) -> str:
    spec = graphs.spec(name)
    pub = spec.published
    try:
        imported = import_model(name)
        counts = profile(imported.graph)
        started = time.perf_counter()
        compiled = compile_imported(imported, target)
        seconds = time.perf_counter() - started
        x = imported.example[0]
        with torch.no_grad():
            expected = imported.reference(torch.from_numpy(x)).numpy()
            exact = copy.deepcopy(imported.reference).double()(torch.from_numpy(x).double()).numpy()
        ours = compiled(x)
        error = _rel(ours, expected)
        error64, torch64 = _rel(ours, exact), _rel(expected, exact)
        # As in tests/zoo/test_zoo_compiles.py: 1e-4 of PyTorch, or as close to float64 as PyTorch's float32 is.
        status = "OK" if error <= 1e-4 or error64 <= 2 * torch64 else "MISMATCH"
        pub_params = pub.params if pub and pub.params else None
        pub_macs = pub.macs if pub and pub.macs else None
        return (f"| {name} | {spec.resolution} | {counts.params / 1e6:.3f} M | {(pub_params or 0) / 1e6:.3f} M | "
                f"{_delta(counts.params, pub_params)} | {counts.macs / 1e6:.1f} M | {(pub_macs or 0) / 1e6:.1f} M | "
                f"{_delta(counts.macs, pub_macs)} | {seconds:.1f} | {error:.1e} | "
                f"{error64:.1e} ({torch64:.1e}) | {status} |")
    except Exception as e:  # the table records failures instead of stopping the sweep
        traceback.print_exc()
        return f"| {name} | {spec.resolution} | | | | | | | | | | ERROR: {str(e).splitlines()[0][:80]} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="x86")
    parser.add_argument("--models", help="comma-separated subset (default: the whole zoo)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/zoo_compile.md"))
    args = parser.parse_args()
    names = args.models.split(",") if args.models else graphs.names()
    rows = [HEADER]
    print(HEADER, flush=True)
    for name in names:
        rows.append(check(name, args.target))
        print(rows[-1], flush=True)
        write_text_atomic(args.out, "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
