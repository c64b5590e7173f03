"""What the entry points of `pypod` and `pypod-build` share: errors turned into an `Error: ...`
line and an exit code, command modules imported one at a time, the storage globals
(`--root`, `--runroot`, `--storage-driver`, `--storage-opt`) and `--log-level`'s values.

Each program keeps what differs (its flags, its messages, its exit code for an error) and
passes it in.
"""

from __future__ import annotations

import os
import sys

from pypod.cli.common import default_locations
from pypod.cli.flags import Flag, Parsed
from pypod.errors import EXIT_ENGINE_ERROR, InvalidArgument, NotSupported, PypodError
from pypod.record import record
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from pypod.image.transports.containers_storage import Store, StoreLocation

#: the global flags that name the store and the log level (read by `store_globals`)
STORE_FLAGS = (
    Flag(("root",), True, help="path to the root directory in which data is stored"),
    Flag(("runroot",), True, help="path to the 'run directory' where all state is stored"),
    Flag(("storage-driver",), True, help="select which storage driver is used (overlay, vfs)"),
    Flag(("storage-opt",), True, True, help="used to pass an option to the storage driver"),
    Flag(("log-level",), True, help="log messages at and above this level (trace, debug, info, "
         "warn, error, fatal, panic)"),
)  # fmt: skip

#: logrus' level names as Python's logging levels ("trace" is debug, "panic" fatal)
LOG_LEVELS = {"trace": 10, "debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40,
              "fatal": 50, "panic": 50}  # fmt: skip


@record
class Globals:
    """What the global flags give a command: the store (`--root`, `--runroot`,
    `--storage-driver`) and pypod's `--tmpdir`."""

    graphroot: str
    runroot: str
    driver: str | None
    tmpdir: str | None = None


if TYPE_CHECKING:
    Handler = Callable[[Globals, Parsed], int]


@record
class Command:
    """A command of a program: its handler, flags and help; the other fields change how its
    arguments are parsed."""

    handler: Handler
    flags: tuple[Flag, ...]
    #: one line in the program's command list
    help: str
    usage: str = ""
    #: the description of `COMMAND --help` (pypod-build; `help` when empty)
    long: str = ""
    #: pypod: the handler parses its own arguments (`run`: flags stop at the image)
    raw: bool = False
    #: pypod-build: flags may follow arguments (only `tag`; pypod's commands all allow it)
    interspersed: bool = False
    #: pypod-build: refuse anything that looks like a flag after the first argument, as
    #: buildah ("no options (--env) can be specified after the image or container name");
    #: not `run`, `bud`, and no command that needs no store
    check_order: bool = True
    #: pypod-build: flags whose value is optional (`--pull` alone means `--pull=true`)
    optional_values: tuple[str, ...] = ()
    #: pypod-build: the command needs no store (`version`, `login`): no rootless set-up, and
    #: its arguments are taken as they come (no `check_order`)
    storeless: bool = False


def run_guarded(run: Callable[[], int], exit_code: Callable[[PypodError], int]) -> int:
    """`run()`, its errors printed as podman and buildah print them (`Error: ...` after what
    was written to stdout) with `exit_code(error)`; a closed pipe (`| head`) ends quietly."""
    try:
        return run()
    except PypodError as e:
        sys.stdout.flush()
        print(f"Error: {e}", file=sys.stderr)
        return exit_code(e)
    except BrokenPipeError:  # the reader went away: quietly, as podman
        with suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        print(f"Error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_ENGINE_ERROR
    except KeyboardInterrupt:
        return 130


def find_commands(
    package: str,
    modules: Mapping[str, Sequence[str]],
    name: str | None = None,
    *,
    optional: Sequence[str] = (),
) -> dict[str, Any]:
    """The `COMMANDS` of `package`'s command modules: only those of the module serving `name`
    when it is listed (start-up time counts), else of every module (`modules`, then
    `optional`) that exists."""
    for module, names in modules.items():
        if name in names:
            loaded = _load(f"{package}.{module}")
            if loaded is not None:
                return loaded.COMMANDS  # type: ignore[no-any-return]
    found: dict[str, Any] = {}
    for module in dict.fromkeys((*modules, *optional)):
        loaded = _load(f"{package}.{module}")
        if loaded is not None:
            found.update(loaded.COMMANDS)
    return found


def _load(name: str) -> Any:
    """The module `name`, None when it does not exist.  (`__import__` rather than `importlib`,
    whose `util` and `_abc` cost ~0.2 ms to import.)"""
    try:
        __import__(name)
    except ModuleNotFoundError as e:
        if e.name != name:  # the module exists, but something it imports does not
            raise
        return None
    return sys.modules[name]


def merged_globals(given: Parsed, command: Parsed, flags: Sequence[Flag]) -> dict[str, object]:
    """The global flags' values: those given before the command, overridden by global flags
    given after it (`--help` and `--version` are not values)."""
    names = {f.names[0] for f in flags} - {"help", "version"}
    return {**given.values, **{k: v for k, v in command.values.items() if k in names}}


def store_globals(
    values: Mapping[str, object], storage_opts: Sequence[str]
) -> tuple[str, str, str | None]:
    """(graphroot, runroot, driver) from `--root`, `--runroot`, `--storage-driver` or the
    defaults; `--storage-opt` values replace STORAGE_OPTS (`--storage-opt ""`: no options),
    where the drivers, the monitor and the cleanup command it runs all find them."""
    graphroot, runroot = default_locations()
    root, run, driver = values.get("root"), values.get("runroot"), values.get("storage-driver")
    if driver is not None and driver not in ("overlay", "vfs"):
        raise NotSupported(f'unknown storage driver "{driver}": use overlay or vfs')
    if storage_opts:
        os.environ["STORAGE_OPTS"] = ",".join(o for o in storage_opts if o)
    return (
        root if isinstance(root, str) else graphroot,
        run if isinstance(run, str) else runroot,
        driver if isinstance(driver, str) else None,
    )


def store_location(g: Globals) -> StoreLocation:
    from pypod.image.transports.containers_storage import StoreLocation

    return StoreLocation(graphroot=g.graphroot, runroot=g.runroot, driver=g.driver)


def open_cli_store(g: Globals) -> Store:
    from pypod.image.transports.containers_storage import open_store

    return open_store(store_location(g))


def log_level(level: str, invalid: str) -> int:
    """`--log-level`'s value as a logging level; `invalid` is the program's message."""
    if level not in LOG_LEVELS:
        raise InvalidArgument(invalid)
    return LOG_LEVELS[level]
