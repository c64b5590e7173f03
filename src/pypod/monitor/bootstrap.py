"""The monitor's first part: in a fork of the CLI, set the container up, then become the loop.

`spawn` (in the CLI) forks twice; the grandchild, in a session of its own, runs `run` here:

1. closes every fd it inherited from the CLI but the sync socket; stdio /dev/null; cwd /;
   becomes a child subreaper, so the container's init (left behind by stage-1 or by runc)
   becomes its child;
2. opens the log, binds `userdata/attach` (SOCK_SEQPACKET, listening);
   imports what the runtime needs, then waits for CREATE (the CLI writes the bundle
   meanwhile; EOF instead: it gave up, the monitor removes its files and exits);
3. makes the container's pipes (or, with a terminal, gets the pty master from the runtime),
   points its fds 0, 1, 2 at them and calls `OCIRuntime.create` (for an exec session: nothing
   yet), which has the `userdata/ctl` fifo made and `userdata/monitor.pid` written while the
   init sets itself up (an exec session's are made in 2); reports CREATED;
4. waits for START (start the container / exec the process; report STARTED) or EOF (release:
   leave the container created);
5. exec()s `python -I -S` running pypod/monitor/loop.py with the fds it needs: the loop is a
   fresh interpreter without the CLI's modules, and the container's process stays its child.
   A process that ends within a few milliseconds of its start is seen to its end by the loop
   run in this process instead: its caller (`run --rm`, `exec`) does not wait for a new
   interpreter to learn the exit.

Any failure before STARTED is reported as ERROR and leaves nothing behind.  See sync.py for
the messages.
"""

from __future__ import annotations

import os
import sys

from pypod.errors import PypodError, RuntimeError_, from_oserror
from pypod.linux import unixsock
from pypod.monitor import sync
from pypod.monitor.config import FILE_LOG_DRIVERS, MonitorConfig
from pypod.monitor.sync import Msg
from pypod.runtime.oci_runtime import IN_PROCESS, open_runtime
from pypod.stdlite import contextmanager, signal, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, NoReturn

    from pypod.runtime.oci_runtime import OCIRuntime

#: how long a failed monitor waits for the CLI to take its error before it exits anyway
_ERROR_LINGER = 30.0
_LISTEN_BACKLOG = 64


def run(sock: unixsock.Socket, cfg: MonitorConfig) -> NoReturn:
    """The monitor process, from the fork on; never returns."""
    import gc

    # the CLI's objects stay untouched: no copy-on-write of their pages, and no finalizer of
    # an object of the CLI's (a database connection...) runs on an fd number that is now ours
    gc.disable()
    code = 1
    try:
        Bootstrap(sock, cfg).main()
        code = 0
    except BaseException:  # reported already where it could be; never unwind into the CLI
        code = 1
    finally:
        os._exit(code)


class Bootstrap:
    def __init__(self, sock: unixsock.Socket, cfg: MonitorConfig) -> None:
        self.sock = sock
        self.cfg = cfg
        self.monitor_pid = os.getpid()
        self.runtime: OCIRuntime | None = None
        self.created = False
        self.pid = 0
        self.console = -1
        #: the monitor's ends: container stdout/stderr read ends, stdin write end
        self.out_r = self.err_r = self.in_w = -1
        #: the container's ends, given to the runtime as fds 0, 1, 2
        self.in_r = self.out_w = self.err_w = -1
        self.devnull = -1
        self.log_fd = -1
        self.listener: unixsock.Socket | None = None
        self.ctl = -1
        #: the container's notification socket (--sdnotify=container: pypod.monitor.notify)
        self.notify: Any = None
        self.files: list[str] = []
        #: the CLI's $NOTIFY_SOCKET, kept from the runtime (isolate)
        self.host_notify: str | None = None

    # -- the sequence ----------------------------------------------------------------------------
    def main(self) -> None:
        try:
            self.isolate()
            self.prepare()
            self.runtime = open_runtime(self.cfg.runtime, self.cfg.runtime_root)
            _warm_up(self.runtime)
        except BaseException as e:
            self.fail(e)
        start_now = self.wait_for_create()
        try:
            if not self.cfg.is_exec:
                self.create()
            if start_now:
                self.start()
        except BaseException as e:
            self.fail(e)
        with suppress(OSError):  # a CLI gone meanwhile: as if it released
            extra = {"started": True} if start_now else {}
            sync.send(self.sock, Msg.CREATED, pid=self.pid, monitor_pid=self.monitor_pid, **extra)
        if start_now:
            self.sock.close()
            self.become_loop()
        try:
            msg = sync.recv(self.sock)
        except Exception as e:  # garbage from the caller: do not leave a container unwatched
            self.fail(e)
        if msg is None:  # released: the container stays created, the loop watches it
            if self.cfg.is_exec:
                self.remove_files()
                os._exit(0)  # an exec session that never started has nothing to watch
        elif msg.type == Msg.START:
            try:
                self.start()
            except BaseException as e:
                self.fail(e)
            with suppress(OSError):
                sync.send(self.sock, Msg.STARTED, pid=self.pid)
        else:
            self.fail(RuntimeError_(f"monitor: unexpected {msg.type} from the caller"))
        self.sock.close()
        self.become_loop()

    def wait_for_create(self) -> bool:
        """Until the CLI has written the bundle (CREATE); at EOF it gave up: leave.  Whether
        to start the container as soon as it is created (CREATE's `start`)."""
        try:
            msg = sync.recv(self.sock)
        except Exception as e:  # garbage from the caller
            self.fail(e)
        if msg is None:
            self.remove_files()
            os._exit(0)
        if msg.type != Msg.CREATE:
            self.fail(RuntimeError_(f"monitor: unexpected {msg.type} from the caller"))
        return bool(msg.data.get("start"))

    def isolate(self) -> None:
        """Leave the CLI behind: its fds, its signal handlers, its directory."""
        keep = self.sock.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, _max_fd())
        self.devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        for target in (0, 1, 2):
            os.dup2(self.devnull, target)
        # ignored until the loop takes over (a handler, not SIG_IGN: that would be inherited
        # by the runtime and the container)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _ignore)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir("/")
        # not for the runtime: runc would proxy the socket itself (and fail to bind it in the
        # bundle); the loop gets it back for the exit command (become_loop)
        self.host_notify = os.environ.pop("NOTIFY_SOCKET", None)
        from pypod.linux import syscalls as sc

        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)

    def prepare(self) -> None:
        cfg = self.cfg
        if cfg.log_driver in FILE_LOG_DRIVERS:
            try:
                self.log_fd = os.open(
                    cfg.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            except OSError as e:
                raise from_oserror(f"container log {cfg.log_path}", e) from e
        self.listener = _listen(os.path.join(cfg.userdata, "attach"))
        self.files.append(os.path.join(cfg.userdata, "attach"))
        if cfg.sdnotify_socket:  # bound before the container exists: nothing it sends is lost
            from pypod.monitor.notify import bind_container_socket

            self.notify = bind_container_socket(cfg)
            self.files.append(cfg.notify_socket_path)
        if not self.publish_meanwhile():
            self.publish()
        if not cfg.tty:
            self.out_r, self.out_w = os.pipe()
            self.err_r, self.err_w = os.pipe()
            if cfg.stdin:
                self.in_r, self.in_w = os.pipe()

    def publish_meanwhile(self) -> bool:
        """Whether `publish` is left to the runtime's create (OCIRuntime.create's `meanwhile`:
        the in-process runtime has it done while the container's init sets itself up): the
        monitor is ready for CREATE that much sooner (it is often later than the CLI)."""
        return not self.cfg.is_exec

    def publish(self) -> None:
        """The monitor's files for the commands to come, made before CREATED: the `ctl`
        fifo and `monitor.pid`."""
        ctl = os.path.join(self.cfg.userdata, "ctl")
        with suppress(FileNotFoundError):
            os.unlink(ctl)
        os.mkfifo(ctl, 0o600)
        self.files.append(ctl)
        self.ctl = os.open(ctl, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        from pypod.atomic import write_atomic

        pid_file = os.path.join(self.cfg.userdata, "monitor.pid")
        write_atomic(pid_file, str(self.monitor_pid).encode(), sync=False)
        self.files.append(pid_file)

    def create(self) -> None:
        assert self.runtime is not None
        meanwhile = self.publish if self.publish_meanwhile() else None
        with self.container_stdio():
            result = self.runtime.create(
                self.cfg.container_id, self.cfg.bundle, tty=self.cfg.tty, meanwhile=meanwhile
            )
        self.created = True
        self.pid = result.pid
        if result.console_fd is not None:
            self.console = result.console_fd
        self.check_child(self.pid)

    def start(self) -> None:
        assert self.runtime is not None
        if not self.cfg.is_exec:
            self.runtime.start(self.cfg.container_id)
            return
        assert self.cfg.exec_process is not None
        with self.container_stdio():
            result = self.runtime.exec(
                self.cfg.container_id, self.cfg.exec_process, tty=self.cfg.tty
            )
        self.pid = result.pid
        if result.console_fd is not None:
            self.console = result.console_fd
        self.check_child(self.pid)

    @contextmanager
    def container_stdio(self) -> Iterator[None]:
        """Our fds 0, 1, 2 are the container's while the runtime runs (it passes them on)."""
        if not self.cfg.tty:
            os.dup2(self.in_r if self.in_r >= 0 else self.devnull, 0)
            os.dup2(self.out_w, 1)
            os.dup2(self.err_w, 2)
        try:
            yield
        finally:
            for target in (0, 1, 2):
                os.dup2(self.devnull, target)
            for name in ("in_r", "out_w", "err_w"):  # the container holds its ends now
                fd = getattr(self, name)
                if fd >= 0:
                    os.close(fd)
                    setattr(self, name, -1)

    def check_child(self, pid: int) -> None:
        """The loop learns the exit status with waitpid: the process must be our child."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                raw = f.read()
            ppid = int(raw[raw.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            return  # it exited already: the loop reaps it (or finds it gone)
        if ppid != os.getpid():
            raise RuntimeError_(
                f"monitor: process {pid} of container {self.cfg.container_id} is not the "
                f"monitor's child (its parent is {ppid}); cannot watch it"
            )

    # -- failure ---------------------------------------------------------------------------------
    def fail(self, exc: BaseException) -> NoReturn:
        """Report `exc`, remove what we made, wait for the CLI to take it, exit."""
        with suppress(OSError):
            sync.send(self.sock, Msg.ERROR, monitor_pid=self.monitor_pid, **sync.error_data(exc))
        if self.cfg.is_exec and self.pid:
            with suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
        if self.created and self.runtime is not None:
            with suppress(PypodError, OSError):
                self.runtime.delete(self.cfg.container_id, force=True)
        if self.pid:
            with suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        self.remove_files()
        with suppress(OSError):
            self.sock.settimeout(_ERROR_LINGER)
            while sync.recv(self.sock) is not None:
                pass
        os._exit(1)

    def remove_files(self) -> None:
        for path in self.files:
            with suppress(OSError):
                os.unlink(path)

    # -- the loop --------------------------------------------------------------------------------
    def become_loop(self) -> NoReturn:
        from pypod.monitor import loop as loop_mod  # after STARTED: off the caller's path

        assert self.listener is not None
        fds = {
            "stdout": self.out_r,
            "stderr": self.err_r,
            "stdin": self.in_w,
            "console": self.console,
            "attach": self.listener.fileno(),
            "ctl": self.ctl,
            "log": self.log_fd,
            "notify": self.notify.fileno() if self.notify is not None else -1,
        }
        # the container's OOM kills (not an exec session's: podman reports none for them)
        counter = loop_mod.oom_counter_file(self.pid) if self.pid and not self.cfg.is_exec else None
        args: dict[str, Any] = {
            "config": self.cfg.to_dict(),
            "pid": self.pid,
            "fds": fds,
            "oom": list(counter) if counter else None,
            "oom_before": loop_mod.read_oom_kills(counter),
        }
        for fd in fds.values():
            if fd >= 0:
                os.set_inheritable(fd, True)
        os.close(self.devnull)
        encoded = loop_mod.encode_args(args)
        if self.host_notify is not None:
            os.environ["NOTIFY_SOCKET"] = self.host_notify  # for the exit command (restarts)
        if sys.executable and not _exits_soon(self.pid):
            here = os.path.dirname(os.path.abspath(loop_mod.__file__))
            code = f"import sys;sys.path.append({here!r});import loop;loop.main(sys.argv[1])"
            with suppress(OSError):
                os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", code, encoded])
        # the process has ended (or there is no interpreter to exec): run the loop here
        # (bigger than the exec'd one, but it only has to see the end through)
        loop_mod.main(encoded)
        os._exit(0)


def _warm_up(runtime: OCIRuntime) -> None:
    """Import what creating the container needs while the CLI still writes the bundle (the
    in-process runtime's modules: ~10 ms that are then off the caller's path)."""
    if runtime.name != IN_PROCESS:
        return
    import pypod.runtime.container
    from pypod.linux import cgroups

    pypod.runtime.container.preload()

    with suppress(Exception):  # only a head start: `create` reports any failure
        if cgroups.detect_mode() == cgroups.CgroupMode.UNIFIED:
            import pypod.linux.cgroups.v2
        else:
            import pypod.linux.cgroups.v1
        import pypod.linux.seccomp_cache  # (and seccomp: the init loads the filter with it)


#: how long the monitor waits for a short-lived process (`run --rm IMAGE true`, `exec ID cmd`)
#: to exit before it execs the loop's own interpreter: a process that ended meanwhile is seen
#: to its end by the loop run here, so its caller learns the exit without waiting for a new
#: interpreter to start (a long-lived one is served that much later, its output kept in the pipes)
_SHORT_LIVED_WAIT = 0.02


def _exits_soon(pid: int) -> bool:
    """Whether `pid` (our child) has exited, or does within `_SHORT_LIVED_WAIT`."""
    if pid <= 0:
        return False
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False  # the loop finds out what happened to it
    try:
        import select

        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(int(_SHORT_LIVED_WAIT * 1000)))
    finally:
        os.close(pidfd)


def _listen(path: str) -> unixsock.Socket:
    """A listening SOCK_SEQPACKET socket at `path`, bound through /proc/self/fd (any length)."""
    import _socket

    with suppress(FileNotFoundError):
        os.unlink(path)
    directory = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        os.fchmod(sock.fileno(), 0o700)
        sock.bind(f"/proc/self/fd/{directory}/{os.path.basename(path)}")
        os.chmod(path, 0o700)  # bind made it with the umask's mode
        sock.listen(_LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        raise from_oserror(f"attach socket {path}", e) from e
    finally:
        os.close(directory)
    return sock


def _max_fd() -> int:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _ignore(_sig: int, _frame: object) -> None:
    return None
