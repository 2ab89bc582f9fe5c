"""The one module that imports TVM. Everything version-specific about Apache TVM 0.27 lives here.

TVM's Python API moves between releases (Relay, tvmc and auto_scheduler went in 0.20; MetaSchedule moved
to ``tvm.s_tir`` and ``tvm.contrib.cc`` to ``tvm.support.cc`` later): callers use the names below, so the
next upgrade is this file.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm import relax

__all__ = [
    "VirtualMachine",
    "build_executable",
    "cross_compiler",
    "export_executable",
    "host_cpu_name",
    "load_module",
    "make_target",
    "relax",
    "tensor",
    "tvm",
    "tvm_version",
]

VirtualMachine = relax.VirtualMachine


def _tempdir_del_after_full_init(original: Any) -> Any:
    """TVM's ``TempDirectory.__del__`` assumes ``__init__`` finished. lncompile turns SIGINT/SIGTERM into
    KeyboardInterrupt wherever it lands (lncompile/interrupts.py); landing inside ``__init__`` left an
    "Exception ignored ... no attribute 'temp_dir'" traceback at exit. Such an object has nothing to remove."""

    @functools.wraps(original)
    def __del__(self: Any) -> None:
        if "temp_dir" in vars(self):
            original(self)

    return __del__


_TempDirectory = importlib.import_module("tvm.support.utils").TempDirectory
_TempDirectory.__del__ = _tempdir_del_after_full_init(_TempDirectory.__del__)


def tvm_version() -> str:
    return str(tvm.__version__)


def llvm_version() -> str:
    try:
        return str(tvm.target.codegen.llvm_version_major())
    except Exception:  # not every build exposes it; the manifest then says unknown
        return "unknown"


@functools.cache
def host_cpu_name() -> str:
    return str(tvm.get_global_func("tvm.codegen.llvm.GetHostCPUName")())


@functools.cache
def llvm_cpu_features(mtriple: str, mcpu: str) -> frozenset[str] | None:
    """LLVM's feature names for CPU ``mcpu`` of ``mtriple`` (ISA extensions and tuning flags alike), or None
    when LLVM does not know that CPU for that triple. Cached: a build checks every shipped log's CPU against
    its own."""
    from tvm.target import codegen

    if not codegen.llvm_is_valid_cpu(mcpu, mtriple):
        return None
    target = tvm.target.Target({"kind": "llvm", "mtriple": mtriple, "mcpu": mcpu})
    return frozenset(str(name) for name in codegen.llvm_get_cpu_features(target))


def make_target(spec: dict[str, Any], host: dict[str, Any] | None = None) -> tvm.target.Target:
    """A TVM target from its JSON form (0.27 rejects the old 'llvm -mcpu=...' strings)."""
    if host is not None:
        return tvm.target.Target(spec, host=tvm.target.Target(host))
    return tvm.target.Target(spec)


# LLVM may divide by multiplying with the reciprocal: hardswish's and hardsigmoid's x / 6 become x * (1 / 6), one
# vmulps where vdivps was (~5 cycles a 512-bit vector on Zen; in a depthwise conv's epilogue, per output of 9 FMAs).
# Results move by an ulp. Codegen only: schedules and tuning logs do not depend on it.
_FAST_MATH_CODEGEN = {"fast-math-arcp": True}


def codegen_target(spec: dict[str, Any], host: dict[str, Any] | None, fast_math: bool) -> tvm.target.Target:
    """The target a build compiles its kernels for: ``spec``, plus LLVM's reciprocal flag under ``fast_math``."""
    if fast_math and spec.get("kind") == "llvm":
        spec = {**spec, **_FAST_MATH_CODEGEN}
    return make_target(spec, host)


def build_executable(mod: tvm.IRModule, target: tvm.target.Target, device: str = "cpu",
                     traceable: bool = False) -> Any:
    """Compile a Relax module with the target's pipeline (legalize, fuse, schedule): the default one on CPUs,
    :func:`gpu_pipeline` for ``device="cuda"``. ``traceable``: see :func:`vm_exec_mode`."""
    pipeline = gpu_pipeline(target) if device == "cuda" else relax.get_default_pipeline(target)
    with target:
        return relax.build(mod, target, relax_pipeline=pipeline, exec_mode=vm_exec_mode(device, traceable))


def vm_exec_mode(device: str, traceable: bool) -> str:
    """How the library runs ``main``: ``compiled`` (its VM instructions as machine code) on CPUs, else the VM's
    bytecode interpreter.

    Why: the interpreter dispatches each instruction (kernel calls, tensor allocations, frees: ~220 for
    MnasNet-A1) through a packed-function call; compiled, MnasNet-A1 ran 0.96x and MobileNetV2 0.99x the
    latency side by side on 2 cores. ``traceable`` keeps bytecode, whose calls :func:`kernel_calls` can see
    (in-situ tuning replays them). CUDA builds keep bytecode: compiled mode is not yet measured on a GPU.
    """
    return "compiled" if device == "cpu" and not traceable else "bytecode"


def cross_compiler(compiler: str, options: list[str] | None = None) -> Any:
    from tvm.support import cc

    return cc.cross_compiler(compiler, options=options or None)


# TVM 0.27's VM executable logs one unconditional warning per constant when it is saved or loaded
# ("Scope Saving:" / "Scope Loaded:", src/runtime/vm/executable.cc): thousands of lines for a CNN.
_NOISE = ("Scope Saving:", "Scope Loaded:")


@contextlib.contextmanager
def _filtered_native_stderr() -> Iterator[None]:
    """Capture the C++ runtime's stderr, drop the known noise lines, pass everything else through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not any(noise in line for noise in _NOISE):
                    sys.stderr.write(line)


def export_executable(executable: Any, path: str | os.PathLike, fcompile: Any = None,
                      fpack_imports: Any = None) -> None:
    """``fpack_imports(mod, is_system_lib, prefix, workspace_dir) -> file`` replaces TVM's packing of the
    imported (device) modules into the library (used to embed compiled CUDA code, see backend/device_code.py)."""
    kwargs = {"fcompile": fcompile} if fcompile is not None else {}
    if fpack_imports is not None:
        kwargs["fpack_imports"] = fpack_imports
    with _filtered_native_stderr():
        executable.export_library(str(path), **kwargs)


def load_module(path: str | Path) -> Any:
    with _filtered_native_stderr():
        return tvm.runtime.load_module(str(path))


def cpu_device() -> Any:
    return tvm.cpu(0)


def cuda_device() -> Any:
    return tvm.cuda(0)


def tensor(array: np.ndarray, device: Any = None) -> Any:
    return tvm.runtime.tensor(array, device or tvm.cpu(0))


def empty_tensor(shape: list[int], dtype: str, device: Any) -> Any:
    return tvm.runtime.empty(tuple(shape), dtype, device)


def to_numpy(result: Any) -> np.ndarray:
    """A result tensor as a numpy array of its own (CPU results: one memcpy, no FFI conversion)."""
    if result.device.dlpack_device_type() == tvm.cpu(0).dlpack_device_type():
        return np.from_dlpack(result).copy()
    return result.numpy()


# ---- ARM targets (lncompile/arm.py) ----


@functools.cache
def llvm_targets() -> tuple[str, ...]:
    """The CPU architectures this TVM's LLVM can emit code for ("aarch64", "x86_64", ...)."""
    return tuple(str(t) for t in tvm.target.codegen.llvm_get_targets())


# ---- MetaSchedule (lncompile.tune): task extraction, tuning, applying a database -------------------------
# Tasks are keyed by the structural hash of each fused TIR function, so tuning and building must fuse the
# same way: both go through fuse_for_target (the first half of the target's default Relax pipeline).


# MetaSchedule imports this package (in the tuner and in every build worker, once per batch) only to register
# tensorization intrinsics; its __init__ parses every target's, CUDA's the most. What each target's schedule
# rules use (DefaultX86/VNNI/AVX512 -> x86, DefaultARM -> arm_cpu, CUDA tensor cores -> cuda):
TENSOR_INTRINSICS_PACKAGE = "tvm.s_tir.tensor_intrin"
_TENSOR_INTRINSICS = {("llvm", "x86_64"): ("x86",), ("llvm", "aarch64"): ("arm_cpu",), ("cuda", ""): ("cuda",)}


def tensor_intrinsic_modules(target_json: dict[str, Any]) -> tuple[str, ...] | None:
    """The submodules of TENSOR_INTRINSICS_PACKAGE that tuning for ``target_json`` needs (None: all)."""
    kind = str(target_json.get("kind", ""))
    arch = str(target_json.get("mtriple", "")).split("-")[0] if kind == "llvm" else ""
    return _TENSOR_INTRINSICS.get((kind, arch))


def import_tensor_intrinsics(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(f"{TENSOR_INTRINSICS_PACKAGE}.{name}")


def _ms() -> Any:
    from tvm.s_tir import meta_schedule

    return meta_schedule


def _pipeline_phases(target: tvm.target.Target) -> Any:
    """The module whose library_dispatch/legalize/dataflow_lower/finalize_passes make the target's default
    pipeline. (0.27's ``relax.pipeline.dataflow_lower_passes`` fails for llvm: ``relax.backend.cpu_generic``
    does not export it, so CPU targets use ``cpu_generic.pipeline`` directly, as its default pipeline does.)"""
    if target.kind.name == "llvm":
        from tvm.relax.backend.cpu_generic import pipeline as cpu

        return cpu
    from tvm.relax import pipeline as rp

    return rp


def convert_layout(mod: tvm.IRModule, desired: dict[str, list[str]]) -> tvm.IRModule:
    """Relax's ConvertLayout to ``desired`` ({op name: [data layout, kernel layout]}). The constant weights
    come out wrapped in permute_dims to the new kernel layout; :func:`fold_constant_layouts` then stores them
    so (pre-packed at compile time, no transform left at run time). Layout changes at the graph's boundary
    stay as layout_transform ops."""
    seq = tvm.transform.Sequential([relax.transform.CanonicalizeBindings(), _clip_as_min_max,
                                    relax.transform.ConvertLayout(desired),
                                    relax.transform.Normalize(), cancel_permutes,
                                    relax.transform.DeadCodeElimination()])
    return seq(mod)


@tvm.transform.module_pass(opt_level=0, name="lncompile.FoldConstantLayouts")
def fold_constant_layouts(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
    """permute_dims(constant), reshape(constant) and concat(constants) -> the constant so laid out, computed
    with numpy.

    These are the weights' re-layouts (ConvertLayout's OIHW -> HWIO, one per conv; the hand pointwise kernel's
    zero-padded blocks) and the biases' reshapes for broadcasting. FoldConstant would fold them too, but it
    compiles and runs one TVM kernel per constant (~0.1-0.2 s each: minutes for a NASNet), and it legalizes
    every call with a constant argument on the way (~8 s for a NASNet with nothing to fold). These ops only
    move values, so numpy's result is bit-identical;
    no other op meets constants alone in a lowered module (tests/compile/test_layout.py checks).
    """
    def fold(call: relax.Call, value_of: ValueOf) -> relax.Expr:
        name = call.op.name if isinstance(call.op, tvm.ir.Op) else None
        if name == "relax.concat":
            parts = value_of(call.args[0])
            fields = [value_of(f) for f in parts.fields] if isinstance(parts, relax.Tuple) else []
            if not fields or not all(isinstance(f, tvm.ir.Constant) for f in fields):
                return call
            return relax.const(np.concatenate([f.value.numpy() for f in fields], axis=int(call.attrs.axis)))
        if name not in ("relax.permute_dims", "relax.reshape"):
            return call
        # A weight may be reshaped and then permuted (or the reverse): the walk is post-order, so the inner
        # op's variable is already bound to its folded constant here.
        source = value_of(call.args[0])
        if not isinstance(source, tvm.ir.Constant):
            return call
        if name == "relax.permute_dims":
            axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else None
            return relax.const(np.ascontiguousarray(np.transpose(source.value.numpy(), axes)))
        shape = getattr(call.ty, "shape", None)
        if shape is None or not all(isinstance(d, tvm.tirx.IntImm) for d in shape):
            return call
        return relax.const(source.value.numpy().reshape([int(d) for d in shape]))

    return _rewrite_calls(mod, fold)


# ---- fast math: exp-based activations as vectorizable polynomials (lncompile/lower/layout.py) ----

def fast_sigmoid(x: Any) -> Any:
    from tvm import te, topi

    e = topi.fast_exp(topi.negative(x))
    return te.compute(x.shape, lambda *i: tvm.tirx.const(1.0, x.dtype) / (tvm.tirx.const(1.0, x.dtype) + e(*i)),
                      name="fast_sigmoid", tag="elemwise")


def fast_silu(x: Any) -> Any:
    from tvm import te

    s = fast_sigmoid(x)
    return te.compute(x.shape, lambda *i: x(*i) * s(*i), name="fast_silu", tag="elemwise")


def _fast_exp(x: Any) -> Any:
    from tvm import topi

    return topi.fast_exp(x)


def _fast_tanh(x: Any) -> Any:
    from tvm import topi

    return topi.fast_tanh(x)


# Relax op -> TE builder. LLVM turns a vector exp into one libm call per lane; TOPI's fast_exp (range
# reduction + degree-5 polynomial + exponent bits, ~1e-7 relative error) vectorizes like any arithmetic.
_FAST_MATH = {"relax.sigmoid": fast_sigmoid, "relax.nn.silu": fast_silu, "relax.exp": _fast_exp,
              "relax.tanh": _fast_tanh}


def fast_math(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with float32 sigmoid / silu / exp / tanh calls replaced by TE kernels on TOPI's fast_exp/fast_tanh.

    The replacements are elementwise ``call_tir`` functions, so FuseOps still fuses them into the producing
    conv's kernel. Run after ConvertLayout (a ``call_tir`` has no layout rule). Other dtypes are left alone.
    """
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class _FastMath(PyExprMutator):
        def visit_call_(self, call: Any) -> Any:
            call = self.visit_expr_post_order(call)
            build = _FAST_MATH.get(call.op.name) if isinstance(call.op, tvm.ir.Op) else None
            if build is None or getattr(call.ty, "dtype", None) != "float32":
                return call
            return self.builder_.call_te(build, call.args[0], primfunc_name_hint=build.__name__.lstrip("_"))

    rewriter = _FastMath(mod)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    return rewriter.builder_.get()


ValueOf = Callable[[relax.Expr], relax.Expr]


def _rewrite_calls(mod: tvm.IRModule, rewrite: Callable[[relax.Call, ValueOf], relax.Expr]) -> tvm.IRModule:
    """A copy of ``mod`` with each call in its Relax functions replaced by ``rewrite(call, value_of)``, in one
    post-order walk (arguments first). ``value_of(expr)`` looks through variables (to the value bound to them, as
    already rewritten) and through items of tuples so bound. Variables bound to constants are replaced by the
    constants, and unused bindings dropped.

    Why not relax.dpl's ``rewrite_call``: it re-matches the whole function until nothing changes, several
    seconds per pattern on a large model even where nothing matches (10 s of a SE-ResNet-50 build, profiled).
    """
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class _Calls(PyExprMutator):
        def visit_call_(self, call: relax.Call) -> relax.Expr:
            visited = self.visit_expr_post_order(call)
            return rewrite(visited, self.value_of) if isinstance(visited, relax.Call) else visited

        def visit_dataflow_var_(self, var: relax.DataflowVar) -> relax.Expr:
            # A variable now bound to a constant (a folded call) is replaced by the constant where it is
            # used, as FoldConstant leaves it; its binding is then unused and dropped.
            remapped = super().visit_dataflow_var_(var)
            bound = self.lookup_binding(remapped)
            return bound if isinstance(bound, tvm.ir.Constant) else remapped

        def value_of(self, expr: relax.Expr) -> relax.Expr:
            if isinstance(expr, relax.Var):
                bound = self.lookup_binding(expr)
                return expr if bound is None else self.value_of(bound)
            if isinstance(expr, relax.TupleGetItem):
                whole = self.value_of(expr.tuple_value)
                return self.value_of(whole.fields[expr.index]) if isinstance(whole, relax.Tuple) else expr
            return expr

    rewriter = _Calls(mod)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, relax.analysis.remove_all_unused(rewriter.visit_expr(func)))
    return rewriter.builder_.get()


@tvm.transform.module_pass(opt_level=0, name="lncompile.ClipAsMinMax")
def _clip_as_min_max(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
    """clip(x, lo, hi) -> minimum(maximum(x, lo), hi): relax.clip has no layout inference, so ConvertLayout
    would wrap every relu6 in a transpose pair; the binary ops carry the new layout through."""
    clip = tvm.ir.Op.get("relax.clip")

    def rewrite(call: relax.Call, _value_of: ValueOf) -> relax.Expr:
        if not call.op.same_as(clip):
            return call
        x, lo, hi = call.args
        dtype = str(call.ty.dtype)
        lo_c = relax.const(np.array(float(lo.value), dtype=dtype))
        hi_c = relax.const(np.array(float(hi.value), dtype=dtype))
        return relax.op.minimum(relax.op.maximum(x, lo_c), hi_c)

    return _rewrite_calls(mod, rewrite)


def fuse_for_target(mod: tvm.IRModule, target: tvm.target.Target, prepack_weights: bool = False) -> tvm.IRModule:
    """Library dispatch, LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR (as the build does).

    ``prepack_weights``: each kernel's constant arguments (weights, biases) are marked layout-free, so a
    tuned schedule stores them in the order it reads them (MetaSchedule's RewriteLayout postprocessor) and
    the build re-lays them out at compile time (:func:`build_fused_executable`). The mark is part of each
    kernel's structural hash: logs tuned with and without it do not apply to each other.
    """
    rp = _pipeline_phases(target)
    with target:
        passes = list(rp.library_dispatch_passes(target)) + list(rp.legalize_passes(target))
        if prepack_weights:
            passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
        return run_for_locality(tvm.transform.Sequential(passes)(mod))


def run_for_locality(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with each dataflow block's bindings reordered so that a kernel runs as soon after its inputs as it
    can: among the bindings whose inputs are ready, the one whose newest input was bound last goes first (ties:
    the order they had; bindings reading none of the block's go first). The computation is unchanged, only the
    order of independent kernels.

    Why: lowering emits the graph in a valid order, but FuseOps emits a kernel where its group ends, so a kernel
    reading a tensor written early may run after unrelated kernels that evict that tensor from cache. SqueezeNet's
    Fire modules, their concat distributed (passes/distribute_concat.py), ran the squeeze conv's half over the
    1x1 expand output after the 3x3 expand conv: 40-57 us there, 17 us right after the expand.
    """
    import heapq

    def reorder(block: relax.DataflowBlock) -> relax.DataflowBlock:
        bindings = list(block.bindings)
        index_of = {binding.var: i for i, binding in enumerate(bindings)}
        inputs = [{index_of[v] for v in relax.analysis.free_vars(b.value) if v in index_of} for b in bindings]
        readers: list[list[int]] = [[] for _ in bindings]
        for i, needed in enumerate(inputs):
            for j in needed:
                readers[j].append(i)
        waiting = [len(needed) for needed in inputs]
        order: list[int] = []
        position: dict[int, int] = {}
        ready: list[tuple[int, int]] = []

        def run(i: int) -> None:
            position[i] = len(order)
            order.append(i)
            for r in readers[i]:
                waiting[r] -= 1
                if waiting[r] == 0:
                    heapq.heappush(ready, (-max(position[j] for j in inputs[r]), r))

        for i in [i for i, count in enumerate(waiting) if count == 0]:  # reading no kernel's output: first
            run(i)
        while ready:
            run(heapq.heappop(ready)[1])
        return relax.DataflowBlock([bindings[i] for i in order], block.span)

    functions = dict(mod.functions_items())
    for gvar, func in functions.items():
        if isinstance(func, relax.Function) and isinstance(func.body, relax.SeqExpr):
            body = func.body
            blocks = [reorder(b) if isinstance(b, relax.DataflowBlock) else b for b in body.blocks]
            functions[gvar] = relax.Function(func.params, relax.SeqExpr(blocks, body.body, body.span), func.ret_ty,
                                             func.is_pure, func.attrs, func.span)
    return tvm.IRModule(functions, mod.attrs, mod.global_infos)


def extract_tasks(fused: tvm.IRModule, target: tvm.target.Target) -> list[Any]:
    """MetaSchedule's tuning tasks (``task_name``, ``weight``, ``dispatched[0]``) of a fused module; kernels
    that come scheduled (hand-written, ``tirx.is_scheduled``) are not tasks."""
    return [task for task in _ms().relax_integration.extract_tasks(fused, target) if not _is_scheduled(task.mod)]


def _is_scheduled(mod: tvm.IRModule) -> bool:
    return any(isinstance(f, tvm.tirx.PrimFunc) and _scheduled(f) for _, f in mod.functions_items())


def _scheduled(func: Any) -> bool:
    """Whether a PrimFunc carries a schedule (tuned, or written by hand)."""
    return func.attrs is not None and bool(func.attrs.get("tirx.is_scheduled", False))


def task_workload_module(task: Any) -> tvm.IRModule:
    """The normalized module a task's records are filed under in a database."""
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    return _normalize_mod(task.dispatched[0])


def workload_hash(mod: tvm.IRModule) -> str:
    """The hash a JSON database writes as the first field of a workload line."""
    import tvm_ffi

    return str(tvm_ffi.structural_hash(mod))


def kernel_call_order(fused: tvm.IRModule) -> list[tuple[str, int, int]]:
    """(TIR kernel, elements of its output, elements of its constant arguments) for each call ``main`` of a
    fused module makes, in call order (in-place kernels too)."""
    kernel_calls = (tvm.ir.Op.get("relax.call_tir"), tvm.ir.Op.get("relax.call_tir_inplace"))
    calls: list[tuple[str, int, int]] = []

    def elements(shape: Any) -> int:
        return int(np.prod([int(d) for d in shape]))

    def shape(expr: Any) -> Any:
        return getattr(getattr(expr.ty, "shape", None), "values", [])  # a tuple counts 0

    def visit(expr: Any) -> None:
        if isinstance(expr, relax.Call) and any(expr.op.same_as(op) for op in kernel_calls):
            out = shape(expr)
            weights = sum(elements(shape(a)) for a in expr.args[1].fields if isinstance(a, tvm.ir.Constant))
            calls.append((expr.args[0].name_hint, elements(out), weights))

    relax.analysis.post_order_visit(fused["main"].body, visit)
    return calls


def kernel_workload_hashes(fused: tvm.IRModule, target: tvm.target.Target) -> set[str]:
    """The database hashes of a fused module's kernels: the workloads a tuning log may hold records for."""
    return {workload_hash(task_workload_module(task)) for task in extract_tasks(fused, target)}


def measure_callback(fn: Any) -> Any:
    """A MetaSchedule measure callback calling ``fn(task_id, n, [seconds or None per candidate])``."""
    from tvm.ir.utils import derived_object

    ms = _ms()

    @derived_object
    class _Callback(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler: Any, task_id: int, candidates: Any, builder_results: Any,
                  runner_results: Any) -> None:
            seconds = []
            for built, ran in zip(builder_results, runner_results, strict=False):
                ok = built.error_msg is None and ran.error_msg is None and ran.run_secs
                seconds.append(sum(float(s) for s in ran.run_secs) / len(ran.run_secs) if ok else None)
            fn(int(task_id), seconds)

    return _Callback()


def tune_tasks(tasks: list[Any], work_dir: str, *, max_trials_global: int, max_trials_per_task: int,
               num_trials_per_iter: int, builder_timeout_s: float, runner: Any = None,
               runner_timeout_s: float = 30.0, callbacks: list[Any] = (), seed: int | None = None,
               quick_search: bool = False, builder_workers: int | None = None, builder: Any = None) -> Any:
    """Tune ``tasks`` with the XGBoost cost model and the gradient task scheduler into ``work_dir``'s JSON DB.

    The JSONDatabase appends measured records to ``work_dir`` each time a batch is joined (so an interrupted
    run keeps them) and is re-read on the next run, whose evolutionary search starts from the best records
    on disk. ``quick_search`` shrinks the evolutionary search (population 32, one genetic round) and the
    measurement (no 100 ms minimum per repeat): for smoke tests, not for real tuning.
    """
    ms = _ms()
    strategy: Any = "evolutionary"
    if quick_search:
        strategy = ms.search_strategy.EvolutionarySearch(population_size=32, init_min_unmeasured=8,
                                                         genetic_num_iters=1, max_fail_count=2)
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        extracted_tasks=tasks, work_dir=work_dir, strategy=strategy, seed=seed)
    if runner is None:
        runner = local_runner(runner_timeout_s, min_repeat_ms=0 if quick_search else 100)
    return ms.tune.tune_tasks(
        tasks=contexts, task_weights=weights, work_dir=work_dir, max_trials_global=max_trials_global,
        max_trials_per_task=max_trials_per_task, num_trials_per_iter=num_trials_per_iter,
        builder=builder or ms_local_builder(None, builder_timeout_s, builder_workers),
        runner=runner, database="json", cost_model="xgb",
        measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), *callbacks])


def memory_database() -> Any:
    return _ms().database.MemoryDatabase()


def json_database(work_dir: str) -> Any:
    return _ms().database.JSONDatabase(work_dir=work_dir)


def workload_module_json(workload: Any) -> tvm.IRModule:
    """The module of one parsed workload line ``[hash, module]``."""
    return _ms().database.Workload.from_json(workload).mod


def _decode_record(workload: Any, body: Any) -> Any:
    """A parsed record body as a TuningRecord of the parsed workload line ``[hash, module]`` it was filed under
    (its trace replayed on that module; raises if it does not replay)."""
    ms = _ms()
    return ms.database.TuningRecord.from_json(body, ms.database.Workload.from_json(workload))


def commit_record_with_workload(db: Any, workload: Any, record: Any) -> None:
    """Commit a parsed record together with the workload line ``[hash, module]`` of the log it was measured in.

    The record is decoded (its trace replayed) on that log's own module, which is then committed first. Why:
    the same kernel from two models is structurally equal (one hash) but its blocks are named after each
    model's variables, a trace finds blocks by name, and a database keeps the first module it is given for a
    structure. Raises if the record does not replay (the caller tries the next best).
    """
    ms = _ms()
    decoded = _decode_record(workload, record)
    committed = db.commit_workload(decoded.workload.mod)
    db.commit_tuning_record(ms.database.TuningRecord(decoded.trace, committed, decoded.run_secs, decoded.target,
                                                     decoded.args_info))


def distinct_top_records(db: Any, mod: tvm.IRModule, k: int) -> list[list[Any]]:
    """A workload's ``k`` fastest distinct schedules: per schedule, its records (fastest first)."""
    if not db.has_workload(mod):
        return []
    seen: dict[str, list[Any]] = {}
    for record in db.get_top_k(db.commit_workload(mod), 1 << 30):
        seen.setdefault(str(record.trace), []).append(record)
    return list(seen.values())[:k]  # get_top_k is sorted fastest first, and dicts keep insertion order


def top_records(db: Any, mod: tvm.IRModule, k: int) -> list[Any]:
    """Among a workload's ``k`` fastest distinct schedules, those measured once (not yet re-measured)."""
    return [records[0] for records in distinct_top_records(db, mod, k) if len(records) == 1]


def _runner_device_type(target: tvm.target.Target) -> str:
    """The device name MetaSchedule runners take for a target ("cpu" for LLVM)."""
    return target.kind.name if target.kind.name != "llvm" else "cpu"


def remeasure_records(records: list[Any], target: tvm.target.Target, builder: Any,
                      runner: Any) -> list[list[float] | None]:
    """Build and run each record's schedule again; per record its run seconds, or None if it failed."""
    ms = _ms()
    candidates = [record.as_measure_candidate() for record in records]
    seconds: list[list[float] | None] = [None] * len(records)
    with _built_candidates(candidates, target, builder) as built:
        device_type = _runner_device_type(target)
        ok = [i for i, b in enumerate(built) if b.error_msg is None]
        futures = runner.run([ms.runner.RunnerInput(built[i].artifact_path, device_type, candidates[i].args_info)
                              for i in ok])
        for i, future in zip(ok, futures, strict=True):
            result = future.result()
            if result.error_msg is None and result.run_secs:
                seconds[i] = [float(s) for s in result.run_secs]
    return seconds


@contextlib.contextmanager
def _built_candidates(candidates: list[Any], target: tvm.target.Target, builder: Any) -> Iterator[list[Any]]:
    """MetaSchedule's builder results for ``candidates``; their artifact directories are removed on exit."""
    ms = _ms()
    built = builder.build([ms.builder.BuilderInput(c.sch.mod, target) for c in candidates])
    try:
        yield built
    finally:
        for result in built:
            if result.artifact_path:
                shutil.rmtree(os.path.dirname(result.artifact_path), ignore_errors=True)


def compile_schedules(records: list[tuple[Any, Any]], target: tvm.target.Target, builder: Any) -> list[Any]:
    """Each (workload line, record body) schedule compiled alone, as MetaSchedule builds a candidate: per
    record the kernel's callable (arguments as the record's ``args_info`` says), or None if it failed."""
    candidates: list[Any] = []
    for workload, body in records:
        try:
            candidates.append(_decode_record(workload, body).as_measure_candidate())
        except Exception:  # TVM's own error types: a schedule that no longer replays
            candidates.append(None)
    ok = [i for i, c in enumerate(candidates) if c is not None]
    kernels: list[Any] = [None] * len(records)
    with _built_candidates([candidates[i] for i in ok], target, builder) as built:
        for i, result in zip(ok, built, strict=True):
            if result.error_msg is None:
                module = tvm.runtime.load_module(result.artifact_path)  # stays mapped once its file is gone
                kernels[i] = module[module.entry_name]
    return kernels


def commit_remeasured(db: Any, record: Any, run_secs: list[float], target: tvm.target.Target | None = None) -> None:
    """Add to ``db`` a record of ``record``'s schedule (a record of a workload of ``db``: one of its own, or one
    :func:`replayed_on` made) with new run times, measured on ``target`` (default: the record's). The old record
    stays (a log only grows)."""
    ms = _ms()
    db.commit_tuning_record(ms.database.TuningRecord(record.trace, record.workload, run_secs, target or record.target,
                                                     record.args_info))


def without_layout_free_mark(mod: tvm.IRModule) -> tvm.IRModule:
    """A one-kernel workload module as it was before :func:`fuse_for_target` marked its layout-free weights."""
    (gv,) = mod.get_global_vars()
    func = mod[gv]
    if func.attrs is None or "layout_free_buffers" not in func.attrs:
        return mod
    return tvm.IRModule({gv: func.without_attr("layout_free_buffers")})


def replayed_on(db: Any, record: Any, mod: tvm.IRModule) -> Any | None:
    """``record``'s schedule (from any database) as an unmeasured record of workload ``mod`` in ``db``, or None
    when its trace does not replay on ``mod``: the same kernel from another model is structurally equal but its
    blocks are named after that model's variables, and a trace finds blocks by name (see
    :func:`commit_record_with_workload`)."""
    from tvm.s_tir import Schedule

    ms = _ms()
    try:
        record.trace.apply_to_schedule(Schedule(mod), remove_postproc=False)
    except Exception:  # TVM raises its own error types
        return None
    return ms.database.TuningRecord(record.trace, db.commit_workload(mod), None, record.target, record.args_info)


def with_packed_weights(db: Any, record: Any, mod: tvm.IRModule) -> Any:
    """``record``'s schedule (tuned on ``mod`` before its weights were marked layout-free) as an unmeasured
    record of ``mod``, a workload of ``db``: its trace replayed, then RewriteLayout (as tuning ends every
    candidate) packs the weights in the order the schedule reads them. Raises if the trace does not replay."""
    from tvm.s_tir import Schedule

    ms = _ms()
    sch = Schedule(mod)
    record.trace.apply_to_schedule(sch, remove_postproc=False)
    if not ms.postproc.RewriteLayout().apply(sch):
        raise ValueError("RewriteLayout found no layout for the schedule's weights")
    args = ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
    return ms.database.TuningRecord(sch.trace, db.commit_workload(mod), None, record.target, args)


def local_runner(runner_timeout_s: float = 30.0, min_repeat_ms: int = 100) -> Any:
    """MetaSchedule's local runner, measuring as tuning does (3 runs of at least ``min_repeat_ms``)."""
    ms = _ms()
    config = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=min_repeat_ms)
    return ms.runner.LocalRunner(timeout_sec=runner_timeout_s, evaluator_config=config)


def best_record_seconds(db: Any, mod: tvm.IRModule) -> tuple[float | None, int]:
    """(mean run time of the best record, number of valid records) for a workload, without adding it."""
    if not db.has_workload(mod):
        return None, 0
    records = db.get_top_k(db.commit_workload(mod), 1 << 30)
    if not records:
        return None, 0
    secs = [float(s) for s in records[0].run_secs]
    return sum(secs) / len(secs), len(records)


def apply_database(fused: tvm.IRModule, target: tvm.target.Target, db: Any) -> tuple[tvm.IRModule, int, int, int]:
    """Replace fused TIR functions by their best tuned schedule; returns (module, kernels tuned, kernels that
    are tuning tasks, kernels that came scheduled by hand)."""
    by_hand = {gv.name_hint for gv, f in fused.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and _scheduled(f)}
    with target, db:
        applied = relax.transform.MetaScheduleApplyDatabase()(fused)
    tasks = [f for gv, f in applied.functions_items()
             if isinstance(f, tvm.tirx.PrimFunc) and gv.name_hint not in by_hand]
    return applied, sum(_scheduled(f) for f in tasks), len(tasks), len(by_hand)


def pack_weights_now(applied: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Tuned kernels with layout-free weights start with blocks that re-lay their weights out: split them into
    functions of their own and, their inputs being constants, evaluate them now (pre-packed weights)."""
    with target:
        split = relax.transform.SplitLayoutRewritePreproc()(applied)
    folded = relax.transform.FoldConstant()(evaluate_constant_calls(split))
    # Folding leaves each packer's (weight, bias) bound as a tuple that the kernel reads through getitems: three
    # VM builtin calls per tuned kernel per inference. Their readers take the constants, the tuple goes.
    return relax.transform.DeadCodeElimination()(relax.transform.CanonicalizeBindings()(folded))


def evaluate_constant_calls(mod: tvm.IRModule) -> tvm.IRModule:
    """Each ``call_tir`` whose inputs are all constants -> its results, as constants.

    FoldConstant does the same one function at a time, compiling each alone (a tuned MobileNetV2 has 53 weight
    packers: 18-23 s on a slow machine, against 3 s here, with the same constants); here all of them compile
    as one module for this machine's CPU (they only move values, so the CPU that runs them does not matter,
    as for FoldConstant).
    """
    call_tir = tvm.ir.Op.get("relax.call_tir")
    wanted: dict[str, tvm.tirx.PrimFunc] = {}

    def out_types(call: relax.Call) -> list[Any]:
        return list(call.ty.fields) if isinstance(call.ty, relax.TupleType) else [call.ty]

    def constant_inputs(call: relax.Call, value_of: ValueOf) -> list[Any] | None:
        """The inputs' values, if all are constants and every output's shape is known."""
        inputs = call.args[1]
        fields = [value_of(f) for f in inputs.fields] if isinstance(inputs, relax.Tuple) else None
        if fields is None or len(call.args) > 2 or not all(isinstance(f, tvm.ir.Constant) for f in fields):
            return None
        shapes = [getattr(t, "shape", None) for t in out_types(call)]
        if not all(shape is not None and all(isinstance(d, tvm.tirx.IntImm) for d in shape) for shape in shapes):
            return None
        return [f.value for f in fields]

    def collect(call: relax.Call, value_of: ValueOf) -> relax.Expr:
        func = mod[call.args[0]] if call.op.same_as(call_tir) and isinstance(call.args[0], tvm.ir.GlobalVar) else None
        if isinstance(func, tvm.tirx.PrimFunc) and constant_inputs(call, value_of) is not None:
            wanted[call.args[0].name_hint] = func
        return call

    _rewrite_calls(mod, collect)  # a walk only: the copy it makes is dropped
    if not wanted:
        return mod
    # Unoptimized code: each runs once, on weights of kilobytes. Loaded as a shared library: an in-memory
    # build's function lookups JIT-compile (~0.1 s each), a library's are symbol lookups.
    built = tvm.tirx.build(tvm.IRModule({name: f.with_attr("global_symbol", name) for name, f in wanted.items()}),
                           target=tvm.target.Target({"kind": "llvm", "opt-level": 0}))
    with tempfile.TemporaryDirectory(prefix="lncompile-pack-") as folder:
        built.export_library(f"{folder}/packers.so")  # not export_executable: that is the model library's export
        library = load_module(f"{folder}/packers.so")

    def evaluate(call: relax.Call, value_of: ValueOf) -> relax.Expr:
        if not call.op.same_as(call_tir):
            return call
        inputs = constant_inputs(call, value_of)
        name = call.args[0].name_hint if isinstance(call.args[0], tvm.ir.GlobalVar) else None
        if inputs is None or name not in wanted:
            return call
        outputs = [empty_tensor([int(d) for d in t.shape], str(t.dtype), cpu_device()) for t in out_types(call)]
        library[name](*inputs, *outputs)
        constants = [relax.const(o.numpy()) for o in outputs]
        return relax.Tuple(constants) if isinstance(call.ty, relax.TupleType) else constants[0]

    return _rewrite_calls(mod, evaluate)


def build_fused_executable(fused: tvm.IRModule, target: tvm.target.Target, traceable: bool = False) -> Any:
    """The rest of the default pipeline (weights packed now, dataflow lowering, finalize) on a fused module of
    CPU kernels. ``traceable``: see :func:`vm_exec_mode`."""
    rp = _pipeline_phases(target)
    fused = pack_weights_now(fused, target)
    with target:
        rest = tvm.transform.Sequential(list(rp.dataflow_lower_passes(target)) + list(rp.finalize_passes(target)))
        return relax.build(fused, target, relax_pipeline=rest, exec_mode=vm_exec_mode("cpu", traceable))


def kernel_calls(vm: Any, args: list[Any]) -> list[tuple[str, Any, tuple[Any, ...]]]:
    """Run ``main`` once and record each kernel call it makes: (function name, function, argument tensors),
    in call order, the VM's own builtins (allocation, shape checks) left out. Calling them again in order
    replays the model's kernels on the same buffers, each timed where the model runs it."""
    calls: list[tuple[str, Any, tuple[Any, ...]]] = []

    def record(func: Any, symbol: str, before: bool, _ret: Any, *call_args: Any) -> int:
        if before and not str(symbol).startswith("vm.builtin."):
            calls.append((str(symbol), func, call_args))
        return 0  # VMInstrumentReturnKind.NO_OP: run the call

    vm.set_instrument(record)
    try:
        vm["main"](*args)
    finally:
        vm.set_instrument(None)
    if not calls:  # compiled VM code calls its kernels directly, past the instrument
        raise RuntimeError("kernel calls cannot be traced in a library whose main is compiled; "
                           "build it traceable (bytecode)")
    return calls


def set_runtime_threads(n: int) -> None:
    """Size TVM's CPU thread pool to ``n`` workers sharing the cores this process may run on.

    Why not ``config_threadpool(0, n)``: its mode 0 resets TVM's concurrency cap to TVM_NUM_THREADS, else
    *half* the logical CPUs (TVM assumes hyper-threading), so on a 2-core box without SMT every kernel ran
    serially whatever ``n`` said. Passing an explicit CPU list fixes the cap at ``n``. The pool is sized when
    first configured, so call this before the first inference; TVM_NUM_THREADS is set too for child
    processes (tuning workers, the C++ runner).
    """
    n = max(1, int(n))
    os.environ["TVM_NUM_THREADS"] = str(n)
    cpus = (_usable_cpus() * n)[:n]  # n > available CPUs: threads share them
    share_all_cores = -3  # tvm::runtime::threading::ThreadGroup::kSpecifyThreadShareAllCore: no pinning
    tvm.get_global_func("runtime.config_threadpool")(share_all_cores, n, [str(c) for c in cpus])


def _usable_cpus() -> list[int]:
    """The CPU ids this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def physical_cores() -> int:
    """Cores this process may run on, counting SMT siblings once (Linux sysfs; else the logical count)."""
    cores = set()
    for cpu in _usable_cpus():
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def default_runtime_threads() -> None:
    """Unless TVM_NUM_THREADS says otherwise, one TVM worker per physical core (TVM alone would use half the
    logical CPUs, i.e. one thread on a 2-core machine without SMT)."""
    if not os.environ.get("TVM_NUM_THREADS"):
        set_runtime_threads(physical_cores())


def runtime_threads() -> int:
    return int(tvm.runtime.num_threads())


# ---- CUDA (lncompile/backend/device_code.py, build.py): GPU pipeline and device code -------------------------


def gpu_pipeline(target: tvm.target.Target) -> Any:
    """The Relax pipeline for CUDA targets: TVM's CUDA stages with the kernel schedules named here.

    After LegalizeOps + FuseOps every fused TIR function needs a GPU schedule (an unscheduled one fails to
    build: no thread binding). DLight's rules are tried in order on each function: Matmul, GEMV, Reduction,
    GeneralReduction (softmax/layernorm/pooling-like), and Fallback, which binds any remaining spatial loop
    nest to blocks x threads. Fallback matches everything, so every zoo model builds; convolutions land in
    it (DLight has no conv rule): correct, not fast -- tuning is what makes them fast.
    """
    from tvm.relax.backend.cuda import pipeline as cuda
    from tvm.s_tir import dlight as dl

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        schedule = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                           dl.gpu.GeneralReduction(), dl.gpu.Fallback())
        passes = [*cuda.library_dispatch_passes(target),
                  relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                  relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR(), schedule,
                  *cuda.dataflow_lower_passes(target), *cuda.finalize_passes(target)]
        with target:
            return tvm.transform.Sequential(passes)(mod)

    # On a machine with a GPU, codegen JIT-compiles kernels through tvm_callback_cuda_compile; its default,
    # NVRTC, needs the cuda-bindings package, so use nvcc unless the user chose otherwise.
    os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    importlib.import_module("tvm.support.nvcc")  # registers tvm_callback_cuda_compile

    return _pipeline


def cuda_available() -> bool:
    """True when TVM's CUDA runtime is loaded and sees a GPU (``tvm.cuda(0).exist``)."""
    try:
        return bool(tvm.cuda(0).exist)
    except Exception:  # a TVM without the CUDA runtime raises instead of answering False
        return False


def pack_imports(module: Any) -> bytes:
    """The serialized import tree that ``export_library`` embeds as ``__tvm_ffi__library_bin``."""
    return _ffi_runtime().ModulePackImportsToTensor(module).numpy().tobytes()


def _ffi_runtime() -> Any:
    from tvm.runtime import _ffi_api

    return _ffi_api


def compile_cuda_fatbin(source: str, arch: str, options: list[str] | None = None) -> bytes:
    """nvcc ``source`` into a fatbin holding SASS for ``arch`` (``sm_90``) and its PTX (for newer GPUs).

    TVM's own nvcc wrapper is used so the flags match what TVM's runtime would use when compiling at load
    time (-O3, fast math, the half/bfloat16 operator defines, ptxas options).
    """
    from tvm.support import nvcc

    number = arch.removeprefix("sm_")
    gencode = ["-gencode", f"arch=compute_{number},code=sm_{number}",
               "-gencode", f"arch=compute_{number},code=compute_{number}"]
    with tvm.target.Target({"kind": "cuda", "arch": arch}):
        return bytes(nvcc.compile_cuda(source, target_format="fatbin", arch=gencode, options=options,
                                       compiler="nvcc"))


# ---- RPC (lncompile/remote.py): trackers, servers, remote timing, MetaSchedule over RPC ------------------


def rpc_start_tracker(host: str, port: int, port_end: int) -> Any:
    """A TVM RPC tracker in its own process; ``.port`` is the port it bound, ``.terminate()`` stops it."""
    from tvm.rpc.tracker import Tracker

    return Tracker(host=host, port=port, port_end=port_end, silent=True)


def rpc_start_server(host: str, port: int, port_end: int, tracker: tuple[str, int] | None, key: str) -> Any:
    """A TVM RPC server in its own process (registered with ``tracker`` under ``key`` if given)."""
    from tvm import rpc

    return rpc.Server(host=host, port=port, port_end=port_end, tracker_addr=tracker, key=key, silent=True)


def rpc_tracker_summary(host: str, port: int) -> dict[str, Any]:
    """The tracker's ``{"queue_info": {key: {"free": n, "pending": n}}, "server_info": [...]}``."""
    from tvm import rpc

    session = rpc.connect_tracker(host, port)
    try:
        return dict(session.summary())
    finally:
        session.close()


def rpc_request(host: str, port: int, key: str, timeout_s: float, session_timeout_s: float = 0) -> Any:
    """An RPC session with a server of ``key``, waiting at most ``timeout_s`` for one to be free.

    TVM's ``TrackerSession.request`` blocks on the tracker's reply with no timeout (a busy or vanished
    server hangs it forever); a socket timeout bounds the wait (TVM then retries, at most 5 times).
    """
    from tvm import rpc

    tracker = rpc.connect_tracker(host, port)
    tracker._sock.settimeout(timeout_s)
    try:
        return tracker.request(key, priority=1, session_timeout=session_timeout_s, max_retry=1)
    finally:
        tracker.close()


def remote_time_main(session: Any, library: Path, device: str, inputs: list[np.ndarray], number: int,
                     repeat: int) -> list[float]:
    """Upload ``library``, load it on the remote, and time its ``main`` there: ``repeat`` means (seconds), each
    over ``number`` calls, measured by the remote's own clock (the network is not in the timing)."""
    session.upload(str(library))
    module = session.load_module(library.name)
    dev = session.cuda(0) if device == "cuda" else session.cpu(0)
    vm = relax.VirtualMachine(module, dev)
    vm.set_input("main", *[tvm.runtime.tensor(a, dev) for a in inputs])
    timer = vm.time_evaluator("invoke_stateful", dev, number=number, repeat=repeat)
    return [float(s) for s in timer("main").results]


def ms_rpc_runner(host: str, port: int, key: str, *, number: int, repeat: int, min_repeat_ms: int,
                  session_timeout_s: float, max_workers: int) -> Any:
    """MetaSchedule's RPCRunner measuring candidates on the servers registered under ``key``."""
    ms = _ms()
    return ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=key,
                                       session_priority=1, session_timeout_sec=int(session_timeout_s)),
        evaluator_config=ms.runner.EvaluatorConfig(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms,
                                                   enable_cpu_cache_flush=False),
        max_workers=max_workers)


def ms_local_builder(f_export: Any, timeout_s: float, max_workers: int | None, initializer: Any = None) -> Any:
    """A MetaSchedule builder compiling candidates in local worker processes that live across build rounds."""
    return _persistent_builder_class()(f_export=f_export, timeout_sec=timeout_s, max_workers=max_workers,
                                       initializer=initializer)


# A build worker is retired after this many candidates: why TVM restarts its pool each round (memory growth in
# long-lived workers), bounded here instead of paid for every round.
BUILDS_PER_WORKER = 256


@functools.cache
def _persistent_builder_class() -> type:
    """MetaSchedule's LocalBuilder with one worker pool for the builder's lifetime.

    TVM's LocalBuilder starts a fresh process pool for every ``build`` call (each round of a tuning run), and
    every worker imports TVM before it compiles anything: ~11 s a round on a 2-core machine, more than the
    round's own compiles take for small kernels. Here workers start on the first round and serve the rest,
    each retired after :data:`BUILDS_PER_WORKER` candidates; a worker that times out is replaced by the pool.
    """
    ms = _ms()
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import local_builder
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    @derived_object
    class PersistentLocalBuilder(ms.builder.PyBuilder):
        def __init__(self, *, max_workers: int | None = None, timeout_sec: float = 30.0, f_build: Any = None,
                     f_export: Any = None, initializer: Any = None) -> None:
            super().__init__()
            self.max_workers = max_workers or ms.utils.cpu_count(logical=True)
            self.timeout_sec = timeout_sec
            self.f_build, self.f_export, self.initializer = f_build, f_export, initializer
            self._pool: Any = None

        def build(self, build_inputs: list[Any]) -> list[Any]:
            if self._pool is None:
                self._pool = PopenPoolExecutor(max_workers=self.max_workers, timeout=self.timeout_sec,
                                               initializer=self.initializer,
                                               maximum_process_uses=BUILDS_PER_WORKER)
            jobs = [(self.f_build, self.f_export, i.mod, i.target, local_builder._serialize_params(i.params))
                    for i in build_inputs]
            results = []
            for outcome in self._pool.map_with_error_catching(lambda job: local_builder._worker_func(*job), jobs):
                if outcome.status == StatusKind.COMPLETE:
                    results.append(ms.builder.BuilderResult(outcome.value, None))
                elif outcome.status == StatusKind.TIMEOUT:
                    results.append(ms.builder.BuilderResult(
                        None, f"LocalBuilder: Timeout, killed after {self.timeout_sec} seconds"))
                else:
                    results.append(ms.builder.BuilderResult(
                        None, f"LocalBuilder: An exception occurred\n{outcome.value}"))
            return results

        def worker_pids(self) -> set[int]:
            """The process ids of the running build workers (none before the first build)."""
            workers = self._pool._worker_map.values() if self._pool is not None else ()
            return {w._proc.pid for w in workers if w._proc is not None and w._proc.poll() is None}

        def close(self) -> None:
            """Stop the workers now (they also stop when the builder is garbage collected)."""
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    return PersistentLocalBuilder


def export_shared_library(compiler: str, options: list[str], module: Any) -> str:
    """Link ``module`` into a ``.so`` here with ``compiler`` (MetaSchedule ``f_export``); returns its path.

    MetaSchedule's default export writes a ``.tar`` of object files and the RPC server links it on the
    device, so every board would need a compiler; linking on the host with the cross compiler instead
    uploads a ready ``.so``.
    """
    from tvm.support import cc

    path = os.path.join(tempfile.mkdtemp(prefix="lncompile-ms-"), "candidate.so")
    module.export_library(path, fcompile=cc.cross_compiler(compiler, options=options or None))
    return path


def ms_measure_vector_add(builder: Any, runner: Any, target_json: dict[str, Any], n: int = 4096) -> list[float]:
    """Build one MetaSchedule candidate (``C = A + B`` on ``n`` floats) with ``builder`` and measure it with
    ``runner``: a quick end-to-end check of a builder/runner pair (e.g. over RPC) before a long tuning run.
    Returns the measured seconds; raises RuntimeError with the builder's or runner's error."""
    from tvm import te

    ms = _ms()
    a = te.placeholder((n,), name="A")
    b = te.placeholder((n,), name="B")
    c = te.compute((n,), lambda i: a[i] + b[i], name="C")
    func = te.create_prim_func([a, b, c])
    target = tvm.target.Target(target_json)
    built = builder.build([ms.builder.BuilderInput(tvm.IRModule({"main": func}), target)])[0]
    if built.error_msg:
        raise RuntimeError(built.error_msg)
    args = ms.arg_info.ArgInfo.from_prim_func(func)
    future = runner.run([ms.runner.RunnerInput(built.artifact_path, _runner_device_type(target), args)])[0]
    result = future.result()
    if result.error_msg:
        raise RuntimeError(result.error_msg)
    return [float(s) for s in result.run_secs]


# ---- hand-scheduled kernels (lncompile/backend/pointwise_depthwise.py) ----

def tir_schedule(func: Any) -> Any:
    """A TensorIR schedule of one PrimFunc (as ``main``), for kernels scheduled by hand."""
    from tvm.s_tir import Schedule

    return Schedule(tvm.IRModule({"main": func}))


# ---- reliability: is a loaded .so a Relax VM library? (lncompile/runtime.py) ----

def is_vm_library(module: Any) -> bool:
    """Whether a loaded module holds a Relax VM executable (any other shared object lacks this function)."""
    return bool(module.implements_function("vm_load_executable"))


# ---- a depthwise conv reading a channel shuffle (lncompile/lower/relax_lower.py) ----


def emit_depthwise_conv2d_shuffled(bb: relax.BlockBuilder, data: relax.Expr, weight: relax.Expr,
                                   strides: tuple[int, int], padding: tuple[int, int, int, int],
                                   dilation: tuple[int, int], shuffle_groups: int, bias: relax.Expr | None = None,
                                   layout: str = "NCHW") -> relax.Expr:
    """Emit ``depthwise_conv2d(channel_shuffle(data, shuffle_groups), weight) (+ bias)`` as one TE kernel.

    NCHW data, OIHW weight of shape (C, 1, KH, KW), padding (top, left, bottom, right). Output channel c reads
    input channel ``(c % g) * (C / g) + c // g`` (``lncompile.ir.ops.channel_shuffle_perm``) through index
    arithmetic (in the padding stage, or in the reduction when there is no padding), so no transposed copy
    of the input is made. The structure (a padding stage, then the reduction) is what LegalizeOps makes of
    ``R.nn.conv2d``, so FuseOps fuses the bias/activation/residual ops that follow into the same kernel.

    ``layout="NHWC"``: the kernel itself runs channels-last (weight as (KH, KW, C), pre-packed by constant
    folding) between a permute_dims pair, which cancels against the NHWC convs around it once ConvertLayout
    has run (:func:`cancel_permutes`), so a channels-last model keeps no transpose here either.
    """
    from tvm import te

    channels_last = layout == "NHWC"

    def compute(x: te.Tensor, w: te.Tensor) -> te.Tensor:
        if channels_last:
            n, h, wd, c = (int(d) for d in x.shape)
            kh, kw = (int(d) for d in w.shape[:2])
        else:
            n, c, h, wd = (int(d) for d in x.shape)
            kh, kw = (int(d) for d in w.shape[2:])
        (sh, sw), (pt, pl, pb, pr), (dh, dw) = strides, padding, dilation
        per_group = c // shuffle_groups
        oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1

        def load(b: Any, ch: Any, y: Any, xx: Any) -> Any:
            return x[b, y, xx, ch] if channels_last else x[b, ch, y, xx]

        def shuffled(b: Any, ch: Any, y: Any, xx: Any) -> Any:
            source = tvm.tirx.indexmod(ch, shuffle_groups) * per_group + tvm.tirx.indexdiv(ch, shuffle_groups)
            if not any(padding):
                return load(b, source, y, xx)
            inside = tvm.tirx.all(y >= pt, y < pt + h, xx >= pl, xx < pl + wd)
            return tvm.tirx.if_then_else(inside, load(b, source, y - pt, xx - pl), tvm.tirx.const(0, x.dtype))

        # Unpadded: the reduction reads the input through the gather directly; padded: one padding stage that
        # gathers (as topi's conv pads in a stage of its own), then the reduction.
        stage = None
        if any(padding):
            padded = (h + pt + pb, wd + pl + pr)
            if channels_last:
                stage = te.compute((n, *padded, c), lambda b, y, xx, ch: shuffled(b, ch, y, xx), name="shuffled_pad")
            else:
                stage = te.compute((n, c, *padded), shuffled, name="shuffled_pad")

        def read(b: Any, ch: Any, y: Any, xx: Any) -> Any:
            if stage is None:
                return shuffled(b, ch, y, xx)
            return stage[b, y, xx, ch] if channels_last else stage[b, ch, y, xx]

        ry = te.reduce_axis((0, kh), name="ry")
        rx = te.reduce_axis((0, kw), name="rx")
        if channels_last:
            return te.compute(
                (n, oh, ow, c),
                lambda b, y, xx, ch: te.sum(read(b, ch, y * sh + ry * dh, xx * sw + rx * dw) * w[ry, rx, ch],
                                            axis=[ry, rx]),
                name="depthwise_conv2d_shuffled")
        return te.compute(
            (n, c, oh, ow),
            lambda b, ch, y, xx: te.sum(read(b, ch, y * sh + ry * dh, xx * sw + rx * dw) * w[ch, 0, ry, rx],
                                        axis=[ry, rx]),
            name="depthwise_conv2d_shuffled")

    if not channels_last:
        y = bb.emit_te(compute, data, weight, primfunc_name_hint="depthwise_conv2d_shuffled")
        return y if bias is None else relax.op.add(y, relax.op.reshape(bias, (1, -1, 1, 1)))
    to_nhwc, to_nchw = [0, 2, 3, 1], [0, 3, 1, 2]
    x_nhwc = bb.emit(relax.op.permute_dims(data, to_nhwc))
    c, _, kh, kw = (int(d) for d in weight.ty.shape)
    w_hwc = bb.emit(relax.op.reshape(relax.op.permute_dims(weight, [2, 3, 0, 1]), relax.ShapeExpr([kh, kw, c])))
    y = bb.emit_te(compute, x_nhwc, w_hwc, primfunc_name_hint="depthwise_conv2d_shuffled_nhwc")
    if bias is not None:  # added channels-last, so the permute back meets the next conv's permute directly
        y = bb.emit(relax.op.add(y, relax.op.reshape(bias, (1, 1, 1, -1))))
    return relax.op.permute_dims(y, to_nchw)


# ops that commute with any permutation of their operands' axes (operands of equal rank, or a scalar)
_ELEMENTWISE_BINARY = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum",
                       "relax.minimum")


@tvm.transform.module_pass(opt_level=0, name="lncompile.CancelPermutes")
def cancel_permutes(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
    """Drop permute_dims that change nothing: identity axes, or a pair where the second undoes the first
    (a pair that does not cancel becomes one permute_dims); first sink permutes below the ops they commute with,
    so that they meet their inverse:

        mean(permute(x, P), axes A, keepdims) = permute(mean(x, axes P[A], keepdims), P)
        op(permute(a, P), permute(b, P))      = permute(op(a, b), P)   (op elementwise, a and b of equal rank)
        op(permute(a, P), scalar)             = permute(op(a, scalar), P)
        pool(permute(x, P), layout L)         = permute(pool(x, layout L'), P)   (L'[P[i]] = L[i]; max, avg)
        concat(permute(a, P), permute(b, P), axis k) = permute(concat(a, b, axis P[k]), P)
        strided_slice(permute(x, P), axes A, ...)    = permute(strided_slice(x, axes P[A], ...), P)

    Both appear where a channels-last op emitted by hand (the shuffled depthwise conv, the fused pointwise ->
    depthwise kernel, wrapped in NCHW->NHWC and back) meets ConvertLayout's NHWC: ConvertLayout carries the new
    layout through the wrapping permute_dims and leaves it as an identity permutation, each a copy of the whole
    tensor. Where the hand kernel's output feeds a squeeze-and-excitation (a mean and a multiply, which
    ConvertLayout leaves in the layout they find), the sinking takes its permute past them to the next conv's;
    where hand kernels' outputs are concatenated (GhostNet's distributed stride-2 convs), past the concat;
    where they are sliced and concatenated again (ShuffleNetV2's channel split and shuffle), past both.
    """
    permute = tvm.ir.Op.get("relax.permute_dims")
    mean = tvm.ir.Op.get("relax.mean")
    concat = tvm.ir.Op.get("relax.concat")
    strided_slice = tvm.ir.Op.get("relax.strided_slice")
    elementwise = [tvm.ir.Op.get(name) for name in _ELEMENTWISE_BINARY]
    pools = {tvm.ir.Op.get("relax.nn.max_pool2d"): relax.op.nn.max_pool2d,
             tvm.ir.Op.get("relax.nn.avg_pool2d"): relax.op.nn.avg_pool2d}

    def axes(call: relax.Call) -> list[int]:
        rank = int(call.ty.ndim)
        return [int(v) for v in call.attrs.axes] if call.attrs.axes is not None else list(range(rank))[::-1]

    def permuted(expr: relax.Expr, value_of: ValueOf) -> tuple[relax.Expr, list[int]] | None:
        """(x, P) where ``expr`` is permute_dims(x, P)."""
        value = value_of(expr)
        if isinstance(value, relax.Call) and value.op.same_as(permute):
            return value.args[0], axes(value)
        return None

    def is_scalar(expr: relax.Expr) -> bool:
        return isinstance(getattr(expr, "ty", None), relax.TensorType) and int(expr.ty.ndim) == 0

    def sunk(call: relax.Call, value_of: ValueOf) -> relax.Expr | None:
        """``call`` with the permute_dims of its operand(s) moved after it; None where it does not commute."""
        if call.op.same_as(mean) and call.attrs.keepdims and call.attrs.axis is not None:
            found = permuted(call.args[0], value_of)
            if found is None:
                return None
            source, order = found
            reduced = [order[int(a) % len(order)] for a in call.attrs.axis]
            return relax.op.permute_dims(relax.op.mean(source, reduced, keepdims=True), order)
        if any(call.op.same_as(op) for op in elementwise) and len(call.args) == 2:
            lhs, rhs = (permuted(a, value_of) for a in call.args)
            if lhs is not None and rhs is not None and lhs[1] == rhs[1]:
                operands, order = [lhs[0], rhs[0]], lhs[1]
            elif lhs is not None and is_scalar(call.args[1]):
                operands, order = [lhs[0], call.args[1]], lhs[1]
            elif rhs is not None and is_scalar(call.args[0]):
                operands, order = [call.args[0], rhs[0]], rhs[1]
            else:
                return None
            return relax.op.permute_dims(relax.Call(call.op, operands, call.attrs), order)
        if call.op.same_as(concat):
            parts = value_of(call.args[0])
            found_parts = [permuted(f, value_of) for f in parts.fields] if isinstance(parts, relax.Tuple) else []
            if not found_parts or any(f is None or f[1] != found_parts[0][1] for f in found_parts):
                return None
            order = found_parts[0][1]
            axis = order[int(call.attrs.axis) % len(order)]
            return relax.op.permute_dims(relax.op.concat([f[0] for f in found_parts], axis), order)
        if call.op.same_as(strided_slice):
            found = permuted(call.args[0], value_of)
            if found is None:
                return None
            source, order = found
            sliced_axes = [order[int(a) % len(order)] for a in call.args[1].fields]
            strides = call.args[4] if len(call.args) > 4 else None
            return relax.op.permute_dims(relax.op.strided_slice(
                source, sliced_axes, call.args[2], call.args[3], strides, bool(call.attrs.assume_inbound)), order)
        pool = next((make for op, make in pools.items() if call.op.same_as(op)), None)
        found = permuted(call.args[0], value_of) if pool is not None else None
        a = call.attrs
        if found is None or str(a.layout) != str(a.out_layout):
            return None
        source, order = found
        layout = [""] * len(order)
        for axis, source_axis in enumerate(order):
            layout[source_axis] = str(a.layout)[axis]
        pooled = pool(source, [int(v) for v in a.pool_size], [int(v) for v in a.strides], [int(v) for v in a.padding],
                      [int(v) for v in a.dilation], bool(a.ceil_mode), bool(a.count_include_pad), "".join(layout),
                      "".join(layout))
        return relax.op.permute_dims(pooled, order)

    def rewrite(call: relax.Call, value_of: ValueOf) -> relax.Expr:
        if not call.op.same_as(permute):
            moved = sunk(call, value_of)
            return call if moved is None else moved
        first = value_of(call.args[0])
        if isinstance(first, relax.Call) and first.op.same_as(permute):  # a pair: one permute_dims, or none
            a, b = axes(first), axes(call)
            composed = [a[i] for i in b]
            source = first.args[0]
            return source if composed == sorted(composed) else relax.op.permute_dims(source, composed)
        a = axes(call)
        return call.args[0] if a == sorted(a) else call

    return _rewrite_calls(mod, rewrite)
