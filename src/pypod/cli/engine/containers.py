"""pypod's container commands (podman 4.3's flags, output, messages and exit codes).

start, stop, kill, restart, rm, ps, wait, pause, unpause, rename, init,
container exists, container cleanup (the monitor's exit command), container prune; `run` and
`create` are in `run.py`, the helpers the command modules share in `shared.py`.
"""

from __future__ import annotations

import sys

from pypod.cli.common import read_id_file
from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.shared import _cmd, _err, _f, engine
from pypod.cli.flags import Parsed
from pypod.engine.containers import Engine
from pypod.errors import (
    EXIT_ENGINE_ERROR,
    ContainerNotFound,
    InvalidArgument,
    PypodError,
)
from pypod.stdlite import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence


def _parse_signal(value: str) -> int:
    from pypod.stdlite import signal_number

    text = value.upper().removeprefix("SIG")
    if text.isdigit():
        num = int(text)
        if 0 < num < 65:
            return num
    else:
        num_of_name = signal_number(f"SIG{text}")
        if num_of_name is not None:
            return num_of_name
    raise InvalidArgument(f"invalid signal: {value}")


def _each(names: Sequence[str], action: Callable[[str], str | None]) -> int:
    """Run `action` on each name, print what it returns, report failures as podman does."""
    failed = 0
    for name in names:
        try:
            out = action(name)
        except PypodError as e:
            if failed:
                _err(str(e))
            else:
                failed = e.engine_exit_code
                first = str(e)
                _err(first)
            continue
        if out is not None:
            print(out, flush=True)
    return failed


def _targets(eng: Engine, opts: Parsed, *, all_flag: str = "all") -> list[str]:
    cidfiles = opts.texts("cidfile")
    if cidfiles:  # `stop`/`rm --cidfile FILE`: the containers whose IDs the files hold
        if opts.args or opts.flag("latest"):
            raise InvalidArgument("no arguments are needed with --latest or --cidfile")
        return [read_id_file(path, "CIDFile") for path in cidfiles]
    if opts.flag(all_flag):
        return [c.id for c in eng.containers()]
    if opts.flag("latest"):
        return [eng.latest().id]
    if not opts.args:
        raise InvalidArgument("you must provide at least one name or id")
    return list(opts.args)


# --- start / stop / kill / restart / rm -----------------------------------------------------
def cmd_start(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    if opts.texts("filter"):
        from pypod.cli.engine.container_filters import matcher

        match = matcher(eng, _filters(opts))
        pool = [eng.lookup(n) for n in opts.args] if opts.args else eng.containers()
        names = [c.id for c in pool if match(c)]
    else:
        names = _targets(eng, opts)
    if opts.flag("attach") or opts.flag("interactive"):
        if len(names) != 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        c = eng.lookup(names[0])
        from pypod.cli.engine.run import foreground

        with _start_failure(c.id, quoted=False):
            return foreground(eng, c, stdin=opts.flag("interactive"),
                               sig_proxy=opts.values.get("sig-proxy") is not False)  # fmt: skip

    def start(name: str) -> str:
        c = eng.lookup(name)
        with _start_failure(c.id, quoted=True):
            eng.start(c.id)
        return name

    return _each(names, start)


@contextmanager
def _start_failure(cid: str, *, quoted: bool) -> Iterator[None]:
    """podman's `start`: a process that cannot be run is the engine's error (125), not 126/127
    as with `run`, and says which container."""
    from pypod.errors import CannotInvoke, CommandNotFound, RuntimeError_

    try:
        yield
    except (CannotInvoke, CommandNotFound, RuntimeError_) as e:
        shown = f'"{cid}"' if quoted else cid
        raise RuntimeError_(f"unable to start container {shown}: {e}") from e


def cmd_stop(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    timeout = opts.number("time", -1) if opts.text("time") is not None else None
    names = _targets(eng, opts)
    if opts.flag("all"):
        names = [c.id for c in eng.containers() if c.status in ("running", "paused", "created")]

    def stop(name: str) -> str | None:
        try:
            eng.stop(name, timeout=timeout)
        except ContainerNotFound:
            if opts.flag("ignore"):
                return None
            raise
        return name

    return _each(names, stop)


def cmd_kill(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    sig = _parse_signal(opts.text("signal") or "KILL")
    names = _targets(eng, opts)
    if opts.flag("all"):
        names = [c.id for c in eng.containers() if c.status == "running"]

    def kill(name: str) -> str:
        eng.kill(name, sig)
        return name

    return _each(names, kill)


def cmd_restart(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    timeout = opts.number("time", -1) if opts.text("time") is not None else None
    names = _targets(eng, opts)
    if opts.flag("running"):
        names = [c.id for c in eng.containers() if c.status == "running"]

    def restart(name: str) -> str:
        c = eng.stop(name, timeout=timeout)
        eng.start(c.id)
        return c.id

    return _each(names, restart)


def cmd_rm(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    timeout = opts.number("time", -1) if opts.text("time") is not None else None
    if opts.flag("all"):  # newest first: a container's dependents are newer than it
        names = [c.id for c in sorted(eng.containers(), key=lambda c: -c.created)]
    else:
        names = _targets(eng, opts)
    ignore = opts.flag("ignore")

    def rm(name: str) -> str | None:
        try:
            cid = eng.remove(name, force=opts.flag("force"), volumes=opts.flag("volumes"),
                             timeout=timeout)  # fmt: skip
            return cid if opts.flag("all") else name
        except ContainerNotFound:
            if ignore:
                return None
            raise

    if opts.flag("depend"):
        names = [*_dependents(eng, names), *names]
    return _rm_exit_code(names, rm)


def _rm_exit_code(names: Sequence[str], action: Callable[[str], str | None]) -> int:
    """`_each` with podman rm's exit codes: 1 when a container did not exist (this wins), 2
    when one is running or paused, else 125."""
    from pypod.errors import InvalidState

    code = 0
    for name in names:
        try:
            out = action(name)
        except PypodError as e:
            _err(str(e))
            if code == 1:
                continue
            if isinstance(e, ContainerNotFound):
                code = 1
            elif isinstance(e, InvalidState):
                code = 2
            elif not code:
                code = EXIT_ENGINE_ERROR
            continue
        if out is not None:
            print(out, flush=True)
    return code


def _dependents(eng: Engine, names: Sequence[str]) -> list[str]:
    """Containers that share a namespace with or take volumes from one of `names`."""
    ids = {eng.lookup(n).id for n in names}
    out = []
    for c in eng.containers():
        refs = (c.config.uts, c.config.ipc, c.config.pid, c.config.network,
                *c.config.volumes_from, *c.config.requires)  # fmt: skip
        if c.id not in ids and any(any(i in r for i in ids) for r in refs if r):
            out.append(c.id)
    return out


def cmd_wait(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    conditions = tuple(opts.texts("condition")) or ("stopped",)
    interval = _duration(opts.text("interval") or "250ms")

    def wait(name: str) -> str:
        return str(eng.wait(name, conditions=conditions, interval=interval))

    return _each(_targets(eng, opts), wait)


def _duration(text: str) -> float:
    import re

    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        if text.isdigit():
            return int(text) / 1000
        raise InvalidArgument(f'time: invalid duration "{text}"')
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def cmd_pause(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    names = _targets(eng, opts)
    if opts.flag("all"):
        names = [c.id for c in eng.containers() if c.status == "running"]
    return _each(names, lambda n: (eng.pause(n), n)[1])


def cmd_unpause(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    names = _targets(eng, opts)
    if opts.flag("all"):
        names = [c.id for c in eng.containers() if c.status == "paused"]
    return _each(names, lambda n: (eng.unpause(n), n)[1])


def cmd_rename(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 2:
        raise InvalidArgument(f"accepts 2 arg(s), received {len(opts.args)}")
    engine(g).rename(opts.args[0], opts.args[1])
    return 0


def cmd_init(g: Globals, opts: Parsed) -> int:
    eng = engine(g)

    def init(name: str) -> str:
        c = eng.lookup(name)
        pending = eng.init(c.id)
        pending.release()
        return name

    return _each(_targets(eng, opts), init)


def cmd_exists(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    try:
        engine(g).lookup(opts.args[0])
    except ContainerNotFound:
        return 1
    return 0


def cmd_cleanup(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    for name in opts.args:
        eng.cleanup(name, remove=True if opts.flag("rm") else None)
    return 0


def cmd_prune(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    if not opts.flag("force") and sys.stdin.isatty():
        sys.stdout.write(
            "WARNING! This will remove all non running containers.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    from pypod.cli.engine.container_filters import matcher

    match = matcher(eng, _filters(opts), prune=True)
    for c in eng.containers():
        if c.status in ("exited", "configured") and match(c):
            try:
                print(eng.remove(c.id))
            except PypodError as e:
                _err(str(e))
    return 0


# --- ps (container_ps.py) -------------------------------------------------------------------
def _filters(opts: Parsed) -> dict[str, list[str]]:
    from pypod.cli.engine import container_filters

    return container_filters.parse(opts.texts("filter"))


def cmd_ps(g: Globals, opts: Parsed) -> int:
    from pypod.cli.engine.container_ps import cmd_ps as ps

    return ps(g, opts)


_ALL = _f("all", "a", help="act on all containers")
_LATEST = _f("latest", "l", help="act on the latest container pypod knows of")
_TIME = _f("time", "t", value=True, help="seconds to wait before killing the container")

COMMANDS: dict[str, Command] = {
    "start": _cmd(
        cmd_start,
        (
            _f("attach", "a", help="attach the container's STDOUT and STDERR"),
            _f("interactive", "i", help="keep STDIN open even if not attached"),
            _f("detach-keys", value=True, help="key sequence for detaching a container"),
            _f("sig-proxy", value=False, help="proxy received signals to the process"),
            _f("all", help="start all containers regardless of their state or configuration"),
            _f(
                "filter",
                "f",
                value=True,
                multiple=True,
                help="filter output based on conditions given",
            ),
            _LATEST,
        ),
        "Start one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "stop": _cmd(
        cmd_stop,
        (
            _ALL,
            _LATEST,
            _TIME,
            _f("ignore", "i", help="ignore errors when a container is missing"),
            _f("cidfile", value=True, multiple=True, help="read the container ID from the file"),
        ),
        "Stop one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "kill": _cmd(
        cmd_kill,
        (_ALL, _LATEST, _f("signal", "s", value=True, help="signal to send to the container")),
        "Kill one or more running containers with a specific signal",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "restart": _cmd(
        cmd_restart,
        (_ALL, _LATEST, _TIME, _f("running", help="restart only running containers")),
        "Restart one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "rm": _cmd(
        cmd_rm,
        (
            _ALL,
            _LATEST,
            _TIME,
            _f("force", "f", help="force removal of a running or unusable container"),
            _f("volumes", "v", help="remove anonymous volumes associated with the container"),
            _f("ignore", "i", help="ignore errors when a specified container is missing"),
            _f("depend", help="remove container and all containers that depend on it"),
            _f("cidfile", value=True, multiple=True, help="read the container ID from the file"),
        ),
        "Remove one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "ps": _cmd(
        cmd_ps,
        (
            _ALL,
            _LATEST,
            _f("quiet", "q", help="print the numeric IDs of the containers only"),
            _f("last", "n", value=True, help="print the n last created containers (all states)"),
            _f("no-trunc", help="display the extended information"),
            _f("size", "s", help="display the total file sizes"),
            _f("filter", "f", value=True, multiple=True, help="filter output based on conditions"),
            _f("format", value=True, help="pretty-print containers to JSON or using a Go template"),
            _f("sort", value=True, help="sort output by: command, created, id, image, names..."),
            _f("external", help="show containers in storage not controlled by pypod"),
            _f("ns", help="display namespace information"),
            _f("pod", "p", help="print the ID and name of the pod the containers are in"),
            _f("sync", help="sync container state with the OCI runtime"),
            _f("watch", "w", value=True, help="watch the ps output on an interval in seconds"),
        ),
        "List containers",
        "[options]",
    ),  # fmt: skip
    "wait": _cmd(
        cmd_wait,
        (
            _LATEST,
            _f("condition", value=True, multiple=True, help="condition to wait on"),
            _f("interval", "i", value=True, help="time interval to wait before polling"),
            _f("ignore", help="ignore if a container does not exist"),
        ),
        "Block on one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "pause": _cmd(
        cmd_pause,
        (_ALL, _LATEST),
        "Pause all the processes in one or more " "containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "unpause": _cmd(
        cmd_unpause,
        (_ALL, _LATEST),
        "Unpause the processes in one or more " "containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "rename": _cmd(cmd_rename, (), "Rename an existing container", "CONTAINER NAME"),
    "container init": _cmd(
        cmd_init,
        (_ALL, _LATEST),
        "Initialize one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "container exists": _cmd(
        cmd_exists,
        (_f("external", help="check external containers"),),
        "Check if a container exists in local storage",
        "CONTAINER",
    ),  # fmt: skip
    "container cleanup": _cmd(
        cmd_cleanup,
        (
            _f("rm", help="after cleanup, remove the container entirely"),
            _ALL,
            _LATEST,
            _f("exec", value=True, help="clean up the given exec session"),
            _f("rmi", help="after cleanup, remove the image entirely"),
        ),
        "Clean up network and mountpoints of one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "container prune": _cmd(
        cmd_prune,
        (
            _f("force", "f", help="do not prompt for confirmation"),
            _f("filter", value=True, multiple=True, help="provide filter values (e.g. 'label=X')"),
        ),
        "Remove all non running containers",
        "[options]",
    ),  # fmt: skip
}
for _name in ("start", "stop", "kill", "restart", "rm", "ps", "wait", "pause",
              "unpause", "rename"):  # fmt: skip
    COMMANDS[f"container {_name}"] = COMMANDS[_name]
COMMANDS["container list"] = COMMANDS["container ls"] = COMMANDS["ps"]
COMMANDS["init"] = COMMANDS["container init"]
COMMANDS["container remove"] = COMMANDS["rm"]
