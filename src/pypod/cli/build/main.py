"""`pypod-build`: buildah 1.28's command line (global flags, commands, errors, exit codes).

Commands live in small modules (`images.py`: images, rmi, tag; `working.py`: from, config,
mount, commit ...); this module parses the global flags (`--root`, `--runroot`,
`--storage-driver`, `--storage-opt`, `--log-level`), finds the command and turns errors into
buildah's `Error: ...` line and exit code: 125 for its own errors (buildah 1.28 exits 125, not
1), the command's own code for a failed `run`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import pypod
from pypod.cli import program
from pypod.cli.flags import Flag, Parsed, parse
from pypod.cli.program import Command, Globals
from pypod.errors import EXIT_ENGINE_ERROR, InvalidArgument, NotSupported, PypodError

#: Command and Globals are the programs' shared ones (cli/program.py)
__all__ = ["Command", "CommandError", "Globals", "main"]

PROG = "pypod-build"
#: buildah 1.28 exits 125 on its own errors (checked against buildah here)
EXIT_ERROR = EXIT_ENGINE_ERROR

GLOBAL_FLAGS = (
    *program.STORE_FLAGS,
    Flag(("cgroup-manager",), True, help='cgroup manager (default "cgroupfs")'),
    Flag(("registries-conf",), True, help="path to registries.conf file (not usually used)"),
    Flag(("registries-conf-dir",), True, help="path to registries.conf.d directory"),
    Flag(("short-name-alias-conf",), True, help="path to short name alias cache file"),
    Flag(("userns-uid-map",), True, help="default ctrID:hostID:length UID mapping to use"),
    Flag(("userns-gid-map",), True, help="default ctrID:hostID:length GID mapping to use"),
    Flag(("help", "h"), help="help for pypod-build"),
    Flag(("version", "v"), help="version for pypod-build"),
)


class CommandError(PypodError):
    """A command failed in a way buildah reports with its own exit code (`run`)."""

    def __init__(self, message: str, *, code: int) -> None:
        self.code = code
        super().__init__(message)


#: command modules (under `pypod.cli.build`) and the commands each serves: a command is
#: imported from its own module only, since start-up time counts
_MODULES: dict[str, tuple[str, ...]] = {
    "images": ("images", "rmi", "tag"),
    "inspect": ("inspect",),
    "transfer": ("pull", "push", "login", "logout"),
    "working": ("from", "containers", "rm", "mount", "umount", "commit", "rename"),
    "config_cmd": ("config",),
    "content": ("copy", "add", "run"),
    "bud": ("bud", "build", "build-using-dockerfile"),
    "system": ("info", "version", "unshare", "manifest", "source"),
}  # fmt: skip


def _commands(name: str | None = None) -> dict[str, Command]:
    return program.find_commands("pypod.cli.build", _MODULES, name)


def _aliases() -> dict[str, str]:
    return {"list": "containers", "ls": "containers", "ps": "containers", "delete": "rm",
            "unmount": "umount", "build-using-dockerfile": "bud", "build": "bud"}  # fmt: skip


def entry() -> None:
    """The `pypod-build` program (its console script): `main()`, then the process ends at once
    (cli/process_exit.py), which also has the garbage collector run less often."""
    from pypod.cli.process_exit import run_program

    run_program(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return program.run_guarded(lambda: _run(args), _exit_code)


def _exit_code(error: PypodError) -> int:
    return error.code if isinstance(error, CommandError) else EXIT_ERROR


def parse_flags(args: Sequence[str], flags: Sequence[Flag], *, interspersed: bool) -> Parsed:
    """The flag parser with cobra's messages (`unknown flag: --x`)."""
    try:
        return parse(args, flags, interspersed=interspersed)
    except InvalidArgument as e:
        text = str(e)
        prefix = "flag provided but not defined: "
        if text.startswith(prefix):
            bad = text[len(prefix) :]
            if bad.startswith("--"):
                raise InvalidArgument(f"unknown flag: {bad}") from None
            raise InvalidArgument(f"unknown shorthand flag: {bad[1:2]!r} in {bad}") from None
        if text.startswith("flag needs an argument: "):
            bad = text.rpartition(" ")[2]
            shown = f"'{bad[1]}' in {bad}" if not bad.startswith("--") else bad
            raise InvalidArgument(f"flag needs an argument: {shown}") from None
        raise


def _run(args: list[str]) -> int:
    g = parse_flags(args, GLOBAL_FLAGS, interspersed=False)
    if g.flag("version"):
        print(f"{PROG} version {pypod.__version__} (image-spec 1.1.0-rc2, runtime-spec 1.0.2-dev)")
        return 0
    if not g.args or g.flag("help") or g.args[0] == "help":
        if g.args[1:2] and g.args[0] == "help":
            return _run([g.args[1], "--help"])
        print(_usage(_commands()))
        return 0
    name, rest = g.args[0], g.args[1:]
    name = _aliases().get(name, name)
    command = _commands(name).get(name)
    if command is None:
        raise InvalidArgument(f'unknown command "{g.args[0]}" for "{PROG}"')
    opts = parse_flags(rest, (*GLOBAL_FLAGS, *command.flags), interspersed=command.interspersed)
    if opts.flag("help"):
        print(_command_help(name, command))
        return 0
    if command.check_order and not command.storeless:
        for arg in opts.args:
            if arg.startswith("-"):
                raise InvalidArgument(
                    f"no options ({arg}) can be specified after the image or container name"
                )
    merged = program.merged_globals(g, opts, GLOBAL_FLAGS)
    _setup_logging(merged.get("log-level"))
    graphroot, runroot, driver = program.store_globals(
        merged, [*g.texts("storage-opt"), *opts.texts("storage-opt")]
    )
    for name in ("registries-conf-dir", "short-name-alias-conf", "userns-uid-map",
                 "userns-gid-map"):  # fmt: skip
        if merged.get(name) is not None:
            raise NotSupported(f"'--{name}' is not supported yet")
    conf = merged.get("registries-conf")
    if isinstance(conf, str):  # read by every registry look-up (containers/image's variable)
        os.environ["CONTAINERS_REGISTRIES_CONF"] = conf
    cgroup_manager = merged.get("cgroup-manager")
    if cgroup_manager not in (None, "cgroupfs"):
        raise NotSupported(f'cgroup manager "{cgroup_manager}": only cgroupfs (no systemd here)')
    glob = Globals(graphroot=graphroot, runroot=runroot, driver=driver)
    if os.geteuid() != 0 and not command.storeless:  # rootless: into the user's namespace
        from pypod.engine import rootless

        rootless.enter(glob.runroot)
    return command.handler(glob, opts)


def _setup_logging(level: object) -> None:
    from pypod import log

    log.use_logrus_style()
    if not isinstance(level, str):
        return
    value = program.log_level(
        level, f'unable to parse log level: not a valid logrus Level: "{level}"'
    )
    import logging

    logging.getLogger().setLevel(value)


def cobra_flags(flags: Sequence[Flag]) -> str:
    """Flags listed as cobra (pflag) lists them: `  -a, --all   usage`, aligned, sorted."""
    entries = []
    for f in sorted(flags, key=lambda f: f.names[0]):
        long = next((n for n in f.names if len(n) > 1), f.names[0])
        short = next((n for n in f.names if len(n) == 1), None)
        left = f"  -{short}, --{long}" if short else f"      --{long}"
        if f.takes_value:
            left += " strings" if f.multiple else " string"
        entries.append((left, f.help))
    width = max((len(left) for left, _ in entries), default=0)
    return "\n".join(f"{left:<{width}}   {text}".rstrip() for left, text in entries)


def _command_help(name: str, command: Command) -> str:
    long = command.long or command.help
    flags = (*command.flags, Flag(("help", "h"), help=f"help for {name}"))
    return (
        f"\n  {long}\n\nUsage:\n  {PROG} {name} {command.usage or '[flags]'}\n\n"
        f"Flags:\n{cobra_flags(flags)}\n"
    )


def _usage(commands: dict[str, Command]) -> str:
    lines = "\n".join(f"  {n:<12}{c.help}" for n, c in sorted(commands.items()))
    return (
        "A tool that facilitates building OCI images\n\nUsage:\n"
        f"  {PROG} [flags]\n  {PROG} [command]\n\nAvailable Commands:\n{lines}\n\n"
        f"Flags:\n{cobra_flags(GLOBAL_FLAGS)}\n\n"
        f'Use "{PROG} [command] --help" for more information about a command.'
    )
