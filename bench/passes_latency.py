"""Untuned x86 latency (no tuning log, not even a shipped one), lncompile's graph passes off vs on, side by side.

    python bench/passes_latency.py [--models mobilenet_v2,shufflenet_v2,ghostnet,mixnet_s] [--rounds 20]
                                   [--number 3] [--resolution R]

Both builds of a model are made first; then rounds alternate off/on (interleaved, so machine load hits both
alike) and each round takes TVM's own timer (``time_evaluator``, ``number`` runs averaged). Reports the median
per build and the ratio off/on (> 1: passes made it faster). Models not in the zoo are skipped with a message.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from lncompile import graphs
from lncompile.api import compile_imported
from lncompile.backend import tvm_api
from lncompile.frontend import example_input, import_model

DEFAULT_MODELS = "mobilenet_v2,shufflenet_v2,ghostnet,mixnet_s"


def bench(name: str, target: str, rounds: int, number: int, resolution: int | None) -> str | None:
    if name not in graphs.names():
        print(f"skipping {name}: not in the zoo yet")
        return None
    imported = import_model(name, resolution=resolution)
    builds = {flag: compile_imported(imported, target, passes=flag, tuning_log=False) for flag in (False, True)}
    x = example_input(tuple(builds[False].inputs[0]["shape"]))
    ref = builds[False](x)
    error = float(np.abs(builds[True](x) - ref).max() / np.abs(ref).max())
    timers = {flag: m.time_evaluator(number=number, repeat=1) for flag, m in builds.items()}
    arg = tvm_api.tensor(x, tvm_api.cpu_device())
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for flag in (False, True):  # interleaved
            times[flag].append(timers[flag](arg).mean * 1e3)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    nodes = {flag: sum(builds[flag].graph.op_counts().values()) for flag in builds}
    return (f"| {name} | {x.shape[-1]} | {nodes[False]} | "
            f"{nodes[True]} | {off:.2f} | {on:.2f} | {off / on:.2f}x | {error:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--target", default="x86")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--number", type=int, default=3, help="runs averaged per timing")
    parser.add_argument("--resolution", type=int, help="override every model's resolution")
    args = parser.parse_args()
    print("| model | res | ops off | ops on | passes off ms | passes on ms | off/on | max rel err on vs off |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.models.split(","):
        row = bench(name, args.target, args.rounds, args.number, args.resolution)
        if row:
            print(row, flush=True)


if __name__ == "__main__":
    main()
