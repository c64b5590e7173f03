"""The OCI runtime protocol the engine and the monitor talk to, and its two implementations.

DESIGN: "runtime.Runtime: create, start, state, kill, delete, pause, resume, exec, features.
The engine talks only to this protocol, so `--runtime runc` and the in-process runtime behave
alike."

- `InProcessRuntime` ("pypod") calls `pypod.runtime.container.Runtime` in this process
  (imported on first use: `pypod ps` must not pay for it).
- `BinaryRuntime` runs runc, crun or any program speaking runc's command line, the way conmon
  does: `create --bundle B --pid-file P [--console-socket S] ID` with the caller's fds 0, 1, 2
  as the container's stdio, errors read from `--log FILE --log-format json`.

Both leave the container's init (and detached exec processes) as children of the caller *if*
the caller is a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`): the monitor is one.

Errors: the in-process runtime reports exec failures with structured exit codes (126, 127);
a binary only has its message, so it is classified as podman classifies it
(`getOCIRuntimeError` in libpod: "permission denied" -> cannot invoke, "executable file not
found" / "no such file or directory" -> not found; "does not exist" -> no such container).
"""

from __future__ import annotations

import os

from pypod import jsoncodec
from pypod.errors import (
    AlreadyExists,
    CannotInvoke,
    CommandNotFound,
    ContainerNotFound,
    InvalidArgument,
    InvalidState,
    NotFound,
    PypodError,
    RuntimeError_,
)
from pypod.record import record
from pypod.stdlite import contextmanager, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, Protocol

    from pypod.runtime.container import Runtime

__all__ = [
    "BinaryRuntime",
    "CreateResult",
    "InProcessRuntime",
    "open_runtime",
    "receive_console",
]

IN_PROCESS = "pypod"


@record(kw_only=False)
class CreateResult:
    """The container's (or exec process's) pid, and the pty master when it has a terminal."""

    pid: int
    console_fd: int | None = None


if TYPE_CHECKING:  # a type only: import it under TYPE_CHECKING too

    class OCIRuntime(Protocol):
        #: "pypod" for the in-process runtime, else the binary's path
        name: str
        #: the runtime's state root (`--root`)
        root: str

        def create(
            self,
            container_id: str,
            bundle: str,
            *,
            tty: bool,
            meanwhile: Callable[[], None] | None = None,
        ) -> CreateResult:
            """Create the container (its init waits for `start`); stdio: the caller's fds 0,
            1, 2.  `meanwhile()`: the caller's own work, done by the time this returns (the
            in-process runtime runs it while the init sets itself up); what it raises fails
            the create."""
            ...

        def start(self, container_id: str) -> None: ...

        def state(self, container_id: str) -> dict[str, Any]:
            """runc's `state` JSON (status: created, running, paused or stopped)."""
            ...

        def kill(self, container_id: str, sig: int, *, all_processes: bool = False) -> None: ...

        def delete(self, container_id: str, *, force: bool = False) -> None: ...

        def pause(self, container_id: str) -> None: ...

        def resume(self, container_id: str) -> None: ...

        def exec(self, container_id: str, process: dict[str, Any], *, tty: bool) -> CreateResult:
            """Start `process` (a runtime-spec process object) in the container, detached."""
            ...

        def update(self, container_id: str, resources: dict[str, Any]) -> None: ...

        def pids(self, container_id: str) -> list[int]: ...


def open_runtime(name: str, root: str) -> OCIRuntime:
    """ "pypod" -> the in-process runtime; "runc", "crun", another name on PATH or a path -> a
    binary runtime."""
    if name == IN_PROCESS:
        return InProcessRuntime(root)
    if "/" in name:
        path = os.path.abspath(name)
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise NotFound(
                f"OCI runtime {name}: no executable file at that path; install it or give "
                "another --runtime"
            )
        return BinaryRuntime(path, root)
    import shutil  # here: the in-process runtime (every `run`) needs none of it

    found = shutil.which(name)
    if found is None:
        raise NotFound(
            f"OCI runtime {name!r} not found in $PATH; install it (e.g. apt-get install "
            f"{name}) or give its path with --runtime"
        )
    return BinaryRuntime(found, root)


# --------------------------------------------------------------------------- in-process


class InProcessRuntime:
    """`pypod.runtime.container.Runtime`, behind the protocol."""

    name = IN_PROCESS

    def __init__(self, root: str) -> None:
        self.root = root
        self._rt: Runtime | None = None

    def _runtime(self) -> Runtime:
        if self._rt is None:
            from pypod.runtime.container import Runtime

            self._rt = Runtime(self.root)
        return self._rt

    def create(
        self,
        container_id: str,
        bundle: str,
        *,
        tty: bool,
        meanwhile: Callable[[], None] | None = None,
    ) -> CreateResult:
        from pypod.runtime.container import CreateOptions

        rt = self._runtime()
        # foreground: the runtime keeps the pty master for us instead of sending it to a socket
        opts = CreateOptions(bundle=bundle, foreground=tty, meanwhile=meanwhile)
        with _exec_errors():
            pid = rt.create(container_id, opts)
        console, rt._foreground_console = rt._foreground_console, None
        if tty and console is None:
            with suppress(PypodError, OSError):
                rt.delete(container_id, force=True)
            raise InvalidArgument(
                f"container {container_id}: a terminal was asked for but process.terminal is "
                f"false in {os.path.join(bundle, 'config.json')}"
            )
        return CreateResult(pid, console)

    def start(self, container_id: str) -> None:
        self._runtime().start(container_id)

    def state(self, container_id: str) -> dict[str, Any]:
        return self._runtime().state(container_id)

    def kill(self, container_id: str, sig: int, *, all_processes: bool = False) -> None:
        self._runtime().kill(container_id, sig, all_processes=all_processes)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self._runtime().delete(container_id, force=force)

    def pause(self, container_id: str) -> None:
        self._runtime().pause(container_id)

    def resume(self, container_id: str) -> None:
        self._runtime().resume(container_id)

    def exec(self, container_id: str, process: dict[str, Any], *, tty: bool) -> CreateResult:
        from pypod.oci.runtime_spec import parse_process
        from pypod.runtime.container import ExecOptions

        proc = parse_process({**process, "terminal": tty}, source="exec process")
        rt = self._runtime()
        with _Scratch() as scratch:
            listener = scratch.console_listener() if tty else None
            opts = ExecOptions(
                process=proc,
                detach=True,
                console_socket=scratch.console_path if tty else None,
                pid_file=scratch.pid_path,
            )
            with _exec_errors():
                rt.exec(container_id, opts)
            pid = scratch.read_pid()
            console = receive_console(listener, what="pypod exec") if listener else None
        return CreateResult(pid, console)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self._runtime().update(container_id, resources)

    def pids(self, container_id: str) -> list[int]:
        return self._runtime().pids(container_id)


@contextmanager
def _exec_errors() -> Iterator[None]:
    """The init's exec failures (exit codes 126/127) as CannotInvoke / CommandNotFound."""
    from pypod.runtime.process.sync import ChildError

    try:
        yield
    except ChildError as e:
        if e.exit_code == 127:
            raise CommandNotFound(str(e)) from e
        if e.exit_code == 126:
            raise CannotInvoke(str(e)) from e
        raise


# --------------------------------------------------------------------------- binary


class BinaryRuntime:
    """runc, crun or another program with runc's command line."""

    def __init__(self, path: str, root: str) -> None:
        self.name = path
        self.root = root

    @property
    def _label(self) -> str:
        return os.path.basename(self.name)

    def _argv(self, *args: str, log: str | None = None) -> list[str]:
        argv = [self.name, "--root", self.root]
        if log is not None:
            argv += ["--log", log, "--log-format", "json"]
        return [*argv, *args]

    def _call(
        self,
        verb: str,
        container_id: str,
        *args: str,
        after: tuple[str, ...] = (),
        input: bytes | None = None,
    ) -> str:
        """Run `<binary> --root ROOT VERB ARGS... ID AFTER...`; its stdout; errors: stderr's."""
        import subprocess
        import tempfile

        # files, not pipes: a hook (poststart, poststop) may leave a process holding them
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(
                self._argv(verb, *args, container_id, *after),
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                check=False,
            )
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise self._error(verb, container_id, _stderr_message(stderr), proc.returncode)
        return stdout

    def _error(self, verb: str, container_id: str, message: str, code: int) -> PypodError:
        text = f"{self._label} {verb} {container_id}: {message or f'exited with status {code}'}"
        return classify_runtime_message(text, starting=verb in ("create", "exec", "start"))

    def create(
        self,
        container_id: str,
        bundle: str,
        *,
        tty: bool,
        meanwhile: Callable[[], None] | None = None,
    ) -> CreateResult:
        import subprocess

        if meanwhile is not None:  # before anything exists: a failure leaves nothing behind
            meanwhile()
        with _Scratch() as scratch:
            listener = scratch.console_listener() if tty else None
            args = ["create", "--bundle", bundle, "--pid-file", scratch.pid_path]
            if tty:
                args += ["--console-socket", scratch.console_path]
            # stdio: ours (the monitor points fds 0, 1, 2 at the container's pipes)
            proc = subprocess.run(self._argv(*args, container_id, log=scratch.log_path))
            if proc.returncode != 0:
                raise self._error("create", container_id, scratch.log_error(), proc.returncode)
            try:
                pid = scratch.read_pid()
                console = (
                    receive_console(listener, what=f"{self._label} create") if listener else None
                )
            except BaseException:
                with suppress(PypodError, OSError):
                    self.delete(container_id, force=True)
                raise
        return CreateResult(pid, console)

    def start(self, container_id: str) -> None:
        self._call("start", container_id)

    def state(self, container_id: str) -> dict[str, Any]:
        out = self._call("state", container_id)
        try:
            data = jsoncodec.loads(out)
        except ValueError as e:
            raise RuntimeError_(f"{self._label} state {container_id}: invalid JSON: {e}") from e
        if not isinstance(data, dict):
            raise RuntimeError_(f"{self._label} state {container_id}: expected a JSON object")
        return data

    def kill(self, container_id: str, sig: int, *, all_processes: bool = False) -> None:
        flags = ("--all",) if all_processes else ()
        self._call("kill", container_id, *flags, after=(str(int(sig)),))

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self._call("delete", container_id, *(("--force",) if force else ()))

    def pause(self, container_id: str) -> None:
        self._call("pause", container_id)

    def resume(self, container_id: str) -> None:
        self._call("resume", container_id)

    def exec(self, container_id: str, process: dict[str, Any], *, tty: bool) -> CreateResult:
        import subprocess

        with _Scratch() as scratch:
            process_path = os.path.join(scratch.dir, "process.json")
            with open(process_path, "w") as f:
                f.write(jsoncodec.dumps({**process, "terminal": tty}))
            listener = scratch.console_listener() if tty else None
            args = ["exec", "--detach", "--process", process_path, "--pid-file", scratch.pid_path]
            if tty:
                args += ["--console-socket", scratch.console_path]
            proc = subprocess.run(self._argv(*args, container_id, log=scratch.log_path))
            if proc.returncode != 0:
                raise self._error("exec", container_id, scratch.log_error(), proc.returncode)
            pid = scratch.read_pid()
            console = receive_console(listener, what=f"{self._label} exec") if listener else None
        return CreateResult(pid, console)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self._call(
            "update", container_id, "--resources", "-", input=jsoncodec.dumps(resources).encode()
        )

    def pids(self, container_id: str) -> list[int]:
        out = self._call("ps", container_id, "--format", "json")
        try:
            data = jsoncodec.loads(out)
        except ValueError as e:
            raise RuntimeError_(f"{self._label} ps {container_id}: invalid JSON: {e}") from e
        return sorted(int(p) for p in data or [])


def classify_runtime_message(message: str, *, starting: bool) -> PypodError:
    """The error class for a runtime binary's message (podman's getOCIRuntimeError).

    Text is all a binary gives: its exit code is 1 (255 for exec) whatever failed.
    """
    low = message.lower()
    if "console socket" in low or "allocate tty" in low:
        return InvalidArgument(message)
    if starting:
        if "permission denied" in low or "operation not permitted" in low:
            return CannotInvoke(message)
        if (
            "executable file not found" in low
            or "no such file or directory" in low
            or "open executable" in low
        ):
            return CommandNotFound(message)
    if "does not exist" in low or "not found" in low:
        return ContainerNotFound(message)
    if "already exists" in low or "id exists" in low:
        return AlreadyExists(message)
    if "not running" in low or "not paused" in low or "not stopped" in low or "cannot " in low:
        return InvalidState(message)
    return RuntimeError_(message)


def _stderr_message(stderr: str) -> str:
    """The messages of runc's logrus lines (`time=... level=error msg="..."`), else the text."""
    import re

    found = []
    for line in stderr.splitlines():
        m = re.search(r'level=(?:error|fatal) msg=("(?:[^"\\]|\\.)*"|\S+)', line)
        if m is not None:
            raw = m.group(1)
            found.append(jsoncodec.loads(raw) if raw.startswith('"') else raw)
    if found:
        return "; ".join(found)
    return stderr.strip()


# --------------------------------------------------------------------------- helpers


class _Scratch:
    """A private temporary directory for one runtime call: pid file, log, console socket."""

    def __init__(self) -> None:
        self.dir = ""
        self._listener: Any = None

    def __enter__(self) -> _Scratch:
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="pypod-oci-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.close()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid_path(self) -> str:
        return os.path.join(self.dir, "pid")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "log")

    @property
    def console_path(self) -> str:
        return os.path.join(self.dir, "console.sock")

    def console_listener(self) -> Any:
        import _socket

        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.bind(self.console_path)
            sock.listen(1)
        except OSError:
            sock.close()
            raise
        self._listener = sock
        return sock

    def read_pid(self) -> int:
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError) as e:
            raise RuntimeError_(f"the OCI runtime wrote no usable pid file: {e}") from e

    def log_error(self) -> str:
        """The last error a runtime wrote to its JSON --log."""
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        message = ""
        for line in lines:
            try:
                entry = jsoncodec.loads(line)
            except ValueError:
                if line.strip():
                    message = line.strip()
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                message = str(entry.get("msg", ""))
        return message


def receive_console(listener: Any, *, what: str) -> int:
    """The pty master a runtime sent to our --console-socket (already connected and sent).

    The runtime has exited successfully by now, so its connection is queued: never blocks on
    a runtime that sent nothing (that is an error).
    """
    from pypod.linux import unixsock

    listener.setblocking(False)
    try:
        conn_fd, _addr = listener._accept()
    except BlockingIOError:
        raise RuntimeError_(f"{what}: the runtime did not send the terminal") from None
    import _socket

    conn = _socket.socket(fileno=conn_fd)
    try:
        conn.setblocking(True)
        _data, fds = unixsock.recv_fds(conn, 4096, 4)
    finally:
        conn.close()
    if not fds:
        raise RuntimeError_(f"{what}: the runtime sent no terminal on the console socket")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]
