"""Start-up fixes for MetaSchedule's build/run worker processes (on their PYTHONPATH only while tuning).

Why: each build/run worker process (lncompile's builder keeps its workers across rounds; TVM's LocalBuilder
restarted them every round) and the tuner itself, once, imports ``tvm.s_tir.tensor_intrin`` to register
tensorization intrinsics.

1. The TVMScript parser calls ``inspect.stack()`` for ~500 intrinsics, and for every frame whose file name is
   a pseudo-name such as ``<frozen importlib._bootstrap>`` the standard library's ``inspect.getmodule`` walks
   all of ``sys.modules`` (about 2,000 entries once tvm_ffi has imported torch) looking for a module with
   that file. No module has such a file, so the walk always ends in ``None``: answering ``None`` at once
   changes no result and removes tens of seconds per worker. Measured on this project's 2-core machine:
   ``import tvm.s_tir.tensor_intrin`` 42 s before, 6.6 s after.
2. That package's ``__init__`` parses every target's intrinsics, CUDA's (by far the most) even for a CPU
   target. While tuning, lncompile names the package and the submodules the target needs in
   ``LNCOMPILE_IMPORT_ONLY`` (``package=sub1,sub2``); importing the package then runs those submodules
   instead of its ``__init__``. Measured on the same machine in a slow spell: 13.8 s for the whole
   package, 0.4 s for x86's intrinsics alone.
3. ``tvm_ffi`` imports torch, if it can, before anything else (a guard against a symbol clash seen on one
   Windows/Python pairing); nothing a worker does (compile a candidate, time it) uses it, and it is most of
   the worker's start: ``import tvm`` 10.4 s with torch, 3.7 s without, on the same machine. With
   ``LNCOMPILE_WORKER_NO_TORCH=1`` in a fresh process, importing torch raises ImportError, which tvm_ffi
   and TVM treat as "torch is not installed". A process that has torch already (the tuner, when it applies
   this file to itself) keeps it: the finder is installed only where torch is not imported yet.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
import types
from collections.abc import Sequence
from typing import Any

_original_getmodule = inspect.getmodule


def _getmodule(obj: Any, _filename: str | None = None) -> types.ModuleType | None:  # inspect.getmodule's
    if (
        _filename is not None
        and _filename.startswith("<")
        and _filename.endswith(">")
        and isinstance(obj, (types.FrameType, types.CodeType, types.TracebackType))
    ):
        return None
    return _original_getmodule(obj, _filename)


if getattr(inspect.getmodule, "__name__", "") != "_getmodule":  # applied once, not stacked
    inspect.getmodule = _getmodule


IMPORT_ONLY = "LNCOMPILE_IMPORT_ONLY"
PARTIAL = "__lncompile_partial__"  # set on a package imported this way: its submodule names


def _import_only() -> tuple[str, list[str]] | None:
    package, _, names = os.environ.get(IMPORT_ONLY, "").partition("=")
    return (package, [n for n in names.split(",") if n]) if package and names else None


class _SubmodulesOnly(importlib.abc.Loader):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module, with the package's __path__ for its submodules

    def exec_module(self, module: types.ModuleType) -> None:
        setattr(module, PARTIAL, self.names)
        for name in self.names:
            importlib.import_module(f"{module.__name__}.{name}")


class _ImportOnlyFinder(importlib.abc.MetaPathFinder):
    lncompile_import_only = True

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        wanted = _import_only()
        if wanted is None or fullname != wanted[0]:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.submodule_search_locations is None:
            return None
        spec.loader = _SubmodulesOnly(wanted[1])
        return spec


if not any(getattr(finder, "lncompile_import_only", False) for finder in sys.meta_path):
    sys.meta_path.insert(0, _ImportOnlyFinder())


NO_TORCH = "LNCOMPILE_WORKER_NO_TORCH"  # lncompile.tune.worker_site.NO_TORCH (this file imports nothing of it)


class _NoTorchFinder(importlib.abc.MetaPathFinder):
    lncompile_no_torch = True

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torch" or fullname.startswith("torch."):
            raise ModuleNotFoundError(f"no torch in an lncompile tuning worker ({NO_TORCH}=1)", name=fullname)
        return None


if (os.environ.get(NO_TORCH) == "1" and "torch" not in sys.modules
        and not any(getattr(finder, "lncompile_no_torch", False) for finder in sys.meta_path)):
    sys.meta_path.insert(0, _NoTorchFinder())
