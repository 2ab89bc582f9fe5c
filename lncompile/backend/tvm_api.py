"""The one module that imports TVM. Everything version-specific about Apache TVM 0.27 lives here.

TVM's Python API moves between releases (Relay, tvmc and auto_scheduler went in 0.20; MetaSchedule moved
to ``tvm.s_tir`` and ``tvm.contrib.cc`` to ``tvm.support.cc`` later): callers use the names below, so the
next upgrade is this file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm import relax

__all__ = [
    "VirtualMachine",
    "build_executable",
    "cross_compiler",
    "export_executable",
    "host_cpu_name",
    "load_module",
    "make_target",
    "relax",
    "tensor",
    "tvm",
    "tvm_version",
]

VirtualMachine = relax.VirtualMachine


def tvm_version() -> str:
    return str(tvm.__version__)


def llvm_version() -> str:
    try:
        return str(tvm.target.codegen.llvm_version_major())
    except Exception:  # not every build exposes it; the manifest then says unknown
        return "unknown"


@functools.cache
def host_cpu_name() -> str:
    return str(tvm.get_global_func("tvm.codegen.llvm.GetHostCPUName")())


def make_target(spec: dict[str, Any], host: dict[str, Any] | None = None) -> tvm.target.Target:
    """A TVM target from its JSON form (0.27 rejects the old 'llvm -mcpu=...' strings)."""
    if host is not None:
        return tvm.target.Target(spec, host=tvm.target.Target(host))
    return tvm.target.Target(spec)


def build_executable(mod: tvm.IRModule, target: tvm.target.Target) -> Any:
    """Compile a Relax module with the target's default pipeline (legalize, fuse, schedule)."""
    with target:
        return tvm.compile(mod, target, relax_pipeline=relax.get_default_pipeline(target))


def cross_compiler(compiler: str, options: list[str] | None = None) -> Any:
    from tvm.support import cc

    return cc.cross_compiler(compiler, options=options or None)


# TVM 0.27's VM executable logs one unconditional warning per constant when it is saved or loaded
# ("Scope Saving:" / "Scope Loaded:", src/runtime/vm/executable.cc): thousands of lines for a CNN.
_NOISE = ("Scope Saving:", "Scope Loaded:")


@contextlib.contextmanager
def _filtered_native_stderr() -> Iterator[None]:
    """Capture the C++ runtime's stderr, drop the known noise lines, pass everything else through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not any(noise in line for noise in _NOISE):
                    sys.stderr.write(line)


def export_executable(executable: Any, path: str | os.PathLike, fcompile: Any = None) -> None:
    kwargs = {"fcompile": fcompile} if fcompile is not None else {}
    with _filtered_native_stderr():
        executable.export_library(str(path), **kwargs)


def load_module(path: str | Path) -> Any:
    with _filtered_native_stderr():
        return tvm.runtime.load_module(str(path))


def cpu_device() -> Any:
    return tvm.cpu(0)


def cuda_device() -> Any:
    return tvm.cuda(0)


def tensor(array: np.ndarray, device: Any = None) -> Any:
    return tvm.runtime.tensor(array, device or tvm.cpu(0))
