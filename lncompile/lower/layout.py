"""Data layouts a target preset may ask for, as data: preset ``layout`` -> Relax ConvertLayout request.

lncompile's IR and its lowering are NCHW. A preset asking for another layout gets the lowered module
converted by Relax's ConvertLayout (convolutions and every op layout inference carries through), and the
constant weights are re-laid-out at compile time (pre-packed), so the only run-time layout changes left are
at the model's input and output, and around ops that cannot change layout (they keep NCHW between two
transposes). Why NHWC on CPUs: the channel axis is innermost, so a 1x1 conv is a plain matmul over
contiguous channels and a depthwise conv vectorizes across channels, even at 7x7 resolution where NCHW's
innermost axis is 7 wide.
"""

from __future__ import annotations

from typing import Any

from ..backend import tvm_api
from ..errors import UsageError
from ..ir import Graph
from .relax_lower import to_relax

# preset layout -> {Relax op: [data layout, kernel layout]}; HWIO puts output channels innermost, the axis
# a NHWC conv vectorizes over.
LAYOUTS: dict[str, dict[str, list[str]]] = {
    "NCHW": {},
    "NHWC": {"relax.nn.conv2d": ["NHWC", "HWIO"]},
}


def apply_layout(mod: Any, layout: str) -> Any:
    """``mod`` (NCHW, as lowered) in the preset's ``layout``."""
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} in target preset; choose from {', '.join(LAYOUTS)}")
    desired = LAYOUTS[layout]
    return tvm_api.convert_layout(mod, desired) if desired else mod


def lower(graph: Graph, layout: str = "NCHW", fast_math: bool = False, device: str = "cpu") -> Any:
    """``graph`` as the Relax module a build or a tuning run of a ``layout`` preset compiles (with the preset's
    ``fast_math``: exp-based activations as polynomial kernels, :func:`tvm_api.fast_math`; and its ``device``)."""
    relax_module = to_relax(graph, layout=layout, fast_math=fast_math, device=device)
    mod = tvm_api.fold_constant_layouts(apply_layout(relax_module, layout))
    return tvm_api.fast_math(mod) if fast_math else mod
