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
    _check_manifest_types(data, path)
    return data


def _is_spec(spec: Any) -> bool:
    return (isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("dtype"), str)
            and isinstance(spec.get("shape"), list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec["shape"]))


def _check_manifest_types(data: dict[str, Any], path: Path) -> None:
    """The fields the runtime reads have the types it expects (a hand-edited or corrupt manifest fails here)."""
    if not isinstance(data["target"], dict):
        raise ModelFormatError(f"manifest {path}: 'target' must be an object")
    for key in ("inputs", "outputs"):
        specs = data[key]
        if not isinstance(specs, list) or not specs or not all(_is_spec(s) for s in specs):
            raise ModelFormatError(f"manifest {path}: {key!r} must be a non-empty list of "
                                   '{"name": str, "shape": [int, ...], "dtype": str}')


def check_library_hash(library: str | Path, manifest: dict[str, Any]) -> None:
    """The library is the one its manifest describes (``library_sha256``, written by ``export``).

    Catches a .so and .json from different builds side by side, and a library corrupted after the build;
    a manifest without the field (written by hand) is not checked.
    """
    expected = manifest.get("library_sha256")
    if expected is not None and file_sha256(library) != expected:
        raise ModelFormatError(f"{Path(library).name} does not match its manifest {manifest_path(library).name} "
                               "(library_sha256 differs): the files come from different builds or the library "
                               "was modified; rebuild, or copy the matching .so/.json pair")
