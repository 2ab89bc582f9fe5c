"""Two builds of the same models side by side, with ONNX Runtime: did a change (a pass, a log, a preset) help?

    python bench/ab_builds.py DIR_A DIR_B [--models a,b] [--target x86] [--repeat 60] [--threads 2] [--out FILE]

DIR_A and DIR_B hold libraries built with ``lncompile build MODEL -o DIR`` (``<model>-<target>.so``), e.g.
one by the commit before a change and one after it, or with two preset files. Per model, the two libraries
and ORT (ORT_ENABLE_ALL, the same threads) run in one process, interleaved in blocks (see
lncompile/bench_cmd.py ``interleaved``), so load from other processes hits all three alike: on a shared
machine the ratios B/A and each/ORT are what to compare, the medians drift from one run to the next. Also
prints B's output distance from A's (relative to A's largest value). Writes a markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import lncompile
from lncompile.bench_cmd import REFERENCE_MODELS, _export_onnx, _ort_runner, interleaved, percentiles
from lncompile.fileio import write_text_atomic
from lncompile.frontend import import_model

HEADER = ("| model | A ms | B ms | ORT ms | B/A | A/ORT | B/ORT | B vs A output |\n"
          "|---|---|---|---|---|---|---|---|")


def compare(name: str, a: Path, b: Path, target: str, repeat: int, threads: int) -> dict[str, float]:
    imported = import_model(name)
    shape = imported.graph.record(imported.graph.input_names[0]).type.shape
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    lib_a, lib_b = (lncompile.load(d / f"{name}-{target}.so") for d in (a, b))
    out_a = lib_a(x)
    distance = float(np.abs(lib_b(x) - out_a).max() / np.abs(out_a).max())
    with tempfile.TemporaryDirectory() as tmp:
        ort = _ort_runner(_export_onnx(imported.reference, x, Path(tmp)), x, threads)
        times = interleaved({"a": lambda: lib_a(x), "b": lambda: lib_b(x), "ort": ort}, repeat)
    return {**{k: percentiles(v)["median"] for k, v in times.items()}, "distance": distance}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--models", default=",".join(REFERENCE_MODELS))
    parser.add_argument("--target", default="x86")
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    lines, ratios = [HEADER], []
    print(HEADER, flush=True)
    for name in args.models.split(","):
        m = compare(name, args.a, args.b, args.target, args.repeat, args.threads)
        ratios.append((m["a"] / m["ort"], m["b"] / m["ort"]))
        lines.append(f"| {name} | {m['a']:.2f} | {m['b']:.2f} | {m['ort']:.2f} | {m['b'] / m['a']:.2f}x | "
                     f"{m['a'] / m['ort']:.2f}x | {m['b'] / m['ort']:.2f}x | {m['distance']:.1e} |")
        print(lines[-1], flush=True)
    geomean = np.exp(np.log(np.array(ratios)).mean(axis=0))
    lines.append(f"\nGeometric mean vs ORT over {len(ratios)} models: A {geomean[0]:.2f}x, B {geomean[1]:.2f}x.")
    print(lines[-1])
    if args.out:
        write_text_atomic(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
