"""``lncompile inspect``: what the graph passes did to a model — op counts, per-pass statistics, a picture.

The picture is a graphviz drawing of the (optimized) IR, one box per op (constants folded into their users'
labels), with the nodes the passes introduced (fused convs, SE blocks, affines) filled in colour.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .errors import ToolchainError, UsageError

# Ops only the passes create; any other op absent before the passes is marked as well.
FUSED_OPS = frozenset({"fused_conv2d", "fused_linear", "squeeze_excite", "channel_affine", "winograd_conv2d"})
_FILL = {"fused_conv2d": "#9ecae1", "fused_linear": "#9ecae1", "squeeze_excite": "#fdae6b",
         "channel_affine": "#c7e9c0", "winograd_conv2d": "#bcbddc"}


def inspect_graph(graph: Any, preset: Any = None, passes: bool = True) -> dict[str, Any]:
    """``{"before": counts, "after": counts, "passes": [stats...], "graph": optimized graph}``."""
    from .passes.base import node_count
    from .passes.pipeline import optimize

    result = optimize(graph, preset) if passes else None
    after = result.graph if result is not None else graph
    return {
        "before": graph.op_counts(),
        "after": after.op_counts(),
        "nodes_before": node_count(graph),
        "nodes_after": node_count(after),
        "passes": [s.to_json() for s in result.stats] if result is not None else [],
        "graph": after,
    }


def _label(graph: Any, name: str) -> str:
    rec = graph.record(name)
    parts = [rec.op]
    attrs = rec.attrs
    if rec.op in ("fused_conv2d", "winograd_conv2d"):
        extra = [attrs["activation"]] if attrs["activation"] != "none" else []
        parts.append("+".join(["conv", *extra] + (["add"] if attrs["residual"] else [])))
        if rec.op == "winograd_conv2d":
            parts.append(f"F({attrs['tile']}x{attrs['tile']}, 3x3)")
    elif rec.op == "squeeze_excite":
        parts.append(f"{attrs['act']}/{attrs['gate']}")
    elif rec.op == "fused_linear":
        parts.append(f"linear+{attrs['activation']}")
    if rec.op in ("conv2d", "fused_conv2d"):
        w = graph.type_of(graph.args(name)[1])
        groups = f" g{attrs['groups']}" if attrs["groups"] > 1 else ""
        parts.append(f"{w.shape[2]}x{w.shape[3]}/{attrs['strides'][0]}{groups}")
    parts.append(str(rec.type))
    return "\\n".join(parts)


def to_dot(graph: Any, marked_ops: set[str]) -> Any:
    """A graphviz Digraph of ``graph`` (constants left out), nodes of ``marked_ops`` filled."""
    import graphviz

    dot = graphviz.Digraph(graph.graph.get("name", "model"), graph_attr={"rankdir": "TB"},
                           node_attr={"shape": "box", "fontsize": "10", "style": "rounded"})
    for name in graph.topo_order():
        rec = graph.record(name)
        if rec.op == "constant":
            continue
        style: dict[str, str] = {}
        if rec.op in marked_ops:
            style = {"style": "rounded,filled", "fillcolor": _FILL.get(rec.op, "#fcbba1")}
        elif rec.op == "input":
            style = {"shape": "oval"}
        dot.node(name, _label(graph, name) if rec.op != "input" else f"input\\n{rec.type}", **style)
        for value in graph.args(name):
            if graph.record(value.node).op != "constant":
                dot.edge(value.node, name)
    for i, value in enumerate(graph.outputs):
        dot.node(f"__output{i}", f"output{i}", shape="oval")
        dot.edge(value.node, f"__output{i}")
    return dot


def write_svg(dot: Any, path: Path) -> Path:
    """Render with graphviz's ``dot`` and write the SVG atomically."""
    import graphviz

    from .fileio import write_atomic

    try:
        svg = dot.pipe(format="svg")
    except graphviz.ExecutableNotFound:
        raise ToolchainError("graphviz's dot not found; install it with: apt-get install graphviz") from None
    try:
        return write_atomic(path, lambda tmp: tmp.write_bytes(svg))
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None


def _table(report: dict[str, Any]) -> list[str]:
    before, after = report["before"], report["after"]
    ops = sorted(set(before) | set(after))
    width = max([len(o) for o in ops] + [2])
    lines = [f"{'op':<{width}}  {'before':>6}  {'after':>6}"]
    lines += [f"{op:<{width}}  {before.get(op, 0):>6}  {after.get(op, 0):>6}" for op in ops]
    lines.append(f"{'total':<{width}}  {report['nodes_before']:>6}  {report['nodes_after']:>6}")
    if report["passes"]:
        pw = max(len(p["name"]) for p in report["passes"])
        lines += ["", f"{'pass':<{pw}}  matches  nodes"]
        for p in report["passes"]:
            lines.append(f"{p['name']:<{pw}}  {p['matches']:>7}  {p['nodes_before']} -> {p['nodes_after']}")
            lines += [f"{'':<{pw}}    refused {n}x: {reason}" for reason, n in sorted(p["refused"].items())]
    return lines


@click.command("inspect", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("model")
@click.option("--target", "-t", default="x86", show_default=True, help="Target preset (its pass rules apply).")
@click.option("--json", "as_json", is_flag=True, help='Print {"before": {op: n}, "after": {op: n}, "passes": [...]}.')
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a graphviz drawing of the optimized IR (fused nodes filled) to this .svg file.")
@click.option("--no-passes", is_flag=True, help="Show the imported IR as it is.")
@click.option("--resolution", "-r", type=int, help="Input resolution (default: the model's paper value).")
@click.option("--width-mult", type=float, help="Width multiplier (families that define one).")
@click.option("--depth-mult", type=float, help="Depth multiplier (families that define one).")
@click.option("--knob", "knob", multiple=True, metavar="NAME=VALUE", help="Any other model knob.")
@click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=SHAPE",
              help="Static shape for an ONNX input with dynamic dims, e.g. input=1,3,224,224.")
def inspect_command(model: str, target: str, as_json: bool, svg_path: Path | None, no_passes: bool,
                    resolution: int | None, width_mult: float | None, depth_mult: float | None, knob: tuple[str, ...],
                    input_shape: tuple[str, ...]) -> None:
    """Show what the graph passes do to MODEL (a zoo name or an .onnx file): op counts before/after, per-pass
    matches and refusals, and optionally a picture of the optimized IR."""
    from .cli import _import
    from .targets import get as get_target

    preset = get_target(target)
    imported = _import(model, resolution, 1, width_mult, depth_mult, knob, input_shape)
    report = inspect_graph(imported.graph, preset, passes=not no_passes)
    graph = report.pop("graph")
    if svg_path is not None:
        marked = set(FUSED_OPS) | (set(report["after"]) - set(report["before"]))
        write_svg(to_dot(graph, marked), svg_path)
    if as_json:
        click.echo(json.dumps({"model": imported.name, **report}, indent=2))
        return
    shape = "x".join(map(str, graph.record(graph.input_names[0]).type.shape)) if graph.input_names else "?"
    click.echo(f"{imported.name} ({shape}), target {preset.name}: {report['nodes_before']} ops -> "
               f"{report['nodes_after']} ops" + ("" if not no_passes else " (passes off)"))
    for line in _table(report):
        click.echo(line)
    if svg_path is not None:
        click.echo(f"wrote {svg_path}")
