"""Choosing and loading tuning logs for a build.

An explicit ``--tuning-log DIR`` must fit this build (same TVM version and target, see
:func:`logdb.check_compatible`) or the build stops with the reason. Without one, the logs shipped in
``lncompile/targets/logs/<preset>/`` (the directory itself, or each of its sub-directories) are applied when
they fit; the ones that do not are listed in the manifest with the reason. The build applies the merged
records after fusion, so only kernels whose workload hash matches a record change (see
:func:`lncompile.backend.tvm_api.build_with_database`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import logdb


@dataclass
class SelectedLogs:
    database: Any  # a MetaSchedule MemoryDatabase holding every applied record
    logs: list[dict[str, Any]] = field(default_factory=list)  # {"path", "shipped", "workloads", "records"}
    not_applied: list[dict[str, str]] = field(default_factory=list)  # shipped logs that did not fit: {"path", "why"}


def shipped_dir() -> Path:
    from .. import targets

    return Path(targets.__file__).parent / "logs"


def shipped_log_dirs(preset_name: str) -> list[Path]:
    root = shipped_dir() / preset_name
    if not root.is_dir():
        return []
    found = [root] if logdb.has_database(root) else []
    return found + sorted(d for d in root.iterdir() if d.is_dir() and logdb.has_database(d))


def select_logs(preset: Any, target_json: dict[str, Any], tuning_log: str | Path | bool | None) -> SelectedLogs | None:
    """The records to apply: ``tuning_log`` (a directory), the shipped logs (``None``), or none (``False``)."""
    from ..backend import tvm_api

    if tuning_log is False:
        return None
    selected = SelectedLogs(tvm_api.memory_database())
    if tuning_log is not None and tuning_log is not True:
        candidates = [(Path(tuning_log), False)]
        logdb.check_compatible(Path(tuning_log), target_json)  # raises with the reason
    else:
        candidates = [(d, True) for d in shipped_log_dirs(preset.name)]
    for directory, shipped in candidates:
        if shipped:
            try:
                why = logdb.incompatibility(logdb.read_manifest(directory), target_json)
            except logdb.TuningLogError as e:  # a broken shipped log must not break every build
                why = str(e)
            if why is not None:
                selected.not_applied.append({"path": str(directory), "why": why})
                continue
        workloads, records = logdb.load_into(selected.database, directory)
        selected.logs.append({"path": str(directory), "shipped": shipped, "workloads": workloads, "records": records})
    return selected if selected.logs or selected.not_applied else None
