"""`lncompile profile`: per-layer params and MACs counted on the IR, for zoo names and ONNX files alike.

The command runs in this process (``cli.main``): what is tested is its counting and output, and a fresh process
would spend most of its time importing torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lncompile import graphs
from lncompile.cli import main


def profile_output(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What `lncompile profile ARGS` prints (asserting it succeeds)."""
    capsys.readouterr()
    code = main(["profile", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def profile_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    return json.loads(profile_output(capsys, *args, "--json"))


def test_mobilenet_v2_matches_the_paper_and_scales_with_width(capsys: pytest.CaptureFixture[str]) -> None:
    full = profile_json(capsys, "mobilenet_v2")
    assert full["params"] == 3_504_872  # torchvision's count of the same architecture
    assert full["macs"] == pytest.approx(300e6, rel=0.01)  # paper Table 4: 300M multiply-adds
    layer = full["layers"][0]
    assert set(layer) >= {"node", "op", "output_shape", "params", "macs"}
    assert layer["op"] == "conv2d" and layer["output_shape"] == [1, 32, 112, 112]
    assert layer["macs"] == 3 * 3 * 3 * 32 * 112 * 112
    half = profile_json(capsys, "mobilenet_v2", "--width-mult", "0.5", "--resolution", "160")
    assert half["macs"] < full["macs"] / 4  # width^2 x resolution^2 scaling, head kept at 1280


def test_profile_counts_an_onnx_file_like_the_torch_model(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    model = graphs.create("mobilenet_v3_small", resolution=96)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 96, 96),), str(path), dynamo=False, opset_version=13,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    from_onnx = profile_json(capsys, str(path))
    from_zoo = profile_json(capsys, "mobilenet_v3_small", "--resolution", "96")
    assert from_onnx["params"] == from_zoo["params"] == sum(p.numel() for p in model.parameters())
    assert from_onnx["macs"] == from_zoo["macs"]


def test_profile_table_has_totals(capsys: pytest.CaptureFixture[str]) -> None:
    out = profile_output(capsys, "squeezenet1_1", "-r", "64")
    assert out.strip().splitlines()[-1].startswith("total: 1,235,496 params")


def test_every_zoo_model_names_its_published_source() -> None:
    for name in graphs.names():
        published = graphs.spec(name).published
        if published is not None:
            assert published.source and (published.params or published.macs), name
