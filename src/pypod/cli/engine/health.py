"""`pypod healthcheck run`: run a container's health check once (exit 0 healthy, 1 not)."""

from __future__ import annotations

from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.shared import _cmd, engine
from pypod.cli.flags import Parsed
from pypod.errors import InvalidArgument


def cmd_healthcheck_run(g: Globals, opts: Parsed) -> int:
    from pypod.engine.health import run_check

    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    eng = engine(g)
    _status, code = run_check(eng, eng.lookup(opts.args[0]))
    if code == 0:
        return 0
    print("unhealthy")
    return 1


COMMANDS: dict[str, Command] = {
    "healthcheck run": _cmd(
        cmd_healthcheck_run, (), "Run the health check of a container", "CONTAINER"
    ),  # fmt: skip
}
