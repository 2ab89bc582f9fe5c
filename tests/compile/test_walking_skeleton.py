"""End to end on the host CPU: torch module / ONNX file / zoo model -> IR -> TVM -> .so -> numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile.cli import main
from lncompile.errors import BuildError, RuntimeInputError
from tests.conftest import cli_in_process, relative_error

pytestmark = pytest.mark.slow


def test_compile_torch_module_matches_pytorch(tiny_block: nn.Module, tiny_input: np.ndarray, tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    compiled = lncompile.compile(tiny_block, "x86", example_input=tiny_input)
    with torch.no_grad():
        expected = tiny_block(torch.from_numpy(tiny_input)).numpy()
    assert relative_error(compiled(tiny_input), expected) <= 1e-4

    library = compiled.export(tmp_path / "tiny.so")
    manifest = json.loads(library.with_suffix(".json").read_text())
    assert manifest["inputs"] == [{"name": "x", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert manifest["outputs"][0]["shape"] == [1, 10]
    assert manifest["target"]["tvm_target"]["kind"] == "llvm"
    assert set(manifest["versions"]) >= {"lncompile", "apache-tvm", "torch"}
    assert len(manifest["ir_sha256"]) == 64

    loaded = lncompile.load(library)
    assert relative_error(loaded(tiny_input), expected) <= 1e-4
    with pytest.raises(RuntimeInputError, match="shape"):
        loaded(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(RuntimeInputError, match="float32"):
        loaded(tiny_input.astype(np.float64))

    # `lncompile run` never unpickles: an object array in a .npy is refused with one line.
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, lines, _ = cli_in_process(["run", library, "-i", tmp_path / "evil.npy"], capfd)
    assert code == 2 and len(lines) == 1 and "cannot read" in lines[0]


def test_results_are_the_callers_own_and_calls_from_threads_take_turns(tiny_block: nn.Module,
                                                                        tiny_input: np.ndarray) -> None:
    # The model reuses its input tensors between calls and the VM is not reentrant: neither may show.
    compiled = lncompile.compile(tiny_block, "x86", example_input=tiny_input)
    inputs = [np.random.default_rng(seed).standard_normal(tiny_input.shape).astype(np.float32) for seed in range(8)]
    with torch.no_grad():
        expected = [tiny_block(torch.from_numpy(x)).numpy() for x in inputs]
    first = compiled(inputs[0])
    compiled(inputs[1])
    assert relative_error(first, expected[0]) <= 1e-4  # not overwritten by the next call
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda x: compiled(x), inputs * 4))
    assert all(relative_error(r, expected[i % 8]) <= 1e-4 for i, r in enumerate(results))


def test_onnx_build_matches_onnxruntime(tiny_block: nn.Module, tiny_input: np.ndarray, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "tiny.onnx"
    torch.onnx.export(tiny_block, (torch.from_numpy(tiny_input),), str(onnx_path), dynamo=False, opset_version=13,
                      input_names=["image"])
    out_dir = tmp_path / "out"
    assert main(["build", str(onnx_path), "-o", str(out_dir)]) == 0
    library = out_dir / "tiny-x86.so"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": tiny_input})[0]
    assert relative_error(lncompile.load(library)(tiny_input), expected) <= 1e-4


def test_cli_build_mobilenet_v2_runs_in_a_fresh_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The headline: `lncompile build mobilenet_v2 --target x86 -o out/` gives PyTorch's numbers."""
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "lncompile.cli", "build", "mobilenet_v2", "--target", "x86",
                             "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Scope" not in result.stderr  # TVM's per-constant log spam is filtered
    library = out / "mobilenet_v2-x86.so"
    assert library.read_bytes()[:4] == b"\x7fELF" and library.read_bytes()[18] == 62  # EM_X86_64
    assert not list(out.glob(".*"))  # no temporary leftovers

    # The passes ran and say so (this process never held the model: the library stands alone).
    manifest = json.loads(library.with_suffix(".json").read_text())
    passes = {p["name"]: p for p in manifest["passes"]}
    assert passes["fold_batchnorm"]["matches"] == 52 and passes["fuse_conv_activation"]["matches"] > 30
    assert manifest["ir_sha256"] != manifest["imported_ir_sha256"]

    x = np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with torch.no_grad():
        expected = lncompile.graphs.create("mobilenet_v2")(torch.from_numpy(x)).numpy()
    assert relative_error(lncompile.load(library)(x), expected) <= 1e-4

    assert main(["run", str(library), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    stdout = capsys.readouterr().out
    assert "output shape: (1, 1000)" in stdout
    assert f"top-5 [0]: {int(np.argmax(expected))} " in stdout
    assert relative_error(np.load(tmp_path / "y.npy"), expected) <= 1e-4


def test_failed_export_leaves_no_partial_library(tiny_block: nn.Module, tiny_input: np.ndarray, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from lncompile.backend import tvm_api

    compiled = lncompile.compile(tiny_block, "x86", example_input=tiny_input)

    def half_written(executable: object, path: str, fcompile: object = None) -> None:
        Path(path).write_bytes(b"\x7fELF partial")
        raise RuntimeError("linker died")

    monkeypatch.setattr(tvm_api, "export_executable", half_written)
    with pytest.raises(BuildError, match="linker died"):
        compiled.export(tmp_path / "tiny.so")
    assert list(tmp_path.iterdir()) == []


def test_a_build_that_ran_exports_the_library_it_ran(tiny_block: nn.Module, tiny_input: np.ndarray, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The first call runs the build from its exported library; export() then copies that library."""
    from lncompile.backend import tvm_api

    compiled = lncompile.compile(tiny_block, "x86", example_input=tiny_input)
    y = compiled(tiny_input)
    compiled_again: list[object] = []
    monkeypatch.setattr(tvm_api, "export_executable", lambda *args, **kwargs: compiled_again.append(args))
    library = compiled.export(tmp_path / "tiny.so")
    assert compiled_again == []
    np.testing.assert_array_equal(lncompile.load(library)(tiny_input), y)


def test_a_build_that_cannot_be_linked_still_runs(tiny_block: nn.Module, tiny_input: np.ndarray, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from lncompile.backend import tvm_api

    def no_linker(*args: object, **kwargs: object) -> None:
        raise RuntimeError("g++: command not found")

    compiled = lncompile.compile(tiny_block, "x86", example_input=tiny_input)
    monkeypatch.setattr(tvm_api, "export_executable", no_linker)
    with torch.no_grad():
        expected = tiny_block(torch.from_numpy(tiny_input)).numpy()
    assert relative_error(compiled(tiny_input), expected) <= 1e-4  # in memory, as before
    with pytest.raises(BuildError, match="g\\+\\+: command not found"):
        compiled.export(tmp_path / "tiny.so")
    assert list(tmp_path.iterdir()) == []
