"""The Python API: ``lncompile.compile(model, target)`` -> :class:`CompiledModel`."""

from __future__ import annotations

from typing import Any

from .backend.build import build
from .frontend import ImportedModel, import_model
from .ir import ir_hash
from .manifest import FORMAT, now_iso, package_versions, tensor_specs
from .runtime import CompiledModel


def _preset(target: Any, arch: str | None = None) -> Any:
    from . import targets

    preset = targets.get(target) if isinstance(target, str) else target
    return preset.with_arch(arch) if arch else preset


def compile_imported(imported: ImportedModel, target: Any = "x86", *, arch: str | None = None,
                     passes: bool = True, tuning_log: Any = None, traceable: bool = False) -> CompiledModel:
    """Compile IR that a frontend produced (the CLI and :func:`compile` share this).

    With ``passes`` the target's graph-pass pipeline (BN folding, fusion...) runs between import and build;
    the manifest then records each pass's statistics, and ``ir_sha256`` is the hash of the IR that was built.
    ``traceable``: :meth:`CompiledModel.kernel_calls` can see each kernel call (a little slower per inference).
    """
    preset = _preset(target, arch)
    graph = imported.graph
    pass_stats: list[dict[str, Any]] = []
    if passes:
        from .passes.pipeline import optimize

        optimized = optimize(graph, preset)
        graph, pass_stats = optimized.graph, [s.to_json() for s in optimized.stats]
    # tuning_log: a log dir, None (shipped logs), False
    result = build(graph, preset, tuning_log=tuning_log, traceable=traceable)
    inputs, outputs = tensor_specs(graph)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": imported.name,
        "target": {
            "preset": preset.name,
            "arch": preset.arch,
            "device": preset.device,
            "tvm_target": result.target_json,
            "host": result.host_json,
        },
        "inputs": inputs,
        "outputs": outputs,
        "source": imported.source,
        "versions": package_versions(),
        "ir_sha256": ir_hash(graph),
        "imported_ir_sha256": ir_hash(imported.graph),
        "passes": pass_stats,
        "build_seconds": round(result.seconds, 3),
        "tuning": result.tuning,
        "created": now_iso(),
    }
    if preset.is_cross or (preset.device == "cuda" and not _has_gpu()):
        # Code for another CPU (or a GPU this machine lacks) cannot run here; it can still be exported.
        return _CrossCompiled(result, preset, manifest, graph)
    return CompiledModel(result.executable, manifest, build=result, preset=preset, graph=graph)


def _has_gpu() -> bool:
    from .backend import tvm_api

    return tvm_api.cuda_available()


class _CrossCompiled(CompiledModel):
    """A build for another architecture: exportable, not callable on this machine."""

    def __init__(self, result: Any, preset: Any, manifest: dict[str, Any], graph: Any) -> None:
        self.manifest, self._build, self._preset, self.graph = manifest, result, preset, graph
        self._library = None  # never run here, so never exported before export()

    def __call__(self, *arrays: Any) -> Any:
        from .errors import UsageError

        if self._preset.device == "cuda" and not self._preset.is_cross:
            raise UsageError("this model was compiled for a CUDA GPU and this machine has none; export it and "
                             "run it where one is (or measure it there with `lncompile bench --rpc`)")
        raise UsageError(f"this model was compiled for {self._preset.arch}; export it and run it on the board "
                         f"(or with `lncompile run`, which emulates it with qemu)")


def compile(
    model: Any,
    target: Any = "x86",
    example_input: Any = None,
    *,
    resolution: int | None = None,
    batch: int = 1,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    arch: str | None = None,
    passes: bool = True,
    tuning_log: Any = None,
    **knobs: Any,
) -> CompiledModel:
    """Compile ``model`` for ``target``.

    ``model`` is a zoo name (``"mobilenet_v2"``, with knobs such as ``width_mult=0.5``), a ``torch.nn.Module``
    or an ONNX file path / ``onnx.ModelProto``. ``example_input`` is an array or a shape (required for a
    module). ``passes=False`` skips the graph passes. Returns a callable :class:`CompiledModel`;
    ``.export(path)`` writes the ``.so`` and manifest.
    """
    imported = import_model(model, example_input, resolution=resolution, batch=batch,
                            input_shapes=input_shapes, **knobs)
    return compile_imported(imported, target, arch=arch, passes=passes, tuning_log=tuning_log)
