"""``lncompile rpc-tracker`` and ``lncompile rpc-server``: TVM's RPC tracker and device server.

Both bind to the loopback interface unless ``--host`` names another address: an RPC server runs whatever
library a client uploads, so exposing it to a network is a decision the user makes explicitly. Both run
until interrupted (Ctrl-C, SIGTERM) or until ``--stop-after`` seconds, and always stop the TVM process they
started (TVM's trackers and servers otherwise outlive the command that launched them).
"""

from __future__ import annotations

import signal
import time
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

_LOOPBACK_NOTE = ("Default 127.0.0.1 (this machine only). Binding any other address (e.g. 0.0.0.0) exposes "
                  "a service that runs uploaded native code: pass it only on a trusted network.")


def _serve(process: Any, what: str, stop_after: float | None) -> None:
    """Block while ``process`` (a TVM Tracker/Server) lives; SIGTERM and the deadline end the wait."""

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while process.proc is not None and process.proc.is_alive():
            if deadline is not None and time.monotonic() >= deadline:
                click.echo(f"{what}: --stop-after reached, stopping")
                return
            time.sleep(0.2)
        click.echo(f"{what}: process exited")
    except KeyboardInterrupt:
        click.echo(f"{what}: stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command("rpc-tracker", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help=f"Address to bind. {_LOOPBACK_NOTE}")
@click.option("--port", default=9190, show_default=True, type=click.IntRange(1, 65535),
              help="First port to try (the next 9 are tried if it is taken).")
@click.option("--stop-after", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop by itself after this long (default: run until interrupted).")
def rpc_tracker(host: str, port: int, stop_after: float | None) -> None:
    """Run a TVM RPC tracker: devices register with it, clients (bench/tune --rpc) ask it for one."""
    from .remote import running_tracker

    with running_tracker(host, port) as tracker:
        click.echo(f"rpc-tracker: listening on {host}:{tracker.port}", nl=True)
        _serve(tracker, "rpc-tracker", stop_after)


@click.command("rpc-server", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help=f"Address to bind. {_LOOPBACK_NOTE}")
@click.option("--port", default=9090, show_default=True, type=click.IntRange(1, 65535),
              help="First port to try (the next 9 are tried if it is taken).")
@click.option("--tracker", metavar="HOST:PORT", help="Register with this tracker (then clients reach this "
              "server only through it).")
@click.option("--key", default="", help="Device key to register under, e.g. rpi4 (needs --tracker).")
@click.option("--stop-after", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop by itself after this long (default: run until interrupted).")
def rpc_server(host: str, port: int, tracker: str | None, key: str, stop_after: float | None) -> None:
    """Run a TVM RPC server on this device: it loads uploaded libraries and times them for remote clients."""
    from .errors import UsageError
    from .remote import running_server

    if key and not tracker:
        raise UsageError("--key names this server at a tracker; pass --tracker HOST:PORT as well")
    if tracker and not key:
        raise UsageError("--tracker needs --key (the device key clients will ask the tracker for)")
    with running_server(host, port, tracker=tracker, key=key) as server:
        where = f", registered with {tracker} as {key!r}" if tracker else ""
        click.echo(f"rpc-server: listening on {host}:{server.port}{where}")
        _serve(server, "rpc-server", stop_after)
