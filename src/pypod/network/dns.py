"""Name resolution on user networks: the records of the DNS responder, and the responder's life.

What netavark does with aardvark-dns for podman.  Each network with DNS enabled and containers
on it has a record file `<runroot>/networks/dns/<network>` (`<network>%internal` for an
internal network) in aardvark-dns's format (see pypod.network.dns_server); one responder
process per run root serves them all on the networks' gateway addresses, port 53.

- `add_records` writes a container's line (under the directory's lock, atomically), makes the
  responder serve it -- starting it, or having it reload -- and returns the DNS server
  addresses the container's resolv.conf gets (the network's gateways);
- `remove_records` drops the line; the responder exits when no network has records left;
- `ensure_running` starts (or reloads) the responder when there are records (`network
  reload`; a responder that was killed);
- `stop_all` stops the responder and removes the records (`system reset`).

Each change waits for the responder to confirm it (over its control socket), so the container
that starts next finds its names served; a failure to listen (another DNS server on the
gateway's port 53) is raised to the caller of `add_records`.

`PYPOD_DNS_RESOLV_CONF`, when set, is the resolv.conf the responder forwards to (default
/etc/resolv.conf); tests point it at their own upstream.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import fcntl
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Iterator, Sequence

from pypod.atomic import write_atomic
from pypod.errors import InUse, InvalidArgument, InvalidState, OSLevelError, PypodError
from pypod.network.types import Network

__all__ = [
    "SEARCH_DOMAIN",
    "add_records",
    "config_dir",
    "ensure_running",
    "remove_records",
    "server_pid",
    "stop_all",
]

log = logging.getLogger(__name__)

#: the search domain of container names (podman's; containers get it in resolv.conf)
SEARCH_DOMAIN = "dns.podman"
#: a resolv.conf for the responder to forward to instead of /etc/resolv.conf
RESOLV_CONF_ENV = "PYPOD_DNS_RESOLV_CONF"
INTERNAL_SUFFIX = "%internal"
#: how long we wait for the responder to start, to answer a request, to exit
_START_TIMEOUT = 10.0
_REQUEST_TIMEOUT = 10.0
_EXIT_TIMEOUT = 5.0
_LOCK = ".lock"
_PID = ".server.pid"
_CTL = ".ctl"
_LOG = ".server.log"


def config_dir(runroot: str) -> str:
    """Where the record files, the responder's pid file and its control socket are."""
    return os.path.join(os.path.abspath(runroot), "networks", "dns")


def add_records(
    runroot: str,
    network: Network,
    container_id: str,
    names: Sequence[str],
    ips: Sequence[str],
    *,
    dns_servers: Sequence[str] = (),
) -> list[str]:
    """Serve `names` (container name, short id, aliases) -> `ips` (its addresses on `network`,
    "10.89.0.5" or "10.89.0.5/24") to the containers of `network`; the DNS server addresses
    for the container (the network's gateways).  `dns_servers` (`--dns`) are where the
    responder forwards the container's other queries instead of the host's resolvers.

    A network with DNS disabled, or without a gateway, has no responder: [] and nothing done.
    Adding a container again replaces its line."""
    if not network.dns_enabled:
        return []
    gateways = _gateways(network)
    if not gateways:
        return []
    line = _entry_line(container_id, names, ips, dns_servers)
    cid = line.split(" ", 1)[0]
    directory = config_dir(runroot)
    with _locked(directory):
        _update(directory, network, cid, line, gateways)
        try:
            failure = _failure(_apply(directory), network.name, directory)
        except PypodError as e:  # the responder could not start at all
            failure = e
        if failure is not None:  # leave nothing half done: the caller sees the error only
            _update(directory, network, cid, None, gateways)
            with contextlib.suppress(PypodError):
                _apply(directory)
            raise failure
    return gateways


def remove_records(runroot: str, network: Network, container_id: str) -> None:
    """Stop serving the container's names on `network`; never fails for "already gone"."""
    directory = config_dir(runroot)
    if not os.path.isdir(directory):
        return
    cid = container_id.strip().lower()
    with _locked(directory):
        if not _update(directory, network, cid, None, []):
            return
        try:
            reply = _apply(directory)
        except PypodError as e:
            log.warning("DNS responder of %s: %s", directory, e)
            return
        for line in reply[1:]:
            log.warning("DNS responder of %s: %s", directory, line.replace("\t", " "))


def ensure_running(runroot: str) -> None:
    """Have a responder serve the records there are (`network reload`, or after the responder
    was killed): start it when it does not run, else make it read the files again."""
    directory = config_dir(runroot)
    if not os.path.isdir(directory):
        return
    with _locked(directory):
        reply = _apply(directory)
    for line in reply[1:]:  # one network's trouble does not stop the others
        log.warning("DNS responder of %s: %s", directory, line.replace("\t", " "))


def stop_all(runroot: str) -> None:
    """Stop the responder of `runroot` and remove every record (`system reset`)."""
    directory = config_dir(runroot)
    if not os.path.isdir(directory):
        return
    with _locked(directory):
        if _request(directory, "stop") is None:
            _kill_stale(directory)
        for name in os.listdir(directory):
            if name != _LOCK:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(os.path.join(directory, name))


def server_pid(runroot: str) -> int | None:
    """The pid of the responder of `runroot` when it runs."""
    pid = _read_pid(config_dir(runroot))
    return pid if pid is not None and _is_server(pid, config_dir(runroot)) else None


# --- the record files ---------------------------------------------------------------------------


def _gateways(network: Network) -> list[str]:
    out: list[str] = []
    for subnet in network.subnets:
        if subnet.gateway:
            gw = _normalize_ip(subnet.gateway, f"gateway of network {network.name}")
            if gw not in out:
                out.append(gw)
    return out


def _normalize_ip(text: str, what: str) -> str:
    import _socket

    addr = text.strip().split("/", 1)[0]
    family = _socket.AF_INET6 if ":" in addr else _socket.AF_INET
    try:
        return _socket.inet_ntop(family, _socket.inet_pton(family, addr))
    except (OSError, ValueError):
        raise InvalidArgument(f"{what}: {text!r} is not an IP address") from None


def _entry_line(
    container_id: str, names: Sequence[str], ips: Sequence[str], dns_servers: Sequence[str]
) -> str:
    cid = container_id.strip().lower()
    if not cid or any(c.isspace() or c == "," for c in cid):
        raise InvalidArgument(f"DNS records: bad container ID {container_id!r}")
    clean: list[str] = []
    for name in names:
        n = name.strip().strip(".").lower()
        if not n:
            continue
        if any(c.isspace() or c == "," for c in n) or len(n) > 253:
            raise InvalidArgument(
                f"DNS records of container {cid}: {name!r} cannot be a host name; "
                "use letters, digits, '-', '_' and '.'"
            )
        if n not in clean:
            clean.append(n)
    if not clean:
        raise InvalidArgument(f"DNS records of container {cid}: no name given")
    v4: list[str] = []
    v6: list[str] = []
    for ip in ips:
        norm = _normalize_ip(ip, f"address of container {cid}")
        target = v6 if ":" in norm else v4
        if norm not in target:
            target.append(norm)
    if not v4 and not v6:
        raise InvalidArgument(f"DNS records of container {cid}: no address given")
    fields = [cid, ",".join(v4), ",".join(v6), ",".join(clean)]
    servers = [_normalize_ip(s, f"DNS server of container {cid}") for s in dns_servers]
    if servers:
        fields.append(",".join(servers))
    return " ".join(fields)


def _update(
    directory: str, network: Network, cid: str, line: str | None, gateways: list[str]
) -> bool:
    """Replace (or, `line` None, drop) the container's line in the network's file (and in
    the file of the other kind: the network may have been re-created internal or not);
    whether anything changed."""
    changed = False
    wanted = network.name + (INTERNAL_SUFFIX if network.internal else "")
    for fname in (network.name, network.name + INTERNAL_SUFFIX):
        path = os.path.join(directory, fname)
        try:
            with open(path, encoding="utf-8") as f:
                lines = [x for x in f.read().split("\n") if x.strip()]
        except FileNotFoundError:
            lines = []
        head = lines[0] if lines else ""
        entries = lines[1:]
        kept = [x for x in entries if x.split(" ", 1)[0] != cid]
        if line is not None and fname == wanted:
            kept.append(line)
            head = ",".join(gateways)
        if kept == entries and head == (lines[0] if lines else ""):
            continue
        changed = True
        if kept:
            write_atomic(path, ("\n".join([head, *kept]) + "\n").encode(), sync=False)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return changed


def _has_records(directory: str) -> bool:
    return any(not name.startswith(".") for name in os.listdir(directory))


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory, _LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                break
            except InterruptedError:
                continue
        yield
    finally:
        os.close(fd)


# --- the responder --------------------------------------------------------------------------------


def _apply(directory: str) -> list[str]:
    """Have the responder serve the files as they are now: reload it, or start it when it does
    not run and there is something to serve; its reply lines ([] when none is needed)."""
    reply = _request(directory, "reload")
    if reply is not None:
        return reply
    if not _has_records(directory):
        return []
    _kill_stale(directory)
    return _start(directory)


def _failure(reply: list[str], network: str, directory: str) -> PypodError | None:
    """The error of the responder's reply that concerns `network` (or the whole responder)."""
    for line in reply[1:] if reply and reply[0] in ("ok", "exit") else reply:
        parts = line.split("\t", 3)
        if len(parts) != 4 or parts[0] != "error":
            return InvalidState(f"DNS responder of {directory}: unexpected reply {line!r}")
        _, net, err, msg = parts
        if net and net != network:
            continue
        code = int(err) if err.isdigit() else 0
        where = f"DNS responder of network {network}" if net else f"DNS responder of {directory}"
        if code == _errno.EADDRINUSE:
            exc: PypodError = InUse(
                f"{where}: {msg}: address already in use; another DNS server (dnsmasq, "
                "aardvark-dns) may listen there: stop it, or create the network with "
                "--disable-dns"
            )
            exc.errno = code
            return exc
        if code:
            return OSLevelError(f"{where}: {msg}", errno=code)
        return InvalidState(f"{where}: {msg}; see {os.path.join(directory, _LOG)}")
    return None


def _request(directory: str, request: str) -> list[str] | None:
    """Send `request` to the responder and return its reply lines; None when none runs.  When
    the reply says it exits, wait until it is gone."""
    import _socket

    pid = _read_pid(directory)
    dirfd = os.open(directory, os.O_PATH | os.O_CLOEXEC)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(_REQUEST_TIMEOUT)
        try:
            sock.connect(f"/proc/self/fd/{dirfd}/{_CTL}")
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        try:
            sock.send(request.encode())
            data = sock.recv(65536)
        except TimeoutError:
            raise InvalidState(
                f"DNS responder of {directory} (pid {pid}) did not answer {request!r} within "
                f"{_REQUEST_TIMEOUT:.0f} s; stop it (kill {pid}) and try again"
            ) from None
        except ConnectionResetError:
            data = b""
    finally:
        sock.close()
        os.close(dirfd)
    if not data:  # it went away without an answer (killed meanwhile)
        if pid is not None:
            _wait_exit(pid)
        return None
    lines = data.decode(errors="replace").split("\n")
    if lines[0] == "exit" and pid is not None:
        _wait_exit(pid)
    return lines


def _start(directory: str) -> list[str]:
    """Start the responder (double fork: it is nobody's child and in its own session) and wait
    for its first reply on the ready pipe."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dns_server.py")
    r, w = os.pipe2(os.O_CLOEXEC)
    argv = [sys.executable, "-I", "-S", script, directory, "--ready-fd", str(w)]
    resolv = os.environ.get(RESOLV_CONF_ENV)
    if resolv:
        argv += ["--resolv-conf", resolv]
    try:
        log_fd = os.open(
            os.path.join(directory, _LOG),
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
            0o600,
        )
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    try:
        pid = os.fork()
    except BaseException:
        for fd in (r, w, log_fd):
            os.close(fd)
        raise
    if pid == 0:
        _child(argv, w, log_fd)
    os.close(w)
    os.close(log_fd)
    with contextlib.suppress(ChildProcessError):
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    try:
        data = _read_until_eof(r, _START_TIMEOUT)
    finally:
        os.close(r)
    if data is None:
        raise InvalidState(
            f"DNS responder of {directory} did not start within {_START_TIMEOUT:.0f} s; "
            f"see {os.path.join(directory, _LOG)}"
        )
    lines = data.decode(errors="replace").rstrip("\n").split("\n")
    if not data or lines[0] not in ("ok", "exit"):
        if data:
            failure = _failure(lines, "", directory)
            if failure is not None:
                raise failure
        raise InvalidState(
            f"DNS responder of {directory} exited at start; see {os.path.join(directory, _LOG)}"
        )
    return lines


def _child(argv: list[str], ready: int, log_fd: int) -> None:
    """The first fork: a new session; its child execs the responder; it exits."""
    code = 1
    try:
        os.setsid()
        if os.fork() == 0:
            code = 127
            null = os.open("/dev/null", os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(log_fd, 2)
            os.set_inheritable(ready, True)
            os.closerange(3, ready)
            os.closerange(ready + 1, 65536)
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execv(argv[0], argv)
        code = 0
    finally:
        os._exit(code)


def _read_until_eof(fd: int, timeout: float) -> bytes | None:
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not poller.poll(int(left * 1000) + 1):
            continue
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _read_pid(directory: str) -> int | None:
    try:
        with open(os.path.join(directory, _PID)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _is_server(pid: int, directory: str) -> bool:
    """Whether `pid` is a live responder of `directory` (not a reused pid, not a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in (b"Z", b"X"):
        return False
    return any(a.endswith(b"dns_server.py") for a in argv) and os.fsencode(directory) in argv


def _wait_exit(pid: int) -> None:
    """Wait (a while) until `pid` has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(int(_EXIT_TIMEOUT * 1000))
    finally:
        os.close(pidfd)


def _kill_stale(directory: str) -> None:
    """A responder that no longer answers on its control socket (removed?) still holds the
    ports: end it before another starts."""
    pid = _read_pid(directory)
    if pid is None or not _is_server(pid, directory):
        return
    log.warning("DNS responder of %s (pid %d) does not answer: stopping it", directory, pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    _wait_exit(pid)
    if _is_server(pid, directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_exit(pid)
