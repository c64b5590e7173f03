"""pypod's container commands (podman 4.3's flags, output, messages and exit codes).

run, create, start, stop, kill, restart, rm, ps, wait, pause, unpause, rename, init,
container exists, container cleanup (the monitor's exit command), container prune.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pypod.cli.engine.formats import is_json, render_rows
from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.units import since
from pypod.cli.flags import Flag, Parsed
from pypod.cli.gotemplate import Struct
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
    if opts.flag(all_flag):
        return [c.id for c in eng.containers()]
    if opts.flag("latest"):
        return [eng.latest().id]
    if not opts.args:
        raise InvalidArgument("you must provide at least one name or id")
    return list(opts.args)


# --- run / create ---------------------------------------------------------------------------
def _resolve_image(g: Globals, eng: Engine, name: str, extras: Any) -> str:
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


def _image_name(eng: Engine, name: str, image_id: str) -> str:
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
    image_id = _resolve_image(g, eng, cfg.image, extras)
    cfg = replace(cfg, image_id=image_id, image=_image_name(eng, cfg.image, image_id))
    c = eng.create(cfg, replace_existing=bool(getattr(extras, "replace", False)))
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
    return _foreground(eng, c, stdin=c.config.stdin)


def _remove_quietly(eng: Engine, cid: str) -> None:
    try:
        eng.remove(cid, force=True, volumes=True, timeout=0)
    except PypodError:
        pass


def _foreground(eng: Engine, c: Container, *, stdin: bool) -> int:
    """Attach, start, stream until the container ends (or the user detaches); its exit code."""
    from pypod.engine import attach as protocol

    conn: list[Any] = []

    def attach(started: Container) -> None:
        conn.append(protocol.connect(eng.paths.rundir(started.id)))

    try:
        eng.start(c.id, before_start=attach)
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
    return _exit_code_after(eng, c)


def _exit_code_after(eng: Engine, c: Container) -> int:
    code = eng.wait(c.id)
    if c.config.remove:
        _remove_quietly(eng, c.id)
    else:
        eng.cleanup(c.id, remove=False)
    return code if code >= 0 else EXIT_ENGINE_ERROR


# --- start / stop / kill / restart / rm -----------------------------------------------------
def cmd_start(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    names = _targets(eng, opts)
    if opts.flag("attach") or opts.flag("interactive"):
        if len(names) != 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        c = eng.lookup(names[0])
        return _foreground(eng, c, stdin=opts.flag("interactive"))

    def start(name: str) -> str:
        eng.start(name)
        return name

    return _each(names, start)


def cmd_stop(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    timeout = opts.number("time", -1) if opts.text("time") is not None else None
    names = _targets(eng, opts)
    if opts.flag("all"):
        names = [c.id for c in eng.containers() if c.status in ("running", "paused", "created")]

    def stop(name: str) -> str:
        eng.stop(name, timeout=timeout)
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
    if opts.flag("all"):
        names = [c.id for c in eng.containers()]
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
    return _each(names, rm)


def _dependents(eng: Engine, names: Sequence[str]) -> list[str]:
    """Containers that share a namespace with or take volumes from one of `names`."""
    ids = {eng.lookup(n).id for n in names}
    out = []
    for c in eng.containers():
        refs = (c.config.uts, c.config.ipc, c.config.pid, *c.config.volumes_from)
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
        return c.id

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
    filters = _filters(opts)
    for c in eng.containers():
        if c.status in ("exited", "configured") and _match(eng, c, filters, prune=True):
            try:
                print(eng.remove(c.id))
            except PypodError as e:
                _err(str(e))
    return 0


# --- ps -------------------------------------------------------------------------------------
_PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedHuman": "CREATED",
    "Created": "CREATED", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
    "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "State": "STATE", "ImageID": "IMAGE ID",
    "Pid": "PID", "ExitCode": "EXIT CODE", "Networks": "NETWORKS", "Pod": "POD ID",
    "PodName": "PODNAME",
}  # fmt: skip
_PS_DEFAULT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Ports}}\t"
    "{{.Names}}"
)


def _filters(opts: Parsed) -> list[tuple[str, str]]:
    out = []
    for f in opts.texts("filter"):
        key, eq, value = f.partition("=")
        if not eq:
            raise InvalidArgument(f'invalid filter "{f}": use KEY=VALUE')
        out.append((key, value))
    return out


def _match(eng: Engine, c: Container, filters: list[tuple[str, str]], *, prune: bool = False
           ) -> bool:  # fmt: skip
    import re

    by_key: dict[str, list[str]] = {}
    for key, value in filters:
        by_key.setdefault(key, []).append(value)
    for key, values in by_key.items():
        if key == "name":
            ok = any(re.search(v, c.name) for v in values)
        elif key == "id":
            ok = any(c.id.startswith(v) for v in values)
        elif key == "status":
            for v in values:
                if v not in ("created", "running", "paused", "exited", "stopped", "unknown",
                             "stopping", "removing", "configured"):  # fmt: skip
                    raise InvalidArgument(f"{v} is not a valid status")
            ok = _shown_status(c) in values or (c.status == "exited" and "stopped" in values)
        elif key == "label":
            ok = all(_label_match(c.config.labels, v) for v in values)
        elif key == "label!":
            ok = not any(_label_match(c.config.labels, v) for v in values)
        elif key == "ancestor":
            ok = any(_ancestor(eng, c, v) for v in values)
        elif key == "exited":
            ok = c.status == "exited" and str(c.state.get("exit_code")) in values
        elif key == "until" and prune:
            ok = all(c.created < _until(v) for v in values)
        else:
            raise InvalidArgument(f"{key} is an invalid filter")
        if not ok:
            return False
    return True


def _until(value: str) -> float:
    try:
        return time.time() - _duration(value)
    except InvalidArgument:
        pass
    try:
        return float(value)
    except ValueError:
        raise InvalidArgument(f'invalid until filter "{value}"') from None


def _label_match(labels: dict[str, str], want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _ancestor(eng: Engine, c: Container, want: str) -> bool:
    if c.config.image_id.startswith(want) or c.config.image == want:
        return True
    from pypod.errors import ImageNotFound
    from pypod.image.local import find_image

    try:
        return find_image(eng.store, want).id == c.config.image_id
    except (ImageNotFound, InvalidArgument):
        return False


def _shown_status(c: Container) -> str:
    return "created" if c.status == "configured" else c.status


def _command(c: Container, image_cmd: Sequence[str] | None = None) -> list[str]:
    args = list(c.state.get("args") or ())
    if args:
        return args
    return list(c.config.entrypoint or ()) + list(c.config.command)


def _status_text(c: Container, now: float) -> str:
    s = c.status
    if s == "running":
        health = (c.state.get("health") or {}).get("status")
        up = f"Up {since(float(c.state.get('started_at', now)), now)}"
        return f"{up} ({health})" if health else up
    if s == "paused":
        return "Paused"
    if s == "exited":
        code = c.state.get("exit_code")
        return f"Exited ({code}) {since(float(c.state.get('finished_at', now)), now)}"
    if s == "stopping":
        return "Stopping"
    return "Created"


def _ps_struct(c: Container, now: float, *, no_trunc: bool, size: dict[str, int] | None) -> Struct:
    cmd = " ".join(_command(c))
    if not no_trunc and len(cmd) > 20:
        cmd = cmd[:17] + "..."
    started = float(c.state.get("started_at", 0))
    finished = float(c.state.get("finished_at", 0))
    return Struct(
        ID=c.id if no_trunc else c.id[:12],
        Id=c.id,
        Image=c.config.image,
        ImageID=c.config.image_id,
        Command=cmd,
        CreatedHuman=since(c.created, now),
        RunningFor=since(c.created, now),
        Created=int(c.created),
        CreatedAt=time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(c.created)),
        Status=_status_text(c, now),
        State=_shown_status(c),
        Ports="",
        Names=c.name,
        Labels=dict(c.config.labels) or None,
        Mounts=[m.destination for m in c.config.mounts],
        Pid=int(c.state.get("pid", 0)) if c.status in ("running", "paused") else 0,
        ExitCode=int(c.state.get("exit_code") or 0),
        Exited=c.status == "exited",
        ExitedAt=int(finished) if finished else -62135596800,
        StartedAt=int(started) if started else -62135596800,
        AutoRemove=c.config.remove,
        Networks=[],
        Pod="",
        PodName="",
        Size=size,
        IsInfra=False,
    )


def _ps_json(s: Struct, c: Container) -> dict[str, Any]:
    return {
        "AutoRemove": s["AutoRemove"],
        "Command": _command(c),
        "CreatedAt": s["CreatedHuman"],
        "Exited": s["Exited"],
        "ExitedAt": s["ExitedAt"],
        "ExitCode": s["ExitCode"],
        "Id": c.id,
        "Image": s["Image"],
        "ImageID": c.config.image_id,
        "IsInfra": False,
        "Labels": s["Labels"],
        "Mounts": s["Mounts"],
        "Names": [c.name],
        "Namespaces": {},
        "Networks": [],
        "Pid": s["Pid"],
        "Pod": "",
        "PodName": "",
        "Ports": None,
        "Size": s["Size"],
        "StartedAt": s["StartedAt"],
        "State": s["State"],
        "Status": s["Status"],
        "Created": s["Created"],
    }


def cmd_ps(g: Globals, opts: Parsed) -> int:
    eng = engine(g)
    found = eng.containers()
    if not opts.flag("all") and not opts.flag("latest") and opts.text("last") is None:
        found = [c for c in found if c.status in ("running", "paused", "stopping")]
    if opts.texts("filter"):
        filters = _filters(opts)
        found = [c for c in found if _match(eng, c, filters)]
    found.sort(key=lambda c: c.created, reverse=True)
    if opts.flag("latest"):
        found = found[:1]
    last = opts.number("last", -1)
    if last >= 0:
        found = found[:last]
    found.sort(key=lambda c: c.created)
    now = time.time()
    sizes = {c.id: _size(eng, c) for c in found} if opts.flag("size") else {}
    structs = [
        _ps_struct(c, now, no_trunc=opts.flag("no-trunc"), size=sizes.get(c.id)) for c in found
    ]
    fmt = opts.text("format")
    if opts.flag("quiet"):
        fmt = "{{.ID}}"
    if is_json(fmt):
        print(json.dumps([_ps_json(s, c) for s, c in zip(structs, found, strict=True)],
                         indent=4))  # fmt: skip
        return 0
    if fmt is None:
        fmt = _PS_DEFAULT
        if opts.flag("size"):
            fmt += "\t{{.Size}}"
            for s in structs:
                s["Size"] = _size_text(s["Size"])
    sys.stdout.write(render_rows(fmt, structs, _PS_HEADERS))
    return 0


def _size(eng: Engine, c: Container) -> dict[str, int]:
    from pypod.image.local import image_size

    rw = 0
    try:
        storage = eng.store.container(c.id)
        rw = eng.store.layer_size(storage.layer_id) if hasattr(eng.store, "layer_size") else 0
        root = image_size(eng.store, eng.store.image(c.config.image_id))
    except PypodError:
        root = 0
    return {"RwSize": rw, "RootFsSize": root + rw}


def _size_text(size: dict[str, int] | None) -> str:
    from pypod.cli.engine.units import human_size

    if not size:
        return ""
    return f"{human_size(size['RwSize'])} (virtual {human_size(size['RootFsSize'])})"


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
            _ALL,
            _LATEST,
        ),
        "Start one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "stop": _cmd(
        cmd_stop,
        (_ALL, _LATEST, _TIME, _f("ignore", "i", help="ignore errors when a container is missing")),
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
