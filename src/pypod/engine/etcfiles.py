"""The files pypod generates for a container and binds into it, as podman 4.3 writes them.

Each is written into the container's userdata directory and bind-mounted (the spec builder
makes the mounts from :func:`write_etc_files`' answer):

* `/etc/hostname`: the hostname and a newline;
* `/etc/hosts`: `--add-host` entries, the host's /etc/hosts entries, then `localhost`
  (127.0.0.1 and ::1) and `host.containers.internal` (the first network's gateway, else the
  host's address) for names not already there, then "IP HOSTNAME NAME" when the container has
  a network namespace of its own (IP: its first network's address, else 127.0.0.1)
  (containers/common's etchosts, "IP<TAB>names"); none with `--no-hosts`;
* `/etc/resolv.conf`: with the host's network, a copy of the host's; with a network of its
  own, the host's without loopback resolvers, after the network's DNS server and search
  domain (`dns.podman`) and `--dns*` (podman writes none for `--network none` without
  `--dns*`: the image's own file stays);
* `/run/.containerenv`: empty, or with `--privileged` the engine, name, id, image, imageid and
  rootless lines;
* `/etc/localtime` (`--tz`): a copy of the zone's file from /usr/share/zoneinfo.

The /etc/hosts rules, the host's address and the .containerenv text are shared with the
build's RUN steps: :mod:`pypod.config.etchosts` (`hosts_text` and `host_address` are
re-exported here).
"""

from __future__ import annotations

import os
import stat

from pypod.atomic import write_atomic
from pypod.config.etchosts import (
    HOST_HOSTS,
    HOST_RESOLV_CONF,
    containerenv_text,
    host_address,
    hosts_text,
    read_host_file,
)
from pypod.errors import InvalidArgument
from pypod.record import record

__all__ = [
    "ZONEINFO",
    "NetworkFiles",
    "hosts_text",
    "resolv_conf_text",
    "host_address",
    "rewrite_network_files",
    "write_etc_files",
    "zone_file",
]

ZONEINFO = "/usr/share/zoneinfo"


def write_etc_files(
    userdata: str,
    *,
    container_id: str,
    name: str,
    hostname: str,
    net: NetworkFiles,
    privileged: bool,
    image: str,
    image_id: str,
    zone: str | None,
    skip: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Write the files into `userdata`; returns {destination in the container: host file}.

    `net`: what the container's network puts in /etc/hosts and /etc/resolv.conf.
    `zone`: the host's zone file to copy for `--tz` (:func:`zone_file`).  Destinations in
    `skip` (the user mounts something there) are neither written nor returned.
    """
    files: dict[str, tuple[str, bytes]] = {}
    files["/run/.containerenv"] = (
        ".containerenv",
        _containerenv(container_id, name, image, image_id) if privileged else b"",
    )
    files["/etc/hostname"] = ("hostname", (hostname + "\n").encode())
    files.update(_network_files(net, hostname, name))
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


@record
class NetworkFiles:
    """What a container's network says in its /etc/hosts and /etc/resolv.conf."""

    #: the network mode: "bridge", "none", "host", "container:ID", "pasta"...
    mode: str
    #: the container's address named by its hostname (its first network's), if any
    ips: tuple[str, ...] = ()
    #: host.containers.internal: the first network's gateway; None for the host's address
    host_ip: str | None = None
    nameservers: tuple[str, ...] = ()
    #: `--dns` given: only `nameservers`; else they come before the host's
    replace_servers: bool = False
    search: tuple[str, ...] = ()
    replace_search: bool = False
    options: tuple[str, ...] = ()
    add_hosts: tuple[tuple[str, str], ...] = ()
    no_hosts: bool = False
    #: (ip, hostname, name) of the container whose network this one joins (`container:ID`)
    peers: tuple[tuple[str, str, str], ...] = ()


def resolv_conf_text(host: str, net: NetworkFiles) -> str:
    """/etc/resolv.conf: the host's, with the network's servers and search domains first.

    With a network namespace of its own the container cannot reach the host's loopback
    resolvers (systemd-resolved's 127.0.0.53), so those are dropped, as podman does.
    """
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for raw in host.splitlines():
        words = raw.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            if net.mode == "host" or not _loopback(words[1]):
                servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options.extend(words[1:])
    servers = list(net.nameservers) if net.replace_servers else [*net.nameservers, *servers]
    search = list(net.search) if net.replace_search else [*net.search, *search]
    options = list(dict.fromkeys([*options, *net.options]))
    if not servers and net.mode != "host":
        servers = ["8.8.8.8", "8.8.4.4"]  # containers/common's defaults
    lines = []
    if search:
        lines.append("search " + " ".join(dict.fromkeys(search)))
    lines.extend(f"nameserver {s}" for s in dict.fromkeys(servers))
    if options:
        lines.append("options " + " ".join(options))
    return "".join(line + "\n" for line in lines)


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _network_files(net: NetworkFiles, hostname: str, name: str) -> dict[str, tuple[str, bytes]]:
    """/etc/hosts and /etc/resolv.conf, as {destination: (file name, content)}."""
    files: dict[str, tuple[str, bytes]] = {}
    if not net.no_hosts:
        entries = [] if net.mode == "host" else [(hostname, name)]
        base = read_host_file(HOST_HOSTS)
        host_ip = net.host_ip or host_address()
        text = hosts_text(base, entries, host_ip, ip=net.ips[0] if net.ips else "127.0.0.1",
                          extra=net.add_hosts, peers=net.peers)  # fmt: skip
        files["/etc/hosts"] = ("hosts", text.encode())
    if net.mode != "none" or net.nameservers or net.search or net.options:
        host = read_host_file(HOST_RESOLV_CONF) or ""
        plain = net.mode == "host" and not (net.nameservers or net.search or net.options)
        text = host if plain else resolv_conf_text(host, net)  # the host's own, as it is
        files["/etc/resolv.conf"] = ("resolv.conf", text.encode())
    return files


def rewrite_network_files(userdata: str, net: NetworkFiles, hostname: str, name: str) -> None:
    """Write /etc/hosts and /etc/resolv.conf again, with what the network gave the container
    once it is set up.  In place (same inode), since the container has them bind-mounted
    already; only those `write_etc_files` wrote (not those the user mounts)."""
    for filename, data in _network_files(net, hostname, name).values():
        path = os.path.join(userdata, filename)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def _containerenv(container_id: str, name: str, image: str, image_id: str) -> bytes:
    from pypod.linux.userns import rootless

    return containerenv_text(
        container_id=container_id, name=name, image=image, image_id=image_id, rootless=rootless()
    ).encode()


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
