"""Frontends: a zoo name, a PyTorch module (via torch.export) or an ONNX file becomes lncompile IR."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnknownModelError, UsageError
from ..ir import Graph


@dataclass
class ImportedModel:
    graph: Graph
    name: str
    source: dict[str, Any]  # what was compiled, for the manifest
    example: list[np.ndarray] = field(default_factory=list)
    reference: Any = None  # the torch module or ONNX path the graph came from (for verification)


def example_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _as_shape(example: Any) -> tuple[int, ...] | None:
    if example is None:
        return None
    if isinstance(example, (tuple, list)) and all(isinstance(d, int) for d in example):
        return tuple(example)
    return tuple(np.asarray(example).shape)


def _as_array(example: Any) -> np.ndarray | None:
    if example is None or (isinstance(example, (tuple, list)) and all(isinstance(d, int) for d in example)):
        return None
    return np.asarray(example, dtype=np.float32)


def import_model(
    model: Any,
    example: Any = None,
    *,
    resolution: int | None = None,
    batch: int = 1,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    **knobs: Any,
) -> ImportedModel:
    """Turn a zoo name, an ``nn.Module``, an ONNX path or an ``onnx.ModelProto`` into verified IR.

    ``example`` is an input array or just its shape; zoo models default to their paper's resolution.
    """
    import torch

    if batch < 1:
        raise UsageError(f"batch must be >= 1, got {batch}")
    if resolution is not None and resolution < 1:
        raise UsageError(f"resolution must be a positive integer, got {resolution}")
    if isinstance(model, torch.nn.Module):
        from .torch_export import from_torch

        shape = _as_shape(example)
        if shape is None:
            raise UsageError("compiling an nn.Module needs example_input (an array or a shape)")
        x = _as_array(example)
        x = x if x is not None else example_input(shape)
        graph = from_torch(model, torch.from_numpy(x))
        name = type(model).__name__.lower()
        return ImportedModel(graph, name, {"kind": "torch", "class": type(model).__qualname__}, [x], model)

    if isinstance(model, (str, os.PathLike)) and (str(model).endswith(".onnx") or Path(model).is_file()):
        return _import_onnx(Path(model), example, input_shapes, batch)
    if type(model).__name__ == "ModelProto":
        return _import_onnx(model, example, input_shapes, batch)
    if not isinstance(model, str):
        raise UsageError(f"cannot compile a {type(model).__name__}: pass a zoo name, an nn.Module or an ONNX file")

    from .. import graphs
    from .torch_export import from_torch

    spec = graphs.spec(model)  # raises UnknownModelError listing the zoo
    module = graphs.create(model, resolution=resolution, **knobs)
    shape = _as_shape(example) or spec.input_shape(resolution, batch)
    x = _as_array(example)
    x = x if x is not None else example_input(shape)
    graph = from_torch(module, torch.from_numpy(x), name=model)
    source = {"kind": "zoo", "name": model, "resolution": shape[-1], "knobs": knobs}
    return ImportedModel(graph, model, source, [x], module)


def _first_onnx_input(model: Any) -> str | None:
    """Name of the first non-initializer input; None if the file cannot be read (from_onnx then says why)."""
    import onnx

    try:
        proto = model if not isinstance(model, Path) else onnx.load(str(model), load_external_data=False)
    except Exception:
        return None
    initializers = {t.name for t in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in initializers]
    return names[0] if names else None


def _import_onnx(model: Any, example: Any, input_shapes: dict | None, batch: int) -> ImportedModel:
    from ..manifest import file_sha256
    from .onnx_import import from_onnx

    if isinstance(model, Path):
        if not model.exists():
            raise UnknownModelError(f"{model} does not exist (and is not a zoo model name; see `lncompile list`)")
        name = model.stem
        source = {"kind": "onnx", "path": str(model), "sha256": file_sha256(model)}
    else:
        name = model.graph.name or "onnx_model"
        source = {"kind": "onnx", "path": None}
    shape = _as_shape(example)
    if shape is not None and not input_shapes:
        first = _first_onnx_input(model)
        input_shapes = {first: shape} if first else None
    graph = from_onnx(model, input_shapes=input_shapes, name=name)
    examples = [example_input(graph.record(n).type.shape, seed=i) for i, n in enumerate(graph.input_names)]
    x = _as_array(example)
    if x is not None:
        examples[0] = x
    return ImportedModel(graph, name, source, examples, model)
