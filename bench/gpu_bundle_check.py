"""Prove CUDA libraries run: build and bundle them here (no GPU needed), run the bundles on a GPU machine.

    python bench/gpu_bundle_check.py prepare --models mobilenet_v2,squeezenet1_1 --out .gpu   # here
    python3 bench/gpu_bundle_check.py run --dir .gpu --repeat 200 --json results.json        # on the GPU box

``prepare`` builds each zoo model for the ``cuda`` preset, bundles the first with ``lncompile package`` (runner,
TVM's C++ runtime, libtvm_runtime_cuda.so, run.sh) and puts the other libraries beside it, each with its
verification input and PyTorch's float32 CPU output. ``run`` needs numpy only, and torch for the eager
comparison: no TVM and no lncompile install. For each model it runs the library through the bundle's runner
(``--device cuda``, whole inferences synchronized), checks the output against the reference, and times PyTorch
eager on the same GPU in the same process, interleaved in rounds, reporting the median of the rounds' means.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

TIMING = re.compile(r"timing: runs=(\d+) mean_ms=([\d.]+) min_ms=([\d.]+) max_ms=([\d.]+)")


def prepare(models: list[str], out: Path) -> None:
    from lncompile.api import compile as compile_model
    from lncompile.bundle import package
    from lncompile.manifest import manifest_path, read_manifest
    from lncompile.reference import reference_outputs, verification_inputs

    shutil.rmtree(out, ignore_errors=True)
    libs = out / "libs"
    libs.mkdir(parents=True)
    for i, name in enumerate(models):
        library = compile_model(name, target="cuda").export(libs / f"{name}.so")
        manifest = read_manifest(library)
        inputs = verification_inputs(manifest)
        np.save(libs / f"{name}.input.npy", inputs[0])
        np.save(libs / f"{name}.reference.npy", reference_outputs(manifest, inputs)[0])
        if i == 0:  # the bundle holds this one's library: no second copy to carry
            package(library, out / "bundle")
            manifest_path(library).unlink()
            library.unlink()
        print(f"{name}: built", flush=True)
    # The runtime needs libcudart.so.13 of the toolkit TVM was built against; a GPU box may only have it
    # inside a Python package, so a copy rides along (used only where the system has none).
    for candidate in ("/usr/local/cuda/lib64/libcudart.so.13", "/usr/local/cuda-13.0/lib/libcudart.so.13"):
        if Path(candidate).is_file():
            (out / "fallback").mkdir(exist_ok=True)
            shutil.copy2(Path(candidate).resolve(), out / "fallback" / "libcudart.so.13")
            break


def _runner_ms(bundle: Path, library: Path, x: Path, y: Path, repeat: int) -> float:
    env = dict(os.environ)
    paths = [str(bundle), env.get("LD_LIBRARY_PATH", ""), str(bundle.parent / "fallback")]
    env["LD_LIBRARY_PATH"] = ":".join(p for p in paths if p)
    cmd = [str(bundle / "runner"), str(library), str(x), str(y), "--device", "cuda", "--repeat", str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"runner failed ({done.returncode}): {done.stderr.strip()}")
    match = TIMING.search(done.stdout)
    if match is None:
        raise RuntimeError(f"runner printed no timing: {done.stdout.strip()}")
    return float(match.group(2))


def _torch_eager(name: str, x: np.ndarray) -> Callable[[int], tuple[float, np.ndarray]] | None:
    """A timer of the zoo model in PyTorch eager on GPU 0 (built once per model), or None without torch/GPU."""
    try:
        import torch

        from lncompile import graphs
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    module = graphs.create(name).eval().cuda()
    xt = torch.from_numpy(x).cuda()

    def time_ms(repeat: int) -> tuple[float, np.ndarray]:
        with torch.no_grad():
            for _ in range(10):
                out = module(xt)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeat):
                module(xt)
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1e3 / repeat, out.float().cpu().numpy()

    return time_ms


def run(folder: Path, repeat: int, rounds: int) -> list[dict[str, object]]:
    bundle = folder / "bundle"
    y = folder / "out.npy"
    rows = []
    # The bundle's own entry point first: run.sh passes --device cuda itself.
    done = subprocess.run([str(bundle / "run.sh"), str(bundle / "input.npy"), str(y), "--repeat", "20"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "LD_LIBRARY_PATH": str(folder / "fallback")})
    print(f"run.sh: rc={done.returncode} {done.stdout.strip()} {done.stderr.strip()}", flush=True)
    bundled = json.loads((bundle / "model.json").read_text())["name"]
    libraries = {bundled: bundle / "model.so", **{p.stem: p for p in sorted((folder / "libs").glob("*.so"))}}
    for name, library in libraries.items():
        x_path = folder / "libs" / f"{name}.input.npy"
        reference = np.load(folder / "libs" / f"{name}.reference.npy", allow_pickle=False)
        x = np.load(x_path, allow_pickle=False)
        ours, theirs = [], []
        torch_out = None
        eager = _torch_eager(name, x)
        for _ in range(rounds):  # interleaved rounds: both see the same clocks and neighbours
            ours.append(_runner_ms(bundle, library, x_path, y, repeat))
            if eager is not None:
                ms, torch_out = eager(repeat)
                theirs.append(ms)
        out = np.load(y, allow_pickle=False)
        scale = float(np.abs(reference).max()) or 1.0
        row: dict[str, object] = {
            "model": name, "lncompile_ms": float(np.median(ours)),
            "max_rel_error_vs_cpu_reference": float(np.abs(out - reference).max() / scale),
            "argmax_matches": bool(out.argmax() == reference.argmax()),
        }
        if theirs:
            row["torch_eager_ms"] = float(np.median(theirs))
            row["lncompile_over_torch"] = row["lncompile_ms"] / row["torch_eager_ms"]
            row["torch_gpu_max_rel_error_vs_cpu_reference"] = float(np.abs(torch_out - reference).max() / scale)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--models", default="mobilenet_v2,squeezenet1_1")
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    r = sub.add_parser("run")
    r.add_argument("--dir", type=Path, default=Path(".gpu"))
    r.add_argument("--repeat", type=int, default=200)
    r.add_argument("--rounds", type=int, default=5)
    r.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare([m.strip() for m in args.models.split(",") if m.strip()], args.out)
        return
    rows = run(args.dir, args.repeat, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    sys.exit(0 if rows and all(r["max_rel_error_vs_cpu_reference"] < 1e-3 for r in rows) else 1)


if __name__ == "__main__":
    main()
