"""``lncompile build --no-passes``: the manifest says which passes ran, and the library computes the same.

(The pass pipeline on one model of every zoo family is checked in tests/zoo/test_zoo_compiles.py, which
imports each family once for all its tests.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lncompile
from tests.conftest import relative_error


@pytest.mark.slow
def test_cli_build_with_and_without_passes(tmp_path: Path) -> None:
    from lncompile.cli import main

    args = ["build", "mobilenet_v1", "-r", "64", "--width-mult", "0.25"]
    assert main([*args, "--no-passes", "-o", str(tmp_path / "off")]) == 0
    assert main([*args, "-o", str(tmp_path / "on")]) == 0
    off = json.loads((tmp_path / "off" / "mobilenet_v1-x86.json").read_text())
    on = json.loads((tmp_path / "on" / "mobilenet_v1-x86.json").read_text())
    assert off["passes"] == [] and off["ir_sha256"] == off["imported_ir_sha256"]
    assert on["imported_ir_sha256"] == off["ir_sha256"] != on["ir_sha256"]
    assert next(p for p in on["passes"] if p["name"] == "fold_batchnorm")["matches"] == 27
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    y_off = lncompile.load(tmp_path / "off" / "mobilenet_v1-x86.so")(x)
    y_on = lncompile.load(tmp_path / "on" / "mobilenet_v1-x86.so")(x)
    assert relative_error(y_on, y_off) <= 1e-4
