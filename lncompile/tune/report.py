"""One-line summaries of the tuning logs a build applied (printed by ``lncompile build`` and ``bench``)."""

from __future__ import annotations

from typing import Any


def describe_tuning(tuning: dict[str, Any] | None) -> list[str]:
    if not tuning:
        return []
    lines = []
    logs = tuning.get("logs", [])
    if logs:
        kind = "shipped tuning log" if all(log["shipped"] for log in logs) else "tuning log"
        # the logs a record was applied from (a build reads every shipped log of its preset)
        used = [log for log in logs if log["best_records"]] or logs
        unused = len(logs) - len(used)
        paths = ", ".join(log["path"] for log in used)
        records = sum(log["records"] for log in used)
        read_too = f"; {unused} more read, no record of theirs applied" if unused else ""
        in_situ = sum(log.get("in_situ_records", 0) for log in logs)
        tuned_on = sorted({log["tuned_on"] for log in logs
                           if log.get("tuned_on") and not log.get("fallback") and log["best_records"]})
        fallback = [log for log in logs if log.get("fallback") and log["best_records"]]
        by_hand = tuning.get("kernels_by_hand", 0)
        if tuning["kernels_tuned"]:
            lines.append(f"applied {kind} {paths} ({records} records{read_too}): {tuning['kernels_tuned']} of "
                         f"{tuning['kernels']} kernels (tasks) tuned"
                         + (f", {in_situ} with the schedule chosen in situ" if in_situ else "")
                         + (f"; plus {by_hand} scheduled by hand (not tasks)" if by_hand else "")
                         + (f"; schedules tuned on {', '.join(tuned_on)}, a CPU other than this build's "
                            "(timings may differ: `lncompile tune` re-tunes here)" if tuned_on else "")
                         + (f"; {sum(log['best_records'] for log in fallback)} of them with schedules tuned on "
                            f"{', '.join(sorted({log['tuned_on'] for log in fallback}))} for want of a log for "
                            f"this CPU ({_shortened(fallback[0]['fallback'])}; `lncompile tune` tunes for it)"
                            if fallback else ""))
        else:
            lines.append(f"{kind} {paths}: no record for any of the {tuning['kernels']} kernels of this model, "
                         f"built with default schedules (`lncompile tune` makes a log for it)")
    for skipped in tuning.get("not_applied", []):
        lines.append(f"shipped tuning log {skipped['path']} not applied: {skipped['why']}")
    return lines


def _shortened(lacking: str, shown: int = 3) -> str:
    """'this CPU lacks a, b, c, d, e' as 'this CPU lacks a, b, c and 2 more'."""
    head, _, names = lacking.rpartition("lacks ")
    parts = names.split(", ")
    if len(parts) <= shown:
        return lacking
    return f"{head}lacks {', '.join(parts[:shown])} and {len(parts) - shown} more"
