"""An overnight tuning run killed outright (SIGKILL: power loss, OOM killer) loses nothing it had measured.

``lncompile tune`` runs in a subprocess on a tiny ONNX model with a small trial budget; once records reach the
log (``database_tuning_record.json``, one JSON record per line, appended by MetaSchedule) the whole process group
gets SIGKILL. A half-written last line (what a kill mid-append leaves) is then simulated by appending a cut
record. The same command run again must warn about the corrupt line, keep every complete record of the first
run, and add its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

pytestmark = pytest.mark.slow

RECORDS, WORKLOADS = "database_tuning_record.json", "database_workload.json"


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def _records(log: Path) -> set[str]:
    """Complete records as (workload structural hash, record body), canonical JSON, so rewrites compare equal."""
    workloads = [json.loads(line)[0] for line in (log / WORKLOADS).read_text().splitlines() if line.strip()]
    out = set()
    for line in (log / RECORDS).read_text().splitlines():
        try:
            index, body = json.loads(line)
        except (json.JSONDecodeError, ValueError):
            continue
        out.add(json.dumps([workloads[index], body], sort_keys=True))
    return out


def _line_count(path: Path) -> int:
    return path.read_text().count("\n") if path.is_file() else 0


def test_sigkill_then_resume_keeps_every_record(tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Tiny().eval(), (torch.randn(1, 3, 8, 8),), str(model), dynamo=False, opset_version=13)
    log = tmp_path / "log"
    command = [sys.executable, "-c", "import sys; from lncompile.cli import main; sys.exit(main())",
               "tune", str(model), "--log-dir", str(log), "--quick",
               "--trials", "8", "--trials-per-task", "4", "--trials-per-iter", "4"]

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while _line_count(log / RECORDS) < 2:
            if first.poll() is not None:
                pytest.fail(f"tune ended before writing 2 records: {first.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "no tuning records after 10 minutes"
            time.sleep(0.2)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, "the run had finished: nothing was interrupted"

    before = _records(log)
    assert len(before) >= 2
    complete = (log / RECORDS).read_text()
    if not complete.endswith("\n"):  # the kill itself cut a line; keep it (it must be skipped too)
        complete += "\n"
    last = complete.splitlines()[-1]
    (log / RECORDS).write_text(complete + last[: len(last) // 2])  # a half-written record, no newline

    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "corrupt line" in second.stderr, second.stderr[-2000:]
    after = _records(log)
    assert before <= after, f"{len(before - after)} record(s) of the killed run were lost"
    assert len(after) > len(before), "the resumed run added no records"
    for line in (log / RECORDS).read_text().splitlines():
        json.loads(line)  # the corrupt line is gone, not merely ignored
