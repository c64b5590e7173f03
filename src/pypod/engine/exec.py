"""Exec sessions: a process started in a running container, monitored like the container.

`pypod exec` builds the process from the container's own (config.json: env, user, caps,
cwd) with exec's settings on top, records a session row, spawns a monitor for it (attach
socket, exit file) and, in the foreground, attaches and returns the process's exit code.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
from typing import Any

from pypod.engine.containers import Engine
from pypod.engine.state import Container, read_exit_file
from pypod.errors import InvalidState, PypodError
from pypod.record import record

#: every capability the kernel knows (`--privileged`)
_ALL_CAPS_FROM = "/proc/sys/kernel/cap_last_cap"


@record
class ExecOptions:
    command: tuple[str, ...]
    tty: bool = False
    stdin: bool = False
    detach: bool = False
    #: "K=V", or "K" (the value from our own environment)
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    privileged: bool = False
    detach_keys: str | None = None
    #: where the output goes instead of our stdout/stderr (health checks capture it)
    output_fd: int | None = None
    #: seconds; then the process is killed (health checks' --health-timeout)
    timeout: float | None = None
    #: (rows, columns) of the caller's terminal, set on the session's terminal from the start
    console_size: tuple[int, int] | None = None


@record
class ExecResult:
    session_id: str
    exit_code: int


def exec_process(eng: Engine, c: Container, opts: ExecOptions) -> dict[str, Any]:
    """The runtime-spec process of the session."""
    with open(os.path.join(eng.paths.userdata(c.id), "config.json"), "rb") as f:
        spec = json.load(f)
    proc: dict[str, Any] = copy.deepcopy(spec.get("process") or {})
    proc["args"] = list(opts.command)
    proc["terminal"] = opts.tty
    proc.pop("consoleSize", None)
    if opts.tty and opts.console_size and min(opts.console_size) > 0:
        proc["consoleSize"] = {"height": opts.console_size[0], "width": opts.console_size[1]}
    env = {k: v for k, _, v in (e.partition("=") for e in proc.get("env", []))}
    for item in opts.env:
        key, eq, value = item.partition("=")
        if eq:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    if opts.tty:
        env.setdefault("TERM", "xterm")
    proc["env"] = [f"{k}={v}" for k, v in env.items()]
    if opts.workdir:
        proc["cwd"] = opts.workdir
    if opts.user:
        from pypod.runtime.users import lookup_user, read_etc_file

        root = spec["root"]["path"]
        found = lookup_user(opts.user, passwd=read_etc_file(root, "/etc/passwd"),
                            group=read_etc_file(root, "/etc/group"))  # fmt: skip
        proc["user"] = {"uid": found.uid, "gid": found.gid, "additionalGids": list(found.sgids)}
        env["HOME"] = found.home
        proc["env"] = [f"{k}={v}" for k, v in env.items()]
    if opts.privileged:
        caps = _all_caps()
        proc["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    return proc


def _all_caps() -> list[str]:
    from pypod.linux.capabilities import CAP_NAMES

    try:
        with open(_ALL_CAPS_FROM) as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = max(CAP_NAMES.values())
    return sorted(name for name, num in CAP_NAMES.items() if num <= last)


def run_exec(eng: Engine, c: Container, opts: ExecOptions) -> ExecResult:
    """Start the session; in the foreground attach to it and wait for its exit code."""
    if c.status != "running":
        raise InvalidState(
            "can only create exec sessions on running containers: container state improper"
        )
    from pypod.monitor.config import MonitorConfig
    from pypod.monitor.spawn import spawn

    sid = os.urandom(32).hex()
    rundir = os.path.join(eng.paths.rundir(c.id), "exec", sid)
    os.makedirs(rundir, mode=0o700)
    exit_file = os.path.join(rundir, "exit")
    process = exec_process(eng, c, opts)
    with eng.db.transaction():
        eng.db.execute(
            "INSERT INTO exec_sessions (id, container_id, state) VALUES (?, ?, ?)",
            (sid, c.id, eng.db.dumps({"status": "created", "command": list(opts.command)})),
        )
    try:
        pending = spawn(
            MonitorConfig(
                container_id=c.id,
                bundle=eng.paths.userdata(c.id),
                runtime=c.config.runtime,
                runtime_root=eng.paths.runtime_root(c.config.runtime),
                userdata=rundir,
                log_driver="none",
                log_path="",
                log_max_size=0,
                tty=opts.tty,
                stdin=opts.stdin,
                exit_file=exit_file,
                exec_process=process,
            )
        )
        if opts.detach:
            pending.start()
            _set(eng, sid, {"status": "running", "command": list(opts.command)})
            return ExecResult(session_id=sid, exit_code=0)
        from pypod.monitor import protocol

        sock = protocol.connect(rundir)
        pid = pending.start()
        timer = _killer(pid, opts.timeout)
        try:
            if opts.output_fd is None:
                protocol.stream(sock, stdin=opts.stdin, tty=opts.tty,
                                detach_keys=opts.detach_keys)  # fmt: skip
            else:
                sock.run(None, opts.output_fd, opts.output_fd, "", opts.tty)
            code = _wait_exit_file(exit_file, pending.monitor_pid)
        finally:
            if timer is not None:
                timer.cancel()
    except PypodError:
        _forget(eng, sid, rundir)
        raise
    _forget(eng, sid, rundir)
    return ExecResult(session_id=sid, exit_code=code)


def _killer(pid: int, timeout: float | None) -> Any:
    """A timer that SIGKILLs `pid` after `timeout` seconds (None: no timer)."""
    if timeout is None or timeout <= 0 or pid <= 0:
        return None
    import signal
    import threading

    def kill() -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    return timer


def _wait_exit_file(path: str, monitor_pid: int) -> int:
    import time

    from pypod.engine.state import UNKNOWN_EXIT_CODE, process_alive

    delay = 0.002
    while True:
        info = read_exit_file(path)
        if info is not None:
            return int(info.get("exit_code", UNKNOWN_EXIT_CODE))
        if not process_alive(monitor_pid, 0):
            info = read_exit_file(path)
            return int(info["exit_code"]) if info else UNKNOWN_EXIT_CODE
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _set(eng: Engine, sid: str, state: dict[str, Any]) -> None:
    with eng.db.transaction():
        eng.db.execute("UPDATE exec_sessions SET state = ? WHERE id = ?",
                       (eng.db.dumps(state), sid))  # fmt: skip


def _forget(eng: Engine, sid: str, rundir: str) -> None:
    with contextlib.suppress(PypodError), eng.db.transaction():
        eng.db.execute("DELETE FROM exec_sessions WHERE id = ?", (sid,))
    shutil.rmtree(rundir, ignore_errors=True)
