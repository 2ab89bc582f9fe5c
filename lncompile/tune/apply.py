"""Choosing and loading tuning logs for a build.

An explicit ``--tuning-log DIR`` must fit this build (same TVM version, same target or one whose CPU has the
log CPU's SIMD extensions, see :func:`logdb.check_compatible`) or the build stops with the reason. Without
one, the logs shipped in ``lncompile/targets/logs/<preset>/`` (the directory itself, or each of its
sub-directories) are applied when they fit; a shipped log tuned on a CPU with extensions this one lacks only
fills in kernels that no fitting log has (:func:`logdb.fallback_only`); the rest are listed in the manifest
with the reason. The build applies the merged records after fusion, so only kernels whose workload hash
matches a record change (see :func:`lncompile.backend.tvm_api.apply_database`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import logdb


@dataclass(frozen=True)
class UsableLog:
    path: Path
    shipped: bool
    tuned_on: str | None = None  # the CPU it was tuned on, when not the build's
    fallback: str | None = None  # why it only fills in kernels no other log has (the extensions this CPU lacks)

    @property
    def rank(self) -> int:
        """How far its CPU is from the build's (see :func:`logdb.load_into`)."""
        return 0 if self.tuned_on is None else 2 if self.fallback else 1


@dataclass
class SelectedLogs:
    usable: list[UsableLog] = field(default_factory=list)
    not_applied: list[dict[str, str]] = field(default_factory=list)  # shipped logs that did not fit: {"path", "why"}
    database: Any = None  # after load(): a MetaSchedule MemoryDatabase holding every applied record
    # after load(): {"path", "shipped", "workloads", "records" (valid ones of them), "best_records" (applied),
    # "in_situ_records" (of those, chosen by in-situ timing rather than as the fastest), "tuned_on" (the
    # log's CPU) when that is not the build's, and "fallback" (what this CPU lacks) for a fallback log}
    logs: list[dict[str, Any]] = field(default_factory=list)

    def load(self, wanted: set[str]) -> None:
        """Load the records of the workloads in ``wanted`` (the build's kernel hashes) from every usable log."""
        from ..backend import tvm_api

        self.database = tvm_api.memory_database()
        counts = logdb.load_into(self.database, [log.path for log in self.usable], wanted,
                                 ranks=[log.rank for log in self.usable])
        for log, (workloads, records, best, in_situ) in zip(self.usable, counts, strict=True):
            self.logs.append({"path": str(log.path), "shipped": log.shipped, "workloads": workloads,
                              "records": records, "best_records": best, "in_situ_records": in_situ,
                              **({"tuned_on": log.tuned_on} if log.tuned_on else {}),
                              **({"fallback": log.fallback} if log.fallback else {})})


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
    """The logs to apply: ``tuning_log`` (a directory), the shipped logs (``None``), or none (``False``).

    Only checks that they fit (an explicit log that does not raises with the reason, before anything is compiled);
    :meth:`SelectedLogs.load` reads them once the build knows its kernels.
    """
    if tuning_log is False:
        return None
    selected = SelectedLogs()
    if tuning_log is not None and tuning_log is not True:
        manifest = logdb.check_compatible(Path(tuning_log), target_json)  # raises with the reason
        selected.usable.append(UsableLog(Path(tuning_log), False, logdb.tuned_for_another_cpu(manifest, target_json)))
        return selected
    for directory in shipped_log_dirs(preset.shipped_logs):
        manifest, fallback = None, None
        try:
            manifest = logdb.read_manifest(directory)
            why, fallback = logdb.assess(manifest, target_json)
        except logdb.TuningLogError as e:  # a broken shipped log must not break every build
            why = str(e)
        if why is None or fallback is not None:
            selected.usable.append(UsableLog(directory, True, logdb.tuned_for_another_cpu(manifest, target_json),
                                             fallback))
        else:
            selected.not_applied.append({"path": str(directory), "why": why})
    return selected if selected.usable or selected.not_applied else None
