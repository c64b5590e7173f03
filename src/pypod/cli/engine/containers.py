"""pypod's container commands (podman 4.3's flags, output, messages and exit codes).

run, create, start, stop, kill, restart, rm, ps, wait, pause, unpause, rename, init,
container exists, container cleanup (the monitor's exit command), container prune.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pypod.cli.common import read_id_file
from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.engine.containers import Engine
from pypod.errors import (
    EXIT_ENGINE_ERROR,
    ContainerNotFound,
    InvalidArgument,
    PypodError,
)

if TYPE_CHECKING:
    from pypod.engine.config import ContainerConfig
    from pypod.engine.state import Container


def engine(g: Globals) -> Engine:
    return Engine(g.graphroot, g.runroot, driver=g.driver)


def _err(message: str) -> None:
    sys.stderr.write(f"Error: {message}\n")


def _parse_signal(value: str) -> int:
    import signal as signal_mod

    text = value.upper().removeprefix("SIG")
    if text.isdigit():
        num = int(text)
        if 0 < num < 65:
            return num
    else:
        try:
            return int(signal_mod.Signals[f"SIG{text}"])
        except KeyError:
            pass
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


# --- run / create ---------------------------------------------------------------------------
def resolve_image(g: Globals, eng: Engine, name: str, extras: Any) -> str:
    from pypod.errors import ImageNotFound
    from pypod.image.local import find_image

    policy = getattr(extras, "pull", "missing") or "missing"
    if policy not in ("always", "missing", "never", "newer"):
        raise InvalidArgument(
            f'invalid pull policy "{policy}": use always, missing, never or newer'
        )
    if policy != "always":
        try:
            return find_image(eng.store, name).id
        except ImageNotFound:
            if policy == "never":
                raise ImageNotFound(
                    f"{name}: image not known: pull it or use --pull missing"
                ) from None
    from pypod.image import transfer
    from pypod.image.transports.containers_storage import StoreLocation
    from pypod.image.types import SystemContext

    quiet = bool(getattr(extras, "quiet", False))
    ctx = SystemContext(
        tls_verify=getattr(extras, "tls_verify", None),
        authfile=getattr(extras, "authfile", None) or os.environ.get("REGISTRY_AUTH_FILE"),
        credentials=getattr(extras, "creds", None),
        tmpdir=g.tmpdir,
        environ=dict(os.environ),
    )

    def progress(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    opts = transfer.TransferOptions(
        store=StoreLocation(graphroot=g.graphroot, runroot=g.runroot, driver=g.driver),
        ctx=ctx,
        progress=None if quiet else progress,
    )
    return transfer.pull_image(name, opts)


def stored_image_name(eng: Engine, name: str, image_id: str) -> str:
    """The image's stored name `name` designates (podman shows "localhost/busybox:latest")."""
    from pypod.image.local import matching_name

    image = eng.store.image(image_id)
    found = matching_name(name, image)
    if found is None and not image_id.startswith(name.removeprefix("sha256:")):
        found = image.names[0] if image.names else None
    return found or name


def _help(command: str) -> int:
    from pypod.cli.engine.run_flags import flags_for
    from pypod.cli.flags import help_text

    what = "Run a command in a new container" if command == "run" else (
        "Create but do not start a container")  # fmt: skip
    print(f"{what}\n\nUsage:\n  pypod {command} [options] IMAGE [COMMAND [ARG...]]\n\n"
          f"Options:\n{help_text(flags_for(command))}")  # fmt: skip
    return 0


def _create(g: Globals, cfg: ContainerConfig, extras: Any) -> tuple[Engine, Container, Any]:
    from pypod.record import replace

    eng = engine(g)
    image_id = resolve_image(g, eng, cfg.image, extras)
    cfg = replace(cfg, image_id=image_id, image=stored_image_name(eng, cfg.image, image_id))
    c = eng.create(cfg, replace_existing=bool(getattr(extras, "replace", False)),
                   create_command=(os.path.basename(sys.argv[0]), *sys.argv[1:]))  # fmt: skip
    cidfile = getattr(extras, "cidfile", None)
    if cidfile:
        from pypod.atomic import write_atomic

        if os.path.exists(cidfile):
            raise InvalidArgument(f"container id file exists: {cidfile}: remove it first")
        write_atomic(cidfile, c.id.encode())
    return eng, c, extras


def cmd_create(g: Globals, opts: Parsed) -> int:
    from pypod.cli.engine.run_flags import parse_run

    cfg, extras = parse_run(opts.args, command="create")
    if extras.help:
        return _help("create")
    eng, c, _ = _create(g, cfg, extras)
    print(c.id)
    return 0


def cmd_run(g: Globals, opts: Parsed) -> int:
    from pypod.cli.engine.run_flags import parse_run

    cfg, extras = parse_run(opts.args, command="run")
    if extras.help:
        return _help("run")
    eng, c, extras = _create(g, cfg, extras)
    if getattr(extras, "detach", False):
        try:
            eng.start(c.id)
        except PypodError:
            if c.config.remove:
                _remove_quietly(eng, c.id)
            raise
        print(c.id)
        return 0
    return _foreground(eng, c, stdin=c.config.stdin, sig_proxy=getattr(extras, "sig_proxy", True))


def _remove_quietly(eng: Engine, cid: str) -> bool:
    """Remove the container; whether that worked (a failure is not reported: podman's)."""
    try:
        eng.remove(cid, force=True, volumes=True, timeout=0)
    except PypodError:
        return False
    return True


def _foreground(eng: Engine, c: Container, *, stdin: bool, sig_proxy: bool = True) -> int:
    """Attach, start, stream until the container ends (or the user detaches); its exit code.
    With `sig_proxy`, the signals pypod gets meanwhile go to the container (podman's)."""
    from pypod.engine import attach as protocol

    conn: list[Any] = []
    with contextlib.ExitStack() as stack:

        def attach(created: Container) -> None:
            conn.append(protocol.connect(eng.paths.rundir(created.id)))
            if created.config.remove:
                # we remove it once it exits: the monitor need not start `container cleanup`
                # too (it does if we go away first, or say nothing: see _exit_code_after)
                conn[0].claim_cleanup()
            # from now on (the process exists, it has not started): signals go to it
            stack.enter_context(proxy_signals(created if sig_proxy else None))
            with eng.db.transaction():
                eng.container_event(created, "attach")

        try:
            eng.start(
                c.id, before_start=attach, console_size=_terminal_size() if c.config.tty else None
            )
        except PypodError:
            for sock in conn:
                sock.close()
            if c.config.remove:
                _remove_quietly(eng, c.id)
            raise
        detached = protocol.stream(
            conn[0], stdin=stdin, tty=c.config.tty, detach_keys=c.config.detach_keys
        )
        if detached:
            return 0
        try:
            return _exit_code_after(eng, c, conn[0])
        finally:
            conn[0].close()


#: what podman's --sig-proxy forwards (not SIGCHLD, SIGPIPE, SIGURG, SIGWINCH, nor the ones
#: that stop or continue pypod itself)
_PROXIED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGALRM")


@contextlib.contextmanager
def proxy_signals(c: Container | None) -> Iterator[None]:
    """While attached: the signals pypod receives are sent to the container's process (None:
    nothing is proxied)."""
    import signal

    from pypod.engine.state import process_alive

    pid = int(c.state.get("pid", 0)) if c is not None else 0
    start = int(c.state.get("pid_start", 0)) if c is not None else 0
    if pid <= 0 or not _in_main_thread():
        yield
        return

    def forward(sig: int, _frame: object) -> None:
        if process_alive(pid, start):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    saved = {}
    for name in _PROXIED:
        num = getattr(signal, name)
        if signal.getsignal(num) is signal.SIG_IGN:
            continue  # ignored by whoever started us (a shell's `&`): as podman, keep it so
        saved[num] = signal.signal(num, forward)
    try:
        yield
    finally:
        for num, old in saved.items():
            signal.signal(num, old)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of the terminal on our stdin, if there is one."""
    try:
        size = os.get_terminal_size(0)
    except OSError:
        return None
    return size.lines, size.columns


def _exit_code_after(eng: Engine, c: Container, conn: Any = None) -> int:
    """The exit code once the container ended, after its cleanup (`--rm`: its removal; then
    `conn`, the attach connection that claimed that cleanup, tells the monitor it is done)."""
    code = eng.wait(c.id)
    if c.config.remove:
        if _remove_quietly(eng, c.id) and conn is not None:
            conn.cleanup_done()
    else:
        eng.cleanup(c.id, remove=False)
    return code if code >= 0 else EXIT_ENGINE_ERROR


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
        with _start_failure(c.id, quoted=False):
            return _foreground(eng, c, stdin=opts.flag("interactive"),
                               sig_proxy=opts.values.get("sig-proxy") is not False)  # fmt: skip

    def start(name: str) -> str:
        c = eng.lookup(name)
        with _start_failure(c.id, quoted=True):
            eng.start(c.id)
        return name

    return _each(names, start)


@contextlib.contextmanager
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


def _f(*names: str, value: bool = False, multiple: bool = False, help: str = "") -> Flag:
    return Flag(names, value, multiple, help)


def _cmd(handler: Any, flags: tuple[Flag, ...], help: str, usage: str, *, raw: bool = False
         ) -> Command:  # fmt: skip
    return Command(handler=handler, flags=flags, help=help, usage=usage, raw=raw)


_ALL = _f("all", "a", help="act on all containers")
_LATEST = _f("latest", "l", help="act on the latest container pypod knows of")
_TIME = _f("time", "t", value=True, help="seconds to wait before killing the container")
_RAW = (Flag(("help", "h")),)

COMMANDS: dict[str, Command] = {
    "run": _cmd(
        cmd_run,
        _RAW,
        "Run a command in a new container",
        "[options] IMAGE [COMMAND [ARG...]]",
        raw=True,
    ),  # fmt: skip
    "create": _cmd(
        cmd_create,
        _RAW,
        "Create but do not start a container",
        "[options] IMAGE [COMMAND [ARG...]]",
        raw=True,
    ),  # fmt: skip
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
for _name in ("run", "create", "start", "stop", "kill", "restart", "rm", "ps", "wait", "pause",
              "unpause", "rename"):  # fmt: skip
    COMMANDS[f"container {_name}"] = COMMANDS[_name]
COMMANDS["container list"] = COMMANDS["container ls"] = COMMANDS["ps"]
COMMANDS["init"] = COMMANDS["container init"]
COMMANDS["container remove"] = COMMANDS["rm"]
