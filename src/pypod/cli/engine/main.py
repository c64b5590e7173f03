"""`pypod`: podman's command line (global flags, command groups, errors and exit codes).

Commands live in small modules (`images.py` for the image commands); this module parses the
global flags (`--root`, `--runroot`, `--storage-driver`, `--tmpdir`, `--log-level`), finds the
command (`images`, `image ls`, `system df` ...), and turns errors into podman's
`Error: ...` line and exit code (125 for pypod's own errors unless the command says otherwise).
"""

from __future__ import annotations

import os
import sys

import pypod
from pypod.cli import program
from pypod.cli.flags import Flag, Parsed, help_text, parse
from pypod.cli.program import Command, Globals
from pypod.errors import EXIT_ENGINE_ERROR, InvalidArgument, PypodError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

#: Command and Globals are the programs' shared ones (cli/program.py)
__all__ = ["Command", "Globals", "UsageError", "main"]

PROG = "pypod"

GLOBAL_FLAGS = (
    *program.STORE_FLAGS,
    Flag(("tmpdir",), True, help="path to the tmp directory for libpod state content"),
    Flag(("help", "h"), help="help for pypod"),
    Flag(("version", "v"), help="version for pypod"),
)


class UsageError(InvalidArgument):
    pass


#: groups whose sub-command is the second word (`image ls`, `system df`)
GROUPS = ("image", "system", "volume", "container", "healthcheck", "network", "pod", "kube",
          "generate", "play")  # fmt: skip

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
_CONTAINER_VERBS = ("start", "stop", "kill", "restart", "rm", "ps", "wait", "pause", "unpause",
                    "rename")  # fmt: skip
_MODULES["containers"] = (
    *_CONTAINER_VERBS,
    *(f"container {verb}" for verb in _CONTAINER_VERBS),
    *("container list", "container ls", "container remove", "init", "container init"),
    *("container exists", "container cleanup", "container prune"),
)
_MODULES["run"] = ("run", "create", "container run", "container create")
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
_MODULES["pods"] = tuple(
    f"pod {verb}"
    for verb in ("create", "ps", "ls", "list", "inspect", "start", "stop", "restart", "kill",
                 "pause", "unpause", "rm", "prune", "exists", "top", "stats", "logs")
)  # fmt: skip
_MODULES["unshare"] = ("unshare",)
_MODULES["build"] = ("build", "image build")
_MODULES["systemd"] = ("generate systemd",)
_MODULES["kube"] = ("kube generate", "generate kube", "kube play", "play kube", "kube down")


def _commands(name: str | None = None) -> dict[str, Command]:
    """The commands (only those of `name`'s module when it is known: start-up time counts)."""
    return program.find_commands("pypod.cli.engine", _MODULES, name, optional=_OPTIONAL)


def entry() -> None:
    """The `pypod` program (its console script): `main()`, then the process ends at once
    (cli/process_exit.py), which also has the garbage collector run less often."""
    from pypod.cli.process_exit import run_program

    run_program(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return program.run_guarded(lambda: _run(args), _exit_code)


def _exit_code(error: PypodError) -> int:
    return EXIT_ENGINE_ERROR if isinstance(error, UsageError) else error.engine_exit_code


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
    merged = program.merged_globals(g, opts, GLOBAL_FLAGS)
    _setup_logging(merged.get("log-level"))
    given = g.texts("storage-opt")
    if not any("storage-opt" in f.names for f in command.flags):  # (`run --storage-opt`)
        given += opts.texts("storage-opt")
    graphroot, runroot, driver = program.store_globals(merged, given)
    tmpdir = merged.get("tmpdir")
    glob = Globals(
        graphroot=graphroot,
        runroot=runroot,
        driver=driver,
        tmpdir=tmpdir if isinstance(tmpdir, str) else None,
    )
    if os.geteuid() != 0:  # rootless: into the user's namespace first (the pause process)
        from pypod.engine import rootless

        rootless.enter(glob.runroot)
    return command.handler(glob, opts)


def _setup_logging(level: object) -> None:
    if not isinstance(level, str):
        from pypod import log

        log.use_logrus_style()
        return
    value = program.log_level(
        level,
        f'log level "{level}" is invalid: use trace, debug, info, warn, error, fatal or panic',
    )
    import logging

    logging.basicConfig(level=value, format="%(levelname)s %(message)s")


def _usage(commands: dict[str, Command]) -> str:
    width = max([16, *(len(n) + 2 for n in commands)])  # a long name keeps a gap, as cobra's
    lines = "\n".join(f"  {n:<{width}}{c.help}" for n, c in sorted(commands.items()))
    return (
        f"Manage pods, containers and images\n\nUsage:\n  {PROG} [options] [command]\n\n"
        f"Available Commands:\n{lines}\n\nOptions:\n{help_text(GLOBAL_FLAGS)}"
    )
