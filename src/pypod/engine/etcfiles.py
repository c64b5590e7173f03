"""The files pypod generates for a container and binds into it, as podman 4.3 writes them.

Each is written into the container's userdata directory and bind-mounted (the spec builder
makes the mounts from :func:`write_etc_files`' answer):

* `/etc/hostname`: the hostname and a newline;
* `/etc/hosts`: the host's /etc/hosts entries, then `localhost` (127.0.0.1 and ::1) and
  `host.containers.internal` (the host's address) for names not already there, then
  "127.0.0.1 HOSTNAME NAME" when the container has a network namespace of its own
  (containers/common's etchosts, "IP<TAB>names");
* `/etc/resolv.conf`: with the host's network, a copy of the host's (podman writes none for
  `--network none`: the image's own file stays);
* `/run/.containerenv`: empty, or with `--privileged` the engine, name, id, image, imageid and
  rootless lines;
* `/etc/localtime` (`--tz`): a copy of the zone's file from /usr/share/zoneinfo.
"""

from __future__ import annotations

import contextlib
import os
import stat

import pypod
from pypod.atomic import write_atomic
from pypod.errors import InvalidArgument

__all__ = ["ZONEINFO", "hosts_text", "host_address", "write_etc_files", "zone_file"]

ZONEINFO = "/usr/share/zoneinfo"
HOST_HOSTS = "/etc/hosts"
HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_CONTAINERS_INTERNAL = "host.containers.internal"
#: an address of TEST-NET-2 (RFC 5737): "connecting" a UDP socket to it sends nothing and
#: makes the kernel pick the source address of the default route
_PROBE_ADDRESS = ("198.51.100.1", 9)


def write_etc_files(
    userdata: str,
    *,
    container_id: str,
    name: str,
    hostname: str,
    own_network: bool,
    host_network: bool,
    privileged: bool,
    image: str,
    image_id: str,
    zone: str | None,
    skip: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Write the files into `userdata`; returns {destination in the container: host file}.

    `own_network`: the container gets a network namespace of its own (hosts then names it on
    127.0.0.1); `host_network`: it shares the host's (then it gets the host's resolv.conf).
    `zone`: the host's zone file to copy for `--tz` (:func:`zone_file`).  Destinations in
    `skip` (the user mounts something there) are neither written nor returned.
    """
    files: dict[str, tuple[str, bytes]] = {}
    files["/run/.containerenv"] = (
        ".containerenv",
        _containerenv(container_id, name, image, image_id) if privileged else b"",
    )
    files["/etc/hostname"] = ("hostname", (hostname + "\n").encode())
    entries = [(hostname, name)] if own_network else []
    base = _read_host_file(HOST_HOSTS)
    files["/etc/hosts"] = ("hosts", hosts_text(base, entries, host_address()).encode())
    if host_network:
        files["/etc/resolv.conf"] = (
            "resolv.conf",
            (_read_host_file(HOST_RESOLV_CONF) or "").encode(),
        )
    if zone:
        with open(zone, "rb") as f:
            files["/etc/localtime"] = ("localtime", f.read())
    out = {}
    for destination, (filename, data) in files.items():
        if destination in skip:
            continue
        path = os.path.join(userdata, filename)
        write_atomic(path, data, sync=False)
        out[destination] = path
    return out


def _containerenv(container_id: str, name: str, image: str, image_id: str) -> bytes:
    rootless = 0 if os.geteuid() == 0 else 1
    return (
        f'engine="pypod-{pypod.__version__}"\nname="{name}"\nid="{container_id}"\n'
        f'image="{image}"\nimageid="{image_id}"\nrootless={rootless}\n'
    ).encode()


def _read_host_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def hosts_text(base: str | None, containers: list[tuple[str, str]], host_ip: str | None) -> str:
    """/etc/hosts: `base`'s entries, then the special ones for names not yet present.

    `containers` are (hostname, name) pairs put on 127.0.0.1.
    """
    lines = []
    seen: set[str] = set()
    for raw in (base or "").splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        seen.update(fields[1:])
        lines.append(f"{fields[0]}\t{' '.join(fields[1:])}")
    special: list[tuple[str, list[str]]] = [("127.0.0.1", ["localhost"]), ("::1", ["localhost"])]
    if host_ip:
        special.append((host_ip, [HOST_CONTAINERS_INTERNAL]))
    for hostname, name in containers:
        special.append(("127.0.0.1", list(dict.fromkeys(n for n in (hostname, name) if n))))
    for ip, names in special:
        free = [n for n in names if n not in seen]
        if free:
            lines.append(f"{ip}\t{' '.join(free)}")
    return "".join(line + "\n" for line in lines)


def host_address() -> str | None:
    """The host's IPv4 address (host.containers.internal): the source of its default route."""
    import socket

    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(_PROBE_ADDRESS)
        address: str = s.getsockname()[0]
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    return None


def zone_file(tz: str) -> str:
    """The host file of `--tz` ("local" or a zone name such as Europe/Paris)."""
    if tz == "local":
        path = os.path.realpath("/etc/localtime")
    else:
        path = os.path.realpath(os.path.join(ZONEINFO, tz))
        if tz.startswith("/") or not path.startswith(ZONEINFO + "/"):
            raise InvalidArgument(
                f"--tz {tz}: not a time zone name: give one such as Europe/Paris, or local"
            )
    try:
        st = os.stat(path)
    except OSError as e:
        shown = "/etc/localtime" if tz == "local" else os.path.join(ZONEINFO, tz)
        raise InvalidArgument(
            f"running container create option: stat {shown}: "
            f"{(e.strerror or str(e)).lower()}: give a zone name such as Europe/Paris, or local"
        ) from e
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgument(f"--tz {tz}: {path} is not a time zone file")
    return path
