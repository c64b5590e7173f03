"""Rootless networking: pasta (default) or slirp4netns for a container's network namespace.

A rootless container cannot have a veth into a host bridge; instead a user-mode network stack
runs next to it, as podman does: `pasta` (Debian's passt) copies the host's address, routes
and MTU into the namespace and forwards the published ports from the host with
`-t`/`-u HOST:CONTAINER`; `slirp4netns` gives 10.0.2.100/24 behind a NAT (gateway 10.0.2.2,
DNS 10.0.2.3) and publishes ports through its API socket (`add_hostfwd`).  Both are started
from inside the rootless user namespace (they join the container's network namespace by its
path), record their pid under the container's run directory and are killed by `stop`.

`start` returns what the engine keeps in the container's state: a NetResult-like dict
(`interface`, `mac_address`, `subnets` [{ipnet, gateway}], `dns_server_ips`) plus how to stop
the process (`kind`, `pid`, `start_time`, `api_socket`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pypod.errors import CommandNotFound, InvalidArgument, NotSupported, PypodError
from pypod.network.types import PortMapping

SLIRP_MTU = 65520
SLIRP_CIDR = "10.0.2.0/24"
TAP = "tap0"
SLIRP_SOCKET = "slirp4netns.sock"
#: how long the helper may take to set the namespace up
READY_TIMEOUT = 10.0


class NetworkHelperError(PypodError):
    """pasta or slirp4netns failed to set a container's network up."""


def start(
    mode: str,
    netns: str,
    container_id: str,
    ports: Sequence[PortMapping],
    options: Sequence[str],
    rundir: str,
) -> dict[str, Any]:
    """Start `mode` ("pasta" or "slirp4netns") for the namespace at `netns`; its state."""
    os.makedirs(rundir, mode=0o700, exist_ok=True)
    if mode == "pasta":
        return _start_pasta(netns, ports, options, rundir)
    if mode == "slirp4netns":
        return _start_slirp(netns, ports, options, rundir)
    raise InvalidArgument(f"unknown rootless network mode {mode!r}: use pasta or slirp4netns")


def stop(info: Mapping[str, Any]) -> None:
    """Kill the helper `start` recorded (idempotent: nothing happens when it is gone)."""
    pid, started = info.get("pid"), info.get("start_time")
    if isinstance(pid, int) and pid > 0 and _start_time(pid) == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while _start_time(pid) == started and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.01)
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap(pid)
    for key in ("api_socket", "pid_file"):
        path = info.get(key)
        if isinstance(path, str) and path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# --- pasta -------------------------------------------------------------------------------------
def pasta_args(netns: str, ports: Sequence[PortMapping], options: Sequence[str]) -> list[str]:
    """pasta's command line after the program (as podman builds it)."""
    args = ["--config-net"]
    tcp = udp = False
    for p in ports:
        for proto in p.protocol.split(","):
            if proto not in ("tcp", "udp"):
                raise NotSupported(f"'-p .../{proto}' is not supported with pasta: tcp or udp")
            args += ["-t" if proto == "tcp" else "-u", _pasta_port(p)]
            tcp |= proto == "tcp"
            udp |= proto == "udp"
    given = set(options)
    if not tcp and not given & {"-t", "--tcp-ports"}:
        args += ["-t", "none"]
    if not udp and not given & {"-u", "--udp-ports"}:
        args += ["-u", "none"]
    if not given & {"-T", "--tcp-ns"}:
        args += ["-T", "none"]
    if not given & {"-U", "--udp-ns"}:
        args += ["-U", "none"]
    if "--map-gw" in given:
        options = [o for o in options if o != "--map-gw"]
    elif "--no-map-gw" not in given:
        args.append("--no-map-gw")
    for forbidden in ("--netns", "--userns", "-P", "--pid", "-f", "--foreground"):
        if forbidden in given:
            raise InvalidArgument(f"pasta option {forbidden} is set by pypod; do not pass it")
    return [*args, *options, "--netns", netns]


def _pasta_port(p: PortMapping) -> str:
    host = f"{p.host_port}" if p.range == 1 else f"{p.host_port}-{p.host_port + p.range - 1}"
    ctr = (
        f"{p.container_port}"
        if p.range == 1
        else f"{p.container_port}-{p.container_port + p.range - 1}"
    )
    addr = f"{p.host_ip}/" if p.host_ip else ""
    return f"{addr}{host}:{ctr}"


def _start_pasta(
    netns: str, ports: Sequence[PortMapping], options: Sequence[str], rundir: str
) -> dict[str, Any]:
    exe = _which("pasta", "passt")
    pid_file = os.path.join(rundir, "pasta.pid")
    argv = [exe, *pasta_args(netns, ports, options), "--pid", pid_file, "--quiet"]
    pid = run_pasta(argv, pid_file, os.path.join(rundir, "pasta.log"))
    address, gateway = _host_address()
    return {
        "kind": "pasta",
        "pid": pid,
        "start_time": _start_time(pid),
        "pid_file": pid_file,
        "interface": _default_interface() or "eth0",
        "mac_address": "",
        "subnets": [{"ipnet": address, "gateway": gateway}] if address else [],
        "dns_server_ips": [],
    }


def run_pasta(argv: list[str], pid_file: str, log: str) -> int:
    """Run pasta as `argv` (with `--pid pid_file`): it sets the namespace up, forks to the
    background and its parent exits; the daemon's pid.  Its words go to `log` and, when it
    fails, into the NetworkHelperError."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pid_file)
    with open(log, "wb") as err:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            timeout=READY_TIMEOUT,
            check=False,
            start_new_session=True,
        )
    if proc.returncode != 0:
        raise NetworkHelperError(
            f"pasta failed with exit code {proc.returncode}: {_tail(log)}"
            f"{_tun_hint(_tail(log))}"
        )
    try:
        with open(pid_file) as f:
            return int(f.read().strip())
    except (OSError, ValueError) as e:
        raise NetworkHelperError(f"pasta did not write its pid to {pid_file}: {e}") from e


# --- slirp4netns --------------------------------------------------------------------------------
def slirp_settings(options: Sequence[str]) -> dict[str, str]:
    """`--network slirp4netns:opt=value,...` checked, with podman's option names."""
    known = {
        "allow_host_loopback": ("true", "false"),
        "enable_ipv6": ("true", "false"),
        "port_handler": ("slirp4netns", "rootlesskit"),
        "mtu": None,
        "cidr": None,
        "outbound_addr": None,
        "outbound_addr6": None,
    }
    out: dict[str, str] = {}
    for opt in options:
        for item in opt.split(","):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if key not in known or not sep:
                raise InvalidArgument(f"unknown option for slirp4netns: {item!r}")
            allowed = known[key]
            if allowed is not None and value not in allowed:
                raise InvalidArgument(
                    f"slirp4netns option {key}={value}: must be one of {', '.join(allowed)}"
                )
            out[key] = value
    if out.get("port_handler") == "rootlesskit":
        raise NotSupported("'port_handler=rootlesskit' is not supported yet: use slirp4netns")
    return out


def slirp_args(
    netns: str, settings: Mapping[str, str], api_socket: str, ready_fd: int
) -> list[str]:
    args = [
        "--configure",
        f"--mtu={settings.get('mtu', SLIRP_MTU)}",
        "--netns-type=path",
        f"--api-socket={api_socket}",
        f"--ready-fd={ready_fd}",
    ]
    if settings.get("allow_host_loopback") != "true":
        args.append("--disable-host-loopback")
    if settings.get("enable_ipv6") == "true":
        args.append("--enable-ipv6")
    if "cidr" in settings:
        args.append(f"--cidr={settings['cidr']}")
    if "outbound_addr" in settings:
        args.append(f"--outbound-addr={settings['outbound_addr']}")
    if "outbound_addr6" in settings:
        args.append(f"--outbound-addr6={settings['outbound_addr6']}")
    return [*args, netns, TAP]


def _start_slirp(
    netns: str, ports: Sequence[PortMapping], options: Sequence[str], rundir: str
) -> dict[str, Any]:
    settings = slirp_settings(options)
    cidr = ipaddress.ip_network(settings.get("cidr", SLIRP_CIDR), strict=False)
    if cidr.version != 4 or cidr.prefixlen > 25:
        raise InvalidArgument(f"slirp4netns cidr {cidr}: an IPv4 network of /25 or larger")
    exe = _which("slirp4netns", "slirp4netns")
    # relative to slirp4netns' cwd: a socket path must stay under 108 bytes
    api_socket = os.path.join(rundir, SLIRP_SOCKET)
    log = os.path.join(rundir, "slirp4netns.log")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(api_socket)
    ready_r, ready_w = os.pipe()
    try:
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [exe, *slirp_args(netns, settings, SLIRP_SOCKET, ready_w)],
                cwd=rundir,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                pass_fds=(ready_w,),
                start_new_session=True,
            )
        os.close(ready_w)
        ready_w = -1
        ready = _read_ready(ready_r, proc)
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
    info: dict[str, Any] = {
        "kind": "slirp4netns",
        "pid": proc.pid,
        "start_time": _start_time(proc.pid),
        "api_socket": api_socket,
    }
    if not ready:
        stop(info)
        proc.wait()
        tail = _tail(log)
        raise NetworkHelperError(f"slirp4netns failed: {tail}{_tun_hint(tail)}")
    base = int(cidr.network_address)
    guest = ipaddress.ip_address(base + 100)
    try:
        for p in ports:
            _slirp_forward(api_socket, p, str(guest))
    except BaseException:
        stop(info)
        raise
    info.update(
        interface=TAP,
        mac_address="",
        subnets=[
            {"ipnet": f"{guest}/{cidr.prefixlen}", "gateway": str(ipaddress.ip_address(base + 2))}
        ],
        dns_server_ips=[str(ipaddress.ip_address(base + 3))],
    )
    return info


def _read_ready(fd: int, proc: subprocess.Popen[bytes]) -> bool:
    import select

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], 0.1)
        if readable:
            return os.read(fd, 1) == b"1"
        if proc.poll() is not None:
            return False
    return False


def _slirp_forward(api_socket: str, p: PortMapping, guest: str) -> None:
    for proto in p.protocol.split(","):
        if proto not in ("tcp", "udp"):
            raise NotSupported(f"'-p .../{proto}' is not supported with slirp4netns: tcp or udp")
        for i in range(p.range):
            request = {
                "execute": "add_hostfwd",
                "arguments": {
                    "proto": proto,
                    "host_addr": p.host_ip or "0.0.0.0",
                    "host_port": p.host_port + i,
                    "guest_addr": guest,
                    "guest_port": p.container_port + i,
                },
            }
            reply = _slirp_api(api_socket, request)
            if "error" in reply:
                raise NetworkHelperError(
                    f"slirp4netns: publish {p.host_ip or '0.0.0.0'}:{p.host_port + i} -> "
                    f"{p.container_port + i}/{proto}: {reply['error'].get('desc', reply)}"
                )


def _slirp_api(api_socket: str, request: Mapping[str, Any]) -> dict[str, Any]:
    directory, name = os.path.split(api_socket)
    dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    with contextlib.ExitStack() as stack:
        stack.callback(os.close, dir_fd)
        s = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        s.settimeout(READY_TIMEOUT)
        s.connect(f"/proc/self/fd/{dir_fd}/{name}")  # short, whatever the directory's length
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    reply = json.loads(data or b"{}")
    return reply if isinstance(reply, dict) else {"error": {"desc": str(reply)}}


# --- helpers -----------------------------------------------------------------------------------
def _which(exe: str, package: str) -> str:
    path = shutil.which(exe)
    if path is None:
        raise CommandNotFound(
            f"{exe} not found in $PATH: install Debian's '{package}' package for rootless networks"
        )
    return path


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return "; ".join(lines)[-limit:]


def _tun_hint(text: str) -> str:
    if "/dev/net/tun" in text:
        return " (rootless networking needs /dev/net/tun readable and writable by everyone: 0666)"
    return ""


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in "ZX":
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _default_interface() -> str | None:
    """The interface of the host's IPv4 default route (/proc/net/route)."""
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000":
                    return fields[0]
    except (OSError, StopIteration):
        pass
    return None


def _host_address() -> tuple[str, str]:
    """(address/prefix, gateway) of the host's default route: what pasta copies."""
    import fcntl

    iface = _default_interface()
    if iface is None:
        return "", ""
    gateway = ""
    with open("/proc/net/route") as f:
        for line in f:
            fields = line.split()
            if fields[0] == iface and fields[1] == "00000000":
                gateway = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
                break
    siocgifaddr, siocgifnetmask = 0x8915, 0x891B
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("256s", iface.encode()[:15])
        try:
            addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), siocgifaddr, req)[20:24])
            mask = socket.inet_ntoa(fcntl.ioctl(s.fileno(), siocgifnetmask, req)[20:24])
        except OSError:
            return "", gateway
    prefix = ipaddress.ip_network(f"0.0.0.0/{mask}").prefixlen
    return f"{addr}/{prefix}", gateway
