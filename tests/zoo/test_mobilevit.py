"""MobileViT XXS/XS/S: shapes, export, params/MACs vs paper/timm, patch unfold/fold, resolution checks."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lncompile.errors import UsageError
from lncompile.graphs import registry
from lncompile.graphs.mobilevit import MobileViTBlock, fold_patches, unfold_patches
from tests.zoo._checks import assert_forward, assert_matches_published, called_ops, export

MODELS = ["mobilevit_xxs", "mobilevit_xs", "mobilevit_s"]
# Exact parameter counts of timm mobilevit_xxs/xs/s (the apple/ml-cvnets release); our modules were checked
# weight-for-weight against timm 0.9.16 (max abs output difference ~1e-7).
TIMM_PARAMS = {"mobilevit_xxs": 1_272_024, "mobilevit_xs": 2_317_848, "mobilevit_s": 5_578_632}
# Transformer dims d and depths L of the three MobileViT blocks (cvnets config/mobilevit.py).
BLOCKS = {
    "mobilevit_xxs": [(64, 2), (80, 4), (96, 3)],
    "mobilevit_xs": [(96, 2), (120, 4), (144, 3)],
    "mobilevit_s": [(144, 2), (192, 4), (240, 3)],
}


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_published_figures(name: str) -> None:
    assert registry.spec(name).resolution == 256
    model = registry.create(name, resolution=64)  # the smallest input it takes: 2x2 map at the last stage
    out = assert_forward(model, batch=2)
    assert not torch.allclose(out[0], out[1])  # the output depends on the input

    blocks = [m for m in model.modules() if isinstance(m, MobileViTBlock)]
    assert [(b.norm.normalized_shape[0], len(b.transformer)) for b in blocks] == BLOCKS[name]

    # MACs count convs, linears and attention matmuls.
    params, _ = assert_matches_published(name)
    assert params == TIMM_PARAMS[name]


def test_attention_matmuls_are_counted() -> None:
    """At 256 the XXS attention (q k^T and attn v over 4 pixel positions x 256/64/16 patches) is ~27 MMACs."""
    model = registry.create("mobilevit_xxs", resolution=64).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randn(1, 3, 256, 256, device="meta"))
    counts = {str(op): flops / 2 for op, flops in fc.get_flop_counts()["Global"].items()}
    # 2 * P * N^2 * d per layer: stage 3 (N=256, d=64, L=2), stage 4 (N=64, d=80, L=4), stage 5 (N=16, d=96, L=3).
    expected = sum(2 * 4 * n * n * d * depth for n, d, depth in [(256, 64, 2), (64, 80, 4), (16, 96, 3)])
    assert counts["aten.bmm"] == expected


def test_unfold_fold_roundtrip() -> None:
    x = torch.randn(2, 5, 8, 6)
    t = unfold_patches(x, 2)
    assert t.shape == (2 * 4, 12, 5)
    # Row (batch 1, pixel (1, 0)) token 4 = patch (row 1, col 1) -> pixel (2*1 + 1, 2*1 + 0) of the map.
    assert torch.equal(t[1 * 4 + 1 * 2 + 0, 1 * 3 + 1], x[1, :, 3, 2])
    assert torch.equal(fold_patches(t, x.shape, 2), x)


def test_exports() -> None:
    ep = export(registry.create("mobilevit_xxs", resolution=64, num_classes=10))
    ops = called_ops(ep)
    assert {"aten.matmul.default", "aten.softmax.int", "aten.layer_norm.default", "aten.silu.default"} <= ops
    assert not any("im2col" in op or "unfold" in op for op in ops)
    assert_forward(ep.module(), num_classes=10)


def test_bad_values() -> None:
    for bad in (-64, 32, 96, 224, 256.0, True):
        with pytest.raises(UsageError, match="multiple of 64"):
            registry.create("mobilevit_xxs", resolution=bad)
    with pytest.raises(UsageError):
        registry.create("mobilevit_s", width_mult=0.5)
