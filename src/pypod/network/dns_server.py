"""The DNS responder of pypod's networks (what aardvark-dns does for podman).

One process serves every network of one run root that has DNS enabled and containers on it.
pypod.network.dns starts it as `python -I -S dns_server.py CONFIG_DIR [--resolv-conf PATH]
[--port N] [--ready-fd FD]`: besides its two helpers, pypod.network.dns_wire (the wire
format) and pypod.network.dns_records (the record files and the answering rules), and the
package's two bare `__init__` modules, it imports only C modules of the standard library
(a unit test checks it), so it starts in a few milliseconds and stays small.

The configuration directory holds one file per network, named after the network (with the
suffix `%internal` for an `--internal` network), in aardvark-dns's format:

    GATEWAY[,GATEWAY...][ NETWORK_DNS_SERVER[,...]]
    CONTAINER_ID IPV4[,IPV4...] IPV6[,IPV6...] NAME[,NAME...][ DNS_SERVER[,...]]
    ...

(an empty address list is an empty field).  Files whose names start with "." are ours: the
lock (`.lock`), the pid file (`.server.pid`), the control socket (`.ctl`), the log
(`.server.log`) and temporary files.

The responder
- listens on every gateway address of those networks, port 53, UDP and TCP (sockets bound with
  IP_FREEBIND, so an address that is not up yet, or a tentative IPv6 address, is no obstacle);
- answers A and AAAA for the names of the networks the *asking container* is on (its source
  address says which; names are case-insensitive, with or without the `dns.podman` search
  domain), and PTR for their addresses: a container never sees another network's names, and
  an address that is no container's sees none (isolation, as aardvark-dns);
- answers NXDOMAIN for other names under `dns.podman` and for single-label names, and forwards
  everything else to the container's own `--dns` servers, else the network's, else the host's
  resolvers (resolv.conf, read when it changes) -- from this process on the host, so a
  127.0.0.53 resolver works; SERVFAIL when none of them answers; containers only on internal
  networks get no forwarding (NXDOMAIN);
- reloads the files on SIGHUP and on a `reload` request on the control socket (a
  SOCK_SEQPACKET socket: pypod.network.dns waits for the answer, which lists what failed), and
  exits when no network has records left, on `stop`, on SIGTERM/SIGINT, or when its
  configuration directory (or control socket) is gone.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:  # run as a script: find the pypod package
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import _socket
import _thread
import errno
import select
import time

from pypod.network.dns_records import (
    ANSWER,
    FORWARD,
    Backend,
    load_config,
    read_resolv_conf,
    resolve,
    upstream_address,
)
from pypod.network.dns_wire import (
    HEADER_SIZE,
    RCODE_SERVFAIL,
    error_response,
    pack_ip,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # the type checker reads the public modules' stubs
    import signal
    from collections.abc import Callable
    from typing import Any
else:  # `signal` imports enum: the C module suffices
    import _signal as signal

# --- the server -----------------------------------------------------------------------------------

#: per upstream server, how long a forwarded query waits for its answer
UPSTREAM_TIMEOUT = 2.0
#: forwarded UDP queries waiting for an answer at most (more are answered SERVFAIL)
MAX_PENDING = 512
#: TCP connections served at once at most
MAX_TCP = 64
TCP_IDLE = 10.0
#: how often the server checks that its directory is still there
HOUSEKEEPING = 10.0
LOG_MAX = 1 << 20
_SOL_IP = 0
_SOL_IPV6 = 41
_IP_FREEBIND = 15
_IPV6_FREEBIND = 78
IN = select.POLLIN


def log(msg: str) -> None:
    tm = time.gmtime()
    line = (
        f"{tm.tm_year}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:"
        f"{tm.tm_sec:02d}Z dns[{os.getpid()}]: {msg}\n"
    )
    try:
        os.write(2, line.encode(errors="replace"))
    except OSError:
        pass


class Forward:
    """A UDP query waiting for an upstream server's answer."""

    __slots__ = ("client", "deadline", "query", "servers", "sock", "src")

    def __init__(self, client: _socket.socket, src: tuple[object, ...], query: bytes):
        self.client = client
        self.src = src
        self.query = query
        self.servers: list[str] = []
        self.sock: _socket.socket | None = None
        self.deadline = 0.0


class Server:
    def __init__(self, directory: str, resolv_conf: str, port: int) -> None:
        self.directory = directory
        self.resolv_conf = resolv_conf
        self.port = port
        self.ctl_path = os.path.join(directory, ".ctl")
        self.pid_path = os.path.join(directory, ".server.pid")
        self.backend = Backend(())
        self.udp: dict[str, _socket.socket] = {}
        self.tcp: dict[str, _socket.socket] = {}
        self.poller = select.poll()
        self.handlers: dict[int, Callable[[], None]] = {}
        self.pending: dict[int, Forward] = {}
        self.resolvers: list[str] = []
        self.resolv_stamp: tuple[float, int] | None = None
        self.resolv_checked = 0.0
        self.tcp_lock = _thread.allocate_lock()
        self.tcp_count = 0
        self.running = True
        self.ctl_ino = 0
        self.sig_r = -1

    # --- set up and reload ---

    def start(self) -> list[str]:
        """Bind the control socket and the listeners; the reply for the ready fd."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sig_r = r
        signal.set_wakeup_fd(w)
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _ignore_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self._watch(r, self._on_signal)
        self._bind_ctl()
        lines = self.reload()
        if self.running:
            _write_file(self.pid_path, f"{os.getpid()}\n")
        return lines

    def _bind_ctl(self) -> None:
        try:
            os.unlink(self.ctl_path)
        except FileNotFoundError:
            pass
        dirfd = os.open(self.directory, os.O_PATH | os.O_CLOEXEC)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        try:
            sock.bind(f"/proc/self/fd/{dirfd}/.ctl")
        finally:
            os.close(dirfd)
        os.chmod(self.ctl_path, 0o600)
        sock.listen(16)
        self.ctl = sock
        self.ctl_ino = os.stat(self.ctl_path).st_ino
        self._watch(sock.fileno(), self._on_ctl)

    def reload(self) -> list[str]:
        """Read the files again and listen where they say: the reply lines ("ok" or "exit",
        then `error<TAB>network<TAB>errno<TAB>message` for what failed)."""
        self._housekeeping()
        if not self.running:
            return ["exit"]
        try:
            backend, bad = load_config(self.directory)
        except OSError as e:  # the directory is gone
            log(f"cannot read {self.directory}: {e}")
            self.running = False
            return ["exit"]
        errors = [f"error\t{net}\t0\t{msg}" for net, msg in bad]
        for net, msg in bad:
            log(f"network {net}: {msg}")
        self.backend = backend
        self._read_resolvers(force=True)
        if not backend.has_records():
            self.running = False
            return ["exit", *errors]
        wanted = backend.listen_addresses()
        for table in (self.udp, self.tcp):
            for ip in [ip for ip in table if ip not in wanted]:
                sock = table.pop(ip)
                self._unwatch(sock.fileno())
                sock.close()
        for ip, net in wanted.items():
            for kind, table in ((_socket.SOCK_DGRAM, self.udp), (_socket.SOCK_STREAM, self.tcp)):
                if ip in table:
                    continue
                try:
                    sock = self._listen(ip, kind)
                except OSError as e:
                    proto = "udp" if kind == _socket.SOCK_DGRAM else "tcp"
                    msg = f"cannot listen on {ip} port {self.port}/{proto}"
                    log(f"network {net}: {msg}: {e.strerror or e}")
                    if kind == _socket.SOCK_DGRAM:  # TCP is a bonus; UDP is the service
                        errors.append(f"error\t{net}\t{e.errno or 0}\t{msg}")
                    continue
                table[ip] = sock
                if kind == _socket.SOCK_DGRAM:
                    self._watch(sock.fileno(), _call(self._on_udp, sock))
                else:
                    self._watch(sock.fileno(), _call(self._on_accept, sock))
        return ["ok", *errors]

    def _listen(self, ip: str, kind: int) -> _socket.socket:
        family = _socket.AF_INET6 if ":" in ip else _socket.AF_INET
        sock = _socket.socket(family, kind | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
        try:
            if family == _socket.AF_INET6:
                sock.setsockopt(_SOL_IPV6, _IPV6_FREEBIND, 1)
                sock.setsockopt(_SOL_IPV6, _socket.IPV6_V6ONLY, 1)
            else:
                sock.setsockopt(_SOL_IP, _IP_FREEBIND, 1)
            if kind == _socket.SOCK_STREAM:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.bind((ip, self.port))
            if kind == _socket.SOCK_STREAM:
                sock.listen(64)
        except BaseException:
            sock.close()
            raise
        return sock

    def _read_resolvers(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.resolv_checked < 1.0:
            return
        self.resolv_checked = now
        try:
            st = os.stat(self.resolv_conf)
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_ino)
        except OSError:
            stamp = None
        if force or stamp != self.resolv_stamp:
            self.resolv_stamp = stamp
            self.resolvers = read_resolv_conf(self.resolv_conf)

    # --- the loop ---

    def _watch(self, fd: int, handler: Callable[[], None]) -> None:
        self.handlers[fd] = handler
        self.poller.register(fd, IN)

    def _unwatch(self, fd: int) -> None:
        self.handlers.pop(fd, None)
        try:
            self.poller.unregister(fd)
        except (KeyError, ValueError):
            pass

    def run(self) -> None:
        last_check = time.monotonic()
        while self.running:
            now = time.monotonic()
            wait = HOUSEKEEPING
            if self.pending:
                wait = min(wait, max(0.0, min(f.deadline for f in self.pending.values()) - now))
            try:
                events = self.poller.poll(int(wait * 1000) + 1)
            except InterruptedError:
                continue
            for fd, _ in events:
                handler = self.handlers.get(fd)
                if handler is not None and self.running:
                    try:
                        handler()
                    except Exception as e:  # one bad packet must not end the service
                        log(f"error handling fd {fd}: {type(e).__name__}: {e}")
            now = time.monotonic()
            for fwd in [f for f in self.pending.values() if f.deadline <= now]:
                self._next_upstream(fwd)
            if now - last_check >= HOUSEKEEPING:
                last_check = now
                self._housekeeping()

    def _housekeeping(self) -> None:
        try:
            if os.stat(self.ctl_path).st_ino != self.ctl_ino:
                raise FileNotFoundError(self.ctl_path)
        except OSError:
            log(f"{self.ctl_path} is gone: exiting")
            self.running = False
            self.ctl_ino = 0  # not ours any more: leave the files alone

    def _on_signal(self) -> None:
        try:
            data = os.read(self.sig_r, 64)
        except BlockingIOError:
            return
        for signum in data:
            if signum == signal.SIGHUP:
                self.reload()
                if not self.running:
                    log("no records left: exiting")
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self.running = False

    def _on_ctl(self) -> None:
        try:
            conn, _ = _accept(self.ctl)
        except (BlockingIOError, InterruptedError):
            return
        try:
            conn.settimeout(5.0)
            request = conn.recv(256).decode(errors="replace").strip()
            if request == "reload":
                lines = self.reload()
            elif request == "stop":
                self.running = False
                lines = ["exit"]
            elif request == "ping":
                lines = ["ok"]
            else:
                lines = [f"error\t\t{errno.EINVAL}\tunknown request {request!r}"]
            if not self.running:
                self.shutdown()
            conn.send("\n".join(lines).encode())
        except OSError as e:
            log(f"control request failed: {e}")
        finally:
            conn.close()

    # --- UDP ---

    def _on_udp(self, sock: _socket.socket) -> None:
        for _ in range(64):  # a burst, then let the others have a turn
            try:
                data, src = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error reported on the socket
                continue
            requester = _requester(src)
            action, value = resolve(self.backend, data, requester)
            if action == ANSWER:
                assert isinstance(value, bytes)
                _sendto(sock, value, src)
            elif action == FORWARD:
                self._forward_udp(sock, src, data, value if isinstance(value, list) else None)

    def _forward_udp(
        self, sock: _socket.socket, src: tuple[object, ...], data: bytes, servers: list[str] | None
    ) -> None:
        if len(self.pending) >= MAX_PENDING:
            reply = error_response(data, RCODE_SERVFAIL)
            if reply is not None:
                _sendto(sock, reply, src)
            return
        if servers is None:
            self._read_resolvers()
            servers = self.resolvers
        fwd = Forward(sock, src, data)
        fwd.servers = list(servers)
        self._next_upstream(fwd)

    def _next_upstream(self, fwd: Forward) -> None:
        """Close the current upstream attempt; try the next server, or answer SERVFAIL."""
        if fwd.sock is not None:
            self._unwatch(fwd.sock.fileno())
            self.pending.pop(fwd.sock.fileno(), None)
            fwd.sock.close()
            fwd.sock = None
        while fwd.servers:
            server = fwd.servers.pop(0)
            family, addr = upstream_address(server)
            sock = _socket.socket(
                family, _socket.SOCK_DGRAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
            )
            try:
                sock.connect(addr)
                sock.send(fwd.query)
            except OSError:
                sock.close()
                continue
            fwd.sock = sock
            fwd.deadline = time.monotonic() + UPSTREAM_TIMEOUT
            self.pending[sock.fileno()] = fwd
            self._watch(sock.fileno(), _call(self._on_upstream, fwd))
            return
        reply = error_response(fwd.query, RCODE_SERVFAIL)
        if reply is not None:
            _sendto(fwd.client, reply, fwd.src)

    def _on_upstream(self, fwd: Forward) -> None:
        sock = fwd.sock
        if sock is None:
            return
        try:
            data = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # refused (nothing listens there): the next one
            self._next_upstream(fwd)
            return
        if len(data) < HEADER_SIZE or data[:2] != fwd.query[:2] or not data[2] & 0x80:
            return  # not the answer to our query: keep waiting
        _sendto(fwd.client, data, fwd.src)
        self._unwatch(sock.fileno())
        self.pending.pop(sock.fileno(), None)
        sock.close()
        fwd.sock = None

    # --- TCP ---

    def _on_accept(self, listener: _socket.socket) -> None:
        try:
            conn, src = _accept(listener)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        with self.tcp_lock:
            if self.tcp_count >= MAX_TCP:
                conn.close()
                return
            self.tcp_count += 1
        try:
            _thread.start_new_thread(self._serve_tcp, (conn, _requester(src)))
        except RuntimeError:
            with self.tcp_lock:
                self.tcp_count -= 1
            conn.close()

    def _serve_tcp(self, conn: _socket.socket, requester: bytes) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(TCP_IDLE)
            while True:
                data = _recv_framed(conn)
                if data is None:
                    return
                action, value = resolve(self.backend, data, requester, tcp=True)
                if action == ANSWER:
                    assert isinstance(value, bytes)
                    reply: bytes | None = value
                elif action == FORWARD:
                    if not isinstance(value, list):
                        self._read_resolvers()
                        value = list(self.resolvers)
                    reply = _forward_tcp(data, value)
                    if reply is None:
                        reply = error_response(data, RCODE_SERVFAIL)
                else:
                    return
                if reply is None:
                    return
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return
        finally:
            conn.close()
            with self.tcp_lock:
                self.tcp_count -= 1

    # --- the end ---

    def shutdown(self) -> None:
        """Stop listening and remove our files (before the control answer: whoever asked
        sees the port free and the server gone when it gets it)."""
        for table in (self.udp, self.tcp):
            for sock in table.values():
                sock.close()
            table.clear()
        for fwd in list(self.pending.values()):
            if fwd.sock is not None:
                fwd.sock.close()
        self.pending.clear()
        if self.ctl_ino:
            try:
                if os.stat(self.ctl_path).st_ino == self.ctl_ino:
                    os.unlink(self.ctl_path)
            except OSError:
                pass
            try:
                with open(self.pid_path) as f:
                    mine = f.read().strip() == str(os.getpid())
                if mine:
                    os.unlink(self.pid_path)
            except OSError:
                pass
            self.ctl_ino = 0


def _call(fn: Callable[[Any], None], arg: object) -> Callable[[], None]:
    def call() -> None:
        fn(arg)

    return call


def _accept(listener: _socket.socket) -> tuple[_socket.socket, Any]:
    fd, addr = listener._accept()  # type: ignore[attr-defined]
    return _socket.socket(listener.family, listener.type, 0, fd), addr


def _ignore_handler(signum: int, frame: object) -> None:
    """Installed so that the wakeup fd hears the signal; the loop acts on it."""


def _requester(src: tuple[object, ...]) -> bytes:
    try:
        return pack_ip(str(src[0]))
    except ValueError:
        return b""


def _sendto(sock: _socket.socket, data: bytes, dest: tuple[object, ...]) -> None:
    try:
        sock.sendto(data, dest)
    except OSError:
        pass


def _recv_exact(conn: _socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = conn.recv(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv_framed(conn: _socket.socket) -> bytes | None:
    head = _recv_exact(conn, 2)
    if head is None:
        return None
    return _recv_exact(conn, (head[0] << 8) | head[1])


def _forward_tcp(query: bytes, servers: list[str]) -> bytes | None:
    for server in servers:
        family, addr = upstream_address(server)
        sock = _socket.socket(family, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(UPSTREAM_TIMEOUT)
            sock.connect(addr)
            sock.sendall(len(query).to_bytes(2, "big") + query)
            reply = _recv_framed(sock)
        except OSError:
            continue
        finally:
            sock.close()
        if reply is not None and len(reply) >= HEADER_SIZE and reply[:2] == query[:2]:
            return reply
    return None


def _write_file(path: str, text: str) -> None:
    tmp = f"{os.path.dirname(path)}/.tmp-{os.getpid()}-{os.path.basename(path)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _report(fd: int, lines: list[str]) -> None:
    if fd < 0:
        return
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def parse_args(argv: list[str]) -> tuple[str, str, int, int]:
    """CONFIG_DIR [--resolv-conf PATH] [--port N] [--ready-fd FD] -> (dir, resolv, port, fd)."""
    if not argv:
        raise SystemExit("usage: dns_server.py CONFIG_DIR [--resolv-conf PATH] [--port N]")
    directory, resolv, port, ready = argv[0], "/etc/resolv.conf", 53, -1
    rest = argv[1:]
    while rest:
        opt = rest.pop(0)
        if not rest:
            raise SystemExit(f"dns_server.py: {opt} needs a value")
        value = rest.pop(0)
        if opt == "--resolv-conf":
            resolv = value
        elif opt == "--port":
            port = int(value)
        elif opt == "--ready-fd":
            ready = int(value)
        else:
            raise SystemExit(f"dns_server.py: unknown option {opt}")
    return os.path.abspath(directory), resolv, port, ready


def main(argv: list[str]) -> int:
    directory, resolv, port, ready = parse_args(argv)
    try:
        if os.fstat(2).st_size > LOG_MAX:
            os.ftruncate(2, 0)
    except OSError:
        pass
    server = Server(directory, resolv, port)
    try:
        lines = server.start()
    except OSError as e:
        _report(ready, [f"error\t\t{e.errno or 0}\tcannot start: {e}"])
        log(f"cannot start: {e}")
        return 1
    if not server.running:
        server.shutdown()
        _report(ready, lines)
        return 0
    _report(ready, lines)
    try:
        server.run()
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)
