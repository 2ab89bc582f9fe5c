"""Measuring on a device over TVM RPC: time a built library remotely, and MetaSchedule's builder/runner for RPC.

The setup TVM uses: one *tracker* (``lncompile rpc-tracker``) that boards register with, and on each board
an *RPC server* (``lncompile rpc-server --tracker HOST:PORT --key KEY``) that needs only TVM's runtime. A
client asks the tracker for a free server of a key, uploads a library, and times it with the server's own
clock (TVM's ``time_evaluator``), so the network is not part of the measurement.

Cross builds: MetaSchedule's default builder exports each candidate as a ``.tar`` of object files that the
RPC server links *on the board* (which then needs a C compiler). :func:`metaschedule_cross_builder` links on
the host with the cross compiler (``tvm.support.cc.cross_compiler``) and uploads a ready ``.so``.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LncompileError, UsageError
from .manifest import read_manifest


class RemoteError(LncompileError):
    """The tracker or a remote server could not be reached, or the remote run failed."""


def parse_address(text: str, what: str = "tracker") -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; a one-line UsageError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad {what} address {text!r}; write HOST:PORT, e.g. 127.0.0.1:9190")
    return host.strip("[]"), int(port)


def _check_reachable(host: str, port: int, timeout_s: float = 5.0) -> None:
    """Fail fast (TVM's own connect retries for 60 s) when nothing listens at the tracker address."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as e:
        raise RemoteError(f"cannot reach the RPC tracker at {host}:{port} ({e.strerror or e}); start one with "
                          f"`lncompile rpc-tracker --port {port}`") from None


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def benchmark_remote(library: Path, tracker: str, key: str, repeat: int = 50, number: int = 1,
                     request_timeout_s: float = 120.0) -> dict[str, float]:
    """Time ``library``'s ``main`` on a device of ``key`` behind ``tracker`` (``"HOST:PORT"``).

    The input is random normal data shaped as the manifest beside the library says. The remote runs
    ``1 + number * repeat`` calls (the first is a warm-up); each of the ``repeat`` samples is the mean of
    ``number`` calls. Returns ``{"median": ms, "p90": ms}`` over the samples.
    """
    from .backend import tvm_api
    from .frontend import example_input

    library = Path(library)
    if not library.is_file():
        raise UsageError(f"library {library} does not exist")
    if repeat < 1 or number < 1:
        raise UsageError(f"repeat and number must be >= 1, got repeat={repeat}, number={number}")
    manifest = read_manifest(library)
    host, port = parse_address(tracker)
    _check_reachable(host, port)
    queue = tvm_api.rpc_tracker_summary(host, port).get("queue_info", {})
    if key not in queue:
        known = ", ".join(sorted(queue)) or "none"
        raise RemoteError(f"no RPC server registered under key {key!r} at {tracker} (keys: {known}); start one "
                          f"with `lncompile rpc-server --tracker {tracker} --key {key}`")
    inputs = []
    for i, spec in enumerate(manifest["inputs"]):
        if spec["dtype"] != "float32":
            raise UsageError(f"input {spec['name']!r} is {spec['dtype']}; benchmark_remote feeds float32 data")
        inputs.append(example_input(tuple(spec["shape"]), seed=i))
    device = manifest["target"].get("device", "cpu")
    try:
        session = tvm_api.rpc_request(host, port, key, timeout_s=request_timeout_s)
    except Exception as e:
        raise RemoteError(f"no free RPC server of key {key!r} at {tracker} within {request_timeout_s:.0f} s: "
                          f"{_last_line(e)}") from None
    try:
        seconds = tvm_api.remote_time_main(session, library, device, inputs, number, repeat)
    except Exception as e:
        raise RemoteError(f"running {library.name} on the {key!r} device failed: {_last_line(e)}") from None
    ms = [s * 1e3 for s in seconds]
    return {"median": _percentile(ms, 50), "p90": _percentile(ms, 90)}


def _last_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[-1] if lines else type(e).__name__


def metaschedule_rpc_runner(tracker: str, key: str, *, number: int = 3, repeat: int = 1, min_repeat_ms: int = 0,
                            session_timeout_s: float = 60.0, max_workers: int = 1) -> Any:
    """A MetaSchedule ``RPCRunner`` measuring candidates on the servers of ``key`` behind ``tracker``.

    Each candidate's score is ``repeat`` means of ``number`` runs on the device. ``max_workers`` is the
    number of concurrent sessions (one per board is what keeps timings clean).
    """
    from .backend import tvm_api

    host, port = parse_address(tracker)
    _check_reachable(host, port)
    return tvm_api.ms_rpc_runner(host, port, key, number=number, repeat=repeat, min_repeat_ms=min_repeat_ms,
                                 session_timeout_s=session_timeout_s, max_workers=max_workers)


def metaschedule_cross_builder(cross_compiler: str, options: tuple[str, ...] = (), *, timeout_s: float = 120.0,
                               max_workers: int | None = None) -> Any:
    """A MetaSchedule local builder (``tvm_api.ms_local_builder``) whose candidates are linked into ``.so`` files
    here by ``cross_compiler`` (e.g. ``aarch64-linux-gnu-g++``), so the boards' RPC servers load them without
    compiling anything.

    The export function is a ``functools.partial`` of a module-level function: the builder's worker
    processes receive it pickled by reference.
    """
    from .backend import tvm_api
    from .backend.tools import require_tool

    require_tool(cross_compiler)
    export = functools.partial(tvm_api.export_shared_library, cross_compiler, list(options))
    return tvm_api.ms_local_builder(export, timeout_s=timeout_s, max_workers=max_workers,
                                    initializer=fast_worker_start)


def fast_worker_start() -> None:
    """Builder-worker initializer: apply lncompile.tune's start-up fix (``_worker_site/sitecustomize.py``:
    ``inspect.getmodule`` answers None at once for ``<frozen ...>`` frames) before the worker imports
    MetaSchedule; without it each worker (restarted every batch) spends 40-200 s importing
    ``tvm.s_tir.tensor_intrin`` on this project's machine and the builder times out."""
    from .tune.worker_site import apply_worker_site

    apply_worker_site()


def wait_for_key(tracker: str, key: str, timeout_s: float = 60.0, poll_s: float = 0.5) -> None:
    """Wait until a server of ``key`` has registered with ``tracker`` (servers register a moment after they
    start); RemoteError after ``timeout_s``."""
    import time

    from .backend import tvm_api

    host, port = parse_address(tracker)
    _check_reachable(host, port)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if key in tvm_api.rpc_tracker_summary(host, port).get("queue_info", {}):
            return
        time.sleep(poll_s)
    raise RemoteError(f"no RPC server registered under key {key!r} at {tracker} within {timeout_s:.0f} s")


# ---- Running trackers and servers (the CLI commands and the tests use these) ----------------------------


@contextlib.contextmanager
def running_tracker(host: str = "127.0.0.1", port: int = 9190, port_end: int | None = None) -> Iterator[Any]:
    """A tracker process bound to ``host`` (loopback by default) on the first free port in
    ``[port, port_end)``; always terminated on exit (TVM's trackers otherwise outlive an aborted run)."""
    from .backend import tvm_api
    from .tune.worker_site import worker_environment

    with worker_environment():  # TVM runs the tracker in a child process, which needs no torch
        tracker = tvm_api.rpc_start_tracker(host, port, port_end or port + 10)
    try:
        yield tracker
    finally:
        tracker.terminate()


@contextlib.contextmanager
def running_server(host: str = "127.0.0.1", port: int = 9090, port_end: int | None = None,
                   tracker: str | None = None, key: str = "") -> Iterator[Any]:
    """An RPC server process bound to ``host`` (loopback by default), registered with ``tracker`` under
    ``key`` if given; always terminated on exit."""
    from .backend import tvm_api

    tracker_addr = parse_address(tracker) if tracker else None
    if tracker_addr is not None:
        _check_reachable(*tracker_addr)
    from .tune.worker_site import worker_environment

    with worker_environment():  # the child process TVM serves from loads and times libraries: no torch
        server = tvm_api.rpc_start_server(host, port, port_end or port + 10, tracker_addr, key)
    try:
        yield server
    finally:
        server.terminate()
