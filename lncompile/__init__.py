"""lncompile: a hardware-aware compiler for lightweight neural networks.

    >>> import lncompile
    >>> model = lncompile.compile("mobilenet_v2", target="x86")
    >>> model.export("out/mobilenet_v2-x86.so")
    >>> lncompile.load("out/mobilenet_v2-x86.so")(x)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .runtime import CompiledModel


def compile(model: Any, target: Any = "x86", example_input: Any = None, **options: Any) -> CompiledModel:
    """Compile a zoo name, an ``nn.Module`` or an ONNX file for ``target``; see :func:`lncompile.api.compile`."""
    from .api import compile as _compile

    return _compile(model, target, example_input, **options)


def load(path: Any) -> CompiledModel:
    """Load a library written by ``lncompile build`` / ``CompiledModel.export``."""
    from .runtime import load as _load

    return _load(path)


def __getattr__(name: str) -> Any:
    # lncompile.graphs / lncompile.targets import torch and the zoo: load them on first use only.
    if name in ("graphs", "targets"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "compile", "load"]
