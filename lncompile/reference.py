"""A library's reference outputs, rebuilt from its manifest's ``source``: what `lncompile verify` compares with.

A zoo model is recreated with :func:`lncompile.graphs.create` (fixed seed, so the same name, resolution and
knobs give the same weights the build saw) and run in PyTorch; an ONNX file is run with ONNX Runtime after
checking it is the file that was built (sha256). A library built from an in-memory ``nn.Module`` has no
reference on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import ToolchainError, UsageError
from .manifest import file_sha256

VERIFY_SEED = 1234  # fixed: the same library always meets the same input


def verification_inputs(manifest: dict[str, Any], seed: int = VERIFY_SEED) -> list[np.ndarray]:
    """Standard-normal float32 inputs shaped as the manifest's inputs."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in manifest["inputs"]:
        if spec["dtype"] != "float32":
            raise UsageError(f"verify feeds random float32 inputs; input {spec['name']!r} is {spec['dtype']}")
        arrays.append(rng.standard_normal(spec["shape"]).astype(np.float32))
    return arrays


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|: the error relative to the output's scale."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def describe(source: dict[str, Any]) -> str:
    if source.get("kind") == "zoo":
        knobs = "".join(f", {k}={v}" for k, v in (source.get("knobs") or {}).items())
        return f"PyTorch zoo {source['name']} @{source['resolution']}{knobs}"
    if source.get("kind") == "onnx":
        return f"ONNX Runtime on {source.get('path')}"
    if source.get("kind") == "torch":
        return f"an in-memory PyTorch module ({source.get('class')})"
    return f"an unknown source ({source.get('kind')})"


def _zoo_outputs(source: dict[str, Any], inputs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    from . import graphs

    module = graphs.create(source["name"], resolution=source.get("resolution"), **(source.get("knobs") or {}))
    with torch.no_grad():
        out = module(*[torch.from_numpy(x) for x in inputs])
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o.numpy() for o in outs]


def _onnx_outputs(source: dict[str, Any], manifest: dict[str, Any], inputs: list[np.ndarray]) -> list[np.ndarray]:
    if not source.get("path"):
        raise UsageError("this library was built from an in-memory ONNX model; verify needs the .onnx file")
    path = Path(source["path"])
    if not path.is_file():
        raise UsageError(f"the reference model {path} (from the manifest) does not exist")
    if source.get("sha256") and file_sha256(path) != source["sha256"]:
        raise UsageError(f"{path} changed since the library was built (sha256 differs); rebuild the library")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ToolchainError("verify needs ONNX Runtime for ONNX models; install it with: pip install onnxruntime") \
            from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    wanted = [spec["name"] for spec in manifest["inputs"]]
    feed_names = wanted if set(wanted) <= set(names) else names[: len(inputs)]
    return list(session.run(None, dict(zip(feed_names, inputs, strict=True))))


def reference_outputs(manifest: dict[str, Any], inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The outputs of the model the library was built from, on ``inputs``."""
    source = manifest.get("source") or {}
    if source.get("kind") == "zoo":
        return _zoo_outputs(source, inputs)
    if source.get("kind") == "onnx":
        return _onnx_outputs(source, manifest, inputs)
    raise UsageError(f"this library was built from {describe(source)}, which verify cannot rebuild; compare it "
                     f"with the module in Python (lncompile.load(path)(x) vs module(x))")
