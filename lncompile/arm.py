"""Running libraries without Python's TVM: the C++ runner, TVM's aarch64 runtime from PyPI, and qemu-aarch64.

An aarch64 library cannot be loaded on this x86 machine, but it can be *run*: TVM's C++ runtime for aarch64
ships in PyPI's aarch64 wheels (``libtvm_runtime.so``, ``libtvm_ffi.so``, the FFI headers); the runner
(``lncompile/runner/runner.cc``) is cross-compiled against it and executed with qemu's user-mode emulation
(``qemu-aarch64 -L /usr/aarch64-linux-gnu``). The same runner, copied with the two libraries, runs on a board.

Cache (``$LNCOMPILE_CACHE``, default ``~/.cache/lncompile``)::

    aarch64/wheels/*.whl                              downloaded once with pip
    aarch64/tvm-<ver>-ffi-<ver>/lib/*.so, include/    extracted from them (only these members)
    aarch64/tvm-<ver>-ffi-<ver>/bin/runner-<hash>     the runner, rebuilt when its source changes

The runtime's version is the installed compiler's (``apache-tvm``, ``apache-tvm-ffi``): a library must be
loaded by the runtime of the TVM that built it. A library for this machine's own architecture gets the same
runner built with the host ``g++`` against the installed wheels' libraries (used by ``lncompile package``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .backend.tools import INSTALL_HINTS, require_tool
from .errors import LncompileError, ToolchainError, UsageError
from .manifest import read_manifest
from .runner import SOURCE as RUNNER_SOURCE
from .runtime import CompiledModel, elf_arch

AARCH64 = "aarch64"
CROSS_CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64"
SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's libc6-arm64-cross (pulled in by g++-aarch64-linux-gnu)
WHEEL_PLATFORM = "manylinux_2_28_aarch64"
WHEEL_PYTHON = "3.11"  # only the FFI wheel is CPython-specific; its libtvm_ffi.so does not link libpython
RUNTIME_LIBS = ("libtvm_runtime.so", "libtvm_ffi.so")
CUDA_RUNTIME_LIB = "libtvm_runtime_cuda.so"  # the x86 wheel's CUDA device API, loaded by `runner --device cuda`
_MAX_MEMBER_BYTES = 256 << 20  # no runtime member is near this; a larger one is not what we asked for
_NOISE = ("Scope Loaded:", "Scope Saving:")  # TVM's per-constant log lines (see backend/tvm_api.py)


class RuntimeFetchError(ToolchainError):
    """TVM's runtime for the target architecture could not be downloaded or unpacked."""


class EmulationError(LncompileError):
    """The runner failed on a library (a bad input file, a crash in the library, qemu failing)."""


def cache_root() -> Path:
    return Path(os.environ.get("LNCOMPILE_CACHE") or Path.home() / ".cache" / "lncompile")


def runtime_versions() -> tuple[str, str]:
    """The installed apache-tvm and apache-tvm-ffi versions: the runtime must match the compiler."""
    try:
        return metadata.version("apache-tvm"), metadata.version("apache-tvm-ffi")
    except metadata.PackageNotFoundError as e:
        raise ToolchainError(f"{e.name} is not installed; install it with: pip install apache-tvm") from None


@dataclass(frozen=True)
class RuntimeKit:
    """TVM's C++ runtime for one CPU architecture: the two shared libraries, the FFI headers, a C++ compiler."""

    arch: str
    root: Path  # lib/ (RUNTIME_LIBS), include/ (tvm/ffi/*.h, dlpack/), bin/
    compiler: str

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def include_dir(self) -> Path:
        return self.root / "include"

    @property
    def libraries(self) -> list[Path]:
        return [self.lib_dir / name for name in RUNTIME_LIBS]

    @property
    def cuda_library(self) -> Path:
        library = self.lib_dir / CUDA_RUNTIME_LIB
        if not library.is_file():
            raise ToolchainError(f"TVM's CUDA runtime ({CUDA_RUNTIME_LIB}) is not in the {self.arch} runtime "
                                 "kit: the installed apache-tvm wheel was built without CUDA")
        return library


def _publish_dir(build: Any, final: Path) -> Path:
    """Fill a fresh temporary directory with ``build(tmp)`` and rename it onto ``final`` (atomic; races are fine)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # someone else published it first, which is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _safe_destination(root: Path, relative: str) -> Path:
    """``root/relative`` for an archive member name, refusing names that would land outside ``root``."""
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or ".." in parts or "\\" in relative:
        raise RuntimeFetchError(f"refusing archive member {relative!r}: it points outside the cache")
    dest = (root / relative).resolve()
    if not dest.is_relative_to(root.resolve()):
        raise RuntimeFetchError(f"refusing archive member {relative!r}: it points outside the cache")
    return dest


def extract_members(wheel: Path, root: Path, wanted: dict[str, str]) -> list[Path]:
    """Copy the wheel's members selected by ``wanted`` (archive prefix -> destination prefix) under ``root``.

    Archive names are untrusted: each destination is checked to stay inside ``root``, only regular files are
    written (a zip's symlink entries become plain files), and sizes are bounded.
    """
    written = []
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                for prefix, dest_prefix in wanted.items():
                    if info.filename == prefix or (prefix.endswith("/") and info.filename.startswith(prefix)):
                        relative = dest_prefix + info.filename[len(prefix):]
                        dest = _safe_destination(root, relative)
                        if info.file_size > _MAX_MEMBER_BYTES:
                            raise RuntimeFetchError(f"{wheel.name}: member {info.filename} is implausibly large")
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        with archive.open(info) as src, open(dest, "wb") as out:
                            shutil.copyfileobj(src, out)
                        written.append(dest)
                        break
    except (zipfile.BadZipFile, OSError) as e:
        raise RuntimeFetchError(f"cannot unpack {wheel}: {e}; delete it to download it again") from None
    return written


def _download_wheels(directory: Path, tvm_version: str, ffi_version: str) -> tuple[Path, Path]:
    """The aarch64 wheels of the installed TVM and TVM FFI versions, downloaded once into ``directory``."""

    def find() -> tuple[Path | None, Path | None]:
        tvm = sorted(directory.glob(f"apache_tvm-{tvm_version}-*{AARCH64}*.whl"))
        ffi = sorted(directory.glob(f"apache_tvm_ffi-{ffi_version}-*{AARCH64}*.whl"))
        return (tvm[-1] if tvm else None), (ffi[-1] if ffi else None)

    tvm_wheel, ffi_wheel = find()
    if tvm_wheel is None or ffi_wheel is None:
        directory.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform",
               WHEEL_PLATFORM, "--python-version", WHEEL_PYTHON, "--disable-pip-version-check", "-q", "-d",
               str(directory), f"apache-tvm=={tvm_version}", f"apache-tvm-ffi=={ffi_version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise RuntimeFetchError("downloading TVM's aarch64 wheels from PyPI timed out") from None
        tvm_wheel, ffi_wheel = find()
        if done.returncode != 0 or tvm_wheel is None or ffi_wheel is None:
            last = ([line for line in done.stderr.splitlines() if line.strip()] or ["no wheel found"])[-1]
            raise RuntimeFetchError(f"cannot download TVM's aarch64 runtime (apache-tvm=={tvm_version}, "
                                    f"apache-tvm-ffi=={ffi_version}) with pip: {last.strip()}; put the two "
                                    f"{WHEEL_PLATFORM} wheels into {directory} to work offline")
    return tvm_wheel, ffi_wheel


def aarch64_kit() -> RuntimeKit:
    """TVM's aarch64 runtime, fetched from PyPI and unpacked into the cache on first use."""
    tvm_version, ffi_version = runtime_versions()
    base = cache_root() / AARCH64
    root = base / f"tvm-{tvm_version}-ffi-{ffi_version}"
    if not all((root / "lib" / name).is_file() for name in RUNTIME_LIBS):
        tvm_wheel, ffi_wheel = _download_wheels(base / "wheels", tvm_version, ffi_version)

        def unpack(tmp: Path) -> None:
            extract_members(tvm_wheel, tmp, {"tvm/lib/libtvm_runtime.so": "lib/libtvm_runtime.so"})
            extract_members(ffi_wheel, tmp, {"tvm_ffi/lib/libtvm_ffi.so": "lib/libtvm_ffi.so",
                                             "tvm_ffi/include/": "include/"})
            missing = [name for name in RUNTIME_LIBS if not (tmp / "lib" / name).is_file()]
            if missing or not (tmp / "include" / "tvm" / "ffi" / "function.h").is_file():
                raise RuntimeFetchError(f"the aarch64 wheels lack {', '.join(missing) or 'the FFI headers'}")

        shutil.rmtree(root, ignore_errors=True)  # an incomplete kit from an older lncompile
        _publish_dir(unpack, root)
    return RuntimeKit(AARCH64, root, CROSS_CXX)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # locates the package without importing it (TVM imports slowly)
    if spec is None or not spec.submodule_search_locations:
        raise ToolchainError(f"Python package {name} not found; install it with: pip install apache-tvm")
    return Path(next(iter(spec.submodule_search_locations)))


def host_kit() -> RuntimeKit:
    """This machine's TVM runtime, copied from the installed wheels (so that runner and libraries sit together)."""
    tvm_version, ffi_version = runtime_versions()
    arch = platform.machine()
    root = cache_root() / arch / f"tvm-{tvm_version}-ffi-{ffi_version}"
    tvm_lib = _package_dir("tvm") / "lib"
    cuda_runtime = tvm_lib / CUDA_RUNTIME_LIB  # optional: only CUDA-enabled wheels have it
    wanted = RUNTIME_LIBS + ((CUDA_RUNTIME_LIB,) if cuda_runtime.is_file() else ())
    if not all((root / "lib" / name).is_file() for name in wanted):
        sources = {"libtvm_runtime.so": tvm_lib / "libtvm_runtime.so",
                   "libtvm_ffi.so": _package_dir("tvm_ffi") / "lib" / "libtvm_ffi.so"}
        include = _package_dir("tvm_ffi") / "include"

        def copy(tmp: Path) -> None:
            (tmp / "lib").mkdir()
            for name, src in sources.items():
                if not src.is_file():
                    raise ToolchainError(f"{src} not found: the installed TVM wheel has no C++ runtime library")
                shutil.copy2(src, tmp / "lib" / name)
            if cuda_runtime.is_file():
                shutil.copy2(cuda_runtime, tmp / "lib" / CUDA_RUNTIME_LIB)
            shutil.copytree(include, tmp / "include")

        shutil.rmtree(root, ignore_errors=True)
        _publish_dir(copy, root)
    return RuntimeKit(arch, root, "g++")


def kit_for(arch: str) -> RuntimeKit:
    if arch == platform.machine():
        return host_kit()
    if arch == AARCH64:
        return aarch64_kit()
    raise UsageError(f"no runtime for {arch} libraries on this {platform.machine()} machine (aarch64 is emulated)")


def build_runner(kit: RuntimeKit) -> Path:
    """The runner compiled for ``kit.arch``; rebuilt only when its source, compiler or runtime changes.

    Linked with ``--no-as-needed`` (the runner calls nothing in libtvm_runtime.so directly, but loading it
    registers the Relax VM that ``vm_load_executable`` needs) and ``rpath $ORIGIN`` (a board copy finds the
    two libraries beside it without LD_LIBRARY_PATH).
    """
    compiler = require_tool(kit.compiler) if kit.compiler in INSTALL_HINTS else shutil.which(kit.compiler)
    if compiler is None:
        raise ToolchainError(f"{kit.compiler} not found; install it with: apt-get install g++")
    source = RUNNER_SOURCE.read_bytes()
    key = hashlib.sha256(source + f"\0{kit.compiler}\0{kit.root.name}".encode()).hexdigest()[:16]
    runner = kit.root / "bin" / f"runner-{key}"
    if runner.is_file():
        return runner
    runner.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".runner.", dir=runner.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    cmd = [compiler, "-std=c++17", "-O2", f"-I{kit.include_dir}", "-o", str(tmp), str(RUNNER_SOURCE),
           f"-L{kit.lib_dir}", "-Wl,--no-as-needed", "-ltvm_runtime", "-ltvm_ffi", "-ldl",
           "-Wl,-rpath,$ORIGIN:$ORIGIN/../lib"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines()
            raise ToolchainError(f"compiling the runner with {kit.compiler} failed: {(errors or ['?'])[0].strip()}")
        tmp.chmod(0o755)
        os.replace(tmp, runner)
    finally:
        tmp.unlink(missing_ok=True)
    return runner


def needs_emulation(arch: str) -> bool:
    return arch != platform.machine()


def require_emulator() -> str:
    qemu = require_tool(QEMU)
    if not (SYSROOT / "lib" / "ld-linux-aarch64.so.1").is_file():
        raise ToolchainError(f"no aarch64 C library under {SYSROOT}; install it with: "
                             f"{INSTALL_HINTS['aarch64-linux-gnu-g++']}")
    return qemu


_TIMING = re.compile(r"timing: runs=(\d+) mean_ms=([\d.]+) min_ms=([\d.]+) max_ms=([\d.]+)")


def run_library(library: str | Path, inputs: list[np.ndarray], *, repeat: int = 0, threads: int | None = None,
                timeout: float | None = None) -> tuple[list[np.ndarray], dict[str, float] | None]:
    """Run ``library``'s ``main`` on ``inputs`` with the C++ runner (under qemu for another architecture).

    Returns the outputs and, with ``repeat > 0``, the runner's timing of ``repeat`` runs after the first
    (``{"runs", "mean_ms", "min_ms", "max_ms"}``; emulated time, not the board's).
    """
    library = Path(library).resolve()
    arch = elf_arch(library)
    kit = kit_for(arch)
    command = [require_emulator(), "-L", str(SYSROOT)] if needs_emulation(arch) else []
    runner = build_runner(kit)
    env = {**os.environ, "LD_LIBRARY_PATH": str(kit.lib_dir)}
    if threads:
        env["TVM_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="lncompile-run-") as work:
        paths = []
        for i, array in enumerate(inputs):
            path = Path(work) / f"in{i}.npy"
            np.save(path, np.ascontiguousarray(array, dtype=np.float32))
            paths.append(str(path))
        out = Path(work) / "out.npy"
        command += [str(runner), str(library), ",".join(paths), str(out)]
        if repeat:
            command += ["--repeat", str(repeat)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EmulationError(f"running {library.name} took longer than {timeout:g} s") from None
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not any(n in ln for n in _NOISE)]
            reason = next((ln for ln in reversed(lines) if "runner: error:" in ln), lines[-1] if lines else "")
            reason = reason.split("runner: error:", 1)[-1].strip() or f"exit status {done.returncode}"
            raise EmulationError(f"running {library.name} failed: {reason}")
        outputs = [np.load(out, allow_pickle=False)]
        while (extra := Path(work) / f"out_{len(outputs)}.npy").is_file():
            outputs.append(np.load(extra, allow_pickle=False))
    match = _TIMING.search(done.stdout)
    timing = None
    if match:
        timing = {"runs": int(match[1]), "mean_ms": float(match[2]), "min_ms": float(match[3]),
                  "max_ms": float(match[4])}
    return outputs, timing


class RunnerModel(CompiledModel):
    """A library run by the C++ runner in a subprocess (emulated with qemu for aarch64 on x86).

    Same interface as a loaded :class:`CompiledModel` (inputs are checked against the manifest), but every
    call starts a process: seconds, not milliseconds, under emulation.
    """

    def __init__(self, library: Path, manifest: dict[str, Any], threads: int | None = None) -> None:
        self.library, self.manifest, self.threads = library, manifest, threads
        self._build = self._preset = self.graph = None
        bad = [s["name"] for s in manifest["inputs"] if s["dtype"] != "float32"]
        if bad:
            raise UsageError(f"the runner reads float32 inputs only; {', '.join(bad)} is not float32")

    def __call__(self, *arrays: np.ndarray) -> np.ndarray | list[np.ndarray]:
        outputs, _ = run_library(self.library, self._check(arrays), threads=self.threads)
        return outputs[0] if len(outputs) == 1 else outputs

    def time(self, *arrays: np.ndarray, repeat: int = 10) -> dict[str, float]:
        """Milliseconds per run over ``repeat`` runs (after one warm-up run), measured inside the runner."""
        _, timing = run_library(self.library, self._check(arrays), repeat=max(repeat, 1), threads=self.threads)
        assert timing is not None  # the runner prints it whenever --repeat > 0
        return timing

    def time_evaluator(self, number: int = 10, repeat: int = 1) -> Any:
        raise UsageError("a runner-backed model has no TVM time evaluator; use .time(x, repeat=N)")


def load_runner_model(library: str | Path, threads: int | None = None) -> RunnerModel:
    library = Path(library)
    if not library.is_file():
        raise UsageError(f"library {library} does not exist")
    arch = elf_arch(library)
    manifest = read_manifest(library)
    if needs_emulation(arch):
        require_emulator()  # one line with the install command, before anything is downloaded
    return RunnerModel(library, manifest, threads)


def load_any(library: str | Path) -> CompiledModel:
    """This machine's libraries through TVM's Python runtime; aarch64 ones through the runner under qemu."""
    from .runtime import load

    library = Path(library)
    if library.is_file() and needs_emulation(arch := elf_arch(library)) and arch == AARCH64:
        return load_runner_model(library)
    return load(library)
