"""Library loggers that do not import `logging` until a message could be shown.

`logging` costs ~3 ms to import, on every `pypod-runtime` call.  Until some code imports it
(the CLI does, for --debug or --log), no handler exists, and Python's last-resort handler shows
only WARNING and above: so debug and info messages are dropped without importing anything, and
everything else goes to the real `logging.getLogger(name)`, exactly as without this wrapper.
"""

from __future__ import annotations

import sys
from typing import Any


class Logger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _real(self) -> Any:
        try:
            import logging
        except ImportError:  # a container process that may no longer import (see init.py)
            return _DROP
        return logging.getLogger(self.name)

    def debug(self, msg: str, *args: object) -> None:
        if "logging" in sys.modules:
            self._real().debug(msg, *args)

    def info(self, msg: str, *args: object) -> None:
        if "logging" in sys.modules:
            self._real().info(msg, *args)

    def warning(self, msg: str, *args: object) -> None:
        self._real().warning(msg, *args)

    def error(self, msg: str, *args: object) -> None:
        self._real().error(msg, *args)

    def exception(self, msg: str, *args: object) -> None:
        self._real().exception(msg, *args)


class _Drop:
    """Where messages go when `logging` cannot be imported: nowhere."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *_args, **_kw: None


_DROP = _Drop()


def get_logger(name: str) -> Logger:
    return Logger(name)
