"""`lncompile profile`: per-layer params and MACs counted on the IR, for zoo names and ONNX files alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lncompile import graphs


def profile_json(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "lncompile.cli", "profile", *args, "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_mobilenet_v2_matches_the_paper_and_scales_with_width() -> None:
    full = profile_json("mobilenet_v2")
    assert full["params"] == 3_504_872  # torchvision's count of the same architecture
    assert full["macs"] == pytest.approx(300e6, rel=0.01)  # paper Table 4: 300M multiply-adds
    layer = full["layers"][0]
    assert set(layer) >= {"node", "op", "output_shape", "params", "macs"}
    assert layer["op"] == "conv2d" and layer["output_shape"] == [1, 32, 112, 112]
    assert layer["macs"] == 3 * 3 * 3 * 32 * 112 * 112
    half = profile_json("mobilenet_v2", "--width-mult", "0.5", "--resolution", "160")
    assert half["macs"] < full["macs"] / 4  # width^2 x resolution^2 scaling, head kept at 1280


def test_profile_counts_an_onnx_file_like_the_torch_model(tmp_path: Path) -> None:
    model = graphs.create("mobilenet_v3_small", resolution=96)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 96, 96),), str(path), dynamo=False, opset_version=13,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    from_onnx = profile_json(str(path))
    from_zoo = profile_json("mobilenet_v3_small", "--resolution", "96")
    assert from_onnx["params"] == from_zoo["params"] == sum(p.numel() for p in model.parameters())
    assert from_onnx["macs"] == from_zoo["macs"]


def test_profile_table_has_totals() -> None:
    result = subprocess.run([sys.executable, "-m", "lncompile.cli", "profile", "squeezenet1_1", "-r", "64"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("total: 1,235,496 params")


def test_every_zoo_model_names_its_published_source() -> None:
    for name in graphs.names():
        published = graphs.spec(name).published
        if published is not None:
            assert published.source and (published.params or published.macs), name
