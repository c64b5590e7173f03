"""Where one `pypod` command spends its time, across its processes (a tool, not a benchmark).

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/timeline.py \\
        pypod.engine.containers:Engine.init,pypod.runtime.process.parent:launch \\
        --root R --runroot RR run --rm --network none localhost/busybox true

Every function named (module:qualified.name, comma-separated) logs when it is entered and left,
in milliseconds since this script started, with its process id: the CLI, the monitor (a fork
of it) and the container's init (a fork of the monitor) alike, also after the init's
pivot_root (the log is an fd opened here, 999, which the monitor's and the runtime's fd
closing are made to keep).  The log goes to $TIMELINE_LOG (default /tmp/pypod-timeline.log),
appended.  Run `make bytecode` first: a module compiled at each start skews everything.
Wrapping a property breaks it: name functions and methods only.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any

T0 = time.perf_counter()
LOG_FD = 999


def log(line: str) -> None:
    os.write(LOG_FD, (line + "\n").encode())


def wrap(modname: str, qual: str) -> None:
    obj: Any = importlib.import_module(modname)
    parts = qual.split(".")
    for part in parts[:-1]:
        obj = getattr(obj, part)
    fn = getattr(obj, parts[-1])

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        log(f"{os.getpid():7d} {(start - T0) * 1000:8.2f} > {qual}")
        try:
            return fn(*args, **kwargs)
        finally:
            end = time.perf_counter()
            log(f"{os.getpid():7d} {(end - T0) * 1000:8.2f} < {qual} +{(end - start) * 1000:.2f}")

    setattr(obj, parts[-1], wrapper)


def keep_log_fd() -> None:
    """The monitor closes every fd it inherits and the runtime's init those it does not need,
    both with os.closerange: keep ours open through both."""
    close_range = os.closerange

    def closerange(low: int, high: int) -> None:
        if low <= LOG_FD < high:
            close_range(low, LOG_FD)
            close_range(LOG_FD + 1, high)
        else:
            close_range(low, high)

    os.closerange = closerange


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path = os.environ.get("TIMELINE_LOG", "/tmp/pypod-timeline.log")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, LOG_FD)
    os.close(fd)
    keep_log_fd()
    for target in sys.argv[1].split(","):
        modname, _, qual = target.partition(":")
        wrap(modname, qual)
    sys.argv = ["pypod", *sys.argv[2:]]
    log(f"{os.getpid():7d} {(time.perf_counter() - T0) * 1000:8.2f} (imports done)")
    from pypod.cli.engine.main import main as pypod_main

    try:
        return pypod_main()
    finally:
        log(f"{os.getpid():7d} {(time.perf_counter() - T0) * 1000:8.2f} (end)")


if __name__ == "__main__":
    sys.exit(main())
