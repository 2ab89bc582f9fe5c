"""Interrupts that stick: Ctrl-C (SIGINT) or SIGTERM stop lncompile, even where a library swallows them.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be. When that is a Python
callback running inside TVM's C++ (TVM 0.27's ``tvm.compile`` runs parts of its pipeline that way), the FFI
turns the exception into a C++ error and TVM may drop it or re-raise it as a ``RuntimeError``: the build then
goes on, or fails with a misleading message. So the handler installed here also *records* the signal;
:func:`check` re-raises it at the points where it matters (:mod:`lncompile.fileio` calls it before committing
any file), and the CLI reports an interrupted run as interrupted whatever exception came out of it.

SIGTERM (``kill``, job schedulers, ``timeout``) gets the same treatment, so temporary files are cleaned up
instead of the process dying on the spot.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_received: list[int] = []  # signals seen while a handling() block was active


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def received() -> int | None:
    """The first interrupting signal seen inside :func:`handling` (``signal.SIGINT``...), or None."""
    return _received[0] if _received else None


def check() -> None:
    """Raise ``KeyboardInterrupt`` if an interrupt arrived, even one that something downstream swallowed."""
    if _received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``KeyboardInterrupt`` and are remembered; restored after.

    Outside the main thread signals cannot be handled, and the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _received.clear()
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        _received.clear()
