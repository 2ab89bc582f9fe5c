"""The zoo's registry: model name -> factory, family, default resolution, knobs and published figures.

Family modules register their constructors with :func:`register`; every module of this package is imported
on first use, so adding a family is adding a file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lncompile.errors import UnknownModelError, UsageError

# Modules of this package that hold no models.
_NOT_FAMILIES = {"registry", "blocks", "__init__"}
# Every zoo model is built under this seed so the same name always gives the same weights.
ZOO_SEED = 0


@dataclass(frozen=True)
class Published:
    """A figure published for one configuration, with where it was read (paper table, official release)."""

    params: float | None  # parameter count (absolute, e.g. 3.4e6)
    macs: float | None  # multiply-adds at batch 1 (absolute, e.g. 300e6)
    source: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    factory: Callable[..., nn.Module]
    resolution: int  # the paper's input resolution
    knobs: tuple[str, ...]  # keyword arguments the factory accepts besides resolution/num_classes
    published: Published | None = None
    description: str = ""
    # Extra keyword arguments bound for this name (e.g. efficientnet_b3 = efficientnet(width=1.2, depth=1.4)).
    preset: dict = field(default_factory=dict)

    def input_shape(self, resolution: int | None = None, batch: int = 1) -> tuple[int, int, int, int]:
        r = resolution or self.resolution
        return (batch, 3, r, r)


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(
    name: str,
    *,
    family: str,
    resolution: int,
    published: Published | None = None,
    description: str = "",
    **preset,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``factory`` under ``name``.

    The factory must accept ``resolution`` and ``num_classes`` keyword arguments; its other keyword
    arguments (minus those bound in ``preset``) are the model's knobs (``width_mult``, ``depth_mult``...).
    Stack several ``@register`` lines on one factory to register variants that differ by preset values.
    """

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        params = inspect.signature(factory).parameters
        for required in ("resolution", "num_classes"):
            if required not in params:
                raise TypeError(f"zoo factory {factory.__name__} must accept {required}=")
        knobs = tuple(p for p in params if p not in ("resolution", "num_classes") and p not in preset)
        _REGISTRY[name] = ModelSpec(
            name=name,
            family=family,
            factory=factory,
            resolution=resolution,
            knobs=knobs,
            published=published,
            description=description or _first_line(factory.__doc__),
            preset=dict(preset),
        )
        return factory

    return deco


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_FAMILIES and not module.name.startswith("_"):
            importlib.import_module(f"{__package__}.{module.name}")
    _loaded = True


def names() -> list[str]:
    """All zoo model names, sorted."""
    _load_families()
    return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}"
        ) from None


def create(name: str, *, resolution: int | None = None, num_classes: int = 1000, **knobs) -> nn.Module:
    """Build zoo model ``name`` in eval mode with weights drawn from a fixed seed.

    ``knobs`` are the family's scaling knobs (``width_mult=0.5``...); an unknown knob is a usage error.
    """
    s = spec(name)
    unknown = sorted(set(knobs) - set(s.knobs))
    if unknown:
        accepted = ", ".join(s.knobs) or "none"
        raise UsageError(f"model {name!r} has no knob {', '.join(unknown)}; its knobs: {accepted}")
    knobs = {k: v for k, v in knobs.items() if v is not None}
    resolution = s.resolution if resolution is None else resolution
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ZOO_SEED)
        model = s.factory(resolution=resolution, num_classes=num_classes, **s.preset, **knobs)
        _init_weights(model)
        _calibrate_batch_norm(model, s.input_shape(resolution, batch=_calibration_batch(resolution)))
    return model.eval()


def _calibration_batch(resolution: int) -> int:
    """Enough images that each BN sees about as many samples as 4 images at 224 give (at most 32)."""
    return max(4, min(32, round(4 * (224 / resolution) ** 2)))


def _init_weights(model: nn.Module) -> None:
    """Variance-preserving init (He fan-out for convs), so activations neither vanish nor explode.

    PyTorch's default init shrinks activations layer by layer: after 50 layers a MobileNetV2's output is
    its classifier bias, whatever the input, and a numeric comparison would prove nothing.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.01)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=1.0 / m.in_features**0.5)
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.01)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)) and m.weight is not None:
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, std=0.1)


@torch.no_grad()
def _calibrate_batch_norm(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Give every BatchNorm the statistics of its real input (one eval-mode pass on random data).

    Each BN takes the mean and variance of the input it sees, in forward order, so every layer downstream is
    calibrated on already-normalized activations: trained networks look like this, outputs stay well scaled
    (float32 round-off does not swamp comparisons) and BN folding is exercised with real statistics.
    Train-mode calibration is not enough: layer by layer the eval-mode inputs drift from the batch
    statistics, and in deep nets (TinyNet, SENet-154) activations then grow to 1e3 and beyond.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return

    def take_input_statistics(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        dims = [0, *range(2, x.dim())]
        module.running_mean.copy_(x.mean(dims))
        var = x.var(dims, unbiased=False)
        # A channel that is (nearly) constant on the calibration data (e.g. dead after ReLU) would divide by
        # ~eps and amplify float round-off 300x; trained BNs do not, so floor it at 1% of the layer's mean.
        module.running_var.copy_(var.clamp_min(0.01 * float(var.mean()) + 1e-8))

    handles = [m.register_forward_pre_hook(take_input_statistics) for m in norms]
    try:
        model.eval()
        model(torch.randn(*input_shape))
    finally:
        for handle in handles:
            handle.remove()
