"""Attaching to a container's (or exec session's) monitor: the CLI's way to its streams.

The wire protocol is the monitor's (`pypod.monitor.protocol`); this module is what the CLI
calls, so that the CLI depends on the engine only.
"""

from __future__ import annotations

from pypod.monitor import protocol


def connect(rundir: str) -> protocol.Connection:
    """Connect to the monitor whose run directory is `rundir` (before starting, to miss nothing)."""
    return protocol.connect(rundir)


def stream(sock: protocol.Connection, *, stdin: bool, tty: bool, detach_keys: str | None) -> bool:
    """Copy our stdio to and from the container until it ends; True when the user detached."""
    return protocol.stream(sock, stdin=stdin, tty=tty, detach_keys=detach_keys)
