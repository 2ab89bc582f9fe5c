"""ONNX frontend: models exported by both PyTorch exporters and hand-built single-op graphs must run in the IR
interpreter like they run in onnxruntime; bad files, unsupported ops and dynamic shapes must fail clearly."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from lncompile.errors import ModelFormatError, UnsupportedOpError, UsageError
from lncompile.frontend.onnx_import import from_onnx
from lncompile.ir import Graph, run_graph

ort = pytest.importorskip("onnxruntime")


# ---- helpers ---------------------------------------------------------------------------------------------

def _ort_run(path: Path | str, *inputs: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(session.get_inputs(), inputs, strict=True)}
    return session.run(None, feeds)


def _close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)


def _assert_matches(path: Path | str, *inputs: np.ndarray, **kwargs: object) -> tuple[Graph, list[np.ndarray]]:
    """The IR of ``path`` computes what onnxruntime computes, to 1e-4 of the output's scale."""
    graph = from_onnx(path, **kwargs)  # type: ignore[arg-type]
    expected = _ort_run(path, *inputs)
    got = run_graph(graph, *inputs)
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        _close(g, e)
    return graph, got


def _export(module: nn.Module, x: torch.Tensor, path: Path, dynamo: bool, **kwargs: object) -> Path:
    module = module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            try:
                torch.onnx.export(module, (x,), str(path), dynamo=True, **kwargs)
            except ImportError as e:  # pragma: no cover - onnxscript missing
                pytest.skip(f"the dynamo ONNX exporter is unavailable: {e}")
        else:
            torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=13, **kwargs)
    return path


def _seeded(module: nn.Module) -> nn.Module:
    """Give batch norms non-trivial statistics so folding mistakes show up numerically."""
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return module.eval()


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


# ---- models exported from PyTorch ------------------------------------------------------------------------

class SEBlock(nn.Module):
    """Depthwise conv, BN, hardswish, squeeze-excitation gate, residual, flatten + linear."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.fc1 = nn.Conv2d(c, 4, 1)
        self.fc2 = nn.Conv2d(4, c, 1)
        self.head = nn.Linear(c * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.hardswish(self.bn(self.dw(x)))
        gate = F.hardsigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        y = y * gate + x
        return self.head(torch.flatten(y, 1))


class ShuffleBlock(nn.Module):
    """ShuffleNetV2-like: chunk, conv on one half, cat, channel shuffle (view/transpose/reshape)."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c // 2, c // 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        y = torch.cat([a, F.relu(self.conv(b))], dim=1)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class PoolResize(nn.Module):
    """maxpool(ceil_mode) + avgpool + nearest upsample x2 + asymmetric pad."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(x, 3, 2, ceil_mode=True)
        y = F.avg_pool2d(y, 3, 1, padding=1, count_include_pad=False)
        y = F.interpolate(y, scale_factor=2.0, mode="nearest")
        return F.pad(y, (1, 0, 2, 1), value=0.5)


class Attention(nn.Module):
    """A small transformer block: linear, reshape, transpose, matmul, softmax, layer_norm, gelu."""

    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        y = x + self.proj((att @ v).transpose(1, 2).reshape(b, n, d))
        return y + self.mlp(F.gelu(y))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_se_block_both_exporters(tmp_path: Path, dynamo: bool) -> None:
    torch.manual_seed(0)
    path = _export(_seeded(SEBlock()), torch.randn(1, 16, 8, 8), tmp_path / "se.onnx", dynamo)
    ops = _assert_matches(path, _x(1, 16, 8, 8))[0].op_counts()
    assert ops.get("conv2d") == 3 and ops.get("linear") == 1
    assert "hardsigmoid" in ops


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_attention_block_both_exporters(tmp_path: Path, dynamo: bool) -> None:
    torch.manual_seed(0)
    path = _export(Attention(), torch.randn(1, 6, 32), tmp_path / "att.onnx", dynamo)
    ops = _assert_matches(path, _x(1, 6, 32))[0].op_counts()
    assert ops.get("softmax") == 1 and ops.get("matmul") == 2
    assert ops.get("linear") == 3  # MatMul + Add bias fuse back into linear


def test_channel_shuffle(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = _export(ShuffleBlock(), torch.randn(1, 16, 6, 6), tmp_path / "shuffle.onnx", dynamo=False)
    ops = _assert_matches(path, _x(1, 16, 6, 6))[0].op_counts()
    assert ops.get("transpose") == 1


def test_dynamic_batch_export_folds_shape_arithmetic(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = _export(ShuffleBlock(), torch.randn(1, 16, 6, 6), tmp_path / "dyn.onnx", dynamo=False,
                   input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    assert "Shape" in {n.op_type for n in onnx.load(str(path)).graph.node}
    with pytest.raises(UsageError, match="batch"):
        from_onnx(path)
    graph, _ = _assert_matches(path, _x(3, 16, 6, 6), input_shapes={"x": (3, 16, 6, 6)})
    assert all(rec.type.dtype == "float32" for rec in graph.records())


def test_pooling_resize_pad(tmp_path: Path) -> None:
    path = _export(PoolResize(), torch.randn(1, 3, 10, 10), tmp_path / "pool.onnx", dynamo=False)
    ops = _assert_matches(path, _x(1, 3, 10, 10))[0].op_counts()
    assert {"max_pool2d", "avg_pool2d", "resize2d", "pad"} <= set(ops)


def test_zoo_mobilenet_v2(tmp_path: Path) -> None:
    from lncompile import graphs

    model = graphs.create("mobilenet_v2", resolution=96)
    path = _export(model, torch.randn(1, 3, 96, 96), tmp_path / "mbv2.onnx", dynamo=False)
    x = _x(1, 3, 96, 96)
    _, got = _assert_matches(path, x)
    with torch.no_grad():
        _close(got[0], model(torch.from_numpy(x)).numpy())


# ---- hand-built single-op graphs -------------------------------------------------------------------------

def _model(nodes: list[onnx.NodeProto], in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None = None,
           inits: dict[str, np.ndarray] | None = None, opset: int = 17, in_dims: list | None = None,
           domains: dict[str, int] | None = None) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims or list(in_shape))]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape) if out_shape else None)]
    initializers = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


_W = np.random.default_rng(1).standard_normal((8, 4, 3, 3)).astype(np.float32)
_I64 = np.int64

SINGLE_OPS = {
    "conv_same_upper_stride2": (
        [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])], (1, 4, 7, 8),
        {"w": _W}, 17),
    "conv_same_lower_stride2": (  # onnxruntime refuses SAME with dilations
        [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2, 2])], (1, 4, 7, 8),
        {"w": _W}, 17),
    "maxpool_same_upper": (
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
        (1, 2, 7, 6), {}, 17),
    "avgpool_asym_pads_count_pad": (
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], pads=[0, 1, 2, 0],
                          count_include_pad=1)], (1, 2, 7, 6), {}, 17),
    "gemm_transA_alpha_beta": (
        [helper.make_node("Gemm", ["x", "b", "c"], ["y"], transA=1, alpha=0.5, beta=2.0)], (5, 3),
        {"b": _x(5, 4), "c": _x(4)}, 17),
    "gemm_bias_matrix": (
        [helper.make_node("Gemm", ["x", "b", "c"], ["y"], transB=1)], (3, 5), {"b": _x(4, 5), "c": _x(3, 4)}, 17),
    "matmul_vector": ([helper.make_node("MatMul", ["x", "v"], ["y"])], (2, 3, 5), {"v": _x(5)}, 17),
    "softmax_opset11_axis1": ([helper.make_node("Softmax", ["x"], ["y"], axis=1)], (2, 3, 4, 5), {}, 11),
    "clip_opset11_inputs": (
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], (2, 8),
        {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}, 11),
    "hardsigmoid_onnx_default": ([helper.make_node("HardSigmoid", ["x"], ["y"])], (2, 8), {}, 17),
    "prelu_channel": ([helper.make_node("PRelu", ["x", "s"], ["y"])], (1, 3, 4, 4),
                      {"s": np.array([[[0.1]], [[0.2]], [[-0.3]]], np.float32)}, 17),
    "prelu_broadcast_last_axis": ([helper.make_node("PRelu", ["x", "s"], ["y"])], (2, 3, 4),
                                  {"s": np.array([0.1, 0.2, 0.3, 0.4], np.float32)}, 17),
    "leaky_relu": ([helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.2)], (2, 8), {}, 17),
    "reduce_min_input_axes": (
        [helper.make_node("ReduceMin", ["x", "ax"], ["y"], keepdims=0)], (2, 3, 4), {"ax": np.array([-1], _I64)},
        18),
    "reduce_sum_attr_axes": ([helper.make_node("ReduceSum", ["x"], ["y"], axes=[1])], (2, 3, 4), {}, 11),
    "slice_multi_axis_steps": (
        [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], (2, 6, 9),
        {"st": np.array([1, -7], _I64), "en": np.array([9999, -1], _I64), "ax": np.array([1, 2], _I64),
         "sp": np.array([2, 3], _I64)}, 17),
    "pad_negative_crops": (
        [helper.make_node("Pad", ["x", "p"], ["y"])], (1, 2, 5, 5), {"p": np.array([0, 0, 1, -1, 0, 0, -2, 2], _I64)},
        17),
    "gather_scalar_index": ([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], (2, 5, 3),
                            {"i": np.array(-1, _I64)}, 17),
    "gather_index_list": ([helper.make_node("Gather", ["x", "i"], ["y"], axis=2)], (2, 3, 5),
                          {"i": np.array([4, 0, 2], _I64)}, 17),
    "expand": ([helper.make_node("Expand", ["x", "s"], ["y"])], (3, 1), {"s": np.array([2, 3, 4], _I64)}, 17),
    "split_sizes_input": (
        [helper.make_node("Split", ["x", "s"], ["a", "b"], axis=1), helper.make_node("Sub", ["b", "a"], ["y"])],
        (2, 6, 3), {"s": np.array([3, 3], _I64)}, 17),
    "resize_linear_half_pixel": (
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear")], (1, 2, 4, 5),
        {"sc": np.array([1, 1, 2, 2], np.float32)}, 17),
    "resize_linear_align_corners_sizes": (
        [helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="linear",
                          coordinate_transformation_mode="align_corners")], (1, 2, 4, 5),
        {"sz": np.array([1, 2, 7, 9], _I64)}, 17),
    "resize_nearest_downsample": (
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")], (1, 2, 8, 6),
        {"sc": np.array([1, 1, 0.5, 0.5], np.float32)}, 17),
    "upsample_opset9_x3": (
        [helper.make_node("Upsample", ["x", "sc"], ["y"], mode="nearest")], (1, 2, 3, 4),
        {"sc": np.array([1, 1, 3, 3], np.float32)}, 9),
    "resize_nearest_onnx_defaults_x3": (  # half_pixel + round_prefer_floor samples like floor at integer scales
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest")], (1, 2, 3, 4),
        {"sc": np.array([1, 1, 3, 3], np.float32)}, 13),
    "maxpool_dilated_ceil": (
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 1, 2, 1],
                          ceil_mode=1, strides=[2, 2])], (1, 2, 9, 8), {}, 13),
    "hardswish_spelled_as_mul": (
        [helper.make_node("HardSigmoid", ["x"], ["g"], alpha=1 / 6), helper.make_node("Mul", ["x", "g"], ["y"])],
        (2, 8), {}, 13),
    "layernorm_two_axes": (
        [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-2)], (2, 3, 4),
        {"g": _x(3, 4), "b": _x(3, 4)}, 17),
    "shape_arith_reshape": (
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
         helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
         helper.make_node("Concat", ["n1", "minus1"], ["spec"], axis=0),
         helper.make_node("Reshape", ["x", "spec"], ["y"])], (2, 3, 4),
        {"zero": np.array(0, _I64), "zero1": np.array([0], _I64), "minus1": np.array([-1], _I64)}, 17),
}


@pytest.mark.parametrize("case", sorted(SINGLE_OPS))
def test_single_op(tmp_path: Path, case: str) -> None:
    nodes, shape, inits, opset = SINGLE_OPS[case]
    path = _save(_model(nodes, shape, inits=inits, opset=opset), tmp_path / f"{case}.onnx")
    _assert_matches(path, _x(*shape))


def test_hardsigmoid_times_input_becomes_hardswish() -> None:
    nodes, shape, inits, opset = SINGLE_OPS["hardswish_spelled_as_mul"]
    assert from_onnx(_model(nodes, shape, inits=inits, opset=opset)).op_counts() == {"hardswish": 1}


def test_inexact_resize_is_unsupported() -> None:
    nodes = [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear", name="up",
                              coordinate_transformation_mode="asymmetric")]
    with pytest.raises(UnsupportedOpError, match=r"node up \(Resize\).*asymmetric"):
        from_onnx(_model(nodes, (1, 2, 3, 4), inits={"sc": np.array([1, 1, 2, 2], np.float32)}))


def test_huge_folded_constant_is_refused() -> None:
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["big"]), helper.make_node("Add", ["x", "big"], ["y"])]
    with pytest.raises(ModelFormatError, match="too large"):
        from_onnx(_model(nodes, (2,), inits={"s": np.array([1 << 40], _I64)}))


def test_folded_shape_ops_leave_no_int_tensors(tmp_path: Path) -> None:
    nodes, shape, inits, opset = SINGLE_OPS["shape_arith_reshape"]
    graph = from_onnx(_save(_model(nodes, shape, inits=inits, opset=opset), tmp_path / "m.onnx"))
    assert graph.op_counts() == {"reshape": 1}
    assert all(rec.type.dtype == "float32" for rec in graph.records())


# ---- errors ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def relu_bytes() -> bytes:
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    return _model(nodes, (1, 64), inits={"w": w}).SerializeToString()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="does not exist"):
        from_onnx(tmp_path / "nope.onnx")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        from_onnx(tmp_path / "empty.onnx")


def test_truncated_file(tmp_path: Path, relu_bytes: bytes) -> None:
    (tmp_path / "ok.onnx").write_bytes(relu_bytes)
    from_onnx(tmp_path / "ok.onnx")
    (tmp_path / "half.onnx").write_bytes(relu_bytes[: len(relu_bytes) // 2])
    with pytest.raises(ModelFormatError) as info:
        from_onnx(tmp_path / "half.onnx")
    assert "\n" not in str(info.value)


def test_random_bytes(tmp_path: Path) -> None:
    (tmp_path / "noise.onnx").write_bytes(np.random.default_rng(3).bytes(4096))
    with pytest.raises(ModelFormatError) as info:
        from_onnx(tmp_path / "noise.onnx")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("op_type, domain", [("NonMaxSuppression", ""), ("FancyOp", "com.example")])
def test_unsupported_op_names_type_and_node(tmp_path: Path, op_type: str, domain: str) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["h"], name="first"),
             helper.make_node(op_type, ["h"], ["y"], name="the_bad_one", domain=domain)]
    model = _model(nodes, (2, 4), domains={domain: 1} if domain else None)
    with pytest.raises(UnsupportedOpError) as info:
        from_onnx(model)
    message = str(info.value)
    assert op_type in message and "the_bad_one" in message and "#1" in message
    assert (domain or "ai.onnx") in message


def test_negative_slice_step_is_unsupported() -> None:
    nodes = [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"], name="flip")]
    inits = {"st": np.array([-1], _I64), "en": np.array([-9999], _I64), "ax": np.array([1], _I64),
             "sp": np.array([-1], _I64)}
    with pytest.raises(UnsupportedOpError, match="negative slice step"):
        from_onnx(_model(nodes, (2, 5), inits=inits))


def test_dynamic_batch(tmp_path: Path) -> None:
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Relu", ["f"], ["y"])]
    path = _save(_model(nodes, (1, 3, 4), in_dims=["batch", 3, 4]), tmp_path / "dyn.onnx")
    with pytest.raises(UsageError, match=r"'x'.*batch"):
        from_onnx(path)
    graph = from_onnx(path, input_shapes={"x": (2, 3, 4)})
    assert graph.type_of(graph.outputs[0]).shape == (2, 12)
    _assert_matches(path, _x(2, 3, 4), input_shapes={"x": (2, 3, 4)})
    with pytest.raises(UsageError, match="does not match"):
        from_onnx(path, input_shapes={"x": (2, 3, 5)})


def test_non_float_input_is_usage_error() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])], (2, 3))
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(UsageError, match="float32"):
        from_onnx(model)


def _external_model(tmp_path: Path, location: str) -> Path:
    w = np.ones((4, 4), np.float32)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], (1, 4), inits={"w": w})
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    (tmp_path / "model").mkdir()
    return _save(model, tmp_path / "model" / "ext.onnx")


def test_external_data_next_to_model_loads(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(np.ones((4, 4), np.float32).tobytes())
    _assert_matches(path, _x(1, 4))


@pytest.mark.parametrize("location", ["../evil.bin", "sub/../../evil.bin", "/etc/passwd"])
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, location: str) -> None:
    path = _external_model(tmp_path, location)
    (tmp_path / "evil.bin").write_bytes(np.ones((4, 4), np.float32).tobytes())
    with pytest.raises(ModelFormatError, match="outside the model's folder"):
        from_onnx(path)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_external_data_symlink_escape_is_refused(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "link.bin")
    (tmp_path / "evil.bin").write_bytes(np.ones((4, 4), np.float32).tobytes())
    os.symlink(tmp_path / "evil.bin", path.parent / "link.bin")
    with pytest.raises(ModelFormatError, match="outside the model's folder"):
        from_onnx(path)
