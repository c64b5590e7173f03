"""`pypod`: podman's command line (global flags, command groups, errors and exit codes).

Commands live in small modules (`images.py` for the image commands); this module parses the
global flags (`--root`, `--runroot`, `--storage-driver`, `--tmpdir`, `--log-level`), finds the
command (`images`, `image ls`, `system df` ...), and turns errors into podman's
`Error: ...` line and exit code (125 for pypod's own errors unless the command says otherwise).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence

import pypod
from pypod.cli.common import default_locations
from pypod.cli.flags import Flag, Parsed, help_text, parse
from pypod.errors import EXIT_ENGINE_ERROR, InvalidArgument, NotSupported, PypodError
from pypod.record import record

PROG = "pypod"

GLOBAL_FLAGS = (
    Flag(("root",), True, help="path to the root directory in which data is stored"),
    Flag(("runroot",), True, help="path to the 'run directory' where all state is stored"),
    Flag(("storage-driver",), True, help="select which storage driver is used (overlay, vfs)"),
    Flag(
        ("storage-opt",), True, multiple=True, help="used to pass an option to the storage driver"
    ),
    Flag(("tmpdir",), True, help="path to the tmp directory for libpod state content"),
    Flag(("log-level",), True, help="log messages at and above this level (debug, info, warn)"),
    Flag(("help", "h"), help="help for pypod"),
    Flag(("version", "v"), help="version for pypod"),
)


@record
class Globals:
    graphroot: str
    runroot: str
    driver: str | None
    tmpdir: str | None


Handler = Callable[[Globals, Parsed], int]


@record
class Command:
    handler: Handler
    flags: tuple[Flag, ...]
    help: str
    usage: str = ""
    #: the handler parses its own arguments (`run`: flags stop at the image)
    raw: bool = False


class UsageError(InvalidArgument):
    pass


#: groups whose sub-command is the second word (`image ls`, `system df`)
GROUPS = ("image", "system", "volume", "container", "healthcheck", "network")

#: command modules (under `pypod.cli.engine`) and the commands each one serves; a command is
#: looked up in its own module only, since start-up time counts (`transfer` brings the copy
#: pipeline along, `containers` the engine).  Names not listed are searched in every module.
_MODULES: dict[str, tuple[str, ...]] = {
    "images": ("images", "image ls", "image list", "rmi", "image rm", "tag", "image tag",
               "untag", "image untag", "image inspect", "history", "image history",
               "image exists", "image prune", "system df"),
    "transfer": ("pull", "push", "save", "load", "import", "login", "logout", "image pull",
                 "image push", "image save", "image load", "image import"),
    "volumes": ("volume create", "volume ls", "volume list", "volume inspect", "volume rm",
                "volume remove", "volume prune", "volume exists"),
}  # fmt: skip
_OPTIONAL = (
    "networks",
    "unshare",
    "volumes",
    "containers",
    "container_io",
    "inspect",
    "container_fs",
    "system",
    "health",
)
_CONTAINER_VERBS = ("run", "create", "start", "stop", "kill", "restart", "rm", "ps", "wait",
                   "pause", "unpause", "rename")  # fmt: skip
_MODULES["containers"] = (
    *_CONTAINER_VERBS,
    *(f"container {verb}" for verb in _CONTAINER_VERBS),
    *("container list", "container ls", "container remove", "init", "container init"),
    *("container exists", "container cleanup", "container prune"),
)
_MODULES["inspect"] = ("inspect", "container inspect")
_MODULES["health"] = ("healthcheck run",)
_MODULES["system"] = ("version", "info", "events", "system info", "system events",
                      "system prune", "system reset")  # fmt: skip
_FS_VERBS = ("cp", "diff", "export", "commit", "mount", "umount", "unmount", "port")
_MODULES["container_fs"] = (*_FS_VERBS, *(f"container {verb}" for verb in _FS_VERBS))
_IO_VERBS = ("logs", "attach", "exec", "top", "stats")
_MODULES["container_io"] = (*_IO_VERBS, *(f"container {verb}" for verb in _IO_VERBS))
_MODULES["networks"] = tuple(
    f"network {verb}"
    for verb in ("create", "ls", "list", "inspect", "rm", "remove", "prune", "exists",
                 "connect", "disconnect", "reload")
)  # fmt: skip
_MODULES["unshare"] = ("unshare",)
_MODULES["build"] = ("build", "image build")


def _commands(name: str | None = None) -> dict[str, Command]:
    """The commands (only those of `name`'s module when it is known: start-up time counts)."""
    import importlib

    for module, names in _MODULES.items():
        if name in names and _present(module):
            return importlib.import_module(f"pypod.cli.engine.{module}").COMMANDS  # type: ignore[no-any-return]
    found: dict[str, Command] = {}
    for module in dict.fromkeys((*_MODULES, *_OPTIONAL)):
        if _present(module):
            found.update(importlib.import_module(f"pypod.cli.engine.{module}").COMMANDS)
    return found


def _present(module: str) -> bool:
    """Whether a command module exists (commands arrive one module at a time)."""
    import importlib.util

    return importlib.util.find_spec(f"pypod.cli.engine.{module}") is not None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except UsageError as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_ENGINE_ERROR
    except PypodError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.engine_exit_code
    except BrokenPipeError:  # `pypod ps | head`: the reader went away, as podman: quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        print(f"Error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_ENGINE_ERROR
    except KeyboardInterrupt:
        return 130


def _run(args: list[str]) -> int:
    g = parse(args, GLOBAL_FLAGS)
    if g.flag("version"):
        print(f"{PROG} version {pypod.__version__}")
        return 0
    if not g.args or g.flag("help") or g.args[0] == "help":
        commands = _commands()
        print(_usage(commands))
        return 0
    name, rest = g.args[0], g.args[1:]
    if name in GROUPS:
        if not rest or rest[0] in ("--help", "-h", "help"):
            group = {k: v for k, v in _commands().items() if k.startswith(name + " ")}
            print(_usage(group))
            return 0 if rest else EXIT_ENGINE_ERROR
        name, rest = f"{name} {rest[0]}", rest[1:]
    command = _commands(name).get(name)
    if command is None:
        raise UsageError(
            f"unrecognized command `{PROG} {name}`\nTry '{PROG} --help' for more information"
        )
    if command.raw:
        opts = Parsed(args=rest) if rest[:1] != ["--help"] else Parsed({"help": True})
    else:
        # the command's own flags win over the global ones (`rm -v` is --volumes, not --version)
        opts = parse(rest, (*GLOBAL_FLAGS, *command.flags), interspersed=True)
    if opts.flag("help"):
        print(f"{command.help}\n\nUsage:\n  {PROG} {name} {command.usage}\n\nOptions:\n"
              f"{help_text(command.flags)}")  # fmt: skip
        return 0
    merged = {**g.values, **{k: v for k, v in opts.values.items() if k in _GLOBAL_NAMES}}
    _setup_logging(merged.get("log-level"))
    graphroot, runroot = default_locations()
    root = merged.get("root")
    run = merged.get("runroot")
    driver = merged.get("storage-driver")
    tmpdir = merged.get("tmpdir")
    if driver is not None and driver not in ("overlay", "vfs"):
        raise NotSupported(f'unknown storage driver "{driver}": use overlay or vfs')
    given = g.texts("storage-opt")
    if not any("storage-opt" in f.names for f in command.flags):  # (`run --storage-opt`)
        given += opts.texts("storage-opt")
    if given:
        # podman: the flags replace STORAGE_OPTS (`--storage-opt ""`: no options); there the
        # drivers, the monitor and the cleanup command it runs all find them
        os.environ["STORAGE_OPTS"] = ",".join(o for o in given if o)
    glob = Globals(
        graphroot=root if isinstance(root, str) else graphroot,
        runroot=run if isinstance(run, str) else runroot,
        driver=driver if isinstance(driver, str) else None,
        tmpdir=tmpdir if isinstance(tmpdir, str) else None,
    )
    if os.geteuid() != 0:  # rootless: into the user's namespace first (the pause process)
        from pypod.engine import rootless

        rootless.enter(glob.runroot)
    return command.handler(glob, opts)


_GLOBAL_NAMES = {f.names[0] for f in GLOBAL_FLAGS} - {"help", "version"}


def _setup_logging(level: object) -> None:
    if not isinstance(level, str):
        from pypod import log

        log.use_logrus_style()
        return
    levels = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "fatal": 50}
    if level not in levels and level not in ("trace", "panic"):
        raise InvalidArgument(
            f'log level "{level}" is invalid: use trace, debug, info, warn, error, fatal or panic'
        )
    import logging

    logging.basicConfig(
        level=levels.get(level, 10 if level == "trace" else 50),
        format="%(levelname)s %(message)s",
    )


def _usage(commands: dict[str, Command]) -> str:
    lines = "\n".join(f"  {n:<16}{c.help}" for n, c in sorted(commands.items()))
    return (
        f"Manage pods, containers and images\n\nUsage:\n  {PROG} [options] [command]\n\n"
        f"Available Commands:\n{lines}\n\nOptions:\n{help_text(GLOBAL_FLAGS)}"
    )
