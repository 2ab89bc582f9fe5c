"""The manifest written beside every library: what it computes, for which target, built from what."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ModelFormatError
from .ir import Graph

FORMAT = "lncompile-manifest/1"


def package_versions() -> dict[str, str]:
    versions = {}
    for dist in ("lncompile", "apache-tvm", "apache-tvm-ffi", "torch", "onnx"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def tensor_specs(graph: Graph) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    inputs = [
        {"name": n, "shape": list(graph.record(n).type.shape), "dtype": graph.record(n).type.dtype}
        for n in graph.input_names
    ]
    outputs = [
        {"name": f"output{i}", "shape": list(graph.type_of(v).shape), "dtype": graph.type_of(v).dtype}
        for i, v in enumerate(graph.outputs)
    ]
    return inputs, outputs


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def manifest_path(library: str | Path) -> Path:
    return Path(library).with_suffix(".json")


def read_manifest(library: str | Path) -> dict[str, Any]:
    path = manifest_path(library)
    if not path.is_file():
        raise ModelFormatError(f"{path} not found: a library needs the manifest lncompile wrote beside it")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"manifest {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFormatError(f"{path} is not an lncompile manifest (format {FORMAT!r} expected)")
    for key in ("inputs", "outputs", "target"):
        if key not in data:
            raise ModelFormatError(f"manifest {path} lacks {key!r}")
    return data
