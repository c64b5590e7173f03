"""Library loggers that do not import `logging` until a message could be shown.

`logging` costs ~3 ms to import, on every `pypod-runtime` call.  Until some code imports it
(the CLI does, for --debug or --log), no handler exists, and Python's last-resort handler shows
only WARNING and above: so debug and info messages are dropped without importing anything, and
everything else goes to the real `logging.getLogger(name)`, exactly as without this wrapper.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: how messages look when nothing configured logging: "plain" (Python's last resort: the bare
#: message) or "logrus" (podman's `time="..." level=warning msg="..."`); set by a CLI
_STYLE = ["plain"]


def use_logrus_style() -> None:
    """Show warnings and errors as podman does, once (and if) one is logged."""
    _STYLE[0] = "logrus"


def _logrus_handler(logging: Any) -> Any:
    import time

    class Formatter(logging.Formatter):  # type: ignore[misc]
        def format(self, record: Any) -> str:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
            level = {"WARNING": "warning"}.get(record.levelname, record.levelname.lower())
            msg = record.getMessage().replace('"', '\\"')
            return f'time="{stamp}" level={level} msg="{msg}"'

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter())
    return handler


class Logger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _real(self) -> Any:
        try:
            import logging
        except ImportError:  # a container process that may no longer import (see init.py)
            return _DROP
        root = logging.getLogger()
        if _STYLE[0] == "logrus" and not root.handlers:
            root.addHandler(_logrus_handler(logging))
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
