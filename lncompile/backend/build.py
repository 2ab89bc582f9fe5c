"""Build: lower verified IR to Relax, compile it for a target preset, export a shared library."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BuildError, ToolchainError
from ..fileio import write_atomic
from ..ir import Graph
from ..lower.relax_lower import to_relax
from . import tvm_api

# How to get each external tool on Debian/Ubuntu (named in the error when it is missing).
INSTALL_HINTS = {
    "aarch64-linux-gnu-g++": "apt-get install g++-aarch64-linux-gnu",
    "aarch64-linux-gnu-gcc": "apt-get install gcc-aarch64-linux-gnu",
    "qemu-aarch64": "apt-get install qemu-user",
    "nvcc": "install the CUDA toolkit (nvcc) and put it on PATH",
}


def resolve_target_json(preset: Any) -> dict[str, Any]:
    """The preset's TVM target with ``mcpu: native`` and thread count filled in for this build."""
    spec = dict(preset.tvm_target)
    if spec.get("mcpu") == "native":
        spec["mcpu"] = tvm_api.host_cpu_name()
    if spec.get("kind") == "llvm" and preset.threads and "num-cores" not in spec:
        spec["num-cores"] = preset.threads
    return spec


def resolve_host_json(preset: Any) -> dict[str, Any] | None:
    if preset.host is None:
        return None
    host = dict(preset.host)
    if host.get("mcpu") == "native":
        host["mcpu"] = tvm_api.host_cpu_name()
    return host


def require_tool(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ToolchainError(f"{tool} not found; install it with: {INSTALL_HINTS.get(tool, tool)}")
    return found


@dataclass
class BuildResult:
    executable: Any
    target_json: dict[str, Any]
    host_json: dict[str, Any] | None
    seconds: float


def build(graph: Graph, preset: Any, relax_module: Any = None) -> BuildResult:
    """Compile ``graph`` for ``preset``; ``relax_module`` overrides lowering (tuned pipelines pass theirs)."""
    target_json, host_json = resolve_target_json(preset), resolve_host_json(preset)
    started = time.perf_counter()
    mod = relax_module if relax_module is not None else to_relax(graph)
    try:
        target = tvm_api.make_target(target_json, host_json)
        executable = tvm_api.build_executable(mod, target)
    except Exception as e:  # TVM raises its own error types; keep the first line
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise BuildError(f"TVM could not build {graph.graph['name']} for {preset.name}: {first}") from e
    return BuildResult(executable, target_json, host_json, time.perf_counter() - started)


def export_library(result: BuildResult, preset: Any, path: str | Path) -> Path:
    """Write the library atomically; cross targets link with the preset's cross compiler."""
    fcompile = None
    if preset.cross_compiler:
        require_tool(preset.cross_compiler)
        fcompile = tvm_api.cross_compiler(preset.cross_compiler, list(preset.cross_compiler_options))

    def write(tmp: Path) -> None:
        try:
            tvm_api.export_executable(result.executable, tmp, fcompile)
        except Exception as e:
            raise BuildError(f"exporting {Path(path).name} failed: {str(e).strip().splitlines()[-1]}") from e

    return write_atomic(path, write)
