"""IR records: tensor types, attributes and op nodes. All frozen: passes build new records, never mutate."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class TensorType:
    """Static shape and dtype of one tensor (numpy dtype name: 'float32', 'int64'...)."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        short = {"float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32", "bool": "bool"}
        return f"{short.get(self.dtype, self.dtype)}[{','.join(map(str, self.shape))}]"


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class Attrs(Mapping[str, Any]):
    """An immutable, hashable attribute mapping; list values are stored as tuples."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        merged = {**(items or {}), **kwargs}
        self._items = tuple(sorted((k, _freeze(v)) for k, v in merged.items()))

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attrs) and self._items == other._items

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}={v!r}" for k, v in self._items) + "}"

    def updated(self, **changes: Any) -> Attrs:
        return Attrs({**dict(self._items), **changes})


@dataclass(frozen=True, eq=False)
class Node:
    """One op of the IR.

    ``op`` names a schema in :mod:`lncompile.ir.ops`; ``outputs`` are the types it produces (most ops have
    one); ``value`` holds the array of a ``constant`` (read-only); ``source`` says where the op came from
    (a torch module path or an ONNX node name) so errors can point at the user's model.
    """

    name: str
    op: str
    attrs: Attrs = field(default_factory=Attrs)
    outputs: tuple[TensorType, ...] = ()
    value: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.attrs, Attrs):
            object.__setattr__(self, "attrs", Attrs(self.attrs))
        if self.value is not None and self.value.flags.writeable:
            frozen = np.array(self.value, copy=True)
            frozen.flags.writeable = False
            object.__setattr__(self, "value", frozen)

    @property
    def type(self) -> TensorType:
        """The type of the single output (most ops)."""
        return self.outputs[0]

    def with_(self, **changes: Any) -> Node:
        return replace(self, **changes)


class Value(NamedTuple):
    """A tensor in the graph: output ``index`` of node ``node``."""

    node: str
    index: int = 0

    def __str__(self) -> str:
        return f"%{self.node}" if self.index == 0 else f"%{self.node}.{self.index}"
