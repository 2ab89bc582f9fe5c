"""Per-layer parameters and multiply-adds, counted on the IR (so ONNX files work as well as zoo models).

MACs follow the papers' convention at batch 1: conv K*K*(Cin/groups)*Cout*Hout*Wout, linear in*out per row,
matmul M*K*N per batch matrix (attention included); elementwise ops, normalization and pooling count 0.
Parameters are the float weights an op reads, each counted once; BatchNorm's running mean and variance are
statistics, not parameters (as ``nn.Module.parameters()`` counts them), and 0-d scalars are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..ir import Graph, Node, TensorType

MacFn = Callable[[Node, list[TensorType]], int]


def _conv_macs(node: Node, args: list[TensorType]) -> int:
    out, weight = node.type, args[1]
    _, cin_per_group, kh, kw = weight.shape
    return kh * kw * cin_per_group * math.prod(out.shape)


def _linear_macs(node: Node, args: list[TensorType]) -> int:
    weight = args[1]
    rows = math.prod(node.type.shape[:-1])
    return rows * weight.shape[0] * weight.shape[1]


def _matmul_macs(node: Node, args: list[TensorType]) -> int:
    return math.prod(node.type.shape) * args[0].shape[-1]


def _squeeze_excite_macs(node: Node, args: list[TensorType]) -> int:
    # Two 1x1 convs on a 1x1 map: C*r + r*C per image.
    batch = args[0].shape[0]
    return batch * (math.prod(args[1].shape) + math.prod(args[3].shape))


MACS: dict[str, MacFn] = {
    "conv2d": _conv_macs,
    "fused_conv2d": _conv_macs,
    "linear": _linear_macs,
    "fused_linear": _linear_macs,
    "matmul": _matmul_macs,
    "squeeze_excite": _squeeze_excite_macs,
}
# Inputs that hold statistics rather than learned parameters, by op and argument position.
NOT_PARAMETERS = {"batch_norm": {3, 4}}


@dataclass
class LayerProfile:
    node: str
    op: str
    output_shape: list[int]
    params: int
    macs: int
    source: str


@dataclass
class Profile:
    params: int
    macs: int
    layers: list[LayerProfile]

    def to_json(self) -> dict:
        return {"params": self.params, "macs": self.macs, "layers": [asdict(layer) for layer in self.layers]}


def profile(graph: Graph) -> Profile:
    """Count parameters and MACs per op; MACs are per image (divided by the batch of the first input)."""
    batch = graph.record(graph.input_names[0]).type.shape[0] if graph.input_names else 1
    counted: set[str] = set()
    layers = []
    for rec in graph.records():
        if rec.op in ("input", "constant"):
            continue
        params = 0
        skip = NOT_PARAMETERS.get(rec.op, set())
        for position, value in enumerate(graph.args(rec.name)):
            const = graph.record(value.node)
            if const.op != "constant" or position in skip or value.node in counted:
                continue
            if const.type.rank == 0 or not const.type.dtype.startswith("float"):
                continue
            counted.add(value.node)
            params += const.type.size
        mac_fn = MACS.get(rec.op)
        macs = mac_fn(rec, graph.arg_types(rec.name)) // batch if mac_fn else 0
        layers.append(LayerProfile(rec.name, rec.op, list(rec.outputs[0].shape), params, macs, rec.source))
    return Profile(sum(layer.params for layer in layers), sum(layer.macs for layer in layers), layers)


def format_profile(result: Profile, *, all_layers: bool = False) -> str:
    """A table of the layers that hold parameters or MACs (every op with ``all_layers``), then totals."""
    rows = [layer for layer in result.layers if all_layers or layer.params or layer.macs]
    name_w = max([len(r.node) for r in rows] + [4])
    op_w = max([len(r.op) for r in rows] + [2])
    lines = [f"{'node':<{name_w}}  {'op':<{op_w}}  {'output':<20}  {'params':>12}  {'MACs':>14}"]
    for r in rows:
        shape = "x".join(map(str, r.output_shape))
        lines.append(f"{r.node:<{name_w}}  {r.op:<{op_w}}  {shape:<20}  {r.params:>12,}  {r.macs:>14,}")
    lines.append(f"total: {result.params:,} params ({result.params / 1e6:.2f} M), "
                 f"{result.macs:,} MACs ({result.macs / 1e6:.1f} M)")
    return "\n".join(lines)
