"""Target presets as data: one JSON file per target in presets/ (or a user's own file).

A preset names the TVM target (JSON form), the host target for GPU presets, the cross compiler for
non-native CPUs, the default layout and thread count, and the pass rules (e.g. how MixConv and grouped 1x1
convs are lowered on that target). ``"mcpu": "native"`` is resolved to this machine's CPU at build time.

Pass rules (``pass_rules``; see lncompile/passes/_grouping.py ``RULES`` for the accepted values):

* ``mixconv``: ``merge`` rewrites MixConv (split -> depthwise convs of several kernel sizes -> concat) as one
  depthwise conv with every kernel zero-padded to the largest (one kernel launch, more MACs: the x86 and CUDA
  presets' choice); ``split`` keeps the parts (the ARM presets' choice: fewer MACs on small cores; neither
  choice has been timed yet). Default: split.
* ``grouped_pointwise``: ``grouped`` keeps grouped 1x1 convs (CPU presets: a dense block-diagonal conv costs
  g x the MACs, and a CPU is compute bound there); ``dense`` lowers every grouped 1x1 conv as dense;
  ``dense_for_shuffle`` densifies only the grouped 1x1 convs a ShuffleNet channel shuffle must fold into, so
  no transpose kernel runs (CUDA presets: a chosen default, not yet measured on a GPU -- a few extra MACs on
  small 1x1 convs are cheap there, an extra memory-bound kernel launch per unit is not). Default: grouped.
* ``fuse_pointwise_depthwise`` (lncompile/passes/fuse_pointwise_depthwise.py): a size in MiB; a pointwise conv
  and the depthwise conv reading it become one hand-scheduled kernel when the tensor between them is at least
  that large, so it never leaves cache (x86 presets: ``1``; MobileNetV2 0.91x, MnasNet-A1 0.95x,
  MobileNetV3-Large 0.95x the latency, side by side on 2 cores); ``off`` (the default: ARM and CUDA, not
  measured there).
* ``winograd`` (lncompile/passes/winograd_conv.py): a least number of input channels; dense 3x3 stride-1 convs
  with at least that many are computed with Winograd's F(2x2, 3x3) (weights transformed at compile time; 2.25x
  fewer multiplies) as a tuned kernel of their own (x86 presets: ``16``); ``off`` (the default: ARM and CUDA,
  not measured there). ``winograd_tile``: ``2`` (the default) or ``4``, which allows F(4x4, 3x3) (4x fewer
  multiplies) on outputs of 24 or more pixels a side, faster but about 5x the round-off (the pass's doc; x86
  and x86-avx512 presets: ``4``).
* ``distribute_concat`` (lncompile/passes/distribute_concat.py): ``on`` or ``off`` (the default); a channel
  concat whose every reader can take its parts (a conv: one conv per part, summed; pools, activations,
  depthwise convs: per part) is never written (x86 presets: ``on``; ARM and CUDA not measured).
* ``depthwise_concat`` (lncompile/passes/fuse_depthwise_concat.py): ``on`` or ``off`` (the default); a ghost
  module's concat of y and a stride-1 depthwise conv of y (with the residual add alone reading it) becomes one
  node, a hand kernel in channels-last CPU builds that writes y beside the conv (x86 presets: ``on``; GhostNet's
  21 concats that ``distribute_concat`` keeps; ARM and CUDA not measured).
* ``pad_channels`` (lncompile/passes/pad_conv_channels.py): a channel multiple; a dense conv whose output
  channels are not a multiple of it gets zero filters up to one, and a slice drops them again, where that adds
  at most 1/32 of its work, so the tuned kernel can vectorize over whole registers (x86 presets: the vector
  width in floats, ``16`` or ``8``; SqueezeNet's 1000-channel classifier conv: 0.71 -> 0.42 ms tuned on znver5);
  ``off`` (the default).

``prepack_weights`` (x86 presets): every kernel's weights are marked layout-free, so a tuned schedule reads
them from a copy stored in its own loop order, made at compile time (a kernel's parallel chunk then streams one
contiguous block instead of a few cache lines from every row). The mark is part of each kernel's hash: logs
tuned without it are carried over with ``bench/tune_reference.py --migrate`` (lncompile/tune/migrate.py).

``tuning_logs``: the directory under targets/logs/ whose shipped tuning logs the preset's builds apply (default:
the preset's own name). The x86-avx2 and x86-avx512 presets name ``x86``: those logs fit any x86-64 CPU with
their tuning CPU's SIMD extensions and fill in kernels on the others (lncompile/tune/apply.py).

User presets: pass a path to a ``.json`` file as the target, or drop files into ``$LNCOMPILE_TARGETS``
(a directory; default ``~/.config/lncompile/targets``).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lncompile.errors import UnknownTargetError, UsageError

PRESET_DIR = Path(__file__).parent / "presets"
_REQUIRED = ("name", "description", "arch", "tvm_target")
_KNOWN = {*_REQUIRED, "host", "device", "cross_compiler", "cross_compiler_options", "layout", "fast_math", "threads",
          "pass_rules", "prepack_weights", "tuning_logs"}


@dataclass(frozen=True)
class TargetPreset:
    name: str
    description: str
    arch: str  # the CPU architecture of the produced library: x86_64 | aarch64
    tvm_target: dict[str, Any]
    host: dict[str, Any] | None = None
    device: str = "cpu"  # where the model runs: cpu | cuda
    cross_compiler: str | None = None
    cross_compiler_options: tuple[str, ...] = ()
    layout: str = "NCHW"
    fast_math: bool = False  # sigmoid/silu/exp/tanh as vectorizable polynomials (~1e-7 relative error), LLVM arcp
    threads: int = 0  # 0: all cores of the running machine
    # tuned kernels store their weights in the order their schedule reads them, re-laid out at compile time
    prepack_weights: bool = False
    pass_rules: dict[str, str] = field(default_factory=dict)
    tuning_logs: str | None = None  # the shipped logs its builds apply, targets/logs/<this>/ (default: its name)
    path: str = ""

    @property
    def shipped_logs(self) -> str:
        """The name of the directory under targets/logs/ holding the tuning logs shipped for this preset."""
        return self.tuning_logs or self.name

    @property
    def is_cross(self) -> bool:
        return self.arch != platform.machine()

    def with_arch(self, gpu_arch: str) -> TargetPreset:
        """The same preset for another CUDA architecture (``--arch sm_87``)."""
        if self.device != "cuda":
            raise UsageError(f"--arch applies to CUDA targets; {self.name!r} is a {self.device} target")
        if not gpu_arch.startswith("sm_") or not gpu_arch[3:].isdigit():
            raise UsageError(f"bad CUDA architecture {gpu_arch!r}; expected e.g. sm_80, sm_87, sm_90")
        return replace(self, tvm_target={**self.tvm_target, "arch": gpu_arch})

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "arch": self.arch,
            "device": self.device,
            "tvm_target": self.tvm_target,
            "host": self.host,
            "cross_compiler": self.cross_compiler,
            "layout": self.layout,
            "fast_math": self.fast_math,
            "threads": self.threads,
            "prepack_weights": self.prepack_weights,
            "pass_rules": self.pass_rules,
            "tuning_logs": self.shipped_logs,
        }


def _parse(path: Path) -> TargetPreset:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"target preset {path} is not readable JSON: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"target preset {path} must hold a JSON object")
    missing = [k for k in _REQUIRED if k not in data]
    unknown = sorted(set(data) - _KNOWN)
    if missing or unknown:
        problem = f"missing {', '.join(missing)}" if missing else f"unknown keys {', '.join(unknown)}"
        raise UsageError(f"target preset {path}: {problem}")
    if not isinstance(data["tvm_target"], dict) or "kind" not in data["tvm_target"]:
        raise UsageError(f"target preset {path}: tvm_target must be a JSON object with a 'kind'")
    data["cross_compiler_options"] = tuple(data.get("cross_compiler_options") or ())
    return TargetPreset(**data, path=str(path))


def _user_dir() -> Path:
    return Path(os.environ.get("LNCOMPILE_TARGETS", Path.home() / ".config" / "lncompile" / "targets"))


def presets() -> dict[str, TargetPreset]:
    """Built-in presets, overridden or extended by the user's preset directory."""
    found: dict[str, TargetPreset] = {}
    for directory in (PRESET_DIR, _user_dir()):
        if directory.is_dir():
            for path in sorted(directory.glob("*.json")):
                preset = _parse(path)
                found[preset.name] = preset
    return found


def names() -> list[str]:
    return sorted(presets())


def get(name_or_path: str) -> TargetPreset:
    """A preset by name, or from a JSON file path."""
    if name_or_path.endswith(".json"):
        path = Path(name_or_path)
        if not path.is_file():
            raise UnknownTargetError(f"target preset file {name_or_path} does not exist")
        return _parse(path)
    known = presets()
    try:
        return known[name_or_path]
    except KeyError:
        listing = ", ".join(sorted(known))
        raise UnknownTargetError(f"unknown target {name_or_path!r}; known targets: {listing}") from None
