"""Bad input to every CLI entry point: one line on stderr, ``lncompile: error: ...``, exit 2 for usage errors and
1 for failures, never a traceback; and ``--help`` works for every subcommand.

The CLI runs in-process (``lncompile.cli.main``); stderr is captured at the file-descriptor level, and Python
warnings are counted as stderr lines too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from lncompile import graphs
from lncompile.cli import cli, main
from tests.conftest import cli_in_process


def assert_one_line(argv: list, capfd: pytest.CaptureFixture[str], status: int, *needles: str) -> str:
    """``lncompile ARGV`` fails with ``status`` and one stderr line that contains every needle."""
    code, lines, _ = cli_in_process(argv, capfd)
    assert (code, len(lines)) == (status, 1), f"{argv}: exit {code}, stderr {lines}"
    line = lines[0]
    assert line.startswith("lncompile: error: "), line
    for needle in needles:
        assert needle in line, f"{argv}: {needle!r} not in {line!r}"
    return line


# ---- models, targets, knobs ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needles", [
    (["build", "no_such_model"], ["unknown model 'no_such_model'", "mobilenet_v2"]),
    (["build", "missing_file.onnx"], ["missing_file.onnx", "does not exist"]),
    (["build", "mobilenet_v2", "--target", "z80"], ["unknown target 'z80'", "x86"]),
    (["build", "mobilenet_v2", "--width-mult", "-1"], ["width_mult", "-1"]),
    (["build", "mobilenet_v2", "--width-mult", "nan"], ["width_mult", "nan"]),
    (["build", "mobilenet_v2", "--resolution", "0"], ["resolution", "0"]),
    (["build", "mobilenet_v2", "--resolution", "7"], ["resolution", "7"]),
    (["build", "mobilenet_v2", "--batch", "0"], ["batch", "0"]),
    (["build", "mobilenet_v2", "--batch", "-3"], ["batch", "-3"]),
    (["build", "mobilenet_v2", "--depth-mult", "2"], ["depth_mult", "width_mult"]),
    (["build", "mobilenet_v2", "--knob", "colour=blue"], ["colour"]),
    (["build", "mobilenet_v2", "--knob", "novalue"], ["--knob", "NAME=VALUE"]),
    (["build", "mobilenet_v2", "--resolution", "abc"], ["abc"]),
    (["build", "mobilenet_v2", "--bogus-flag"], ["--bogus-flag"]),
    (["build"], ["MODEL"]),
    (["frobnicate"], ["frobnicate"]),
    (["profile", "mobilenet_v2", "--input-shape", "1,3,224,224"], ["--input-shape", "NAME="]),
])  # fmt: skip
def test_usage_errors_exit_2_in_one_line(argv: list[str], needles: list[str], tmp_path: Path,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    if argv[0] == "build" and len(argv) > 1:
        argv = [*argv, "-o", str(tmp_path / "out")]
    assert_one_line(argv, capfd, 2, *needles)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_every_zoo_model_refuses_resolution_1(capfd: pytest.CaptureFixture[str]) -> None:
    """No zoo network works on a 1x1 image; each says so in one line, before building anything."""
    for name in graphs.names():
        assert_one_line(["profile", name, "--resolution", "1"], capfd, 2, "1")


def test_every_width_knob_refuses_negative_multipliers(capfd: pytest.CaptureFixture[str]) -> None:
    checked = 0
    for name in graphs.names():
        if "width_mult" in graphs.spec(name).knobs:
            assert_one_line(["profile", name, "--width-mult", "-1"], capfd, 2, "width")
            checked += 1
    assert checked >= 10


# ---- ONNX files with dynamic shapes and external data ----------------------------------------------------

class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dyn") / "dyn.onnx"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Tiny().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, opset_version=13,
                          input_names=["pixels"], output_names=["logits"],
                          dynamic_axes={"pixels": {0: "batch", 2: "height", 3: "width"}})
    return path


def test_dynamic_onnx_needs_input_shape(dynamic_onnx: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert_one_line(["profile", dynamic_onnx], capfd, 2, "'pixels'", "dynamic", "--input-shape pixels=")
    assert_one_line(["profile", dynamic_onnx, "--input-shape", "pixels=1,3,0,8"], capfd, 2, "1,3,0,8", "positive")
    assert_one_line(["profile", dynamic_onnx, "--input-shape", "pixels=1,3,8"], capfd, 2, "pixels")
    assert_one_line(["profile", dynamic_onnx, "--input-shape", "pixels=1,4,8,8"], capfd, 2, "pixels")
    assert_one_line(["profile", dynamic_onnx, "--input-shape", "other=1,3,8,8"], capfd, 2, "other", "pixels")
    assert_one_line(["profile", dynamic_onnx, "--input-shape", "pixels=1,3,x,8"], capfd, 2, "1,3,x,8")
    code, lines, out = cli_in_process(["profile", dynamic_onnx, "--input-shape", "pixels=2,3,16,12"], capfd)
    assert (code, lines) == (0, []) and "2x4x16x12" in out


def _external_model(folder: Path, location: str) -> Path:
    w = numpy_helper.from_array(np.ones((4,), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    path = folder / "ext.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "link.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path, location: str,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secret.bin").write_bytes(np.full(4, 7, np.float32).tobytes())
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    path = _external_model(folder, location)
    assert_one_line(["profile", path], capfd, 1, "outside the model's folder", "'w'")
    # the same file with its data beside it is fine
    (folder / "inside.bin").write_bytes(np.full(4, 7, np.float32).tobytes())
    code, lines, _ = cli_in_process(["profile", _external_model(folder, "inside.bin")], capfd)
    assert (code, lines) == (0, [])


# ---- lncompile run: libraries, manifests, inputs ---------------------------------------------------------

@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lib")
    torch.manual_seed(0)
    path = folder / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Tiny().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, opset_version=13)
    assert main(["build", str(path), "-o", str(folder / "out")]) == 0
    return folder / "out" / "tiny-x86.so"


def _copy_pair(library: Path, folder: Path, name: str = "copy") -> Path:
    so = folder / f"{name}.so"
    shutil.copy(library, so)
    shutil.copy(library.with_suffix(".json"), so.with_suffix(".json"))
    return so


@pytest.mark.slow
def test_run_accepts_the_real_library(library: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    argv = ["run", library, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy"]
    code, lines, out = cli_in_process(argv, capfd)
    assert (code, lines) == (0, []) and "output shape: (1, 3)" in out
    assert np.load(tmp_path / "y.npy", allow_pickle=False).shape == (1, 3)


@pytest.mark.slow
def test_run_refuses_files_that_are_not_libraries(library: Path, tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.so"
    text.write_text("not a library\n")
    assert_one_line(["run", text], capfd, 1, "notes.so", "ELF")
    assert_one_line(["run", tmp_path / "absent.so"], capfd, 1, "absent.so", "does not exist")
    assert_one_line(["run", tmp_path], capfd, 1)


@pytest.mark.slow
def test_run_refuses_an_elf_that_is_not_a_tvm_library(library: Path, tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """A harmless shared object (compiled here from an empty C file: no constructors) with a valid manifest."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler")
    (tmp_path / "empty.c").write_text("/* nothing */\n")
    so = tmp_path / "empty.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(so), str(tmp_path / "empty.c")], check=True)
    manifest = json.loads(library.with_suffix(".json").read_text())
    so.with_suffix(".json").write_text(json.dumps(manifest))  # library_sha256 is the real library's
    assert_one_line(["run", so], capfd, 1, "empty.so", "does not match its manifest")
    manifest["library_sha256"] = hashlib.sha256(so.read_bytes()).hexdigest()
    so.with_suffix(".json").write_text(json.dumps(manifest))
    assert_one_line(["run", so], capfd, 1, "empty.so", "not one lncompile built")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "not json", "empty", "other format", "lacks inputs", "inputs not a list",
                                  "shape of strings", "target not an object", "library swapped"])
def test_run_refuses_a_bad_manifest(library: Path, tmp_path: Path, case: str,
                                    capfd: pytest.CaptureFixture[str]) -> None:
    so = _copy_pair(library, tmp_path)
    manifest_file = so.with_suffix(".json")
    good = json.loads(manifest_file.read_text())
    edits = {
        "other format": {"format": "something/2"}, "lacks inputs": {"inputs": None},
        "inputs not a list": {"inputs": "x"}, "shape of strings": {"inputs": [{"name": "x", "shape": ["a"],
                                                                                "dtype": "float32"}]},
        "target not an object": {"target": ["x86"]},
    }  # fmt: skip
    if case == "missing":
        manifest_file.unlink()
    elif case == "not json":
        manifest_file.write_text("{ this is not json")
    elif case == "empty":
        manifest_file.write_text("")
    elif case == "library swapped":  # a .so from another build next to this manifest
        other = dict(good, library_sha256="0" * 64)
        manifest_file.write_text(json.dumps(other))
    else:
        bad = {**good, **edits[case]}
        bad = {k: v for k, v in bad.items() if v is not None}
        manifest_file.write_text(json.dumps(bad))
    assert_one_line(["run", so], capfd, 1, "copy.")


@pytest.mark.slow
def test_run_refuses_bad_input_arrays(library: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "shape.npy", np.zeros((1, 3, 9, 8), np.float32))
    np.save(tmp_path / "dtype.npy", np.zeros((1, 3, 8, 8), np.float64))
    np.save(tmp_path / "pickled.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "archive.npz", x=np.zeros((1, 3, 8, 8), np.float32))
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "shape.npy").read_bytes()[:100])
    (tmp_path / "text.npy").write_text("1 2 3\n")
    assert_one_line(["run", library, "-i", tmp_path / "shape.npy"], capfd, 2, "shape (1, 3, 8, 8)", "(1, 3, 9, 8)")
    assert_one_line(["run", library, "-i", tmp_path / "dtype.npy"], capfd, 2, "float32", "float64")
    line = assert_one_line(["run", library, "-i", tmp_path / "pickled.npy"], capfd, 2, "pickled.npy")
    assert "allow_pickle=False" in line or "Object arrays" in line
    assert_one_line(["run", library, "-i", tmp_path / "archive.npz"], capfd, 2, "not a .npy file")
    assert_one_line(["run", library, "-i", tmp_path / "truncated.npy"], capfd, 2, "truncated.npy")
    assert_one_line(["run", library, "-i", tmp_path / "text.npy"], capfd, 2, "not a .npy file")
    assert_one_line(["run", library, "-i", tmp_path / "absent.npy"], capfd, 2, "absent.npy")


@pytest.mark.slow
def test_pickled_npy_is_never_unpickled(library: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """An object array whose unpickling would run code: the code must not run."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    np.save(tmp_path / "evil.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    assert_one_line(["run", library, "-i", tmp_path / "evil.npy"], capfd, 2, "evil.npy")
    assert not marker.exists()


# ---- --help ----------------------------------------------------------------------------------------------

def test_every_subcommand_has_help(capfd: pytest.CaptureFixture[str]) -> None:
    names = sorted(cli.commands)
    assert {"build", "run", "list", "targets", "profile"} <= set(names)
    for argv in [["--help"], *[[name, "--help"] for name in names]]:
        code, lines, out = cli_in_process(argv, capfd)
        assert (code, lines) == (0, []), f"{argv}: exit {code}, stderr {lines}"
        assert out.startswith("Usage: lncompile"), f"{argv}: {out[:80]!r}"
