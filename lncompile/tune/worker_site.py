"""The start-up fixes for MetaSchedule's worker processes (``_worker_site/sitecustomize.py``): where they live,
applying them in a process, and setting the environment the workers inherit.

Imports nothing from TVM: builder workers apply the fixes before they import MetaSchedule.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import types
from collections.abc import Iterator
from pathlib import Path

WORKER_SITE = Path(__file__).parent / "_worker_site"
NO_TORCH = "LNCOMPILE_WORKER_NO_TORCH"  # read by the worker site: "1" keeps torch out of a fresh process


def apply_worker_site() -> types.ModuleType:
    """Run the worker site in this process and return it (its patches apply once however often it runs)."""
    spec = importlib.util.spec_from_file_location("_lncompile_worker_site", WORKER_SITE / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site)
    return site


@contextlib.contextmanager
def worker_environment(**extra: str | None) -> Iterator[None]:
    """Processes started in the block run the worker site (on their PYTHONPATH) and import TVM without torch;
    ``extra``: more variables to set (a string) or unset (None) meanwhile."""
    python_path = os.pathsep.join([str(WORKER_SITE), *filter(None, [os.environ.get("PYTHONPATH")])])
    with environ_set(PYTHONPATH=python_path, **{NO_TORCH: "1"}, **extra):
        yield


@contextlib.contextmanager
def environ_set(**values: str | None) -> Iterator[None]:
    """Set (a string) or unset (None) environment variables for the block; restore each one after it."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _put(name, value)
        yield
    finally:
        for name, value in saved.items():
            _put(name, value)


def _put(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
