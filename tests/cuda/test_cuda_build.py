"""CUDA builds on a machine without a GPU: the library holds compiled device code (a fatbin with SASS and PTX
for the chosen sm_XX), not CUDA source; on a machine with a GPU the outputs match PyTorch's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lncompile
from lncompile.cli import main
from lncompile.errors import UsageError
from lncompile.runtime import elf_arch
from tests.conftest import relative_error

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")]

FATBIN_MAGIC = bytes.fromhex("50ed55ba")  # 0xBA55ED50, little endian


def _has_gpu() -> tuple[bool, str]:
    from lncompile.backend import tvm_api

    if not torch.cuda.is_available():
        return False, "no CUDA GPU (torch.cuda.is_available() is False)"
    if not tvm_api.cuda_available():
        return False, "TVM's CUDA runtime sees no GPU (tvm.cuda(0).exist is False)"
    return True, ""


def _check_cuda_library(library: Path, arch: str, cpu_arch: str = "x86_64") -> dict:
    data = library.read_bytes()
    assert elf_arch(library) == cpu_arch
    assert f".target {arch}".encode() in data, f"no PTX for {arch} in {library.name}"
    other = {"sm_90": "sm_87", "sm_87": "sm_90"}[arch]
    assert f".target {other}".encode() not in data
    assert FATBIN_MAGIC in data
    assert b"__global__" not in data, "CUDA source is embedded: the device would need nvcc/NVRTC at load time"
    manifest = json.loads(library.with_suffix(".json").read_text())
    assert manifest["target"]["device"] == "cuda"
    assert manifest["target"]["tvm_target"]["kind"] == "cuda"
    assert manifest["target"]["tvm_target"]["arch"] == arch
    return manifest


def test_torch_module_builds_for_cuda(tiny_block: nn.Module, tiny_input: np.ndarray, tmp_path: Path) -> None:
    """Built without ``arch``: the cuda preset's default, sm_90 (the CLI test asks for sm_87)."""
    compiled = lncompile.compile(tiny_block, "cuda", example_input=tiny_input)
    library = compiled.export(tmp_path / "tiny.so")
    _check_cuda_library(library, "sm_90")
    if not _has_gpu()[0]:
        with pytest.raises(UsageError, match="CUDA GPU"):
            compiled(tiny_input)

    # TVM's own loader, up to the CUDA runtime: a stand-in for "ffi.Module.load_from_bytes.cuda" (registered
    # only where libcuda exists) receives the device module's bytes; they must say "fatbin", carry the fatbin,
    # and every kernel in the function table must be an entry point of the embedded PTX.
    script = textwrap.dedent(f"""
        import json
        from lncompile.backend.device_code import split_cuda_payload
        from lncompile.backend.tvm_api import tvm
        seen = []
        @tvm.register_global_func("ffi.Module.load_from_bytes.cuda", override=True)
        def _load(data):
            seen.append(bytes(data))
            return tvm.runtime.load_module({str(tmp_path / 'empty.so')!r})
        from tvm.script import tirx as T
        @T.prim_func
        def noop():
            T.evaluate(0)
        tvm.tirx.build(noop, target="llvm").export_library({str(tmp_path / 'empty.so')!r})
        tvm.runtime.load_module({str(library)!r})
        fmt, table, code = split_cuda_payload(seen[0])
        print(json.dumps({{"n": len(seen), "fmt": fmt, "magic": code[:4].hex(), "table": table.hex(),
                           "code": code.hex()}}))
    """)
    if _has_gpu()[0]:
        pytest.skip("a GPU is present: the real CUDA loader is registered (covered by the GPU test)")
    (tmp_path / "probe.py").write_text(script)  # a file: TVMScript reads the source of the function it parses
    run = subprocess.run([sys.executable, str(tmp_path / "probe.py")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["n"] == 1 and seen["fmt"] == "fatbin" and seen["magic"] == FATBIN_MAGIC.hex()
    table, code = bytes.fromhex(seen["table"]), bytes.fromhex(seen["code"])
    kernels = {name for name in _names_in(table) if name.endswith("_kernel")}
    assert kernels, "no kernels in the function table"
    for name in kernels:
        assert f".entry {name}(".encode() in code, f"kernel {name} missing from the fatbin's PTX"


def _names_in(table: bytes) -> list[str]:
    """Length-prefixed strings in a serialized function table (u64 length + ASCII identifier)."""
    names, pos = [], 0
    while pos + 8 <= len(table):
        length = int.from_bytes(table[pos:pos + 8], "little")
        if 0 < length < 256 and pos + 8 + length <= len(table):
            text = table[pos + 8:pos + 8 + length]
            if text.isascii() and text.replace(b"_", b"").replace(b".", b"").isalnum():
                names.append(text.decode())
                pos += 8 + length
                continue
        pos += 1
    return names


def test_cli_builds_mobilenet_v2_for_cuda(tmp_path: Path) -> None:
    """The CLI with --arch (sm_87; the preset's default, sm_90, is built by test_torch_module_builds_for_cuda)."""
    assert main(["build", "mobilenet_v2", "--target", "cuda", "--arch", "sm_87", "--resolution", "64",
                 "-o", str(tmp_path)]) == 0
    manifest = _check_cuda_library(tmp_path / "mobilenet_v2-cuda.so", "sm_87")
    assert manifest["inputs"][0]["shape"] == [1, 3, 64, 64]
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers (blob, assembly) beside the library


def test_jetson_orin_host_code_is_aarch64(tiny_block: nn.Module, tiny_input: np.ndarray, tmp_path: Path) -> None:
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64-linux-gnu-g++ is not installed")
    library = lncompile.compile(tiny_block, "jetson-orin", example_input=tiny_input).export(tmp_path / "t.so")
    _check_cuda_library(library, "sm_87", cpu_arch="aarch64")


def test_missing_nvcc_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    if shutil.which("nvcc", path=env["PATH"]) is not None:
        pytest.skip("nvcc is in /usr/bin: cannot hide it")
    run = subprocess.run([sys.executable, "-m", "lncompile.cli", "build", "squeezenet1_1", "--target", "cuda",
                          "--resolution", "32", "-o", str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("lncompile: error: nvcc not found; install it with: ") and "Traceback" not in run.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["tiny", "mobilenet_v2"])
def test_cuda_outputs_match_pytorch(model: str, tiny_block: nn.Module, tiny_input: np.ndarray,
                                    tmp_path: Path) -> None:
    ok, reason = _has_gpu()
    if not ok:
        pytest.skip(reason)
    if model == "tiny":
        module, x = tiny_block, tiny_input
        compiled = lncompile.compile(module, "cuda", example_input=x)
    else:
        module = lncompile.graphs.create("mobilenet_v2").eval()
        x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
        compiled = lncompile.compile("mobilenet_v2", "cuda", resolution=64)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-4
    library = compiled.export(tmp_path / "m.so")
    np.save(tmp_path / "x.npy", x)
    # A fresh process with no CUDA compiler on PATH: the embedded fatbin must be enough.
    script = (f"import numpy as np, lncompile; y = lncompile.load({str(library)!r})"
              f"(np.load({str(tmp_path / 'x.npy')!r})); np.save({str(tmp_path / 'y.npy')!r}, y)")
    env = {**os.environ, "PATH": "/usr/bin:/bin", "TVM_CUDA_COMPILE_MODE": "nvrtc"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert relative_error(np.load(tmp_path / "y.npy"), expected) <= 1e-4


def test_package_of_a_cuda_library_runs_on_the_gpu_or_fails_in_one_line(tiny_block: nn.Module,
                                                                        tiny_input: np.ndarray,
                                                                        tmp_path: Path) -> None:
    """The bundle carries TVM's CUDA runtime and its run.sh asks the runner for the GPU. Where there is one
    the output matches PyTorch; where there is none the runner says so in one line (exit 1), not a crash."""
    from lncompile.bundle import package

    library = lncompile.compile(tiny_block, "cuda", example_input=tiny_input).export(tmp_path / "tiny.so")
    bundle = package(library, tmp_path / "bundle")
    assert (bundle / "libtvm_runtime_cuda.so").is_file()
    assert "--device cuda" in (bundle / "run.sh").read_text()
    np.save(tmp_path / "x.npy", tiny_input)
    run = subprocess.run([str(bundle / "run.sh"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                         capture_output=True, text=True, timeout=300)
    if _has_gpu()[0]:
        assert run.returncode == 0, run.stderr
        with torch.no_grad():
            expected = tiny_block(torch.from_numpy(tiny_input)).numpy()
        assert relative_error(np.load(tmp_path / "y.npy"), expected) <= 1e-4
    else:
        assert run.returncode == 1
        assert run.stderr.startswith("runner: error:") and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert not (tmp_path / "y.npy").exists()
    wrong = subprocess.run([str(bundle / "runner"), str(bundle / "model.so"), str(tmp_path / "x.npy"),
                            str(tmp_path / "y.npy"), "--device", "tpu"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "LD_LIBRARY_PATH": str(bundle)})
    assert wrong.returncode == 2 and "--device takes cpu or cuda" in wrong.stderr
