"""Shared machinery of the NAS cell networks: NASNet-A, PNASNet-5 and AmoebaNet-A (inference form).

A port of the TF reference builders, written for PyTorch:

* TF-slim ``research/slim/nets/nasnet/nasnet_utils.py`` (``NasNetABaseCell``, ``factorized_reduction``,
  ``_stacked_separable_conv``, ``_pooling``) and ``nasnet.py`` (``_imagenet_stem``, ``_build_nasnet_base``),
  ``pnasnet.py`` (``_build_pnasnet_base``);
* tensorflow/tpu ``models/official/amoeba_net/network_utils.py`` (``BaseCell``, same semantics plus the
  ``1x7_7x1`` op) and ``model_builder.py``.

A cell is a *genotype* written exactly as in those files: ten operation names, ten hidden-state indices
(two per block, state 0 = the current input after ReLU-1x1-BN, state 1 = the previous cell's output matched
to this cell's shape) and a ``used`` flag per hidden state; the unused states are concatenated as the output.

Deviations from TF, all without effect on parameter or MAC counts:
* TF 'SAME' padding is asymmetric (0 before, 1 after) for stride-2 ops on even inputs; we pad symmetrically.
  With odd kernels both give the same output size, so no explicit F.pad is needed for the shapes.
* Inference form: no drop-path, no auxiliary head; the head dropout (TF keep_prob 0.5) is kept (identity in
  eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lncompile.errors import UsageError


@dataclass(frozen=True)
class Genotype:
    """A cell in the TF encoding (``operations``, ``hiddenstate_indices``, ``used_hiddenstates``)."""

    ops: tuple[str, ...]  # 10 operation names, two per block
    inputs: tuple[int, ...]  # 10 hidden-state indices, two per block
    used: tuple[int, ...]  # 7 flags: states consumed inside the cell (1) are not part of the output


def conv_bn(
    in_ch: int, out_ch: int, kernel: int | tuple[int, int] = 1, stride: int | tuple[int, int] = 1
) -> nn.Sequential:
    """Conv (no bias, TF-'SAME'-sized padding) -> BN; slim's conv2d with activation_fn=None."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    pad = (k[0] // 2, k[1] // 2)
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, k, stride, pad, bias=False), nn.BatchNorm2d(out_ch))


def conv_bn_valid(in_ch: int, out_ch: int) -> nn.Sequential:
    """ImageNet stem conv0: 3x3 stride 2 'VALID' (224 -> 111) -> BN, no activation (TF ``_imagenet_stem``)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 2, 0, bias=False), nn.BatchNorm2d(out_ch))


def relu_conv_bn(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), *conv_bn(in_ch, out_ch, kernel, stride))


class SepStack(nn.Module):
    """``separable_KxK_2``: (ReLU -> depthwise KxK -> pointwise 1x1 -> BN) twice; only the first is strided.

    slim.separable_conv2d(num_outputs=filters, depth_multiplier=1): the first pointwise already maps to
    ``out_ch`` (TF ``_stacked_separable_conv``), so the second layer is out_ch -> out_ch.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_ch, in_ch, kernel, stride, pad, groups=in_ch, bias=False),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, kernel, 1, pad, groups=out_ch, bias=False),
            nn.Conv2d(out_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Conv1x7x7x1(nn.Module):
    """AmoebaNet ``1x7_7x1`` (tpu ``network_utils._apply_operation``): a 1x7, 7x1 pair in a f/4 bottleneck.

    ReLU -> 1x1 (f/4) -> BN -> ReLU -> 1x7 (stride 1,s) -> BN -> ReLU -> 7x1 (stride s,1) -> BN
    -> ReLU -> 1x1 (f) -> BN; without the bottleneck 1x1s when f/4 < 1.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        mid = out_ch // 4
        layers: list[nn.Module] = [nn.ReLU()]
        inner = out_ch
        if mid >= 1:
            layers += [*conv_bn(in_ch, mid), nn.ReLU()]
            in_ch = inner = mid
        layers += [*conv_bn(in_ch, inner, (1, 7), (1, stride)), nn.ReLU()]
        layers += conv_bn(inner, inner, (7, 1), (stride, 1))
        if mid >= 1:
            layers += [nn.ReLU(), *conv_bn(mid, out_ch)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Pool(nn.Module):
    """3x3 max/avg pool ('SAME'; avg excludes the padding, as TF does), then 1x1-BN if the width changes."""

    def __init__(self, kind: str, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if kind == "max":
            self.pool: nn.Module = nn.MaxPool2d(3, stride, 1)
        else:
            self.pool = nn.AvgPool2d(3, stride, 1, count_include_pad=False)
        # No ReLU before this projection in TF (unlike the 'none' op).
        self.proj = conv_bn(in_ch, out_ch) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x))


class FactorizedReduction(nn.Module):
    """TF ``factorized_reduction``: halve H, W without dropping pixels.

    Stride 2: path 1 = 1x1 conv on x[::2, ::2]; path 2 = 1x1 conv on the grid shifted by one pixel
    (zero-pad right/bottom, crop top/left); concat -> BN. An odd width gives path 2 the extra channel
    (newer TF-slim; needed by PNASNet-Mobile F=54 and AmoebaNet F=50, whose stems ask for 27 / 25 channels).
    Stride 1: 1x1 conv -> BN.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        if stride == 1:
            self.conv = conv_bn(in_ch, out_ch)
            return
        half = out_ch // 2
        self.path1 = nn.Conv2d(in_ch, half, 1, bias=False)
        self.path2 = nn.Conv2d(in_ch, out_ch - half, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.conv(x)
        p1 = self.path1(F.avg_pool2d(x, 1, 2))
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        p2 = self.path2(F.avg_pool2d(shifted, 1, 2))
        return self.bn(torch.cat([p1, p2], dim=1))


def make_op(name: str, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """One cell operation by its TF name; every op returns ``out_ch`` channels (or its input unchanged)."""
    if name.startswith("separable_"):  # separable_KxK_2
        return SepStack(in_ch, out_ch, int(name.split("_")[1].split("x")[0]), stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name[:3], in_ch, out_ch, stride)
    if name == "none":
        # Identity unless the shape must change: then a (strided) ReLU-1x1-BN.
        return relu_conv_bn(in_ch, out_ch, 1, stride) if stride > 1 or in_ch != out_ch else nn.Identity()
    if name == "1x7_7x1":
        return Conv1x7x7x1(in_ch, out_ch, stride)
    raise ValueError(f"unknown NAS cell op {name!r}")


class Cell(nn.Module):
    """One cell (TF ``NasNetABaseCell.__call__`` / tpu ``BaseCell.__call__``).

    ``prev_ch`` is None for the first stem cell (TF then uses the raw current input as state 1);
    ``prev_larger`` says the previous output has twice the spatial size (factorized reduction needed).
    """

    def __init__(
        self,
        genotype: Genotype,
        in_ch: int,
        prev_ch: int | None,
        prev_larger: bool,
        filters: int,
        stride: int,
    ) -> None:
        super().__init__()
        self.base = relu_conv_bn(in_ch, filters)
        self.prev_is_input = prev_ch is None
        # _reduce_prev_layer: match state 1 to this cell's shape.
        if prev_ch is None:
            self.prev: nn.Module = nn.Identity()
            h1_ch = in_ch
        elif prev_larger:
            self.prev = nn.Sequential(nn.ReLU(), FactorizedReduction(prev_ch, filters, 2))
            h1_ch = filters
        elif prev_ch != filters:
            self.prev = relu_conv_bn(prev_ch, filters)
            h1_ch = filters
        else:
            self.prev = nn.Identity()
            h1_ch = prev_ch

        channels = [filters, h1_ch]
        reduced = [False, False]
        self.inputs = genotype.inputs
        ops = []
        for block in range(5):
            for side in range(2):
                idx = genotype.inputs[2 * block + side]
                # Only the cell inputs (states 0 and 1) are strided; block outputs are already reduced.
                op_stride = stride if idx < 2 else 1
                ops.append(make_op(genotype.ops[2 * block + side], channels[idx], filters, op_stride))
            channels.append(filters)
            reduced.append(stride > 1)
        self.ops = nn.ModuleList(ops)

        # _combine_unused_states: unused states whose shape differs from the last block are factor-reduced.
        self.outputs = [i for i, u in enumerate(genotype.used) if not u]
        fixes = []
        for i in self.outputs:
            if reduced[i] != reduced[-1] or channels[i] != filters:
                fixes.append(FactorizedReduction(channels[i], filters, 2 if reduced[i] != reduced[-1] else 1))
            else:
                fixes.append(nn.Identity())
        self.fixes = nn.ModuleList(fixes)
        self.out_channels = filters * len(self.outputs)

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        h1 = x if self.prev_is_input or prev is None else self.prev(prev)
        states = [self.base(x), h1]
        for block in range(5):
            left, right = self.inputs[2 * block], self.inputs[2 * block + 1]
            states.append(self.ops[2 * block](states[left]) + self.ops[2 * block + 1](states[right]))
        return torch.cat([fix(states[i]) for i, fix in zip(self.outputs, self.fixes, strict=True)], dim=1)


def reduction_layers(num_cells: int, num_reduction_layers: int = 2) -> list[int]:
    """TF ``calc_reduction_layers``: indices (among the non-stem cells) where a reduction happens."""
    n = num_reduction_layers
    return [int(float(p) / (n + 1) * num_cells) for p in range(1, n + 1)]


class NasNetwork(nn.Module):
    """ImageNet skeleton of NASNet / PNASNet / AmoebaNet (TF ``_imagenet_stem`` + ``_build_*_base``).

    conv0 3x3/2 VALID -> BN; two reduction "stem cells" with F/4 and F/2 filters; then ``3 * cells_per_stage``
    cells with reductions (filters x2) at ``reduction_layers``. NASNet / AmoebaNet *insert* a reduction cell
    before the normal cell at those indices; PNASNet (``reduction_replaces_normal``) runs its single cell with
    stride 2 there instead. Each cell takes the previous two outputs. Head: ReLU -> GAP -> dropout -> FC.
    """

    def __init__(
        self,
        normal: Genotype,
        reduction: Genotype,
        filters: int,
        cells_per_stage: int,
        num_classes: int = 1000,
        stem_filters: int = 32,
        reduction_replaces_normal: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.stem = conv_bn_valid(3, stem_filters)
        plan: list[tuple[Genotype, float, int]] = []
        scaling = 0.25  # 1 / filter_scaling_rate ** num_stem_cells
        for _ in range(2):
            plan.append((reduction, scaling, 2))
            scaling *= 2
        total = 3 * cells_per_stage
        reductions = reduction_layers(total)
        scaling = 1.0
        for i in range(total):
            if i in reductions:
                scaling *= 2
                plan.append((reduction, scaling, 2))
                if reduction_replaces_normal:
                    continue
            plan.append((normal, scaling, 1))

        # (channels, number of stride-2 steps) of every output so far; None stands for "no previous cell".
        outs: list[tuple[int, int] | None] = [None, (stem_filters, 0)]
        cells = []
        for genotype, scale, stride in plan:
            (ch, level), prev = outs[-1], outs[-2]
            cell = Cell(
                genotype,
                ch,
                None if prev is None else prev[0],
                prev is not None and prev[1] != level,
                int(filters * scale),  # TF: int(num_conv_filters * filter_scaling)
                stride,
            )
            cells.append(cell)
            outs.append((cell.out_channels, level + (stride > 1)))
        self.cells = nn.ModuleList(cells)
        self.num_features = cells[-1].out_channels
        self.head = nn.Sequential(
            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(dropout),
            nn.Linear(self.num_features, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        prev: torch.Tensor | None = None
        for cell in self.cells:
            x, prev = cell(x, prev), x
        return self.head(x)


# The smallest input for which every one of the 1 + 2 + 2 stride-2 steps still halves a >1 feature map.
MIN_RESOLUTION = 32


def check_knobs(
    model: str, filters: int, num_cells: int, resolution: int, stem_multiplier: float = 1.0
) -> None:
    """Reject knob values the TF builders cannot take, with one clear message."""
    if not isinstance(stem_multiplier, (int, float)) or int(32 * stem_multiplier) < 1:
        raise UsageError(
            f"{model}: stem_multiplier must be >= 1/32 (the stem conv has int(32 * m) filters), "
            f"got {stem_multiplier!r}"
        )
    if not isinstance(filters, int) or filters < 8:
        raise UsageError(f"{model}: filters must be an integer >= 8 (stem cells use F/4), got {filters!r}")
    if not isinstance(num_cells, int) or num_cells < 1:
        raise UsageError(f"{model}: num_cells (cells per stage) must be an integer >= 1, got {num_cells!r}")
    if not isinstance(resolution, int) or resolution < MIN_RESOLUTION:
        raise UsageError(f"{model}: resolution must be an integer >= {MIN_RESOLUTION}, got {resolution!r}")
