"""The command line: help, listings, and one-line errors with the right exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_in_process


def lncompile(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lncompile.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("command", [[], ["build"], ["run"], ["list"], ["targets"]])
def test_help_everywhere(command: list[str]) -> None:
    result = lncompile(*command, "--help")
    assert result.returncode == 0
    assert "Usage: lncompile" in result.stdout


def test_unknown_model_is_one_line_naming_known_models(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = cli_in_process(["build", "no_such_model", "-o", tmp_path], capfd)
    assert code == 2 and len(lines) == 1, lines
    assert "unknown model 'no_such_model'" in lines[0] and "mobilenet_v2" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_unknown_target_and_bad_knob(capfd: pytest.CaptureFixture[str]) -> None:
    # A real process: the exit status is the process's own (the target is checked before any model import).
    result = lncompile("build", "mobilenet_v2", "--target", "pdp11")
    assert result.returncode == 2 and "unknown target 'pdp11'" in result.stderr and "x86" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    code, lines, _ = cli_in_process(["build", "mobilenet_v2", "--knob", "colour=3"], capfd)
    assert code == 2 and len(lines) == 1 and "no knob colour" in lines[0]


def test_click_usage_errors_are_one_line() -> None:
    result = lncompile("frobnicate")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("lncompile: error:") and len(result.stderr.strip().splitlines()) == 1


def test_list_json_describes_every_model() -> None:
    result = lncompile("list", "--json")
    assert result.returncode == 0
    rows = json.loads(result.stdout)
    names = {r["name"] for r in rows}
    assert {"mobilenet_v1", "mobilenet_v2"} <= names
    v2 = next(r for r in rows if r["name"] == "mobilenet_v2")
    assert v2["resolution"] == 224 and "width_mult" in v2["knobs"] and v2["family"] == "mobilenet"


def test_targets_json() -> None:
    result = lncompile("targets", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"x86", "x86-avx2", "x86-avx512", "arm", "rpi4", "rpi5", "jetson-orin", "cuda"} <= set(rows)
    assert rows["rpi4"]["tvm_target"]["mcpu"] == "cortex-a72"


def test_run_refuses_files_that_are_not_libraries(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "model.so"
    fake.write_text("not a library")
    code, lines, _ = cli_in_process(["run", fake], capfd)
    assert code == 1 and len(lines) == 1 and "not a shared library" in lines[0]
    code, lines, _ = cli_in_process(["run", tmp_path / "missing.so"], capfd)
    assert code == 1 and "does not exist" in lines[0]
