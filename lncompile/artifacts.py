"""Writing a build's artifacts: ``<stem>.so`` and ``<stem>.json``, each atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backend.build import BuildResult, export_library
from .fileio import write_json_atomic
from .manifest import file_sha256, manifest_path


def write_artifacts(result: BuildResult, preset: Any, manifest: dict[str, Any], library: Path,
                    prebuilt: Path | None = None) -> Path:
    """Export the library (or copy ``prebuilt``, the same build exported before), then its manifest (which
    records the library's hash). Returns the library path.

    The manifest is written last, and an error or interrupt between the two files removes the library: the
    folder holds a complete pair or neither. Only SIGKILL in that instant can leave the new library without
    its manifest (or beside an older one, which ``load`` refuses by ``library_sha256``).
    """
    if library.suffix != ".so":
        library = library.with_suffix(".so")
    export_library(result, preset, library, prebuilt)  # if this fails, an older pair at the same path stays intact
    try:
        manifest.update(library=library.name, library_sha256=file_sha256(library))
        write_json_atomic(manifest_path(library), manifest)
    except BaseException:  # interrupted or failed between the two files: leave neither (an older manifest
        library.unlink(missing_ok=True)  # there describes a library that is gone)
        manifest_path(library).unlink(missing_ok=True)
        raise
    return library
