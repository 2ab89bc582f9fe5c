"""`lncompile inspect`: op counts before/after, per-pass statistics, and an SVG of the optimized IR."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lncompile.cli import main
from lncompile.frontend import import_model
from lncompile.passes.pipeline import optimize


def test_inspect_json_and_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svg = tmp_path / "pics" / "m.svg"
    assert main(["inspect", "mobilenet_v3_small", "--resolution", "64", "--width-mult", "0.5", "--json",
                 "--svg", str(svg)]) == 0
    report = json.loads(capsys.readouterr().out)
    graph = import_model("mobilenet_v3_small", resolution=64, width_mult=0.5).graph
    expected = optimize(graph)
    assert report["before"] == graph.op_counts()
    assert report["after"] == expected.graph.op_counts()
    assert report["after"]["squeeze_excite"] == 9 and "batch_norm" not in report["after"]
    assert [p["name"] for p in report["passes"]] == [s.name for s in expected.stats]
    se = next(p for p in report["passes"] if p["name"] == "squeeze_excite")
    assert se["matches"] == 9 and se["refused"] == {"SE activation feeds reshape, not a conv2d": 1}

    root = ET.parse(svg).getroot()  # a well-formed SVG document
    assert root.tag.endswith("svg")
    text = svg.read_text()
    assert text.count("squeeze_excite") >= 9 and "conv+hardswish" in text and "#9ecae1" in text
    assert not [p for p in svg.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_inspect_text_without_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "mobilenet_v1", "-r", "64", "--width-mult", "0.25", "--no-passes"]) == 0
    out = capsys.readouterr().out
    assert "(passes off)" in out and "fold_batchnorm" not in out
    line = next(li for li in out.splitlines() if li.startswith("batch_norm"))
    before, after = map(int, line.split()[1:])
    assert before == after > 0


def test_inspect_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lncompile: error: unknown model") and err.count("\n") == 1
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["inspect", "mobilenet_v1", "-r", "64", "--width-mult", "0.25", "--svg",
                 str(tmp_path / "a_file" / "m.svg")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and err.count("\n") == 1


def test_inspect_draws_the_winograd_convs_of_an_x86_build(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    svg = tmp_path / "squeezenet.svg"
    assert main(["inspect", "squeezenet1_1", "--target", "x86", "--json", "--svg", str(svg)]) == 0
    report = json.loads(capsys.readouterr().out)
    rewrite = next(p for p in report["passes"] if p["name"] == "winograd_conv")
    assert rewrite["matches"] == report["after"]["winograd_conv2d"] == 8  # every fire module's expand 3x3
    text = svg.read_text()
    # x86: winograd_tile 4, so F(4x4) where the output is 24+ pixels a side (the 55x55 and 27x27 fire modules)
    assert text.count("F(4x4, 3x3)") == 4 and text.count("F(2x2, 3x3)") == 4 and "#bcbddc" in text
