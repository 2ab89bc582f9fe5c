"""Running compiled models: :class:`CompiledModel` (a callable on numpy arrays) and :func:`load`."""

from __future__ import annotations

import platform
import shutil
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BuildError, ModelFormatError, RuntimeInputError, ToolchainError, UsageError
from .manifest import check_library_hash, read_manifest

ELF_MAGIC = b"\x7fELF"
_ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


def elf_arch(path: str | Path) -> str:
    """The CPU architecture of an ELF shared object, or raise ModelFormatError if it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError as e:
        raise ModelFormatError(f"cannot read {path}: {e.strerror}") from None
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        raise ModelFormatError(f"{path} is not a shared library (no ELF header)")
    machine = int.from_bytes(header[18:20], "little")
    return _ELF_MACHINES.get(machine, f"elf-machine-{machine}")


class CompiledModel:
    """A model compiled by lncompile: call it on numpy arrays shaped like ``inputs``."""

    def __init__(self, module: Any, manifest: dict[str, Any], *, build: Any = None, preset: Any = None,
                 graph: Any = None) -> None:
        from .backend import tvm_api

        self.manifest = manifest
        self._build, self._preset, self.graph = build, preset, graph
        self._module = module
        self._device_kind = manifest["target"].get("device", "cpu")
        self._device = tvm_api.cuda_device() if self._device_kind == "cuda" else tvm_api.cpu_device()
        # The VM starts on first use: its machine code is generated then (tens of seconds for a large model),
        # which a build that is only exported never needs.
        self._vm: Any = None
        self._main: Any = None
        self._library: Path | None = None  # the library a fresh CPU build runs from, reused by export()
        # Inputs are copied into tensors allocated once: a fresh allocation per call cost ~0.15 ms on
        # mobilenet_v3_small (first touch of new pages, in the first kernel). The VM is not reentrant either,
        # so calls from several threads take turns.
        self._input_tensors = [tvm_api.empty_tensor(spec["shape"], spec["dtype"], self._device)
                               for spec in manifest["inputs"]]
        self._lock = threading.Lock()

    def _machine(self) -> Any:
        """The VM (hold ``_lock``), started on first use."""
        from .backend import tvm_api

        if self._vm is None:
            tvm_api.default_runtime_threads()
            self._vm = tvm_api.VirtualMachine(self._runnable_module(), self._device)
            self._main = self._vm["main"]
        return self._vm

    def _runnable_module(self) -> Any:
        """A fresh CPU build runs from its exported library: LLVM then generates machine code once, for this
        process and for :meth:`export` alike (running the build in memory JIT-compiles it, and exporting
        compiles it again). Loaded libraries and GPU builds run as they are, and so does a build that cannot be
        exported here (no C++ compiler to link it, say: running in memory needs none, and export() will say
        what is missing)."""
        from .backend import tvm_api
        from .backend.build import export_library

        if self._build is None or self._device_kind != "cpu":
            return self._module
        folder = Path(tempfile.mkdtemp(prefix="lncompile-run-"))
        weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        try:
            library = export_library(self._build, self._preset, folder / "model.so")
        except (BuildError, ToolchainError):
            return self._module
        module = tvm_api.load_module(library)
        self._library = library
        return module

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return self.manifest["inputs"]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return self.manifest["outputs"]

    def _check(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(arrays) != len(self.inputs):
            raise RuntimeInputError(f"model takes {len(self.inputs)} input(s), got {len(arrays)}")
        checked = []
        for spec, array in zip(self.inputs, arrays, strict=True):
            array = np.asarray(array)
            if list(array.shape) != spec["shape"]:
                raise RuntimeInputError(f"input {spec['name']!r} must have shape {tuple(spec['shape'])}, "
                                        f"got {tuple(array.shape)}")
            if str(array.dtype) != spec["dtype"]:
                raise RuntimeInputError(f"input {spec['name']!r} must be {spec['dtype']}, got {array.dtype}")
            checked.append(np.ascontiguousarray(array))
        return checked

    def _load_inputs(self, checked: list[np.ndarray]) -> None:
        """Copy checked arrays into the input tensors (hold ``_lock``)."""
        for tensor, array in zip(self._input_tensors, checked, strict=True):
            tensor.copyfrom(array)

    def __call__(self, *arrays: np.ndarray) -> np.ndarray | list[np.ndarray]:
        from .backend import tvm_api

        checked = self._check(arrays)
        with self._lock:
            self._machine()
            self._load_inputs(checked)
            result = self._main(*self._input_tensors)
            results = [result[i] for i in range(len(result))] if len(self.outputs) > 1 else [result]
            outs = [tvm_api.to_numpy(r) for r in results]
        return outs[0] if len(outs) == 1 else outs

    def kernel_calls(self, *arrays: np.ndarray) -> list[tuple[str, Any, tuple[Any, ...]]]:
        """The kernel calls one inference on ``arrays`` makes (see :func:`tvm_api.kernel_calls`), for
        timing each kernel inside the model. Their tensors are this model's buffers: replay them while
        the model is not running."""
        from .backend import tvm_api

        checked = self._check(arrays)
        with self._lock:
            self._load_inputs(checked)
            return tvm_api.kernel_calls(self._machine(), self._input_tensors)

    def time_evaluator(self, number: int = 10, repeat: int = 1) -> Any:
        """TVM's own timer around ``main`` (no Python overhead), for benchmarks."""
        with self._lock:
            machine = self._machine()
        return machine.time_evaluator("main", self._device, number=number, repeat=repeat)

    def export(self, path: str | Path) -> Path:
        """Write the library to ``path`` (a ``.so``) and its manifest beside it (same stem, ``.json``)."""
        from .artifacts import write_artifacts

        if self._build is None:
            raise UsageError("this model was loaded from a library; copy the .so and .json files instead")
        return write_artifacts(self._build, self._preset, self.manifest, Path(path), prebuilt=self._library)


def load(path: str | Path) -> CompiledModel:
    """Load a library written by ``lncompile build`` (its manifest must sit beside it)."""
    from .backend import tvm_api

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"library {path} does not exist")
    arch = elf_arch(path)
    manifest = read_manifest(path)
    if arch != platform.machine():
        raise UsageError(f"{path.name} is an {arch} library and this machine is {platform.machine()}: "
                         f"run it on the target board, or with `lncompile run` (emulated with qemu)")
    check_library_hash(path, manifest)
    try:
        module = tvm_api.load_module(path.resolve())
    except Exception as e:
        raise ModelFormatError(f"cannot load {path}: {str(e).strip().splitlines()[-1]}") from None
    if not tvm_api.is_vm_library(module):
        raise ModelFormatError(f"{path} is a shared library but not one lncompile built (no TVM VM executable)")
    return CompiledModel(module, manifest)
