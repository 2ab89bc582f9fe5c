"""Source audit: the code base never deserializes untrusted data unsafely, never runs a shell, never extracts an
archive outside its folder, and network services default to the loopback interface.

The rules are checked on the syntax tree of every Python file under lncompile/, graphs/, targets/ and bench/
(:func:`violations`); a first test feeds the checker a snippet breaking each rule, so the audit itself is known to
fire. What the rules cannot see is by design and not checked here: loading a .so runs its code (README, Security),
and a target preset's ``cross_compiler`` names a program that the build runs (presets are configuration, like a
Makefile: use only presets you trust).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AUDITED = ("lncompile", "graphs", "targets", "bench")
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
LOOPBACK = "127.0.0.1"


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value == value


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return "?"


class _Auditor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def flag(self, node: ast.AST, why: str) -> None:
        self.found.append((getattr(node, "lineno", 0), why))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in UNSAFE_MODULES:
                self.flag(node, f"imports {alias.name} (unpickling runs code)")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if (node.module or "").split(".")[0] in UNSAFE_MODULES:
            self.flag(node, f"imports from {node.module} (unpickling runs code)")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if name in ("np.load", "numpy.load") and not _is_const(_kw(node, "allow_pickle"), False):
            self.flag(node, f"{name} without allow_pickle=False")
        if name == "torch.load" and not _is_const(_kw(node, "weights_only"), True):
            self.flag(node, "torch.load without weights_only=True")
        if name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load"):
            self.flag(node, f"{name} (use yaml.safe_load)")
        if name == "onnx.load" and not _is_const(_kw(node, "load_external_data"), False):
            self.flag(node, "onnx.load reads external data unchecked (pass load_external_data=False)")
        if last in ("extractall", "extract") and not _is_const(_kw(node, "filter"), "data"):
            self.flag(node, f"{name} without filter='data' (archive members may escape the folder)")
        if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
            self.flag(node, f"{name} runs a shell")
        if _is_const(_kw(node, "shell"), True):
            self.flag(node, f"{name}(shell=True) runs a shell")
        if name in ("eval", "exec"):
            self.flag(node, f"{name}() of a string")
        if last == "bind" and node.args and isinstance(node.args[0], ast.Tuple) and node.args[0].elts:
            host = node.args[0].elts[0]
            if isinstance(host, ast.Constant) and host.value in ("", "0.0.0.0", "::"):
                self.flag(node, f"bind({host.value!r}, ...) listens on every interface")
        if last == "option" and node.args and _is_const(node.args[0], "--host"):
            default = _kw(node, "default")
            if not _is_const(default, LOOPBACK):
                self.flag(node, f"--host defaults to {ast.unparse(default) if default else None}, not {LOOPBACK}")
        self.generic_visit(node)

    def _check_defaults(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
        for arg, default in pairs:
            if arg.arg in ("host", "bind_host", "listen") and isinstance(default, ast.Constant) \
                    and isinstance(default.value, str) and default.value != LOOPBACK:
                self.flag(node, f"{node.name}({arg.arg}={default.value!r}): services default to {LOOPBACK}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_defaults(node)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._check_defaults(node)
        self.generic_visit(node)


def violations(source: str) -> list[tuple[int, str]]:
    auditor = _Auditor()
    auditor.visit(ast.parse(source))
    return auditor.found


def test_the_audit_catches_each_unsafe_pattern() -> None:
    bad = '''
import pickle
from cloudpickle import loads
import numpy as np, torch, yaml, os, subprocess, tarfile, onnx, click
np.load("x.npy")
np.load("x.npy", allow_pickle=True)
torch.load("w.pt")
yaml.load(text)
onnx.load("m.onnx")
tarfile.open("a.tgz").extractall("dir")
os.system("ls")
subprocess.run("ls", shell=True)
eval("1 + 1")
sock.bind(("0.0.0.0", 9090))
click.option("--host", default="0.0.0.0")
def serve(host="0.0.0.0", port=1): ...
'''
    found = violations(bad)
    assert [line for line, _ in found] == [2, 3, *range(5, 17)], found  # one finding per bad line
    good = '''
import numpy as np, torch, yaml, tarfile, onnx, click
np.load("x.npy", allow_pickle=False)
torch.load("w.pt", weights_only=True)
yaml.safe_load(text)
onnx.load("m.onnx", load_external_data=False)
tarfile.open("a.tgz").extractall("dir", filter="data")
subprocess.run(["ls"])
sock.bind(("127.0.0.1", 0))
click.option("--host", default="127.0.0.1")
def serve(host="127.0.0.1", port=1): ...
'''
    assert violations(good) == []


def _sources() -> list[Path]:
    files = [p for d in AUDITED if (ROOT / d).is_dir() for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50, f"audit found only {len(files)} files under {ROOT}"
    return files


@pytest.mark.parametrize("folder", AUDITED)
def test_source_tree_has_no_unsafe_patterns(folder: str) -> None:
    report = []
    for path in _sources():
        if path.relative_to(ROOT).parts[0] != folder:
            continue
        for line, why in violations(path.read_text()):
            report.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert not report, "\n".join(report)


def test_rpc_commands_default_to_loopback() -> None:
    """The behaviour, not just the source: the CLI's RPC services bind 127.0.0.1 unless told otherwise."""
    from lncompile.cli import cli

    servers = [c for name, c in cli.commands.items() if name.startswith("rpc")]
    if not servers:
        pytest.skip("no RPC commands in this build")
    for command in servers:
        host = next(p for p in command.params if p.name == "host")
        assert host.default == LOOPBACK, f"{command.name} --host defaults to {host.default}"
