"""Running compiled models: :class:`CompiledModel` (a callable on numpy arrays) and :func:`load`."""

from __future__ import annotations

import platform
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelFormatError, RuntimeInputError, UsageError
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
        device = manifest["target"].get("device", "cpu")
        self._device = tvm_api.cuda_device() if device == "cuda" else tvm_api.cpu_device()
        tvm_api.default_runtime_threads()
        self._vm = tvm_api.VirtualMachine(module, self._device)
        self._main = self._vm["main"]
        # Inputs are copied into tensors allocated once: a fresh allocation per call cost ~0.15 ms on
        # mobilenet_v3_small (first touch of new pages, in the first kernel). The VM is not reentrant either,
        # so calls from several threads take turns.
        self._input_tensors = [tvm_api.empty_tensor(spec["shape"], spec["dtype"], self._device)
                               for spec in manifest["inputs"]]
        self._lock = threading.Lock()

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
            return tvm_api.kernel_calls(self._vm, self._input_tensors)

    def time_evaluator(self, number: int = 10, repeat: int = 1) -> Any:
        """TVM's own timer around ``main`` (no Python overhead), for benchmarks."""
        return self._vm.time_evaluator("main", self._device, number=number, repeat=repeat)

    def export(self, path: str | Path) -> Path:
        """Write the library to ``path`` (a ``.so``) and its manifest beside it (same stem, ``.json``)."""
        from .artifacts import write_artifacts

        if self._build is None:
            raise UsageError("this model was loaded from a library; copy the .so and .json files instead")
        return write_artifacts(self._build, self._preset, self.manifest, Path(path))


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
