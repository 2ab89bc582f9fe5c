"""Fuzzing the ONNX frontend: hundreds of corrupt or malformed files, each must give one clean line or a library.

Mutants of a tiny torch conv net (opset 13) come from ``_onnx_mutants`` (seeded). Every mutant goes through
``lncompile profile`` in-process (the import path: parse, validate, translate to IR). Then ``lncompile build`` runs
on every mutant whose import failed (it must fail the same way, before writing anything) and on a sample of the
mutants that imported (TVM compiles them; capped by ``MAX_BUILDS`` to keep the test CI-sized); a few of the built
libraries are loaded and run, and compared with ONNX Runtime where ONNX Runtime accepts the mutant too.

Rules checked for every call: it returns within ``TIME_LIMIT_S`` (SIGALRM; a hang fails the test); exit 0 with
no error on stderr, or a non-zero exit with exactly one stderr line starting ``lncompile: error:`` and no Python
exception escaping (warnings count as stderr lines there); the output folder holds either nothing or a complete
``.so`` + ``.json`` pair, never a temporary file.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lncompile.cli import main
from tests.reliability._onnx_mutants import KINDS, mutants, tiny_conv_onnx

# Longer runs: LNCOMPILE_FUZZ_MUTANTS=5000 LNCOMPILE_FUZZ_SEED=7 python -m pytest tests/reliability/test_onnx_fuzz.py
N_MUTANTS = int(os.environ.get("LNCOMPILE_FUZZ_MUTANTS", 13 * len(KINDS)))  # 13 of each of the 21 kinds
SEED = int(os.environ.get("LNCOMPILE_FUZZ_SEED", 20240601))
MAX_BUILDS = 12  # mutants that import fine and are compiled by TVM (~5 s each on a slow CI machine)
RUN_CHECKS = 6  # built libraries that are loaded and run
TIME_LIMIT_S = 20


class Hang(BaseException):
    """Raised by SIGALRM when one CLI call runs past its time limit (a BaseException: nothing may catch it)."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def call_cli(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    """Run ``lncompile ARGV`` in-process; returns (exit status, stderr lines incl. warnings, stdout).

    An exception escaping ``main`` (a traceback for the user) fails the calling test with the mutant named.
    """
    capfd.readouterr()
    with time_limit(TIME_LIMIT_S), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capfd.readouterr()
    lines = err.splitlines() + [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    return code, lines, out


def assert_clean(code: int, lines: list[str], what: str) -> None:
    if code == 0:  # warnings may accompany a success (a shipped tuning log that does not apply, say)
        assert not any("Traceback" in line or line.startswith("lncompile: error") for line in lines), lines
        return
    assert code in (1, 2), f"{what}: exit status {code}"
    assert len(lines) == 1 and lines[0].startswith("lncompile: error: "), f"{what}: stderr {lines}"
    assert "Traceback" not in lines[0]


def assert_no_partial_files(folder: Path, code: int, what: str) -> None:
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    if code != 0:
        assert names == [], f"{what}: failed build left {names}"
        return
    assert len(names) == 2 and {Path(n).suffix for n in names} == {".so", ".json"}, f"{what}: left {names}"
    assert Path(names[0]).stem == Path(names[1]).stem


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str, Path]]]:
    folder = tmp_path_factory.mktemp("mutants")
    (folder / "weights.bin").write_bytes(bytes(4096))  # external data that may legitimately be read
    os.symlink("/etc/passwd", folder / "escape_link.bin")  # a link next to the model that leads outside
    base = tiny_conv_onnx(folder / "base.onnx").read_bytes()
    items = []
    for i, (kind, detail, data) in enumerate(mutants(base, N_MUTANTS, seed=SEED)):
        path = folder / f"m{i:03d}.onnx"
        path.write_bytes(data)
        items.append((kind, detail, path))
    return folder, items


@pytest.fixture(scope="module")
def import_outcomes() -> dict[Path, int]:
    return {}


def _report(title: str, counts: collections.Counter[tuple[str, str]]) -> None:
    outcomes = sorted({o for _, o in counts})
    print(f"\n{title}\n{'kind':<20}" + "".join(f"{o:>14}" for o in outcomes))
    for kind in KINDS:
        if any(counts[(kind, o)] for o in outcomes):
            print(f"{kind:<20}" + "".join(f"{counts[(kind, o)]:>14}" for o in outcomes))
    print(f"{'total':<20}" + "".join(f"{sum(v for (_, o2), v in counts.items() if o2 == o):>14}" for o in outcomes))


def test_base_model_is_valid(corpus: tuple[Path, list], capfd: pytest.CaptureFixture[str]) -> None:
    """The unmutated model imports (otherwise every mutant would fail for the wrong reason)."""
    folder, _ = corpus
    code, lines, out = call_cli(["profile", str(folder / "base.onnx")], capfd)
    assert code == 0 and not lines and "conv2d" in out


def test_every_mutant_imports_or_fails_in_one_line(corpus: tuple[Path, list], import_outcomes: dict[Path, int],
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    _, items = corpus
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    messages: collections.Counter[str] = collections.Counter()
    for kind, detail, path in items:
        what = f"{path.name} ({kind}: {detail})"
        try:
            code, lines, _ = call_cli(["profile", str(path)], capfd)
        except Hang:
            pytest.fail(f"{what}: lncompile profile hung (> {TIME_LIMIT_S} s)")
        except Exception as e:
            pytest.fail(f"{what}: {type(e).__name__} escaped as a traceback: {e}")
        assert_clean(code, lines, what)
        import_outcomes[path] = code
        counts[(kind, "imported" if code == 0 else f"exit {code}")] += 1
        if code:
            messages[" ".join(lines[0].split()[2:6])] += 1
    _report(f"lncompile profile on {len(items)} mutants (outcome by mutation kind):", counts)
    print("most common error starts:", messages.most_common(8))
    assert sum(counts.values()) == N_MUTANTS
    assert sum(v for (_, o), v in counts.items() if o == "imported") >= 10, "too few mutants survive import"


def _ort_outputs(path: Path, xs: list[np.ndarray]) -> list[np.ndarray] | None:
    """ONNX Runtime's answer for the mutant (inputs in graph order), or None where ONNX Runtime rejects it."""
    ort = pytest.importorskip("onnxruntime")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), xs, strict=True)})
    except Exception:
        return None


@pytest.mark.slow
def test_build_fails_cleanly_or_gives_a_working_library(corpus: tuple[Path, list], import_outcomes: dict[Path, int],
                                                        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from lncompile.runtime import load

    _, items = corpus
    if len(import_outcomes) != len(items):
        pytest.skip("needs test_every_mutant_imports_or_fails_in_one_line to have run first")
    rng = np.random.default_rng(0)
    imported = [item for item in items if import_outcomes[item[2]] == 0]
    sampled = {item[2] for item in rng.permutation(np.array(imported, dtype=object))[:MAX_BUILDS]}
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    ran = compared = 0
    for kind, detail, path in items:
        if import_outcomes[path] == 0 and path not in sampled:
            counts[(kind, "not built")] += 1
            continue
        out_dir = tmp_path / path.stem
        what = f"{path.name} ({kind}: {detail})"
        try:
            code, lines, _ = call_cli(["build", str(path), "-o", str(out_dir)], capfd)
        except Hang:
            pytest.fail(f"{what}: lncompile build hung (> {TIME_LIMIT_S} s)")
        except Exception as e:
            pytest.fail(f"{what}: {type(e).__name__} escaped as a traceback: {e}")
        assert_clean(code, lines, what)
        assert_no_partial_files(out_dir, code, what)
        if import_outcomes[path] != 0:
            assert code == import_outcomes[path], f"{what}: profile exited {import_outcomes[path]}, build {code}"
            counts[(kind, "refused")] += 1
            continue
        counts[(kind, "built" if code == 0 else f"build exit {code}")] += 1
        if code == 0 and ran < RUN_CHECKS:
            model = load(next(out_dir.glob("*.so")))
            gen = np.random.default_rng(1)
            xs = [gen.standard_normal(spec["shape"]).astype(np.float32) for spec in model.inputs]
            got = model(*xs)
            got = got if isinstance(got, list) else [got]
            assert [list(g.shape) for g in got] == [o["shape"] for o in model.outputs], what
            ran += 1
            expected = _ort_outputs(path, xs)
            if expected is not None:  # a mutant may compute inf or NaN (Gemm beta=nan, say): so must we
                for g, e in zip(got, expected, strict=True):
                    scale = max(1.0, float(np.abs(e[np.isfinite(e)]).max(initial=0.0)))
                    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * scale, err_msg=what)
                compared += 1
    _report("lncompile build (import failures: all; imported mutants: a sample):", counts)
    print(f"built libraries run: {ran}, of which compared with ONNX Runtime: {compared}")
    assert ran >= 1


# ---- the bugs the fuzzer found, one regression case each (before the fixes: a Python traceback) ---------------

def _edit(model: Path, out: Path, edit: object) -> Path:
    import onnx

    proto = onnx.load(str(model))
    edit(proto)  # type: ignore[operator]
    out.write_bytes(proto.SerializeToString())
    return out


def _node_named(proto: object, op_type: str) -> object:
    return next(n for n in proto.graph.node if n.op_type == op_type)  # type: ignore[attr-defined]


def _set_attr(op_type: str, name: str, value: object) -> object:
    from onnx import helper

    def edit(proto: object) -> None:
        node = _node_named(proto, op_type)
        keep = [a for a in node.attribute if a.name != name]  # type: ignore[attr-defined]
        del node.attribute[:]  # type: ignore[attr-defined]
        node.attribute.extend([*keep, helper.make_attribute(name, value)])  # type: ignore[attr-defined]

    return edit


def _init(proto: object, index: int = 0) -> object:
    return proto.graph.initializer[index]  # type: ignore[attr-defined]


REGRESSIONS = {
    "attribute of the wrong type (Conv.dilations FLOAT)": (_set_attr("Conv", "dilations", 1.5), "wants INTS"),
    "window attribute of the wrong length": (_set_attr("Conv", "strides", [1, 1, 1]), "strides=[1, 1, 1]"),
    "kernel_shape unlike the weight": (_set_attr("Conv", "kernel_shape", [2, 5]), "kernel_shape [2, 5]"),
    "Gemm alpha as a list": (_set_attr("Gemm", "alpha", [1.0, 2.0]), "wants FLOAT"),
    "MaxPool pads of length 2": (_set_attr("MaxPool", "pads", [1, 1]), "pads=[1, 1]"),
    "ReduceMean axis out of range": (_set_attr("ReduceMean", "axes", [7]), "axis 7 out of range"),
    "initializer with a negative dim (numpy infers -1)": (lambda p: _init(p).dims.__setitem__(0, -1),
                                                          "invalid dims"),
    "initializer whose data does not fit its dims": (lambda p: _init(p).dims.__setitem__(0, 2**31), "invalid dims"),
    "initializer of an unknown dtype": (lambda p: setattr(_init(p), "data_type", 123), "unknown element type 123"),
    "initializer re-typed to BFLOAT16": (lambda p: setattr(_init(p), "data_type", 16), "is corrupt"),
    "graph input of an unknown dtype": (lambda p: setattr(p.graph.input[0].type.tensor_type, "elem_type", 123),
                                        "unknown element type 123"),
    "graph input of 2**40 elements": (lambda p: setattr(p.graph.input[0].type.tensor_type.shape.dim[2], "dim_value",
                                                        2**40), "more than 2**31-1 elements"),
    "ai.onnx opset 0": (lambda p: setattr(p.opset_import[0], "version", 0), "opset 0"),
    "node with a missing required input": (lambda p: _node_named(p, "MaxPool").ClearField("input"),
                                           "has 0 inputs"),
    "two nodes writing one tensor": (lambda p: _node_named(p, "Sigmoid").output.__setitem__(
        0, _node_named(p, "Relu").output[0]), "already defined"),
    "a name that is not UTF-8": (None, "not valid UTF-8"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_fuzzer_findings_fail_in_one_line(case: str, corpus: tuple[Path, list], tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    folder, _ = corpus
    edit, needle = REGRESSIONS[case]
    if edit is None:  # a flipped byte inside a node name: protobuf hands Python bytes, not str
        data = (folder / "base.onnx").read_bytes()
        at = data.index(b"/conv/Conv") + 1
        path = tmp_path / "bad.onnx"
        path.write_bytes(data[:at] + b"\xff" + data[at + 1:])
    else:
        path = _edit(folder / "base.onnx", tmp_path / "bad.onnx", edit)
    code, lines, _ = call_cli(["profile", str(path)], capfd)
    assert code in (1, 2) and len(lines) == 1 and lines[0].startswith("lncompile: error: "), lines
    assert needle in lines[0], lines[0]
