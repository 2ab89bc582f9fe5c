"""ARM end to end on an x86 machine: cross-compile, run the aarch64 library under qemu, compare with PyTorch.

Needs aarch64-linux-gnu-g++, qemu-aarch64 and network access to PyPI on first use (TVM's aarch64 runtime
wheels); each missing piece skips with its reason. CI installs the toolchain, so these run there.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile import arm
from lncompile.api import compile_imported
from lncompile.cli import main
from lncompile.errors import ToolchainError
from lncompile.frontend import import_model
from tests.conftest import relative_error

pytestmark = [pytest.mark.arm, pytest.mark.slow]

EM_AARCH64 = 183


def _elf_machine(path: Path) -> tuple[bytes, int, int]:
    header = path.read_bytes()[:20]
    return header[:4], header[4], int.from_bytes(header[18:20], "little")  # magic, EI_CLASS, e_machine


def _assert_aarch64_shared_object(path: Path) -> None:
    magic, elf_class, machine = _elf_machine(path)
    assert magic == b"\x7fELF" and elf_class == 2 and machine == EM_AARCH64
    assert int.from_bytes(path.read_bytes()[16:18], "little") == 3  # ET_DYN: a shared object


@pytest.fixture(scope="module")
def aarch64_runner() -> Path:
    """The cross-compiled runner and TVM's aarch64 runtime, or a skip naming what is missing."""
    for tool in (arm.CROSS_CXX, arm.QEMU):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install g++-aarch64-linux-gnu qemu-user)")
    if not (arm.SYSROOT / "lib" / "ld-linux-aarch64.so.1").is_file():
        pytest.skip(f"no aarch64 C library under {arm.SYSROOT}")
    try:
        kit = arm.aarch64_kit()
    except arm.RuntimeFetchError as e:
        pytest.skip(f"TVM's aarch64 runtime unavailable (no network?): {e}")
    return arm.build_runner(kit)


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory: pytest.TempPathFactory, aarch64_runner: Path) -> dict[str, Any]:
    """mobilenet_v2 at resolution 96 built for arm, with an input and PyTorch's output. (rpi4's flags are the
    tiny block's case; an -O3 build of mobilenet_v2 costs CI half a minute each.)"""
    out = tmp_path_factory.mktemp("mobilenet")
    library = compile_imported(import_model("mobilenet_v2", resolution=96), "arm").export(out / "mobilenet_v2-arm.so")
    x = np.random.default_rng(7).standard_normal((1, 3, 96, 96)).astype(np.float32)
    np.save(out / "x.npy", x)
    with torch.no_grad():
        expected = lncompile.graphs.create("mobilenet_v2", resolution=96)(torch.from_numpy(x)).numpy()
    return {"dir": out, "library": library, "x": x, "expected": expected}


@pytest.mark.parametrize("target", ["arm", "rpi4"])
def test_tiny_block_runs_under_qemu_and_matches_pytorch(target: str, tiny_block: nn.Module, tiny_input: np.ndarray,
                                                        tmp_path: Path, aarch64_runner: Path) -> None:
    compiled = lncompile.compile(tiny_block, target, example_input=tiny_input)
    library = compiled.export(tmp_path / f"tiny-{target}.so")
    _assert_aarch64_shared_object(library)
    with torch.no_grad():
        expected = tiny_block(torch.from_numpy(tiny_input)).numpy()
    outputs, timing = arm.run_library(library, [tiny_input], repeat=2)
    assert len(outputs) == 1 and relative_error(outputs[0], expected) <= 1e-4
    assert timing is not None and timing["runs"] == 2 and 0 < timing["min_ms"] <= timing["mean_ms"]


def test_mobilenet_v2_aarch64_matches_pytorch_under_qemu(mobilenet: dict[str, Any]) -> None:
    library = mobilenet["library"]
    _assert_aarch64_shared_object(library)
    model = arm.load_any(library)
    assert isinstance(model, arm.RunnerModel)
    assert relative_error(model(mobilenet["x"]), mobilenet["expected"]) <= 1e-4


def _top5(stdout: str) -> list[int]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("top-5 [0]: "))
    return [int(item.split(" (")[0]) for item in line.removeprefix("top-5 [0]: ").split(", ")]


def test_cli_run_on_aarch64_library_prints_pytorchs_top5(mobilenet: dict[str, Any], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    y_path = tmp_path / "y.npy"
    assert main(["run", str(mobilenet["library"]), "-i", str(mobilenet["dir"] / "x.npy"), "-o", str(y_path)]) == 0
    stdout = capsys.readouterr().out
    assert "output shape: (1, 1000)" in stdout
    assert _top5(stdout) == list(np.argsort(mobilenet["expected"][0])[::-1][:5])
    assert relative_error(np.load(y_path), mobilenet["expected"]) <= 1e-4


def test_cli_verify_passes_and_fails_on_tolerance(mobilenet: dict[str, Any],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(mobilenet["library"])]) == 0
    stdout = capsys.readouterr().out
    assert stdout.strip().endswith("PASS") and "mobilenet_v2 @96" in stdout
    # A tolerance no float32 build meets: the same comparison must fail, with a non-zero exit and one line.
    assert main(["verify", str(mobilenet["library"]), "--rtol", "1e-12"]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip().endswith("FAIL")
    assert len(captured.err.strip().splitlines()) == 1 and "max relative error" in captured.err


def test_cli_package_bundle_runs_without_lncompile(mobilenet: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "board" / "mobilenet.tar.gz"
    assert main(["package", str(mobilenet["library"]), "-o", str(archive)]) == 0
    assert [p.name for p in archive.parent.iterdir()] == ["mobilenet.tar.gz"]  # no temporary leftovers
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert all(not n.startswith("/") and ".." not in Path(n).parts for n in names)
        assert {Path(n).name for n in names} == {"model.so", "model.json", "libtvm_runtime.so", "libtvm_ffi.so",
                                                 "runner", "run.sh", "input.npy", "README.txt"}
        assert {Path(n).parts[0] for n in names} == {"mobilenet_v2-arm"}
        tar.extractall(tmp_path / "unpacked", filter="data")
    bundle = tmp_path / "unpacked" / "mobilenet_v2-arm"
    _assert_aarch64_shared_object(bundle / "model.so")
    _assert_aarch64_shared_object(bundle / "libtvm_runtime.so")
    assert os.access(bundle / "runner", os.X_OK) and os.access(bundle / "run.sh", os.X_OK)
    assert '"$here/runner" "$here/model.so"' in (bundle / "run.sh").read_text()

    # What the board does (./run.sh = runner + model.so): no LD_LIBRARY_PATH, no cache, only the bundle.
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    done = subprocess.run([arm.QEMU, "-L", str(arm.SYSROOT), "./runner", "model.so", "input.npy", "out.npy"],
                          cwd=bundle, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    x = np.load(bundle / "input.npy")
    with torch.no_grad():
        expected = lncompile.graphs.create("mobilenet_v2", resolution=96)(torch.from_numpy(x)).numpy()
    assert relative_error(np.load(bundle / "out.npy"), expected) <= 1e-4


def test_package_of_an_x86_library_runs_natively_through_run_sh(tiny_block: nn.Module, tiny_input: np.ndarray,
                                                                tmp_path: Path) -> None:
    """The same bundle for this machine's own library: run.sh itself runs here, with the host-built runner."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed (apt-get install g++)")
    library = lncompile.compile(tiny_block, "x86", example_input=tiny_input).export(tmp_path / "tiny.so")
    bundle = tmp_path / "x86-bundle"
    assert main(["package", str(library), "-o", str(bundle)]) == 0
    assert _elf_machine(bundle / "runner")[2] == _elf_machine(library)[2] == 62  # EM_X86_64
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    # One TVM worker: a spinning pool on cores other tests are using made this run take minutes, not seconds.
    env["TVM_NUM_THREADS"] = "1"
    done = subprocess.run(["./run.sh", "input.npy", "out.npy", "--repeat", "2"], cwd=bundle, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "timing: runs=2" in done.stdout
    expected = lncompile.load(bundle / "model.so")(np.load(bundle / "input.npy"))
    assert relative_error(np.load(bundle / "out.npy"), expected) <= 1e-6


def _run_runner(runner: Path, library: Path, inp: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([arm.QEMU, "-L", str(arm.SYSROOT), str(runner), str(library), str(inp), str(out)],
                          env={**os.environ, "LD_LIBRARY_PATH": str(runner.parent.parent / "lib")},
                          capture_output=True, text=True, timeout=300)


def test_runner_writes_the_npy_numpy_writes(mobilenet: dict[str, Any], aarch64_runner: Path, tmp_path: Path) -> None:
    done = _run_runner(aarch64_runner, mobilenet["library"], mobilenet["dir"] / "x.npy", tmp_path / "y.npy")
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "y.npy").read_bytes()
    y = np.load(tmp_path / "y.npy", allow_pickle=False)
    buf = io.BytesIO()
    np.save(buf, y)
    assert written == buf.getvalue()  # same header (format 1.0, '<f4', C order, 64-byte aligned) and data
    assert relative_error(y, mobilenet["expected"]) <= 1e-4


def test_runner_refuses_bad_npy_in_one_line(mobilenet: dict[str, Any], aarch64_runner: Path, tmp_path: Path) -> None:
    library = mobilenet["library"]
    np.save(tmp_path / "f64.npy", mobilenet["x"].astype(np.float64))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "short.npy").write_bytes((mobilenet["dir"] / "x.npy").read_bytes()[:500])
    cases = {"f64.npy": "not float32", "obj.npy": "not float32", "short.npy": "truncated"}
    for name, reason in cases.items():
        done = _run_runner(aarch64_runner, library, tmp_path / name, tmp_path / "out.npy")
        assert done.returncode == 2 and reason in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.npy").exists()


def test_missing_cross_compiler_is_one_line_with_the_install_command(
        tiny_block: nn.Module, tiny_input: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no aarch64-linux-gnu-g++ on it
    with pytest.raises(ToolchainError, match="apt-get install g\\+\\+-aarch64-linux-gnu") as info:
        lncompile.compile(tiny_block, "arm", example_input=tiny_input)
    assert "\n" not in str(info.value) and "aarch64-linux-gnu-g++ not found" in str(info.value)
    assert main(["build", "mobilenet_v2", "-r", "32", "--target", "rpi4", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install g++-aarch64-linux-gnu" in err
    assert not (tmp_path / "out").exists()


def test_llvm_without_aarch64_backend_is_one_line(tiny_block: nn.Module, tiny_input: np.ndarray,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from lncompile.backend import tvm_api

    assert "aarch64" in tvm_api.llvm_targets()  # the real wheel's LLVM has it (tvm-0.27.md); now pretend not
    monkeypatch.setattr(tvm_api, "llvm_targets", lambda: ("x86_64", "nvptx64"))
    with pytest.raises(ToolchainError, match="cannot emit aarch64 code") as info:
        lncompile.compile(tiny_block, "rpi5", example_input=tiny_input)
    assert "\n" not in str(info.value)


def test_missing_qemu_is_one_line_with_the_install_command(mobilenet: dict[str, Any], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["run", str(mobilenet["library"])]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "qemu-aarch64 not found" in err and "apt-get install qemu-user" in err


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_wheel_extraction_stays_inside_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "cache" / "kit"
    root.mkdir(parents=True)
    good = _zip(tmp_path / "good.whl", {"tvm_ffi/include/tvm/ffi/a.h": b"ok", "tvm_ffi/lib/libtvm_ffi.so": b"so",
                                        "tvm_ffi/other.py": b"not wanted"})
    written = arm.extract_members(good, root, {"tvm_ffi/include/": "include/",
                                               "tvm_ffi/lib/libtvm_ffi.so": "lib/libtvm_ffi.so"})
    assert sorted(p.relative_to(root).as_posix() for p in written) == ["include/tvm/ffi/a.h", "lib/libtvm_ffi.so"]
    for evil in ("tvm_ffi/include/../../../evil.h", "tvm_ffi/include/..\\..\\evil.h"):
        bad = _zip(tmp_path / "bad.whl", {evil: b"x"})
        with pytest.raises(arm.RuntimeFetchError, match="outside the cache"):
            arm.extract_members(bad, root, {"tvm_ffi/include/": "include/"})
    assert not (tmp_path / "evil.h").exists() and not (tmp_path / "cache" / "evil.h").exists()
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(arm.RuntimeFetchError, match="cannot unpack"):
        arm.extract_members(tmp_path / "junk.whl", root, {"x": "y"})


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_fast_math_activations_match_pytorch_under_emulation(aarch64_runner: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """EfficientNet-B0 (SiLU everywhere, sigmoid SE gates) through the arm preset's fast_math kernels."""
    assert main(["build", "efficientnet_b0", "-r", "64", "--target", "arm", "-o", str(tmp_path)]) == 0
    library = tmp_path / "efficientnet_b0-arm.so"
    capsys.readouterr()
    assert main(["verify", str(library)]) == 0
    assert "PASS" in capsys.readouterr().out
