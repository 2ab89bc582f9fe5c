"""The ``lncompile`` command line: build, run, profile, list, targets here; the other commands live beside
their subsystems (inspect, verify/package, tune, bench, rpc-*) and are registered at the bottom.

Errors are one line on stderr (``lncompile: error: ...``): exit status 2 for usage errors, 1 for failures.
``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from . import arm_cmds, bench_cmd, inspect_cmd, interrupts, remote_cmds
from .errors import LncompileError, UsageError
from .tune import cli as tune_cli

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(","))  # an empty part ("1,,3") is an error
    except ValueError:
        raise UsageError(f"bad shape {text!r}; write it like 1,3,224,224") from None
    if not shape or any(d < 1 for d in shape):
        raise UsageError(f"bad shape {text!r}; every dimension must be a positive integer")
    return shape


def _input_shapes(values: tuple[str, ...]) -> dict[str, tuple[int, ...]] | None:
    shapes = {}
    for value in values:
        name, sep, shape = value.rpartition("=")
        if not sep or not name:
            raise UsageError(f"bad --input-shape {value!r}; write NAME=1,3,224,224")
        shapes[name] = _parse_shape(shape)
    return shapes or None


def _knobs(width_mult: float | None, depth_mult: float | None, extra: tuple[str, ...]) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    if width_mult is not None:
        knobs["width_mult"] = width_mult
    if depth_mult is not None:
        knobs["depth_mult"] = depth_mult
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UsageError(f"bad --knob {item!r}; write NAME=VALUE")
        try:
            knobs[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            knobs[key.replace("-", "_")] = raw
    return knobs


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="lncompile")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """lncompile: compile lightweight neural networks (zoo names, PyTorch, ONNX) into fast shared libraries."""
    ctx.obj = {"debug": debug}


def model_options(fn: Any) -> Any:
    options = [
        click.option("--resolution", "-r", type=int, help="Input resolution (default: the model's paper value)."),
        click.option("--batch", "-b", type=int, default=1, show_default=True, help="Batch size."),
        click.option("--width-mult", type=float, help="Width multiplier (families that define one)."),
        click.option("--depth-mult", type=float, help="Depth multiplier (families that define one)."),
        click.option("--knob", "knob", multiple=True, metavar="NAME=VALUE", help="Any other model knob."),
        click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=SHAPE",
                     help="Static shape for an ONNX input with dynamic dims, e.g. input=1,3,224,224."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _import(model: str, resolution: int | None, batch: int, width_mult: float | None, depth_mult: float | None,
            knob: tuple[str, ...], input_shape: tuple[str, ...]) -> Any:
    from .frontend import import_model

    return import_model(model, resolution=resolution, batch=batch, input_shapes=_input_shapes(input_shape),
                        **_knobs(width_mult, depth_mult, knob))


@cli.command(context_settings=CONTEXT)
@click.argument("model")
@click.option("--target", "-t", default="x86", show_default=True, help="Target preset name or preset .json file.")
@click.option("--arch", help="GPU architecture for CUDA targets, e.g. sm_87.")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="Where to write <name>-<target>.so and .json.")
@click.option("--no-passes", is_flag=True, help="Skip lncompile's graph passes (BN folding, fusion...).")
@click.option("--tuning-log", type=click.Path(file_okay=False, path_type=Path),
              help="Apply this `lncompile tune` log directory (default: the target's shipped logs that fit).")
@click.option("--no-tuning-log", is_flag=True, help="Apply no tuning log, not even the shipped ones.")
@model_options
def build(model: str, target: str, arch: str | None, output_dir: Path, no_passes: bool, tuning_log: Path | None,
          no_tuning_log: bool, **model_opts: Any) -> None:
    """Compile MODEL (a zoo name or an .onnx file) into a shared library for TARGET."""
    from .backend.tools import require_preset_tools
    from .targets import get as get_target

    preset = get_target(target)
    require_preset_tools(preset)  # a missing compiler fails before the model and TVM are imported
    imported = _import(model, **model_opts)
    from .api import compile_imported

    compiled = compile_imported(imported, preset, arch=arch, passes=not no_passes,
                                tuning_log=False if no_tuning_log else tuning_log)
    from .tune.report import describe_tuning

    for line in describe_tuning(compiled.manifest.get("tuning")):
        click.echo(line, err=True)
    library = compiled.export(output_dir / f"{imported.name}-{preset.name}.so")
    size_mb = library.stat().st_size / 1e6
    click.echo(f"built {imported.name} for {preset.name} in {compiled.manifest['build_seconds']:.1f} s -> "
               f"{library} ({size_mb:.1f} MB), manifest {library.with_suffix('.json')}")


def _read_npy(path: Path) -> np.ndarray:
    """One array from a ``.npy`` file, never unpickling (untrusted input); anything else is a one-line error."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if magic != b"\x93NUMPY":
        raise UsageError(f"{path} is not a .npy file (save the input with numpy.save)")
    try:
        x = np.load(path, allow_pickle=False)  # never unpickle untrusted input
    except (OSError, ValueError, EOFError) as e:
        raise UsageError(f"cannot read {path} as a .npy array: {e}") from None
    return x


@cli.command(context_settings=CONTEXT)
@click.argument("library", type=click.Path(path_type=Path))
@click.option("--input", "-i", "input_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Input .npy file (default: random normal data of the model's input shape).")
@click.option("--output", "-o", "output_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the (first) output to this .npy file.")
def run(library: Path, input_path: Path | None, output_path: Path | None) -> None:
    """Run a compiled LIBRARY on an input and print the output shape and top-5 classes.

    An aarch64 library on an x86 machine runs emulated: the C++ runner under qemu-aarch64.
    """
    from .arm import load_any
    from .fileio import write_atomic
    from .frontend import example_input

    model = load_any(library)
    x = _read_npy(input_path) if input_path is not None else example_input(tuple(model.inputs[0]["shape"]))
    out = model(x)
    first = out[0] if isinstance(out, list) else out
    click.echo(f"output shape: {tuple(first.shape)}")
    flat = first.reshape(first.shape[0], -1)
    for row, scores in enumerate(flat):
        top = np.argsort(scores)[::-1][:5]
        click.echo(f"top-5 [{row}]: " + ", ".join(f"{i} ({scores[i]:.4f})" for i in top))
    if output_path is not None:
        write_atomic(output_path, lambda tmp: np.save(tmp, first))
        click.echo(f"wrote {output_path}")


@cli.command(context_settings=CONTEXT)
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help='Print {"params": int, "macs": int, "layers": [...]}.')
@click.option("--all-layers", is_flag=True, help="Show every op, not only those with parameters or MACs.")
@model_options
def profile(model: str, as_json: bool, all_layers: bool, **model_opts: Any) -> None:
    """Per-layer parameters and multiply-adds of MODEL (zoo name or .onnx), counted on the IR at batch 1."""
    from .analysis.profile import format_profile
    from .analysis.profile import profile as count

    result = count(_import(model, **model_opts).graph)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else format_profile(result, all_layers=all_layers))


@cli.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_models(as_json: bool) -> None:
    """List the model zoo: name, family, default resolution, knobs."""
    from . import graphs

    rows = []
    for name in graphs.names():
        s = graphs.spec(name)
        row = {"name": name, "family": s.family, "resolution": s.resolution, "knobs": list(s.knobs),
               "description": s.description}
        if s.published is not None:
            row["published"] = {"params": s.published.params, "macs": s.published.macs,
                                "source": s.published.source}
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    fam = max(len(r["family"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['family']:<{fam}}  {r['resolution']:>4}  {', '.join(r['knobs'])}")


@cli.command("targets", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_targets(as_json: bool) -> None:
    """List target presets (built in, and those in $LNCOMPILE_TARGETS)."""
    from .targets import presets

    rows = [p.to_json() for p in presets().values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['arch']:<8} {r['device']:<5} {r['layout']:<5} {r['description']}")


# ---- commands that live beside their subsystems ----
for _command in (arm_cmds.verify, arm_cmds.package, inspect_cmd.inspect_command, remote_cmds.rpc_tracker,
                 remote_cmds.rpc_server):
    cli.add_command(_command)
# tune and bench take the same model options as build (their factories avoid a circular import of this module).
for _make_command in (tune_cli.make_command, bench_cmd.make_command):
    cli.add_command(_make_command(CONTEXT, model_options, _import))


def _one_line(message: str) -> str:
    """Errors stay one line even when they quote names from untrusted files (newlines, escape codes)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)


def main(argv: list[str] | None = None) -> int:
    """The ``lncompile`` command; returns the exit status. Ctrl-C and SIGTERM stop it cleanly (see interrupts)."""
    with interrupts.handling():
        return _main(argv)


def _interrupted() -> int:
    signum = interrupts.received() or signal.SIGINT
    click.echo("lncompile: interrupted" if signum == signal.SIGINT else "lncompile: terminated", err=True)
    return 128 + signum


def _main(argv: list[str] | None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="lncompile", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        return _interrupted()
    except click.ClickException as e:  # usage errors from click itself: one line, exit 2
        click.echo(f"lncompile: error: {_one_line(e.format_message())}", err=True)
        return e.exit_code
    except LncompileError as e:
        if interrupts.received():  # e.g. TVM turned the KeyboardInterrupt into a RuntimeError -> BuildError
            return _interrupted()
        if debug:
            raise
        click.echo(f"lncompile: error: {_one_line(str(e))}", err=True)
        return e.exit_code
    except Exception:
        if interrupts.received():
            return _interrupted()
        raise
    if interrupts.received():  # swallowed downstream, after the last file was committed
        return _interrupted()
    return 0


if __name__ == "__main__":
    sys.exit(main())
