"""Clean-up: fold an explicit zero ``pad`` on H/W into the padding of the conv or average pool reading it.

``conv2d(pad(x, (t, l, b, r), 0), padding=p) == conv2d(x, padding=p + (t, l, b, r))``: a convolution's own
padding *is* zero padding, so the two agree element for element.

``avg_pool2d`` divides by a count: the explicitly padded zeros are real elements of its input and always
counted. Folding is exact only when the folded padding is counted too: ``count_include_pad=True`` (the window
count is then taken over the same padded extent), or a pool with no padding of its own and no ``ceil_mode``
(every window then lies inside the explicitly padded input, so the count is always kh*kw; we set
``count_include_pad=True``). ``max_pool2d`` pads with -inf, so a zero pad never folds into it.

Refused: a nonzero pad value, padding on N or C, negative pads (crops), and consumers other than these.
"""

from __future__ import annotations

from ..ir import Graph, Value
from ._match import matches, remove
from .base import PassStats, graph_pass

PRIORITY = 12


def _pad_reason(graph: Graph, name: str) -> str | None:
    rec = graph.record(name)
    if rec.type.rank != 4:
        return "pad is not on a 4-d NCHW tensor"
    if float(rec.attrs.get("value", 0.0)) != 0.0:
        return "pad value is not zero"
    pads = rec.attrs["pads"]
    if any(p != 0 for p in (*pads[0], *pads[1])):
        return "pad touches N or C"
    if any(p < 0 for p in (*pads[2], *pads[3])):
        return "negative pad (a crop)"
    return None


def _consumer_reason(graph: Graph, consumer: str, arg: int) -> str | None:
    rec = graph.record(consumer)
    if arg != 0 or rec.op not in ("conv2d", "avg_pool2d"):
        return f"padded tensor feeds {rec.op}, which cannot absorb a zero pad"
    at = rec.attrs
    if rec.op == "avg_pool2d" and not at.get("count_include_pad", True) and (any(at["padding"]) or at.get("ceil_mode")):
        return "avg_pool2d with count_include_pad=False and its own padding or ceil_mode: not exact"
    return None


def _match(graph: Graph, name: str) -> list[tuple[str, int]] | str | None:
    """The (consumer, arg) pairs reading pad ``name`` when every one can absorb it; a reason; None if unread."""
    reason = _pad_reason(graph, name)
    uses = graph.users(Value(name))
    if reason is None:
        reasons = [_consumer_reason(graph, c, a) for c, a in uses]
        reason = next((r for r in reasons if r is not None), None)
    if reason is None and graph.is_output(name):
        reason = "padded tensor is a graph output"
    if reason is not None:
        return reason
    return uses or None


@graph_pass("fold_pad")
def fold_pad(graph: Graph, stats: PassStats, rules: dict[str, str]) -> Graph:
    """Move zero H/W pads into the padding attribute of every conv2d / avg_pool2d that reads them."""
    g = graph.copy()
    for name, uses in matches(graph, g, ("pad",), _match, stats):
        (top, bottom), (left, right) = g.record(name).attrs["pads"][2:]
        (source,) = g.args(name)
        for consumer, _ in uses:
            rec = g.record(consumer)
            t, lft, b, r = rec.attrs["padding"]
            changes: dict[str, object] = {"padding": (t + top, lft + left, b + bottom, r + right)}
            if rec.op == "avg_pool2d":
                changes["count_include_pad"] = True
            g.replace_record(consumer, rec.with_(attrs=rec.attrs.updated(**changes)))
            g.set_args(consumer, [source, *g.args(consumer)[1:]])
        remove(g, name)
        stats.matches += 1
    return g


PASS = fold_pad
