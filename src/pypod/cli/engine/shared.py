"""What the command modules of `pypod` share: the engine of the global flags, error lines,
flag and command declarations.  Small on purpose: `run` loads it without the other commands.
"""

from __future__ import annotations

import sys

from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag
from pypod.engine.containers import Engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["_cmd", "_err", "_f", "engine"]


def engine(g: Globals) -> Engine:
    return Engine(g.graphroot, g.runroot, driver=g.driver)


def _err(message: str) -> None:
    sys.stderr.write(f"Error: {message}\n")


def _f(*names: str, value: bool = False, multiple: bool = False, help: str = "") -> Flag:
    return Flag(names, value, multiple, help)


def _cmd(handler: Any, flags: tuple[Flag, ...], help: str, usage: str, *, raw: bool = False
         ) -> Command:  # fmt: skip
    return Command(handler=handler, flags=flags, help=help, usage=usage, raw=raw)
