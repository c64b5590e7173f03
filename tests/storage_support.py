"""Test support for the store's crash tests: run something in a child and SIGKILL it at a
chosen point."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def killed_child(target: Callable[[int], None]) -> None:
    """Run `target(ready_fd)` in a child; SIGKILL it once it writes to ready_fd."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            target(w)
        finally:
            os._exit(1)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x", "the child failed before the crash point"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
