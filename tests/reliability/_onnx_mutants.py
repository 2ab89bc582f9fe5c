"""Seeded mutants of a small valid ONNX model, for the fuzz test.

Each mutation kind breaks the file at one level: raw bytes (flips, truncation, inserted or deleted runs) or the
protobuf (unknown or wrong op types, dropped inputs, attributes of the wrong value or type, wrong-rank or
absurdly sized tensors, duplicated names, cycles, dangling references, unknown domains, bad dtypes, external
data that points outside the model's folder). :func:`mutants` yields ``(kind, detail, bytes)`` deterministically
for a seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Rng = np.random.Generator
Mutator = Callable[[onnx.ModelProto, Rng], str]  # mutates the proto in place, returns a short description

HUGE = (2**31, 2**40, 2**62)
BAD_DIMS = (0, -1, -7, *HUGE)


def tiny_conv_onnx(path: Path) -> Path:
    """A tiny torch conv net (conv+BN, relu, maxpool, residual 1x1 conv, mean, reshape, linear) at opset 13."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.pw = nn.Conv2d(8, 8, 1)
            self.fc = nn.Linear(8, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn(self.conv(x)))
            y = nn.functional.max_pool2d(y, 2)
            y = y + torch.sigmoid(self.pw(y))
            y = y.mean((2, 3))
            return self.fc(y.reshape(y.shape[0], -1))

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tiny().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits"])
    return path


# ---- byte level ------------------------------------------------------------------------------------------

def byte_flip(data: bytes, rng: Rng) -> tuple[str, bytes]:
    buf = bytearray(data)
    k = int(rng.integers(1, 9))
    for pos in rng.integers(0, len(buf), size=k):
        buf[int(pos)] ^= int(rng.integers(1, 256))
    return f"{k} bytes flipped", bytes(buf)


def truncate(data: bytes, rng: Rng) -> tuple[str, bytes]:
    cut = int(rng.integers(1, len(data)))
    return f"cut at {cut}/{len(data)}", data[:cut]


def insert_run(data: bytes, rng: Rng) -> tuple[str, bytes]:
    pos, n = int(rng.integers(0, len(data))), int(rng.integers(1, 65))
    run = rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
    return f"{n} bytes inserted at {pos}", data[:pos] + run + data[pos:]


def delete_run(data: bytes, rng: Rng) -> tuple[str, bytes]:
    pos, n = int(rng.integers(0, len(data))), int(rng.integers(1, 65))
    return f"{n} bytes deleted at {pos}", data[:pos] + data[pos + n:]


BYTE_MUTATORS: dict[str, Callable[[bytes, Rng], tuple[str, bytes]]] = {
    "byte_flip": byte_flip, "truncate": truncate, "insert_run": insert_run, "delete_run": delete_run,
}  # fmt: skip


# ---- protobuf level --------------------------------------------------------------------------------------

def _pick(rng: Rng, seq: list) -> object:
    return seq[int(rng.integers(0, len(seq)))]


def _node(m: onnx.ModelProto, rng: Rng, where: Callable[[onnx.NodeProto], bool] = lambda n: True) -> onnx.NodeProto:
    return _pick(rng, [n for n in m.graph.node if where(n)])  # type: ignore[return-value]


_ONNX_OPS = sorted({s.name for s in onnx.defs.get_all_schemas() if s.domain == ""})


def op_type_unknown(m: onnx.ModelProto, rng: Rng) -> str:
    node = _node(m, rng)
    new = _pick(rng, ["Frobnicate", "", "conv", "Conv2D", "\u00e9\u00e9", "x" * 300, "Relu\x00"])
    old, node.op_type = node.op_type, new  # type: ignore[assignment]
    return f"{old} -> {new[:20]!r}"


def op_type_other(m: onnx.ModelProto, rng: Rng) -> str:
    """Another real ONNX op (half the time one lncompile translates, to reach its handlers with odd nodes)."""
    from lncompile.frontend.onnx_import import FOLDS, HANDLERS

    node = _node(m, rng)
    new = str(_pick(rng, _ONNX_OPS if rng.random() < 0.5 else sorted({*HANDLERS, *FOLDS})))
    old, node.op_type = node.op_type, new
    return f"{old} -> {new}"


def drop_input(m: onnx.ModelProto, rng: Rng) -> str:
    node = _node(m, rng, lambda n: len(n.input) > 0)
    i = int(rng.integers(0, len(node.input)))
    if rng.random() < 0.3:
        node.input[i] = ""
        return f"{node.op_type} input {i} blanked"
    del node.input[i]
    return f"{node.op_type} input {i} dropped"


def _random_ints(rng: Rng, n: int) -> list[int]:
    pool = [0, 1, -1, 2, 3, 5, -3, 7, *HUGE, -(2**40)]
    return [int(_pick(rng, pool)) for _ in range(n)]


def attr_value(m: onnx.ModelProto, rng: Rng) -> str:
    node = _node(m, rng, lambda n: len(n.attribute) > 0)
    attr = _pick(rng, list(node.attribute))
    assert isinstance(attr, onnx.AttributeProto)
    if attr.type == onnx.AttributeProto.INTS:
        n = int(rng.integers(0, 6))
        del attr.ints[:]
        attr.ints.extend(_random_ints(rng, n))
        value: object = list(attr.ints)
    elif attr.type == onnx.AttributeProto.INT:
        attr.i = _random_ints(rng, 1)[0]
        value = attr.i
    elif attr.type == onnx.AttributeProto.FLOAT:
        attr.f = float(_pick(rng, [float("nan"), float("inf"), -1.0, 0.0, 1e30]))
        value = attr.f
    elif attr.type == onnx.AttributeProto.TENSOR:
        arr = numpy_helper.to_array(attr.t)
        new = _pick(rng, [np.zeros((0,), arr.dtype), np.full((3, 2), 7, arr.dtype), np.array(2**40, np.int64)])
        attr.t.CopyFrom(numpy_helper.from_array(np.asarray(new), attr.t.name))
        value = np.asarray(new).shape
    else:
        attr.s = b"\xff\xfebogus"
        value = attr.s
    return f"{node.op_type}.{attr.name} = {value}"


def attr_type(m: onnx.ModelProto, rng: Rng) -> str:
    node = _node(m, rng, lambda n: len(n.attribute) > 0)
    i = int(rng.integers(0, len(node.attribute)))
    name = node.attribute[i].name
    new = _pick(rng, [
        helper.make_attribute(name, 1.5), helper.make_attribute(name, "same"), helper.make_attribute(name, [1.0, 2.0]),
        helper.make_attribute(name, ["a", "b"]), helper.make_attribute(name, 3),
        helper.make_attribute(name, numpy_helper.from_array(np.ones((2, 2), np.float32))),
        helper.make_attribute(name, helper.make_graph([], "g", [], [])),
    ])
    assert isinstance(new, onnx.AttributeProto)
    node.attribute[i].CopyFrom(new)
    return f"{node.op_type}.{name} -> {onnx.AttributeProto.AttributeType.Name(new.type)}"


def _float_init(m: onnx.ModelProto, rng: Rng) -> onnx.TensorProto:
    return _pick(rng, [t for t in m.graph.initializer if t.data_type == TensorProto.FLOAT])  # type: ignore[return-value]


def init_rank(m: onnx.ModelProto, rng: Rng) -> str:
    init = _float_init(m, rng)
    arr = numpy_helper.to_array(init)
    choice = int(rng.integers(0, 4))
    if choice == 0:
        new = arr.reshape(-1)
    elif choice == 1:
        new = arr.reshape((1, *arr.shape))
    elif choice == 2:
        new = arr.reshape(-1)[: max(arr.size // 2, 1)].copy()
    else:
        new = np.ones((*arr.shape, 2), np.float32)
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new), init.name))
    return f"{init.name} {arr.shape} -> {new.shape}"


def bad_dims(m: onnx.ModelProto, rng: Rng) -> str:
    bad = int(_pick(rng, list(BAD_DIMS)))
    if rng.random() < 0.5:
        vi = m.graph.input[0]
        dims = vi.type.tensor_type.shape.dim
        axis = int(rng.integers(0, len(dims)))
        dims[axis].Clear()
        dims[axis].dim_value = bad
        return f"input {vi.name} dim {axis} = {bad}"
    init = _float_init(m, rng)
    axis = int(rng.integers(0, len(init.dims)))
    init.dims[axis] = bad
    return f"initializer {init.name} dim {axis} = {bad} (data unchanged)"


def dup_output(m: onnx.ModelProto, rng: Rng) -> str:
    nodes = list(m.graph.node)
    choice = int(rng.integers(0, 3))
    if choice == 0 and len(nodes) > 1:
        a, b = sorted(rng.choice(len(nodes), size=2, replace=False).tolist())
        nodes[b].output[0] = nodes[a].output[0]
        return f"node {b} ({nodes[b].op_type}) also writes {nodes[a].output[0]!r}"
    if choice == 1:
        m.graph.output.append(m.graph.output[0])
        return "graph output listed twice"
    node = _node(m, rng)
    node.output[0] = m.graph.input[0].name
    return f"{node.op_type} overwrites the graph input"


def cycle(m: onnx.ModelProto, rng: Rng) -> str:
    nodes = list(m.graph.node)
    i = int(rng.integers(0, len(nodes)))
    j = int(rng.integers(i, len(nodes)))
    node = nodes[i]
    k = int(rng.integers(0, max(len(node.input), 1)))
    if not node.input:
        node.input.append(nodes[j].output[0])
    else:
        node.input[k] = nodes[j].output[0]
    return f"node {i} ({node.op_type}) reads node {j}'s output"


def missing_initializer(m: onnx.ModelProto, rng: Rng) -> str:
    choice = int(rng.integers(0, 3))
    init = _float_init(m, rng)
    if choice == 0:  # declared as a graph input (as IR < 4 did) but its data is gone
        vi = helper.make_tensor_value_info(init.name, TensorProto.FLOAT, list(init.dims))
        m.graph.input.append(vi)
        m.graph.initializer.remove(init)
        return f"{init.name} is a graph input without initializer"
    if choice == 1:  # declared input, no shape, no data
        m.graph.input.append(helper.make_tensor_value_info(init.name, TensorProto.FLOAT, None))
        m.graph.initializer.remove(init)
        return f"{init.name} is a shapeless graph input without initializer"
    m.graph.initializer.remove(init)
    return f"initializer {init.name} removed"


def unknown_domain(m: onnx.ModelProto, rng: Rng) -> str:
    choice = int(rng.integers(0, 4))
    if choice == 0:
        m.opset_import.append(helper.make_opsetid("com.example.evil", 1))
        node = _node(m, rng)
        node.domain = "com.example.evil"
        return f"{node.op_type} in domain com.example.evil"
    if choice == 1:
        m.opset_import.append(helper.make_opsetid("com.example.evil", 1))
        return "extra opset_import com.example.evil"
    if choice == 2:
        del m.opset_import[:]
        m.opset_import.append(helper.make_opsetid("com.example.evil", 1))
        return "only opset_import com.example.evil"
    version = int(_pick(rng, [0, 1, 7, 99, -3]))
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = version
    return f"ai.onnx opset {version}"


def huge_reshape(m: onnx.ModelProto, rng: Rng) -> str:
    shape = _pick(rng, [[2**40, 2**40], [-1, -1], [0, 0], [1, -5], [2**62], [], [1, 8, 1, 1, 1, 1, 1, 1, 1],
                        [2**31, 0], [-(2**40), -1]])
    node = _node(m, rng, lambda n: n.op_type == "Reshape")
    for n in m.graph.node:  # the shape comes from a Constant node in torch's export
        if n.op_type == "Constant" and n.output[0] == node.input[1]:
            n.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array(shape, np.int64)))
    return f"reshape to {shape}"


def bad_dtype(m: onnx.ModelProto, rng: Rng) -> str:
    code = int(_pick(rng, [TensorProto.INT64, TensorProto.STRING, TensorProto.UNDEFINED, TensorProto.BFLOAT16,
                           TensorProto.DOUBLE, 123]))
    if rng.random() < 0.5:
        m.graph.input[0].type.tensor_type.elem_type = code
        return f"graph input elem_type {code}"
    init = _float_init(m, rng)
    init.data_type = code
    return f"initializer {init.name} data_type {code}"


def graph_outputs(m: onnx.ModelProto, rng: Rng) -> str:
    choice = int(rng.integers(0, 3))
    if choice == 0:
        m.graph.output[0].name = "nowhere"
        return "graph output renamed to an undefined tensor"
    if choice == 1:
        del m.graph.output[:]
        return "no graph outputs"
    init = _float_init(m, rng)
    m.graph.output.append(helper.make_tensor_value_info(init.name, TensorProto.FLOAT, list(init.dims)))
    return f"initializer {init.name} also a graph output"


def external_data(m: onnx.ModelProto, rng: Rng) -> str:
    init = _float_init(m, rng)
    location = str(_pick(rng, ["../../../../etc/passwd", "/etc/passwd", "sub/../../x.bin", "missing.bin",
                               "C:\\\\windows\\\\x.bin", "..\\\\x.bin", "escape_link.bin", "weights.bin", ""]))
    raw = init.raw_data or numpy_helper.to_array(init).tobytes()
    init.ClearField("raw_data")
    del init.float_data[:]
    init.data_location = TensorProto.EXTERNAL
    del init.external_data[:]
    entries = {"location": location, "length": str(len(raw) + int(rng.integers(0, 2)) * 10**9)}
    for k, v in entries.items():
        e = init.external_data.add()
        e.key, e.value = k, v
    return f"{init.name} external at {location!r} length {entries['length']}"


def weird_names(m: onnx.ModelProto, rng: Rng) -> str:
    """Names with newlines, control characters or absurd lengths (they end up in error messages)."""
    name = str(_pick(rng, ["evil\nname", "tab\there", "\x1b[31mred", "n" * 5000, "\u202eevil", ""]))
    choice = int(rng.integers(0, 3))
    if choice == 0:
        node = _node(m, rng)
        node.name = name
        node.op_type = "Unknown\nOp" if rng.random() < 0.5 else node.op_type
        return f"node {node.op_type!r} named {name[:20]!r}"
    old = _pick(rng, [n.output[0] for n in m.graph.node])
    for node in m.graph.node:  # rename a tensor everywhere (still valid) or only where it is made (dangling)
        for field in (node.output, node.input) if choice == 1 else (node.output,):
            for i, v in enumerate(field):
                if v == old:
                    field[i] = name
    for out in m.graph.output:
        if out.name == old:
            out.name = name
    return f"tensor {old!r} renamed to {name[:20]!r}" + ("" if choice == 1 else " where it is made only")


def combo(m: onnx.ModelProto, rng: Rng) -> str:
    names = [k for k in PROTO_MUTATORS if k not in ("combo", "external_data")]
    picked = [str(_pick(rng, names)) for _ in range(int(rng.integers(2, 4)))]
    return "; ".join(f"{k}: {PROTO_MUTATORS[k](m, rng)}" for k in picked)


PROTO_MUTATORS: dict[str, Mutator] = {
    "op_type_unknown": op_type_unknown, "op_type_other": op_type_other, "drop_input": drop_input,
    "attr_value": attr_value, "attr_type": attr_type, "init_rank": init_rank, "bad_dims": bad_dims,
    "dup_output": dup_output, "cycle": cycle, "missing_initializer": missing_initializer,
    "unknown_domain": unknown_domain, "huge_reshape": huge_reshape, "bad_dtype": bad_dtype,
    "graph_outputs": graph_outputs, "external_data": external_data, "weird_names": weird_names, "combo": combo,
}  # fmt: skip

KINDS = [*BYTE_MUTATORS, *PROTO_MUTATORS]


def mutants(model: bytes, count: int, seed: int = 0) -> Iterator[tuple[str, str, bytes]]:
    """``count`` mutants of ``model`` (serialized ONNX), cycling through :data:`KINDS`; deterministic."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        if kind in BYTE_MUTATORS:
            detail, data = BYTE_MUTATORS[kind](model, rng)
        else:
            proto = onnx.load_from_string(model)
            detail = PROTO_MUTATORS[kind](proto, rng)
            data = proto.SerializeToString()
        yield kind, detail, data
