"""EdgeViT XXS/XS/S: shapes, export, params/MACs vs paper/release, LocalProp == depthwise ConvTranspose2d."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lncompile.errors import UsageError
from lncompile.graphs import registry
from lncompile.graphs.edgevit import LGLBlock, LocalProp
from tests.zoo._checks import assert_forward, assert_matches_published, called_ops, export
from tests.zoo._counting import params_macs

MODELS = ["edgevit_xxs", "edgevit_xs", "edgevit_s"]
# Exact parameter counts of the official saic-fi/edgevit definitions (checked weight-for-weight against a
# transcription of src/edgevit.py: max abs output difference ~5e-7).
OFFICIAL_PARAMS = {"edgevit_xxs": 4_067_704, "edgevit_xs": 6_770_056, "edgevit_s": 13_108_168}
DEPTHS = {"edgevit_xxs": [1, 1, 3, 2], "edgevit_xs": [1, 1, 3, 1], "edgevit_s": [1, 2, 5, 3]}


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_published_figures(name: str) -> None:
    assert registry.spec(name).resolution == 224
    model = registry.create(name, resolution=64)
    out = assert_forward(model, batch=2)
    assert not torch.allclose(out[0], out[1])

    blocks = [m for m in model.modules() if isinstance(m, LGLBlock)]
    assert len(blocks) == sum(DEPTHS[name])

    # MACs count convs, linears and attention matmuls.
    params, _ = assert_matches_published(name)
    assert params == OFFICIAL_PARAMS[name]


def test_paper_xxs_figure() -> None:
    """The paper's own XXS row (4.1M, 0.6 GFLOPs) holds at its one-decimal precision."""
    params, macs = params_macs("edgevit_xxs", 224)
    assert round(params / 1e6, 1) == 4.1
    assert round(macs / 1e9, 1) == 0.6


@pytest.mark.parametrize("ratio", [2, 4])
def test_local_prop_is_depthwise_transposed_conv(ratio: int) -> None:
    dim = 6
    prop = LocalProp(dim, ratio)
    ref = nn.ConvTranspose2d(dim, dim, ratio, stride=ratio, groups=dim)
    with torch.no_grad():
        ref.weight.copy_(prop.weight)
        ref.bias.copy_(prop.bias)
        x = torch.randn(2, dim, 3, 5)
        torch.testing.assert_close(prop(x), ref(x))
    assert sum(p.numel() for p in prop.parameters()) == sum(p.numel() for p in ref.parameters())


def test_exports() -> None:
    ep = export(registry.create("edgevit_xxs", resolution=64, num_classes=10))
    ops = called_ops(ep)
    assert {"aten.matmul.default", "aten.softmax.int", "aten.avg_pool2d.default", "aten.gelu.default"} <= ops
    assert not any("convolution" in op or "conv_transpose" in op for op in ops)
    assert_forward(ep.module(), num_classes=10)


def test_bad_values() -> None:
    for bad in (-32, 16, 200, 240, 224.0, True):
        with pytest.raises(UsageError, match="multiple of 32"):
            registry.create("edgevit_xs", resolution=bad)
    with pytest.raises(UsageError):
        registry.create("edgevit_s", depth_mult=2.0)
