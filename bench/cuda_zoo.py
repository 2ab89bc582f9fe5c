"""Every zoo model built for CUDA on this machine (no GPU needed): build time, library size, OK or the error.

    python bench/cuda_zoo.py [--target cuda] [--arch sm_90] [--models a,b] [--resolution R]
                             [--out bench/results/cuda_zoo.md]

"build s" is import + graph passes + TVM's CUDA pipeline (DLight schedules); "export s" is nvcc compiling the
kernels to a fatbin plus linking the .so. A row is OK when the library was written, is an ELF for the
preset's CPU and embeds PTX for the chosen architecture. Prints a markdown table as it goes and writes it
(atomically) to --out.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from pathlib import Path

from lncompile import graphs, targets
from lncompile.api import compile_imported
from lncompile.fileio import write_text_atomic
from lncompile.frontend import import_model
from lncompile.runtime import elf_arch

HEADER = "| model | res | build s | export s | .so MB | status |\n|---|---|---|---|---|---|"


def check(name: str, preset: targets.TargetPreset, resolution: int | None, out_dir: Path) -> str:
    res = resolution or graphs.spec(name).resolution
    try:
        started = time.perf_counter()
        imported = import_model(name, resolution=resolution)
        compiled = compile_imported(imported, preset)
        built = time.perf_counter()
        library = compiled.export(out_dir / f"{name}.so")
        exported = time.perf_counter()
        data = library.read_bytes()
        arch = preset.tvm_target["arch"]
        problems = [p for p, bad in ((f"not an {preset.arch} ELF", elf_arch(library) != preset.arch),
                                     (f"no PTX for {arch}", f".target {arch}".encode() not in data)) if bad]
        status = "OK" if not problems else "BAD: " + ", ".join(problems)
        row = (f"| {name} | {res} | {built - started:.1f} | {exported - built:.1f} | {len(data) / 1e6:.1f} | "
               f"{status} |")
        library.unlink()
        return row
    except Exception as e:  # the table records failures instead of stopping the sweep
        traceback.print_exc()
        return f"| {name} | {res} | | | | ERROR: {str(e).strip().splitlines()[0][:100]} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="cuda", help="a CUDA preset (cuda, jetson-orin) or preset .json")
    parser.add_argument("--arch", help="GPU architecture, e.g. sm_87 (default: the preset's)")
    parser.add_argument("--models", help="comma-separated subset (default: the whole zoo)")
    parser.add_argument("--resolution", type=int, help="input resolution (default: each model's paper value)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/cuda_zoo.md"))
    args = parser.parse_args()
    preset = targets.get(args.target)
    preset = preset.with_arch(args.arch) if args.arch else preset
    names = args.models.split(",") if args.models else graphs.names()
    title = f"CUDA builds for {preset.name} ({preset.tvm_target['arch']})"
    rows = [title, "", HEADER]
    print("\n".join(rows), flush=True)
    with tempfile.TemporaryDirectory(prefix="cuda_zoo.") as tmp:
        for name in names:
            rows.append(check(name, preset, args.resolution, Path(tmp)))
            print(rows[-1], flush=True)
            write_text_atomic(args.out, "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
