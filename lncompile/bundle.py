"""`lncompile package`: everything a board needs to run a library, with no Python and no TVM install.

The bundle is one folder (``<stem>/`` inside a ``.tar.gz``, or a directory)::

    model.so  model.json  libtvm_runtime.so  libtvm_ffi.so  runner  run.sh  input.npy  README.txt

A CUDA library's bundle also holds ``libtvm_runtime_cuda.so``, and its run.sh passes ``--device cuda``.
``runner`` is linked with ``rpath $ORIGIN``, so ``./run.sh input.npy output.npy --repeat 20`` works after
unpacking anywhere. All paths inside are relative; the archive is written atomically.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np

from .arm import build_runner, kit_for
from .errors import UsageError
from .fileio import write_atomic
from .manifest import manifest_path, read_manifest
from .reference import verification_inputs
from .runtime import elf_arch

RUN_SH = """#!/bin/sh
# Run {name} with TVM's C++ runtime (no Python needed): ./run.sh IN.npy OUT.npy [--repeat N]
set -e
here="$(cd "$(dirname "$0")" && pwd)"
LD_LIBRARY_PATH="$here${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" exec "$here/runner" "$here/model.so" "$@"{device}
"""

README = """{name} for {preset} ({arch}), built by lncompile {version}.

Run on the board (no Python or TVM install needed; the runtime is in this folder):

    ./run.sh input.npy output.npy              # writes the first output to output.npy
    ./run.sh input.npy output.npy --repeat 20  # also prints ms per run
    TVM_NUM_THREADS=4 ./run.sh ...             # thread count (default: all cores)

Input: a float32 C-order .npy of shape {shape}; input.npy is a random example.
model.json describes inputs, outputs, target and versions. The outputs of input.npy can be compared
with `lncompile run model.so --input input.npy --output ref.npy` on the build machine.
"""


def _members(library: Path) -> tuple[dict[str, bytes | Path], str]:
    """Archive name -> file or bytes, and the bundle's folder name."""
    manifest = read_manifest(library)
    arch = elf_arch(library)
    kit = kit_for(arch)
    runner = build_runner(kit)
    inputs = verification_inputs(manifest)
    buf = io.BytesIO()
    np.save(buf, inputs[0])
    target = manifest.get("target", {})
    on_gpu = target.get("device", "cpu") == "cuda"
    libraries = kit.libraries + ([kit.cuda_library] if on_gpu else [])
    version = manifest.get("versions", {}).get("lncompile", "?")
    readme = README.format(name=manifest.get("name", library.stem), preset=target.get("preset", "?"), arch=arch,
                           version=version, shape=tuple(manifest["inputs"][0]["shape"]))
    members: dict[str, bytes | Path] = {
        "model.so": library,
        "model.json": manifest_path(library),
        **{p.name: p for p in libraries},
        "runner": runner,
        "run.sh": RUN_SH.format(name=library.stem, device=" --device cuda" if on_gpu else "").encode(),
        "input.npy": buf.getvalue(),
        "README.txt": readme.encode(),
    }
    return members, library.stem


_EXECUTABLE = {"runner", "run.sh"}


def _write_tar(path: Path, folder: str, members: dict[str, bytes | Path]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            data = content if isinstance(content, bytes) else content.read_bytes()
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mtime = len(data), int(time.time())
            info.mode = 0o755 if name in _EXECUTABLE or name.endswith(".so") else 0o644
            tar.addfile(info, io.BytesIO(data))


def package(library: str | Path, output: str | Path) -> Path:
    """Bundle ``library`` into ``output``: a ``.tar.gz``/``.tgz`` archive, or else a directory."""
    library = Path(library)
    if not library.is_file():
        raise UsageError(f"library {library} does not exist")
    output = Path(output)
    members, folder = _members(library)
    if output.name.endswith((".tar.gz", ".tgz")):
        return write_atomic(output, lambda tmp: _write_tar(tmp, folder, members))
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a directory; give a directory or a .tar.gz path")
    output.mkdir(parents=True, exist_ok=True)
    for name, content in members.items():
        dest = output / name
        if isinstance(content, bytes):
            write_atomic(dest, lambda tmp, data=content: tmp.write_bytes(data))
        else:
            write_atomic(dest, lambda tmp, src=content: shutil.copyfile(src, tmp))
        dest.chmod(0o755 if name in _EXECUTABLE or name.endswith(".so") else 0o644)
    return output

