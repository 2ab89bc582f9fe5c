"""Small matching helpers the folding and fusion passes share (not a pass: no ``PASS`` here)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TypeVar

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.ops import FUSED_ACTIVATIONS, prefixed_activation_params
from .base import PassStats

T = TypeVar("T")

# Activation ops a fused node can absorb (prelu also takes its slope as an input).
ACTIVATIONS = frozenset(FUSED_ACTIVATIONS) - {"none"}
# What ``activation_of`` finds: (activation name, ``act_*`` attributes, prelu slope).
Activation = tuple[str, dict[str, object], Value | None]


def matches(
    graph: Graph, g: Graph, ops: Collection[str], match: Callable[[Graph, str], T | str | None], stats: PassStats
) -> Iterator[tuple[str, T]]:
    """Yield ``(name, found)`` for the nodes of ``graph``, in topological order, where ``match`` finds its pattern.

    ``graph`` is the pass's input, ``g`` the copy it rewrites. A node is tried when it is still in ``g`` with an
    op in ``ops``: ``found = match(g, name)`` is yielded unless it is None (no pattern here: skipped) or a str, a
    refusal reason that is recorded with ``stats.refuse(found)`` and skipped (so a yielded match is never a str).
    Lazy: the next node is tried only after the caller has rewritten this one, so each match sees earlier rewrites.
    """
    for name in graph.topo_order():
        if name not in g or g.record(name).op not in ops:
            continue
        found = match(g, name)
        if isinstance(found, str):
            stats.refuse(found)
        elif found is not None:
            yield name, found


def only_user(graph: Graph, value: Value) -> tuple[str, int] | None:
    """The single (consumer, arg position) reading ``value``, or None if it has several, none, or is an output."""
    if graph.is_output(value):
        return None
    uses = graph.users(value)
    return uses[0] if len(uses) == 1 else None


def exclusive_reason(graph: Graph, value: Value, what: str) -> str | None:
    """Why ``value`` cannot be absorbed into a fused node (it is read elsewhere), or None if it can."""
    if graph.is_output(value):
        return f"{what} is a graph output"
    if len(graph.users(value)) > 1:
        return f"{what} has another consumer"
    return None


def weight_and_bias(g: Graph, conv: str) -> tuple[Value, Value]:
    """(weight, bias) of a conv node; for a conv without a bias, a zero bias constant added to ``g``."""
    args = g.args(conv)
    if len(args) > 2:
        return args[1], args[2]
    rec = g.record(conv)
    return args[1], g.add_constant(np.zeros(rec.type.shape[1], rec.type.dtype), f"{conv}_bias")


def constants(graph: Graph, values: Iterable[Value]) -> list[np.ndarray] | None:
    """The arrays behind ``values`` if every one is a ``constant``, else None."""
    arrays = [graph.constant(v) for v in values]
    return None if any(a is None for a in arrays) else arrays  # type: ignore[return-value]


def activation_of(graph: Graph, rec: Node) -> Activation | None:
    """(activation name, ``act_*`` attributes, prelu slope) if ``rec`` is an activation a fused node can take."""
    if rec.op not in ACTIVATIONS:
        return None
    slope = graph.args(rec.name)[1] if rec.op == "prelu" else None
    params = {} if rec.op in ("prelu",) else prefixed_activation_params(rec.attrs)
    return rec.op, params, slope


def conv_activation(rec: Node) -> tuple[str, dict[str, object]]:
    """(activation, its ``act_*`` attributes) of a ``conv2d`` (none) or ``fused_conv2d`` node."""
    if rec.op == "conv2d":
        return "none", {}
    return rec.attrs["activation"], {k: v for k, v in rec.attrs.items() if k.startswith("act_")}


def _unread(graph: Graph, name: str) -> bool:
    """Whether node ``name`` may be removed: nothing reads it, and it is no graph input or output."""
    return not graph.out_degree(name) and not graph.is_output(name) and name not in graph.input_names


def prune(graph: Graph, candidates: Iterable[str], *, cascade: bool = True) -> None:
    """Remove ``candidates`` that nothing reads any more, then the producers only they read (constants...).

    A candidate still read, already gone, or a graph input or output is skipped, so a pass may name every node
    its rewrite might have left dead. ``cascade=False`` removes the candidates only, never their producers.
    """
    todo = list(candidates)
    while todo:
        name = todo.pop()
        if name not in graph or not _unread(graph, name):
            continue
        if cascade:
            todo.extend(v.node for v in graph.args(name))
        graph.remove_node(name)


def remove(graph: Graph, *names: str) -> None:
    """Remove nodes a rewrite replaced (their uses must already point elsewhere), in the order given.

    Unlike ``prune``: a name still in use is a bug in the pass (AssertionError), not skipped, and the producers
    of the removed nodes stay (a later dead-code pass drops those left unread).
    """
    for name in names:
        if not _unread(graph, name):
            raise AssertionError(f"removing %{name}, which is still in use")
        prune(graph, [name], cascade=False)
