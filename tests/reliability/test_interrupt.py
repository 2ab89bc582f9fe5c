"""Interrupting ``lncompile build``: Ctrl-C or SIGTERM at any stage leaves no partial library, manifest or temp file,
and the command exits non-zero with one line.

The build runs as a real subprocess; the signal is a real signal. To hit a given stage rather than a random
moment, the subprocess runs the CLI through a tiny driver that touches a marker file when the stage starts
(``tvm_api.build_executable``: TVM compiling, ``tvm_api.export_executable``: g++ linking the library into its
temporary file); the test waits for the marker, then signals.

TVM 0.27 swallows a ``KeyboardInterrupt`` raised in a Python callback under its C++ pipeline (or turns it into a
RuntimeError): without :mod:`lncompile.interrupts` the build went on and wrote the library after Ctrl-C.
"""

from __future__ import annotations

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

from lncompile import artifacts

pytestmark = pytest.mark.slow

DRIVER = """
import sys
from pathlib import Path
from lncompile.backend import tvm_api

markers = Path(sys.argv[1])
def mark(name):
    original = getattr(tvm_api, name)
    def wrapper(*args, **kwargs):
        (markers / name).touch()
        return original(*args, **kwargs)
    setattr(tvm_api, name, wrapper)
mark("build_executable")
mark("export_executable")
from lncompile.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 26-layer conv net: TVM takes a couple of seconds on it, long enough to be interrupted mid-way."""
    layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, padding=1), nn.ReLU()]
    for i in range(12):
        layers += [nn.Conv2d(32, 32, 3, padding=1, groups=1 if i % 2 else 32), nn.BatchNorm2d(32), nn.ReLU6()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)]
    path = tmp_path_factory.mktemp("model") / "convnet.onnx"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nn.Sequential(*layers).eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False,
                          opset_version=13)
    return path


def interrupted_build(model: Path, tmp_path: Path, stage: str, sig: int, delay: float = 0.0,
                      group: bool = False) -> tuple[int, list[str], list[str]]:
    """Start a build, signal it ``delay`` s after ``stage`` starts; returns (exit, stderr lines, files left)."""
    markers, out = tmp_path / "markers", tmp_path / "out"
    markers.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    # --no-tuning-log: a shipped log for this CPU would take another build path than the hooked one.
    proc = subprocess.Popen([sys.executable, str(driver), str(markers), "build", str(model), "--no-tuning-log",
                             "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (markers / stage).exists():
        assert proc.poll() is None, f"build ended before {stage}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{stage} never started"
        time.sleep(0.005)
    time.sleep(delay)
    assert proc.poll() is None, f"build finished before the signal ({stage} + {delay} s)"
    if group:  # what Ctrl-C in a terminal does: the whole process group (g++ included) gets SIGINT
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    text = err.decode()
    assert "Traceback" not in text, text
    # What the interrupt prints: lines starting "lncompile:". Not ours: blank lines (click ends the ^C line),
    # TVM's C++ log ("[21:03:12] .../block_builder.cc:67: Warning: BlockBuilder destroyed with remaining
    # blocks!" when the interrupt hits mid-pass) and warnings the build printed before the signal.
    lines = [line for line in text.splitlines() if line.startswith("lncompile:")]
    assert text.rstrip().splitlines()[-1] in lines, f"the last stderr line is not lncompile's: {text[-500:]}"
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    return proc.returncode, lines, left


# Two points inside TVM compiling; the later one must still fall before the link (NHWC presets compile this model in
# under a second, so 1.0 s hit the process after TVM had finished).
@pytest.mark.parametrize("stage, delay", [("build_executable", 0.3), ("build_executable", 0.6),
                                          ("export_executable", 0.0)])
def test_sigint_leaves_nothing_behind(model: Path, tmp_path: Path, stage: str, delay: float) -> None:
    code, lines, left = interrupted_build(model, tmp_path, stage, signal.SIGINT, delay)
    assert (code, lines, left) == (130, ["lncompile: interrupted"], [])


def test_ctrl_c_to_the_process_group_while_linking(model: Path, tmp_path: Path) -> None:
    code, lines, left = interrupted_build(model, tmp_path, "export_executable", signal.SIGINT, group=True)
    assert (code, lines, left) == (130, ["lncompile: interrupted"], [])


def test_sigterm_cleans_up_too(model: Path, tmp_path: Path) -> None:
    code, lines, left = interrupted_build(model, tmp_path, "export_executable", signal.SIGTERM)
    assert (code, lines, left) == (128 + signal.SIGTERM, ["lncompile: terminated"], [])


def test_uninterrupted_build_writes_the_pair(model: Path, tmp_path: Path) -> None:
    """The driver itself changes nothing: without a signal the same run produces a library and its manifest."""
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path), "build", str(model), "--no-tuning-log", "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["convnet-x86.json", "convnet-x86.so"]
    assert (tmp_path / "build_executable").exists() and (tmp_path / "export_executable").exists()


def test_interrupt_between_library_and_manifest_leaves_neither(model: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The instant between the two files, too small to hit with a signal, simulated in-process."""
    from lncompile.api import compile_imported
    from lncompile.frontend import import_model

    compiled = compile_imported(import_model(str(model)), "x86")
    library = tmp_path / "out" / "convnet-x86.so"
    compiled.export(library)  # an older pair at the same path
    assert library.exists() and library.with_suffix(".json").exists()

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(artifacts, "write_json_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compiled.export(library)
    assert sorted(p.name for p in library.parent.iterdir()) == []


def test_a_tvm_temp_directory_cut_short_by_an_interrupt_leaves_no_traceback() -> None:
    """The signal can land inside TVM's TempDirectory.__init__ (before it set temp_dir); deleting that
    half-built object used to print a traceback at exit (seen in test_sigterm_cleans_up_too, now and then)."""
    code = ("import lncompile.backend.tvm_api\nimport tvm.support.utils as u\n"
            "half_built = u.TempDirectory.__new__(u.TempDirectory)\ndel half_built\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "Exception ignored" not in result.stderr, result.stderr
