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
from ..lower.layout import lower
from . import tvm_api
from .device_code import fatbin_packer
from .tools import require_preset_tools


def resolve_target_json(preset: Any) -> dict[str, Any]:
    """The preset's TVM target with ``mcpu: native`` and thread count filled in for this build."""
    spec = dict(preset.tvm_target)
    if spec.get("mcpu") == "native":
        spec["mcpu"] = tvm_api.host_cpu_name()
    if spec.get("kind") == "llvm" and preset.threads and "num-cores" not in spec:
        spec["num-cores"] = preset.threads
    if spec.get("kind") == "cuda":  # limits every GPU since sm_50 meets (TVM warns when they are missing)
        spec = {"max_threads_per_block": 1024, "max_shared_memory_per_block": 49152, "thread_warp_size": 32,
                **spec}
    return spec


def resolve_host_json(preset: Any) -> dict[str, Any] | None:
    if preset.host is None:
        return None
    host = dict(preset.host)
    if host.get("mcpu") == "native":
        host["mcpu"] = tvm_api.host_cpu_name()
    return host


def check_toolchain(preset: Any, target_json: dict[str, Any]) -> None:
    """Fail in one line, before a build that may take minutes, if this machine cannot produce the library.

    An LLVM target needs its CPU architecture compiled into TVM's LLVM (the ``mtriple``'s first component,
    e.g. ``aarch64``); a cross target also needs its cross compiler to link the exported ``.so``, a CUDA
    target nvcc (device code is compiled with it at export, or by codegen on a GPU machine).
    """
    triple = target_json.get("mtriple")
    if target_json.get("kind") == "llvm" and triple:
        arch = str(triple).split("-")[0]
        if arch not in tvm_api.llvm_targets():
            raise ToolchainError(f"this TVM's LLVM cannot emit {arch} code (target {preset.name}); install an "
                                 f"apache-tvm wheel whose LLVM includes the {arch} backend (PyPI's does)")
    require_preset_tools(preset)


@dataclass
class BuildResult:
    executable: Any
    target_json: dict[str, Any]
    host_json: dict[str, Any] | None
    seconds: float
    tuning: dict[str, Any] | None = None  # tuning logs applied (lncompile.tune.apply), for the manifest


def build(graph: Graph, preset: Any, relax_module: Any = None, tuning_log: Any = None,
          traceable: bool = False) -> BuildResult:
    """Compile ``graph`` for ``preset``; ``relax_module`` overrides lowering (tuned pipelines pass theirs).
    ``traceable``: each kernel call stays visible to a VM instrument (see ``tvm_api.vm_exec_mode``).

    ``tuning_log``: a MetaSchedule log directory to apply, ``None`` for the preset's shipped logs that fit,
    ``False`` for none (see lncompile.tune.apply).
    """
    from ..tune.apply import select_logs

    started = time.perf_counter()  # the user waits for the logs to load too
    target_json, host_json = resolve_target_json(preset), resolve_host_json(preset)
    check_toolchain(preset, target_json)
    logs = select_logs(preset, target_json, tuning_log) if preset.device == "cpu" else None
    tuning = None
    mod = relax_module if relax_module is not None else lower(graph, preset.layout, preset.fast_math, preset.device)
    try:
        target = tvm_api.make_target(target_json, host_json)  # what kernels and tuning records are matched for
        codegen = tvm_api.codegen_target(target_json, host_json, preset.fast_math)
        executable = None
        if logs is not None and logs.usable:
            fused = tvm_api.fuse_for_target(mod, target, preset.prepack_weights)
            logs.load(tvm_api.kernel_workload_hashes(fused, target))
            applied, tuned, kernels, by_hand = tvm_api.apply_database(fused, target, logs.database)
            tuning = {"logs": logs.logs, "kernels_tuned": tuned, "kernels": kernels, "kernels_by_hand": by_hand}
            # A log that matches no kernel of this model changes nothing: build on the default pipeline,
            # the path every untuned build (and the whole-zoo check) takes.
            if tuned:
                executable = tvm_api.build_fused_executable(applied, codegen, traceable)
        if executable is None:
            executable = tvm_api.build_executable(mod, codegen, preset.device, traceable)
    except Exception as e:  # TVM raises its own error types; keep the first line
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise BuildError(f"TVM could not build {graph.graph['name']} for {preset.name}: {first}") from e
    if logs is not None and logs.not_applied:
        tuning = {**(tuning or {"logs": [], "kernels_tuned": 0}), "not_applied": logs.not_applied}
    return BuildResult(executable, target_json, host_json, time.perf_counter() - started, tuning)


def export_library(result: BuildResult, preset: Any, path: str | Path, prebuilt: Path | None = None) -> Path:
    """Write the library atomically; cross targets link with the preset's cross compiler. ``prebuilt``: this
    build's library exported before, copied instead of compiling the machine code again."""
    if prebuilt is not None:
        return write_atomic(path, lambda tmp: shutil.copyfile(prebuilt, tmp))
    require_preset_tools(preset)
    fcompile = fpack_imports = None
    if preset.cross_compiler:
        fcompile = tvm_api.cross_compiler(preset.cross_compiler, list(preset.cross_compiler_options))
    if preset.device == "cuda":  # embed compiled kernels, not CUDA source: the board needs no nvcc/NVRTC
        fpack_imports = fatbin_packer(result.target_json["arch"])

    def write(tmp: Path) -> None:
        try:
            extra = {"fpack_imports": fpack_imports} if fpack_imports is not None else {}
            tvm_api.export_executable(result.executable, tmp, fcompile, **extra)
        except BuildError:
            raise
        except Exception as e:
            raise BuildError(f"exporting {Path(path).name} failed: {str(e).strip().splitlines()[-1]}") from e

    return write_atomic(path, write)
