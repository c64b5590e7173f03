"""`pypod-runtime`: runc's command line over pypod.runtime (commands, flags, output, exit codes)."""

from __future__ import annotations

import os
import sys

import pypod
from pypod import jsoncodec
from pypod.cli.flags import Flag, Parsed, help_text, parse
from pypod.errors import (
    EXIT_RUNTIME_EXEC_FAILED,
    EXIT_TOOL_ERROR,
    InvalidArgument,
    NotSupported,
    PypodError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

PROG = "pypod-runtime"

GLOBAL_FLAGS = (
    Flag(("debug",), help="enable debug logging"),
    Flag(("log",), True, help="set the log file to write pypod-runtime logs to (default stderr)"),
    Flag(("log-format",), True, help="set the log format ('text' (default), or 'json')"),
    Flag(("root",), True, help="root directory for storage of container state"),
    Flag(("criu",), True, help="path to the criu binary (checkpoint/restore: not supported)"),
    Flag(("systemd-cgroup",), help="enable systemd cgroup support (no systemd on this host)"),
    Flag(("rootless",), True, help="ignore cgroup permission errors ('true', 'false', 'auto')"),
    Flag(("help", "h"), help="show help"),
    Flag(("version", "v"), help="print the version"),
)
_CREATE = (
    Flag(("bundle", "b"), True, help="path to the root of the bundle directory"),
    Flag(("console-socket",), True, help="path to an AF_UNIX socket receiving the pty master"),
    Flag(("pid-file",), True, help="file to write the process id to"),
    Flag(("no-pivot",), help="do not use pivot root to jail process inside rootfs"),
    Flag(("no-new-keyring",), help="do not create a new session keyring for the container"),
    Flag(("preserve-fds",), True, help="pass N additional file descriptors to the container"),
)
_EXEC = (
    Flag(("console-socket",), True, help="path to an AF_UNIX socket receiving the pty master"),
    Flag(("cwd",), True, help="current working directory in the container"),
    Flag(("env", "e"), True, True, help="set environment variables"),
    Flag(("tty", "t"), help="allocate a pseudo-TTY"),
    Flag(("user", "u"), True, help="UID (format: <uid>[:<gid>])"),
    Flag(("additional-gids", "g"), True, True, help="additional gids"),
    Flag(("process", "p"), True, help="path to the process.json"),
    Flag(("detach", "d"), help="detach from the container's process"),
    Flag(("pid-file",), True, help="file to write the process id to"),
    Flag(("process-label",), True, help="set the asm process label (no SELinux: must be empty)"),
    Flag(("apparmor",), True, help="set the apparmor profile (no AppArmor: must be empty)"),
    Flag(("no-new-privs",), help="set the no new privileges value for the process"),
    Flag(("cap", "c"), True, True, help="add a capability to the bounding set for the process"),
    Flag(("preserve-fds",), True, help="pass N additional file descriptors to the container"),
    Flag(("cgroup",), True, True, help="run the process in a (sub)cgroup (not supported yet)"),
    Flag(("ignore-paused",), help="allow exec in a paused container"),
)
_UPDATE = (
    Flag(("resources", "r"), True, help="path to a file with resources to update, '-' for stdin"),
    Flag(("blkio-weight",), True, help="block IO weight, 10 to 1000"),
    Flag(("cpu-period",), True, help="CPU CFS period in microseconds"),
    Flag(("cpu-quota",), True, help="CPU CFS hardcap limit in microseconds"),
    Flag(("cpu-share",), True, help="CPU shares (relative weight vs. other containers)"),
    Flag(("cpu-rt-period",), True, help="CPU realtime period in microseconds"),
    Flag(("cpu-rt-runtime",), True, help="CPU realtime hardcap limit in microseconds"),
    Flag(("cpuset-cpus",), True, help="CPU(s) to use"),
    Flag(("cpuset-mems",), True, help="memory node(s) to use"),
    Flag(("kernel-memory",), True, help="kernel memory limit (deprecated, refused)"),
    Flag(("kernel-memory-tcp",), True, help="kernel memory limit for tcp buffer"),
    Flag(("memory",), True, help="memory limit (in bytes, or with a unit: 100m, 1g)"),
    Flag(("memory-reservation",), True, help="memory reservation or soft limit"),
    Flag(("memory-swap",), True, help="total memory usage (memory + swap); -1 for unlimited"),
    Flag(("pids-limit",), True, help="maximum number of pids allowed in the container"),
)
COMMANDS: dict[str, tuple[str, tuple[Flag, ...], str]] = {
    "create": ("create a container", _CREATE, "<container-id>"),
    "delete": (
        "delete any resources held by the container",
        (Flag(("force", "f")),),
        "<container-id>",
    ),
    "exec": (
        "execute new process inside the container",
        _EXEC,
        "<container-id> <command> [command options]",
    ),
    "features": ("show the enabled features", (), ""),
    "kill": (
        "send a signal (default SIGTERM) to the container's init process",
        (Flag(("all", "a"), help="send the signal to all processes in the container"),),
        "<container-id> [signal]",
    ),
    "list": (
        "lists containers started by pypod-runtime with the given root",
        (Flag(("format", "f"), True, default="table"), Flag(("quiet", "q"))),
        "",
    ),
    "pause": ("pause suspends all processes inside the container", (), "<container-id>"),
    "ps": (
        "ps displays the processes running inside a container",
        (Flag(("format", "f"), True, default="table"),),
        "<container-id> [ps options]",
    ),
    "resume": ("resumes all processes that have been previously paused", (), "<container-id>"),
    "run": (
        "create and run a container",
        (*_CREATE, Flag(("detach", "d")), Flag(("keep",))),
        "<container-id>",
    ),
    "spec": (
        "create a new specification file",
        (Flag(("bundle", "b"), True), Flag(("rootless",))),
        "",
    ),
    "start": ("executes the user defined process in a created container", (), "<container-id>"),
    "state": ("output the state of a container", (), "<container-id>"),
    "update": ("update container resource constraints", _UPDATE, "<container-id>"),
}
_ALIASES = {"ls": "list"}
_UNSUPPORTED = ("checkpoint", "restore", "events")


class UsageError(InvalidArgument):
    pass


def entry() -> None:
    """The `pypod-runtime` program (its console script): `main()`, then the process ends at once
    (cli/process_exit.py), which also has the garbage collector run less often."""
    from pypod.cli.process_exit import run_program

    run_program(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    log_file: str | None = None
    log_format = "text"
    try:
        g = parse(args, GLOBAL_FLAGS)
        log_file, log_format = g.text("log"), g.text("log-format") or "text"
        if log_format not in ("text", "json"):
            raise InvalidArgument(f"invalid log-format: {log_format}")
        if g.flag("version"):
            _print_version()
            return 0
        if not g.args or g.flag("help") or g.args[0] in ("help", "h"):
            print(_usage())
            return 0
        _setup_logging(g)
        if g.flag("systemd-cgroup"):
            raise NotSupported(
                "systemd cgroup manager: not supported yet (and this host runs no systemd); "
                "leave out --systemd-cgroup to manage cgroups through cgroupfs"
            )
        name, rest = _ALIASES.get(g.args[0], g.args[0]), g.args[1:]
        if name in _UNSUPPORTED:
            raise NotSupported(f"{PROG}: '{name}' is not supported yet")
        if name not in COMMANDS:
            raise UsageError(f"No help topic for '{name}'")
        _, flags, _ = COMMANDS[name]
        opts = parse(rest, (*flags, Flag(("help", "h"))))
        if opts.flag("help"):
            print(_command_help(name))
            return 0
        root = g.text("root") or _default_root()
        return _HANDLERS[name](root, opts)
    except PypodError as e:
        _report(str(e), log_file, log_format)
        return e.exit_code if isinstance(e, CommandFailed) else EXIT_TOOL_ERROR
    except OSError as e:  # a file the user named (--pid-file, --log, --root, -b): say which
        where = f": {e.filename}" if e.filename else ""
        _report(f"{e.strerror or e}{where}", log_file, log_format)
        return EXIT_TOOL_ERROR
    except KeyboardInterrupt:
        return 130


def _default_root() -> str:
    from pypod.runtime.state import default_root

    return default_root()


def _report(msg: str, log_file: str | None, log_format: str) -> None:
    from pypod.cli.output import logrus_line  # errors and warnings only: off the run path

    if log_file:
        try:
            with open(log_file, "a") as f:
                f.write(logrus_line("error", msg, fmt=log_format))
        except OSError:
            pass
        print(msg, file=sys.stderr)
    else:
        sys.stderr.write(logrus_line("error", msg))


def _setup_logging(g: Parsed) -> None:
    if not (g.flag("debug") or g.text("log")):
        return
    import logging

    level = logging.DEBUG if g.flag("debug") else logging.WARNING
    log_file = g.text("log")
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler()
    logging.basicConfig(level=level, handlers=[handler], format="%(levelname)s %(message)s")


def _print_version() -> None:
    print(f"{PROG} version {pypod.__version__}\nspec: {pypod.OCI_RUNTIME_SPEC_VERSION}")


def _usage() -> str:
    cmds = "\n".join(f"   {n:<12}{d}" for n, (d, _, _) in sorted(COMMANDS.items()))
    return (
        f"NAME:\n   {PROG} - Open Container Initiative runtime (runc compatible), by pypod\n\n"
        f"USAGE:\n   {PROG} [global options] command [command options] [arguments...]\n\n"
        f"VERSION:\n   {pypod.__version__}\nspec: {pypod.OCI_RUNTIME_SPEC_VERSION}\n\n"
        f"COMMANDS:\n{cmds}\n\nGLOBAL OPTIONS:\n{help_text(GLOBAL_FLAGS)}"
    )


def _command_help(name: str) -> str:
    desc, flags, usage = COMMANDS[name]
    return (
        f"NAME:\n   {PROG} {name} - {desc}\n\nUSAGE:\n   {PROG} {name} [command options] {usage}"
        f"\n\nOPTIONS:\n{help_text(flags)}"
    )


def _one_id(name: str, opts: Parsed, *, extra_ok: bool = False) -> str:
    if not opts.args:
        quantity = "a minimum of" if extra_ok else "exactly"
        raise UsageError(f'{PROG}: "{name}" requires {quantity} 1 argument(s)')
    if len(opts.args) > 1 and not extra_ok:
        raise UsageError(f'{PROG}: "{name}" requires exactly 1 argument(s)')
    return opts.args[0]


class CommandFailed(PypodError):
    """A command's error under runc's prefix, with runc's exit code for that command."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _failed(verb: str, e: PypodError) -> CommandFailed:
    """runc's wording: "runc create failed: ...", "runc run failed: ...", but "exec failed: ..."
    and exit code 255 for exec."""
    if verb == "exec":
        return CommandFailed(f"exec failed: {e}", EXIT_RUNTIME_EXEC_FAILED)
    return CommandFailed(f"{PROG} {verb} failed: {e}", EXIT_TOOL_ERROR)


def _runtime(root: str) -> Any:
    from pypod.runtime.container import Runtime

    return Runtime(root, warn=_warn)


def _warn(msg: str) -> None:
    """A failure that does not fail the command (a poststart/poststop hook), as runc logs it."""
    from pypod.cli.output import logrus_line

    sys.stderr.write(logrus_line("warning", msg))


def _create_options(opts: Parsed) -> Any:
    from pypod.runtime.container import CreateOptions

    return CreateOptions(
        bundle=opts.text("bundle") or os.getcwd(),
        console_socket=opts.text("console-socket"),
        pid_file=opts.text("pid-file"),
        no_pivot=opts.flag("no-pivot"),
        no_new_keyring=opts.flag("no-new-keyring"),
        preserve_fds=opts.number("preserve-fds"),
    )


def _primed(action: Callable[[], int]) -> int:
    """Run `action` with the cgroup migration primer started first (see runtime.primer:
    without root only, so as root that module is not even imported)."""
    if os.geteuid() == 0:
        return action()
    from pypod.runtime import primer

    pid = primer.start()
    try:
        return action()
    finally:
        primer.reap(pid)


def cmd_create(root: str, opts: Parsed) -> int:
    cid = _one_id("create", opts)

    def create() -> int:
        _runtime(root).create(cid, _create_options(opts))
        return 0

    try:
        return _primed(create)
    except PypodError as e:
        raise _failed("create", e) from e


def cmd_run(root: str, opts: Parsed) -> int:
    cid = _one_id("run", opts)

    def run() -> int:
        code: int = _runtime(root).run(cid, _create_options(opts), detach=opts.flag("detach"))
        return code

    try:
        return _primed(run)
    except PypodError as e:
        raise _failed("run", e) from e


def cmd_start(root: str, opts: Parsed) -> int:
    _runtime(root).start(_one_id("start", opts))
    return 0


def cmd_state(root: str, opts: Parsed) -> int:
    import json

    state = _runtime(root).state(_one_id("state", opts))
    print(json.dumps(state, indent=2))
    return 0


def cmd_list(root: str, opts: Parsed) -> int:
    states = _runtime(root).list_states()
    fmt = opts.text("format")
    if opts.flag("quiet"):
        for st in states:
            print(st["id"])
    elif fmt == "json":
        print(jsoncodec.dumps(states, separators=(",", ":")))
    elif fmt == "table":
        from pypod.cli.output import tabwrite

        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [
            [s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]]
            for s in states
        ]
        sys.stdout.write(tabwrite(rows))
    else:
        raise InvalidArgument(f"invalid format option: {fmt}")
    return 0


def parse_signal(text: str) -> int:
    import signal

    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"unknown signal {text!r}") from None


def cmd_kill(root: str, opts: Parsed) -> int:
    cid = _one_id("kill", opts, extra_ok=True)
    if len(opts.args) > 2:
        raise UsageError(f'{PROG}: "kill" requires a maximum of 2 argument(s)')
    sig = parse_signal(opts.args[1]) if len(opts.args) > 1 else 15
    _runtime(root).kill(cid, sig, all_processes=opts.flag("all"))
    return 0


def cmd_delete(root: str, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise UsageError(f'{PROG}: "delete" requires exactly 1 argument(s)')
    _runtime(root).delete(opts.args[0], force=opts.flag("force"))
    return 0


def cmd_pause(root: str, opts: Parsed) -> int:
    _runtime(root).pause(_one_id("pause", opts))
    return 0


def cmd_resume(root: str, opts: Parsed) -> int:
    _runtime(root).resume(_one_id("resume", opts))
    return 0


def cmd_ps(root: str, opts: Parsed) -> int:
    cid = _one_id("ps", opts, extra_ok=True)
    pids = _runtime(root).pids(cid)
    fmt = opts.text("format")
    if fmt == "json":
        print(jsoncodec.dumps(pids))
        return 0
    if fmt != "table":
        raise InvalidArgument(f"invalid format option: {fmt}")
    import subprocess

    ps_args = opts.args[1:]
    if ps_args[:1] == ["--"]:  # `ps ID -- ARGS` (runc passes the "--" on to ps, which fails)
        ps_args = ps_args[1:]
    ps_args = ps_args or ["-ef"]
    try:
        proc = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    except OSError as e:
        raise InvalidArgument(f"ps: {e.strerror}: install procps") from e
    if proc.returncode != 0:
        raise InvalidArgument(f"ps {' '.join(ps_args)}: {proc.stderr.strip()}")
    out = proc.stdout
    lines = out.splitlines()
    if not lines:
        return 0
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise InvalidArgument("couldn't find PID field in ps output") from None
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def cmd_spec(root: str, opts: Parsed) -> int:
    from pypod.runtime.spec_file import write_default_spec

    write_default_spec(opts.text("bundle") or ".", rootless=opts.flag("rootless"))
    return 0


def cmd_features(root: str, opts: Parsed) -> int:
    import json

    from pypod.runtime.features import features

    print(json.dumps(features(), indent=4))
    return 0


def cmd_exec(root: str, opts: Parsed) -> int:
    if not opts.args:
        raise UsageError(f'{PROG}: "exec" requires a minimum of 1 argument(s)')
    try:
        return _primed(lambda: _exec(root, opts))
    except PypodError as e:
        raise _failed("exec", e) from e


def _exec(root: str, opts: Parsed) -> int:
    from pypod.cli.runtime.translate import exec_request
    from pypod.runtime.container import ExecOptions

    cid = opts.args[0]
    for flag in ("process-label", "apparmor"):
        if opts.text(flag):
            raise NotSupported(f"--{flag}: not supported on this host")
    if opts.texts("cgroup"):
        raise NotSupported(f"{PROG} exec --cgroup: not supported yet")
    rt = _runtime(root)
    exec_opts = ExecOptions(
        process=rt.exec_process(cid, exec_request(opts)),
        detach=opts.flag("detach"),
        console_socket=opts.text("console-socket"),
        pid_file=opts.text("pid-file"),
        preserve_fds=opts.number("preserve-fds"),
    )
    return int(rt.exec(cid, exec_opts))


def cmd_update(root: str, opts: Parsed) -> int:
    from pypod.cli.runtime.translate import resources_from_flags

    cid = _one_id("update", opts)
    _runtime(root).update(cid, resources_from_flags(opts))
    return 0


_HANDLERS: dict[str, Callable[[str, Parsed], int]] = {
    "create": cmd_create,
    "delete": cmd_delete,
    "exec": cmd_exec,
    "features": cmd_features,
    "kill": cmd_kill,
    "list": cmd_list,
    "pause": cmd_pause,
    "ps": cmd_ps,
    "resume": cmd_resume,
    "run": cmd_run,
    "spec": cmd_spec,
    "start": cmd_start,
    "state": cmd_state,
    "update": cmd_update,
}
