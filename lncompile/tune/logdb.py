"""Tuning log directories: MetaSchedule's JSON database plus lncompile's manifest.

A log directory holds

- ``database_workload.json``: one workload per line, ``[structural_hash, base64 TIR module]``;
- ``database_tuning_record.json``: one measured schedule per line, ``[workload_line_index, [trace, run_secs,
  target, args_info]]``, appended as tuning measures them;
- ``manifest.json``: TVM / tvm-ffi / LLVM versions, the target JSON, and per model the IR hash, trials, wall
  time and per-task best latency;
- ``in_situ.json`` (optional, :mod:`lncompile.tune.in_situ`): per workload, the schedule that ran fastest
  inside the model among its fastest few; a build applies it instead of the fastest record while the
  workload's fastest record is still one of those few.

Records are filed under the workload's structural hash, so one directory can serve every model whose fused
kernels have the same shapes. A record is only meaningful for the TVM version that measured it and a target
like the one it was measured on (the same, or a CPU with at least its SIMD extensions): :func:`check_compatible`
refuses anything else. Corrupt lines (a crash mid-write, a bad merge) are skipped with a warning, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fileio import write_json_atomic, write_text_atomic

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
MANIFEST = "manifest.json"
IN_SITU = "in_situ.json"
IN_SITU_FORMAT = "lncompile-in-situ/1"
FORMAT = "lncompile-tuning-log/1"


class TuningLogWarning(UserWarning):
    """A tuning log line or shipped log that was skipped."""


class TuningLogError(UsageError):
    """A tuning log that cannot be used for this build (other TVM version, other target, unreadable)."""


def versions() -> dict[str, str]:
    """The versions a record depends on: TVM (schedule semantics), tvm-ffi (JSON format), LLVM (codegen)."""
    from importlib import metadata

    from ..backend import tvm_api

    found = {}
    for dist in ("apache-tvm", "apache-tvm-ffi"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    found["llvm"] = tvm_api.llvm_version()
    return found


def has_database(directory: Path) -> bool:
    return (directory / WORKLOADS).is_file()


# ---- reading the database files line by line -------------------------------------------------------------

@dataclass
class ParsedLog:
    """The JSON-valid lines of a log directory, with record indices remapped past skipped workloads."""

    workloads: list[Any] = field(default_factory=list)  # [hash, module] per kept workload line
    records: list[tuple[int, Any]] = field(default_factory=list)  # (index into workloads, record body)
    skipped: list[str] = field(default_factory=list)  # "file:line (why)"

    def warn(self, directory: Path) -> None:
        if self.skipped:
            shown = ", ".join(self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else "")
            warnings.warn(f"tuning log {directory}: skipped {len(self.skipped)} corrupt line(s): {shown}",
                          TuningLogWarning, stacklevel=3)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _leading_field(line: str) -> str:
    """The text before the first comma of ``[first, ...]`` (a workload's quoted hash, a record's index)."""
    end = line.find(",")
    return line[1:end].strip() if line.startswith("[") and end > 0 else ""


def parse_log(directory: Path, wanted: set[str] | None = None) -> ParsedLog:
    """Read both database files, dropping lines that are not JSON of the expected shape.

    ``wanted``: workload hashes to keep (the kernels of the model being built); the lines of every other
    workload and their records are passed over without being parsed, so a build pays only for its own kernels.
    """
    parsed = ParsedLog()
    remap: dict[int, int] = {}
    for number, line in enumerate(_lines(directory / WORKLOADS)):
        if not line.strip():
            continue
        if wanted is not None and _leading_field(line).strip('"') not in wanted and line.rstrip().endswith("]"):
            continue  # another model's kernel (a line cut short is still reported below)
        try:
            item = json.loads(line)
            ok = isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            parsed.skipped.append(f"{WORKLOADS}:{number + 1}")
            continue
        if wanted is not None and item[0] not in wanted:
            continue
        remap[number] = len(parsed.workloads)  # records name workloads by line number
        parsed.workloads.append(item)
    for number, line in enumerate(_lines(directory / RECORDS)):
        if not line.strip():
            continue
        index = _leading_field(line)
        if wanted is not None and index.isdigit() and int(index) not in remap:
            continue  # a record of a workload passed over
        try:
            item = json.loads(line)
            ok = (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
                  and isinstance(item[1], list) and item[0] in remap)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            parsed.skipped.append(f"{RECORDS}:{number + 1}")
            continue
        parsed.records.append((remap[item[0]], item[1]))
    return parsed


def repair_in_place(directory: Path) -> int:
    """Rewrite the database files without their corrupt lines (atomically); returns how many were dropped.

    Run before tuning resumes: MetaSchedule's own JSON reader stops at the first bad line.
    """
    parsed = parse_log(directory)
    if not parsed.skipped:
        return 0
    parsed.warn(directory)
    write_text_atomic(directory / WORKLOADS, "".join(json.dumps(w) + "\n" for w in parsed.workloads))
    write_text_atomic(directory / RECORDS, "".join(json.dumps([i, r]) + "\n" for i, r in parsed.records))
    return len(parsed.skipped)


MAX_RUN_SECS = 1e10  # MetaSchedule's run time for a candidate that failed to build or run


def mean_run_secs(body: Any) -> float | None:
    """The mean measured seconds of a record body, or None when it holds no valid measurement."""
    secs = body[1] if len(body) > 1 else None
    if not isinstance(secs, list) or not secs or not all(isinstance(s, (int, float)) for s in secs):
        return None
    mean = sum(secs) / len(secs)
    return mean if 0 <= mean < MAX_RUN_SECS else None


def schedule_id(body: Any) -> str:
    """A short name for a record body's schedule (its trace), the same in every log that holds it."""
    trace = json.dumps(body[0], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(trace.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class InSituChoice:
    chosen: str  # schedule_id of the schedule that ran fastest inside the model
    candidates: frozenset[str]  # schedule_ids of the schedules it was compared with


def read_in_situ(directory: Path) -> dict[str, InSituChoice]:
    """The in-situ choices of a log directory by workload hash ({} without ``in_situ.json``). A file that
    cannot be read is ignored with a warning: its kernels get their fastest records, as without it."""
    path = directory / IN_SITU
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != IN_SITU_FORMAT:
            raise ValueError(f"not a {IN_SITU_FORMAT} file")
        choices = {}
        for workload, kernel in data["kernels"].items():
            candidates = kernel["candidates"]
            if not (isinstance(kernel["chosen"], str) and isinstance(candidates, list)
                    and all(isinstance(c, str) for c in candidates) and kernel["chosen"] in candidates):
                raise ValueError(f"bad entry for workload {str(workload)[:16]}")
            choices[str(workload)] = InSituChoice(kernel["chosen"], frozenset(candidates))
        return choices
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        why = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        warnings.warn(f"tuning log {directory}: ignored {IN_SITU} ({why}); its kernels get their fastest records",
                      TuningLogWarning, stacklevel=2)
        return {}


Ranked = tuple[float, int, Any, Any]  # (mean seconds, log number, workload line, record body)


def _in_situ_pick(workload: str, ordered: list[Ranked], choices: list[dict[str, InSituChoice]],
                  ranks: list[int]) -> Ranked | None:
    """The record an in-situ choice names, if one applies: the workload's fastest record must be among the
    schedules that choice compared (a faster schedule tuned since then makes the choice stale), and a choice
    timed on a CPU further from the build's (see :func:`load_into`) does not overrule the record that leads."""
    fastest: str | None = None
    for n, log_choices in enumerate(choices):
        choice = log_choices.get(workload)
        if choice is None or ranks[n] > ranks[ordered[0][1]]:
            continue
        fastest = fastest or schedule_id(ordered[0][3])
        if fastest not in choice.candidates:
            continue
        for entry in ordered:
            if entry[1] == n and schedule_id(entry[3]) == choice.chosen:
                return entry
    return None


def load_into(db: Any, directories: list[Path], wanted: set[str] | None = None,
              ranks: list[int] | None = None) -> list[tuple[int, int, int, int]]:
    """Commit into ``db``, per workload, the record a build applies: the fastest valid one found in any of
    ``directories``, or the one an ``in_situ.json`` of theirs chose (see :func:`_in_situ_pick`).

    A build applies only each workload's best record, so the rest are not decoded: decoding a record parses its
    schedule trace (~4 ms each), and the shipped logs hold thousands, which every build would pay for. A best
    record TVM cannot decode gives way to the next best; lines TVM rejects are skipped with a warning. The
    logs are ranked together, not one after another: a kernel that two models share has one hash in both
    logs, and the record applied must be committed with its own log's copy of the kernel
    (:func:`tvm_api.commit_record_with_workload`). ``wanted`` limits loading to these workload hashes (see
    :func:`parse_log`). ``ranks`` says per directory how far its CPU is from the build's: 0 the build's own,
    1 another whose extensions the build's has (see :func:`tuned_for_another_cpu`), 2 one with extensions the
    build's lacks (see :func:`fallback_only`). A workload's records from a nearer CPU come before those from a
    further one, whatever their times, since timings from two CPUs do not compare. Returns per directory
    (workloads it holds, their valid records, records applied, of which chosen in situ).
    """
    from ..backend import tvm_api

    parsed_logs = [parse_log(directory, wanted) for directory in directories]
    ranks = ranks or [0] * len(directories)
    choices = [read_in_situ(directory) for directory in directories]
    ranked: dict[str, list[Ranked]] = {}
    valid = [0] * len(directories)
    for n, parsed in enumerate(parsed_logs):
        for index, body in parsed.records:
            mean = mean_run_secs(body)
            if mean is not None:
                workload = parsed.workloads[index]
                ranked.setdefault(str(workload[0]), []).append((mean, n, workload, body))
                valid[n] += 1
    applied, in_situ = [0] * len(directories), [0] * len(directories)
    for workload_hash, candidates in ranked.items():
        ordered = sorted(candidates, key=lambda c: (ranks[c[1]], c[0]))
        picked = _in_situ_pick(workload_hash, ordered, choices, ranks)
        if picked is not None:
            ordered = [picked] + [entry for entry in ordered if entry is not picked]
        for entry in ordered:
            _, n, workload, body = entry
            try:
                tvm_api.commit_record_with_workload(db, workload, body)
                applied[n] += 1
                in_situ[n] += entry is picked
                break
            except Exception as e:  # a decodable line TVM rejects: same treatment as bad JSON
                parsed_logs[n].skipped.append(f"{RECORDS} record for workload {str(workload[0])[:16]} "
                                              f"({type(e).__name__})")
    for parsed, directory in zip(parsed_logs, directories, strict=True):
        parsed.warn(directory)
    return [(len(parsed.workloads), valid[n], applied[n], in_situ[n]) for n, parsed in enumerate(parsed_logs)]


def count_records(directory: Path) -> int:
    return len(parse_log(directory).records)


# ---- manifest ------------------------------------------------------------------------------------------

def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TuningLogError(f"tuning log manifest {path} is not valid JSON ({e}); delete it and re-run "
                             f"`lncompile tune` with --log-dir {directory}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TuningLogError(f"{path} is not an lncompile tuning-log manifest (format {FORMAT!r} expected)")
    return data


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    return write_json_atomic(directory / MANIFEST, manifest)


# The CPU features a schedule's vector code can depend on: instruction-set extensions (LLVM's names), not the
# tuning flags LLVM lists beside them (fast-*, slow-*) nor extensions no kernel uses (sse4a, sha, ...).
SIMD_FEATURE = re.compile(r"^(sse\d*(\.\d)?|ssse3|avx.*|fma|f16c|amx.*|neon|sve.*|dotprod|i8mm|fullfp16|fp16fml|bf16)$")


def assess(manifest: dict[str, Any] | None, target_json: dict[str, Any], *,
           same_cpu: bool = False) -> tuple[str | None, str | None]:
    """(why a log must not be applied to a build for ``target_json`` with this TVM, or None if it may; and, for a
    log refused only for its CPU's SIMD extensions that the build's CPU lacks, "this CPU lacks ...": such a log
    may still fill in kernels no fitting log has a record for, else None).

    A log tuned for another CPU of the same architecture fits when the build's CPU has every SIMD extension
    the log's CPU has: a record is a schedule (loop transformations), compiled again for the build's CPU, so
    it runs correctly anywhere and its vector loops find the instructions they were tuned for. How fast it is
    there was measured on the log's CPU only (see :func:`tuned_for_another_cpu`). ``same_cpu`` (for adding
    measurements to the log, which are compared with its records) refuses any other CPU. A log whose CPU has
    extensions the build's lacks still computes the same there (LLVM splits a vector wider than the build's
    registers); its schedules were not tuned for this CPU, but any tuned schedule beats a kernel's untuned
    default by far, hence the fallback.
    """
    if manifest is None:
        return f"it has no {MANIFEST}, so its TVM version and target are unknown", None
    logged_tvm = manifest.get("versions", {}).get("apache-tvm")
    here = versions()["apache-tvm"]
    if logged_tvm != here:
        return f"it was tuned with TVM {logged_tvm} and this is TVM {here}", None
    logged_target = _logged_target(manifest)
    if logged_target == target_json:
        return None, None
    keys = sorted({*logged_target, *target_json})
    diff = [k for k in keys if logged_target.get(k) != target_json.get(k)]
    described = ", ".join(f"{k}={logged_target.get(k)!r} (log) vs {target_json.get(k)!r}" for k in diff)
    if same_cpu and diff == ["mcpu"]:
        return f"it was tuned for another target: {described} (timings from two CPUs cannot share one log)", None
    if diff != ["mcpu"] or target_json.get("kind") != "llvm":
        return f"it was tuned for another target: {described}", None
    lacking = _missing_extensions(target_json["mtriple"], logged_target["mcpu"], target_json["mcpu"])
    if lacking is None:
        return (f"it was tuned for another target: {described}, and LLVM knows no CPU {logged_target['mcpu']!r} "
                f"for {target_json['mtriple']}"), None
    if not lacking:
        return None, None
    shortfall = f"this CPU lacks {', '.join(lacking)}"
    return f"it was tuned for another target: {described}, and {shortfall}", shortfall


def incompatibility(manifest: dict[str, Any] | None, target_json: dict[str, Any], *,
                    same_cpu: bool = False) -> str | None:
    """Why a log must not be applied to a build for ``target_json`` with this TVM, or None if it may (see
    :func:`assess`)."""
    return assess(manifest, target_json, same_cpu=same_cpu)[0]


def fallback_only(manifest: dict[str, Any] | None, target_json: dict[str, Any]) -> str | None:
    """"this CPU lacks ..." for a log that does not fit this build only for its CPU's SIMD extensions, which may
    still fill in kernels no fitting log has a record for; else None (see :func:`assess`)."""
    return assess(manifest, target_json)[1]


def _missing_extensions(mtriple: str, logged_cpu: str, build_cpu: str) -> list[str] | None:
    """The SIMD extensions ``logged_cpu`` has and ``build_cpu`` lacks; None if LLVM knows no ``logged_cpu``."""
    from ..backend import tvm_api

    logged = tvm_api.llvm_cpu_features(mtriple, logged_cpu)
    if logged is None:
        return None
    return sorted(f for f in logged - (tvm_api.llvm_cpu_features(mtriple, build_cpu) or frozenset())
                  if SIMD_FEATURE.match(f))


def tuned_for_another_cpu(manifest: dict[str, Any] | None, target_json: dict[str, Any]) -> str | None:
    """The CPU a fitting log was tuned on when it is not the build's, else None."""
    logged_cpu = _logged_target(manifest).get("mcpu")
    return logged_cpu if logged_cpu != target_json.get("mcpu") else None


def _logged_target(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The TVM target JSON a log's manifest says it was tuned for ({} if it says none)."""
    return (manifest or {}).get("target", {}).get("tvm_target") or {}


def check_compatible(directory: Path, target_json: dict[str, Any], *, same_cpu: bool = False) -> dict[str, Any]:
    """The log's manifest, or a one-line :class:`TuningLogError` saying why it does not fit this build
    (``same_cpu``: see :func:`incompatibility`)."""
    if not directory.is_dir() or not has_database(directory):
        raise TuningLogError(f"tuning log {directory} not found (expected a directory holding {WORKLOADS}); "
                             f"create one with `lncompile tune MODEL --log-dir {directory}`")
    manifest = read_manifest(directory)
    why = incompatibility(manifest, target_json, same_cpu=same_cpu)
    if why is not None:
        raise TuningLogError(f"refusing tuning log {directory}: {why}; re-tune with `lncompile tune`")
    assert manifest is not None
    return manifest
