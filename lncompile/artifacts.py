"""Writing a build's artifacts: ``<stem>.so`` and ``<stem>.json``, each atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backend.build import BuildResult, export_library
from .fileio import write_json_atomic
from .manifest import file_sha256, manifest_path


def write_artifacts(result: BuildResult, preset: Any, manifest: dict[str, Any], library: Path) -> Path:
    """Export the library, then its manifest (which records the library's hash). Returns the library path.

    The manifest is written last: a crash in between leaves a library without a manifest, which ``load``
    refuses, never a manifest pointing at a missing or partial library.
    """
    if library.suffix != ".so":
        library = library.with_suffix(".so")
    export_library(result, preset, library)
    manifest.update(library=library.name, library_sha256=file_sha256(library))
    write_json_atomic(manifest_path(library), manifest)
    return library
