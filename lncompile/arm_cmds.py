"""CLI commands for checking and shipping libraries: `lncompile verify`, `lncompile package`.

Both work for this machine's libraries and for aarch64 ones (run with the C++ runner under qemu).
"""

from __future__ import annotations

from pathlib import Path

import click

from .errors import LncompileError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class VerificationFailed(LncompileError):
    """A library's outputs differ from its reference model's by more than the tolerance."""


@click.command("verify", context_settings=CONTEXT)
@click.argument("library", type=click.Path(path_type=Path))
@click.option("--rtol", type=float, default=1e-4, show_default=True,
              help="Largest accepted max|out - ref| / max|ref|, per output.")
def verify(library: Path, rtol: float) -> None:
    """Compare LIBRARY with the model it was built from (zoo model in PyTorch, or ONNX Runtime) on a random input.

    Prints the max relative error and PASS or FAIL; exits non-zero on FAIL.
    """
    from .arm import load_any
    from .reference import describe, reference_outputs, relative_error, verification_inputs

    model = load_any(library)
    inputs = verification_inputs(model.manifest)
    expected = reference_outputs(model.manifest, inputs)
    actual = model(*inputs)
    actual = actual if isinstance(actual, list) else [actual]
    if len(actual) != len(expected):
        raise VerificationFailed(f"{library.name} returns {len(actual)} outputs, the reference {len(expected)}")
    errors = [relative_error(a, e) for a, e in zip(actual, expected, strict=True)]
    worst = max(errors)
    verdict = "PASS" if worst <= rtol else "FAIL"
    how = " (emulated with qemu)" if type(model).__name__ == "RunnerModel" else ""
    click.echo(f"{library.name}{how} vs {describe(model.manifest.get('source') or {})}: "
               f"max rel error {worst:.3g} (rtol {rtol:g}): {verdict}")
    if verdict == "FAIL":
        raise VerificationFailed(f"{library.name} differs from its reference: max relative error {worst:.3g} > "
                                 f"rtol {rtol:g}")


@click.command("package", context_settings=CONTEXT)
@click.argument("library", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="A .tar.gz/.tgz archive to write, or a directory.")
def package(library: Path, output: Path) -> None:
    """Bundle LIBRARY, its manifest, TVM's C++ runtime and the runner for copying to a board."""
    from .bundle import package as make_package

    written = make_package(library, output)
    click.echo(f"packaged {library.name} -> {written} (run ./run.sh input.npy output.npy on the board)")
