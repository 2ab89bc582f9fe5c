"""Checks the zoo tests share: a model runs to finite logits, its counts match published figures, it exports."""

from __future__ import annotations

import torch
from torch import nn

from lncompile import graphs
from tests.zoo._counting import params_macs


def smallest_of_each_family() -> list[str]:
    """Each family's member with the fewest published MACs (the first by name where none are published)."""
    def macs(name: str) -> float:
        published = graphs.spec(name).published
        return published.macs if published is not None else float("inf")

    smallest: dict[str, str] = {}
    for name in graphs.names():
        family = graphs.spec(name).family
        if family not in smallest or macs(name) < macs(smallest[family]):
            smallest[family] = name
    return sorted(smallest.values())


def assert_forward(model: nn.Module, resolution: int = 64, num_classes: int = 1000, batch: int = 1) -> torch.Tensor:
    """Run ``model`` on a random batch of ``resolution`` square images; assert finite (batch, num_classes) logits."""
    with torch.no_grad():
        out = model(torch.randn(batch, 3, resolution, resolution))
    assert out.shape == (batch, num_classes), f"output shape {tuple(out.shape)}, expected {(batch, num_classes)}"
    assert torch.isfinite(out).all(), "non-finite output"
    return out


def assert_runs(name: str, resolution: int = 64, num_classes: int = 10, **knobs) -> torch.Tensor:
    """``assert_forward`` of zoo model ``name`` built (``graphs.create``) at ``resolution`` for ``num_classes``."""
    model = graphs.create(name, resolution=resolution, num_classes=num_classes, **knobs)
    return assert_forward(model, resolution, num_classes)


def assert_close(
    name: str, params: float, macs: float, pub_params: float, pub_macs: float, macs_rel: float = 0.05
) -> None:
    """Assert ``params`` within 2 % and ``macs`` within ``macs_rel`` of the published ``pub_params``/``pub_macs``."""
    assert abs(params / pub_params - 1) <= 0.02, f"{name}: {params / 1e6:.3f}M params vs {pub_params / 1e6}M"
    assert abs(macs / pub_macs - 1) <= macs_rel, f"{name}: {macs / 1e6:.1f}M MAdds vs {pub_macs / 1e6}M"


def assert_matches_published(name: str, macs_rel: float = 0.05) -> tuple[int, float]:
    """``assert_close`` of zoo model ``name``'s counts at its resolution to ``spec.published``; returns the counts."""
    published = graphs.spec(name).published
    assert published is not None, f"{name} has no published figures"
    params, macs = params_macs(name)
    assert_close(name, params, macs, published.params, published.macs, macs_rel)
    return params, macs


def export(model: nn.Module, resolution: int = 64) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` on a random batch-1 ``resolution`` square image."""
    return torch.export.export(model, (torch.randn(1, 3, resolution, resolution),))


def called_ops(program: torch.export.ExportedProgram) -> set[str]:
    """The targets of ``program``'s call_function nodes, as strings (``"aten.conv2d.default"``...)."""
    return {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
