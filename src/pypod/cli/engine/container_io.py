"""pypod's commands that talk to a container's streams: logs, attach, exec."""

from __future__ import annotations

import sys

from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.run import _terminal_size, proxy_signals
from pypod.cli.engine.shared import _cmd, _err, _f, engine
from pypod.cli.flags import Parsed
from pypod.errors import InvalidArgument, InvalidState, PypodError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pypod.engine.containers import Engine
    from pypod.engine.logs import LogEntry


def _write(entry: LogEntry, *, timestamps: bool, prefix: str) -> None:
    out = sys.stderr.buffer if entry.stream == "stderr" else sys.stdout.buffer
    stamp = b""
    if timestamps:
        from pypod.engine.logs import parse_timestamp

        t = parse_timestamp(entry.timestamp)
        frac = entry.timestamp.partition(".")[2][:9].split("+")[0].split("-")[0].split("Z")[0]
        import time

        stamp = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + (f".{frac}" if frac else "")
                 + "Z ").encode()  # fmt: skip
    out.write(prefix.encode() + stamp + entry.text + (b"\n" if entry.full else b""))
    out.flush()


def cmd_logs(g: Globals, opts: Parsed) -> int:
    from pypod.engine import logs

    eng = engine(g)
    if opts.flag("latest"):
        found = [eng.latest()]
    else:
        if not opts.args:
            raise InvalidArgument("requires at least 1 arg(s), only received 0")
        found = [eng.lookup(n) for n in opts.args]
    since_text, until_text = opts.text("since"), opts.text("until")
    since = logs.parse_time_arg(since_text) if since_text else None
    until = logs.parse_time_arg(until_text) if until_text else None
    tail = opts.number("tail", -1)
    timestamps = opts.flag("timestamps")
    several = len(found) > 1
    for c in found:
        if c.config.log_driver == "none":
            raise InvalidArgument(
                "this container is using the 'none' log driver, cannot read logs: this "
                "container is not logging output"
            )
    sources: list[tuple[str, str, Callable[[], bool], int]] = []
    for c in found:
        path = eng.paths.log_path(c.id)
        prefix = f"{c.id[:12]} " if several else ""
        entries, end = logs.read_log(path, since=since, until=until, tail=tail)
        for entry in entries:
            _write(entry, timestamps=timestamps, prefix=prefix)

        sources.append((prefix, path, _running_check(eng, c.id), end))
    if opts.flag("follow"):
        for prefix, entry in logs.follow_many(sources):
            if until is not None and entry.time > until:
                continue
            _write(entry, timestamps=timestamps, prefix=prefix)
    return 0


def _running(eng: Engine, cid: str) -> bool:
    return eng.lookup(cid).status in ("created", "running", "paused", "stopping")


def _running_check(eng: Engine, cid: str) -> Callable[[], bool]:
    """`_running` of this container, asked later."""
    return lambda: _running(eng, cid)


def cmd_attach(g: Globals, opts: Parsed) -> int:
    from pypod.engine import attach as protocol

    eng = engine(g)
    if opts.flag("latest"):
        c = eng.latest()
    else:
        if len(opts.args) != 1:
            raise InvalidArgument("attach requires the name or id of one running container")
        c = eng.lookup(opts.args[0])
    if c.status != "running":
        raise InvalidArgument("you can only attach to running containers: container state improper")
    keys = opts.text("detach-keys")
    sock = protocol.connect(eng.paths.rundir(c.id))
    proxied = c if opts.values.get("sig-proxy") not in ("false", False) else None
    with proxy_signals(proxied):
        with eng.db.transaction():
            eng.container_event(c, "attach")
        detached = protocol.stream(
            sock,
            stdin=not opts.flag("no-stdin") and c.config.stdin,
            tty=c.config.tty,
            detach_keys=keys if keys is not None else c.config.detach_keys,
        )
        if detached:
            return 0
        code = eng.wait(c.id)
    return code if code >= 0 else 125


def cmd_exec(g: Globals, opts: Parsed) -> int:
    from pypod.engine.exec import ExecOptions, run_exec

    args = list(opts.args)
    flags = _parse_exec(args)
    eng = engine(g)
    if flags["latest"]:
        c = eng.latest()
        command = flags["rest"]
    else:
        if not flags["rest"]:
            raise InvalidArgument(
                "exec requires the name or ID of a container or the --latest flag"
            )
        c = eng.lookup(flags["rest"][0])
        command = flags["rest"][1:]
    if not command:
        raise InvalidArgument("must provide a non-empty command to start an exec session")
    options = ExecOptions(
        command=tuple(command),
        tty=flags["tty"],
        stdin=flags["interactive"],
        detach=flags["detach"],
        env=tuple(flags["env"]),
        user=flags["user"],
        workdir=flags["workdir"],
        privileged=flags["privileged"],
        detach_keys=flags["detach_keys"],
        console_size=_terminal_size() if flags["tty"] else None,
    )
    try:
        result = run_exec(eng, c, options)
    except InvalidState as e:
        # podman 4.3: the session's exit code is -1 when it could not be made (255)
        _err(str(e))
        return 255
    except PypodError as e:
        _err(str(e))
        return e.engine_exit_code
    if flags["detach"]:
        print(result.session_id)
        return 0
    return result.exit_code


def _parse_exec(args: list[str]) -> dict[str, Any]:
    """exec's flags stop at the container name, as podman's."""
    from pypod.cli.flags import Flag, parse

    flags = (
        Flag(("detach", "d")), Flag(("interactive", "i")), Flag(("tty", "t")),
        Flag(("env", "e"), True, True), Flag(("env-file",), True, True),
        Flag(("user", "u"), True), Flag(("workdir", "w"), True), Flag(("privileged",)),
        Flag(("detach-keys",), True), Flag(("latest", "l")), Flag(("preserve-fds",), True),
    )  # fmt: skip
    p = parse(args, flags)
    env = list(p.texts("env"))
    for path in p.texts("env-file"):
        from pypod.cli.engine.run_flags import read_env_file

        env += [f"{k}={v}" for k, v in read_env_file(path).items()]
    return {
        "detach": p.flag("detach"), "interactive": p.flag("interactive"), "tty": p.flag("tty"),
        "env": env, "user": p.text("user"), "workdir": p.text("workdir"),
        "privileged": p.flag("privileged"), "detach_keys": p.text("detach-keys"),
        "latest": p.flag("latest"), "rest": p.args,
    }  # fmt: skip


def cmd_top(g: Globals, opts: Parsed) -> int:
    from pypod.cli.flags import parse
    from pypod.cli.output import tabwrite
    from pypod.engine.processes import DEFAULT_DESCRIPTORS, UnknownDescriptor, ps_in_container, top

    # flags stop at the container (podman: SetInterspersed(false)): what follows are ps
    # descriptors or ps(1) options such as `-o pid,args`
    opts = parse(opts.args, (_LATEST,))
    eng = engine(g)
    args = list(opts.args)
    if opts.flag("latest"):
        c = eng.latest()
    else:
        if not args:
            raise InvalidArgument("you must provide the name or id of a running container")
        c = eng.lookup(args.pop(0))
    descriptors = tuple(d for a in args for d in a.split(",") if d) or DEFAULT_DESCRIPTORS
    try:
        rows = top(c, descriptors)
    except UnknownDescriptor:
        # as podman: not ps descriptors it knows, so ps(1) options for the container's own ps
        for line in ps_in_container(eng, c, tuple(args)):
            print(line)
        return 0
    sys.stdout.write(tabwrite(rows, minwidth=12, padding=2))
    return 0


def _size_si(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def cmd_stats(g: Globals, opts: Parsed) -> int:
    import json
    import time

    from pypod.cli.engine.formats import is_json, render_rows
    from pypod.cli.gotemplate import Struct
    from pypod.engine.processes import go_duration, stats

    eng = engine(g)
    if opts.flag("latest"):
        names = [eng.latest().id]
    elif opts.args:
        names = list(opts.args)
    else:
        names = [c.id for c in eng.containers() if c.status == "running"]
    found = [eng.lookup(n) for n in names]
    for c in found:
        if c.status not in ("running", "paused") and opts.args:
            raise InvalidArgument(f"container {c.name} is not running: container state improper")
    fmt = opts.text("format")
    stream = not opts.flag("no-stream")
    before: dict[str, dict[str, Any]] = {}
    interval = float(opts.number("interval", 5)) if opts.text("interval") else 5.0
    first = True
    while True:
        if not first:
            time.sleep(interval)
        first = False
        rows = []
        for c in found:
            now = stats(eng, c)
            prev = before.get(c.id)
            if prev is None:  # podman's first figure: the average since the container started
                cpu = float(now["AvgCPU"])
            else:
                dt = max(now["CPUSystemNano"] - prev["CPUSystemNano"], 1)
                cpu = 100.0 * (now["CPUNano"] - prev["CPUNano"]) / dt
            before[c.id] = now
            rows.append(Struct(
                ID=c.id[:12], Name=c.name, CPUPerc=f"{cpu:.2f}%",
                MemUsage=f"{_size_si(now['MemUsage'])} / {_size_si(now['MemLimit'])}",
                MemPerc=f"{now['MemPerc']:.2f}%", NetIO="0B / 0B", BlockIO="0B / 0B",
                PIDS=str(now["PIDs"]), CPU=go_duration(now["CPUNano"]),
                AVGCPU=f"{now['AvgCPU']:.2f}%", MemUsageBytes=str(now["MemUsage"]),
                UpTime=go_duration(int(now["UpTime"] * 1e9)),
            ))  # fmt: skip
        if is_json(fmt):
            keys = {"ID": "id", "Name": "name", "CPU": "cpu_time", "CPUPerc": "cpu_percent",
                    "AVGCPU": "avg_cpu", "MemUsage": "mem_usage", "MemPerc": "mem_percent",
                    "NetIO": "net_io", "BlockIO": "block_io", "PIDS": "pids"}  # fmt: skip
            sys.stdout.write(json.dumps([{v: r[k] for k, v in keys.items()} for r in rows],
                                        indent=1) + "\n")  # fmt: skip
        else:
            headers = {"ID": "ID", "Name": "NAME", "CPUPerc": "CPU %",
                       "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET IO",
                       "BlockIO": "BLOCK IO", "PIDS": "PIDS", "CPU": "CPU TIME",
                       "AVGCPU": "AVG CPU %"}  # fmt: skip
            template = fmt or ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t"
                               "{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDS}}\t{{.CPU}}\t"
                               "{{.AVGCPU}}")  # fmt: skip
            sys.stdout.write(render_rows(template, rows, headers))
        sys.stdout.flush()
        if not stream:
            return 0


_LATEST = _f("latest", "l", help="act on the latest container pypod knows of")

COMMANDS: dict[str, Command] = {
    "logs": _cmd(
        cmd_logs,
        (
            _LATEST,
            _f("follow", "f", help="follow log output"),
            _f("since", value=True, help="show logs since TIMESTAMP"),
            _f("until", value=True, help="show logs until TIMESTAMP"),
            _f(
                "tail",
                value=True,
                help="output the specified number of LINES at the end of the logs",
            ),
            _f("timestamps", "t", help="output the timestamps in the log"),
            _f("names", "n", help="output the container name in the log"),
        ),
        "Fetch the logs of one or more containers",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "attach": _cmd(
        cmd_attach,
        (
            _LATEST,
            _f("detach-keys", value=True, help="select the key sequence for detaching a container"),
            _f("no-stdin", help="do not attach STDIN"),
            _f("sig-proxy", help="proxy received signals to the process"),
        ),
        "Attach to a running container",
        "[options] CONTAINER",
    ),  # fmt: skip
    "exec": _cmd(
        cmd_exec,
        (),
        "Run a process in a running container",
        "[options] CONTAINER [COMMAND [ARG...]]",
        raw=True,
    ),  # fmt: skip
    "top": _cmd(
        cmd_top,
        (_LATEST,),
        "Display the running processes of a container",
        "[options] CONTAINER [FORMAT-DESCRIPTORS|ARGS...]",
        raw=True,
    ),  # fmt: skip
    "stats": _cmd(
        cmd_stats,
        (
            _LATEST,
            _f("all", "a", help="show all containers"),
            _f("no-stream", help="disable streaming stats and only pull the first result"),
            _f("no-reset", help="disable resetting the screen between intervals"),
            _f(
                "format", value=True, help="pretty-print container statistics to JSON or a template"
            ),
            _f("interval", "i", value=True, help="time in seconds between stats reports"),
        ),
        "Display a live stream of container resource usage statistics",
        "[options] [CONTAINER...]",
    ),  # fmt: skip
}
for _name in ("logs", "attach", "exec", "top", "stats"):
    COMMANDS[f"container {_name}"] = COMMANDS[_name]
