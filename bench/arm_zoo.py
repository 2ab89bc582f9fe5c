"""Zoo on ARM, emulated: build every zoo model for an aarch64 target, run it with the C++ runner under
qemu-aarch64, compare with PyTorch.

    python bench/arm_zoo.py [--target arm] [--models a,b] [--repeat 3] [--threads 1] [--no-run]
                            [--out bench/results/arm_zoo.md]

--no-run builds only (and checks the library is an ELF aarch64 object): emulating the whole zoo costs hours.

Columns: build s (compile + cross-link export), .so MB, emulated ms/run (mean of --repeat runs after a warm-up,
timed inside the runner), qemu s (one whole runner process: start, load, warm-up, timed runs), max rel err
(max |out - ref| / max |ref|). Emulated times measure qemu on this machine, not a board: use them to compare
models with each other, never as board latency.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from lncompile import arm, graphs
from lncompile.api import compile_imported
from lncompile.fileio import write_text_atomic
from lncompile.frontend import import_model
from lncompile.reference import relative_error
from lncompile.runtime import elf_arch

HEADER = ("| model | target | res | build s | .so MB | emulated ms/run | qemu s | max rel err | status |\n"
          "|---|---|---|---|---|---|---|---|---|")


def check(name: str, target: str, resolution: int | None, repeat: int, threads: int, work: Path,
          emulate: bool = True) -> str:
    res = resolution or graphs.spec(name).resolution
    try:
        imported = import_model(name, resolution=resolution)
        started = time.perf_counter()
        compiled = compile_imported(imported, target)
        library = compiled.export(work / f"{name}-{target}.so")
        build_s = time.perf_counter() - started
        mb = library.stat().st_size / 1e6
        if not emulate:
            machine = elf_arch(library)
            library.unlink()
            status = "BUILT" if machine == "aarch64" else f"WRONG ARCH {machine}"
            return f"| {name} | {target} | {res} | {build_s:.1f} | {mb:.1f} | | | | {status} |"
        x = imported.example[0]
        with torch.no_grad():
            expected = imported.reference(torch.from_numpy(x)).numpy()
        started = time.perf_counter()
        outputs, timing = arm.run_library(library, [x], repeat=repeat, threads=threads)
        qemu_s = time.perf_counter() - started
        error = relative_error(outputs[0], expected)
        status = "OK" if error <= 1e-4 else "MISMATCH"
        library.unlink()
        ms = timing["mean_ms"] if timing else float("nan")
        return (f"| {name} | {target} | {res} | {build_s:.1f} | {mb:.1f} | {ms:.0f} | {qemu_s:.1f} | {error:.1e} | "
                f"{status} |")
    except Exception as e:  # the table records failures instead of stopping the sweep
        traceback.print_exc()
        return f"| {name} | {target} | {res} | | | | | | ERROR: {str(e).splitlines()[0][:80]} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="arm", help="an aarch64 preset: arm, rpi4, rpi5")
    parser.add_argument("--models", help="comma-separated subset (default: the whole zoo)")
    parser.add_argument("--resolution", type=int, help="override every model's default resolution")
    parser.add_argument("--repeat", type=int, default=3, help="timed emulated runs per model")
    parser.add_argument("--threads", type=int, default=1, help="TVM_NUM_THREADS for the runner (qemu)")
    parser.add_argument("--no-run", action="store_true", help="build only; do not emulate")
    parser.add_argument("--out", type=Path, default=Path("bench/results/arm_zoo.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    np.random.seed(0)
    names = args.models.split(",") if args.models else graphs.names()
    rows = [HEADER]
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="arm_zoo-") as work:
        for name in names:
            rows.append(check(name, args.target, args.resolution, args.repeat, args.threads, Path(work),
                              emulate=not args.no_run))
            print(rows[-1], flush=True)
            write_text_atomic(args.out, "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
