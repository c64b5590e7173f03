"""The host files a container sees: /etc/hosts as containers/common's etchosts writes it, the
host's own /etc/hosts and /etc/resolv.conf, the host's address, and /run/.containerenv.

Shared by the engine's containers (:mod:`pypod.engine.etcfiles`, podman's rules) and the
build's RUN steps (:mod:`pypod.build.run_etc`, buildah's), which use the same library
(containers/common) for them.
"""

from __future__ import annotations

import pypod

__all__ = [
    "HOST_CONTAINERS_INTERNAL",
    "HOST_HOSTS",
    "HOST_RESOLV_CONF",
    "containerenv_text",
    "host_address",
    "hosts_text",
    "read_host_file",
]

HOST_HOSTS = "/etc/hosts"
HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_CONTAINERS_INTERNAL = "host.containers.internal"
#: an address of TEST-NET-2 (RFC 5737): "connecting" a UDP socket to it sends nothing and
#: makes the kernel pick the source address of the default route
_PROBE_ADDRESS = ("198.51.100.1", 9)


def read_host_file(path: str) -> str | None:
    """The text of one of the host's files (None when it does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def hosts_text(
    base: str | None,
    containers: list[tuple[str, str]],
    host_ip: str | None,
    *,
    ip: str = "127.0.0.1",
    extra: tuple[tuple[str, str], ...] = (),
    peers: tuple[tuple[str, str, str], ...] = (),
) -> str:
    """/etc/hosts: `extra` (`--add-host` (name, ip) pairs), `base`'s entries, then the special
    ones for names not yet present.

    `containers` are (hostname, name) pairs put on `ip` (the container's address on its first
    network; 127.0.0.1 without one); `peers` (ip, hostname, name) come before them (the
    container whose network namespace this one joins).
    """
    lines = [f"{address}\t{host}" for host, address in extra]
    seen: set[str] = {host for host, _ in extra}
    for raw in (base or "").splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        seen.update(fields[1:])
        lines.append(f"{fields[0]}\t{' '.join(fields[1:])}")
    special: list[tuple[str, list[str]]] = [("127.0.0.1", ["localhost"]), ("::1", ["localhost"])]
    if host_ip:
        special.append((host_ip, [HOST_CONTAINERS_INTERNAL]))
    for peer_ip, hostname, name in peers:
        special.append((peer_ip, list(dict.fromkeys(n for n in (hostname, name) if n))))
    for hostname, name in containers:
        special.append((ip, list(dict.fromkeys(n for n in (hostname, name) if n))))
    for address, names in special:
        free = [n for n in names if n not in seen]
        if free:
            lines.append(f"{address}\t{' '.join(free)}")
    return "".join(line + "\n" for line in lines)


def host_address() -> str | None:
    """The host's IPv4 address (host.containers.internal): the source of its default route."""
    import _socket  # not `socket`: its selectors etc. cost `run` ~2 ms of start-up

    try:
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    except OSError:
        return None
    try:
        s.connect(_PROBE_ADDRESS)
        address: str = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    if not address.startswith("127.") and address != "0.0.0.0":
        return address
    return None


def containerenv_text(
    *, container_id: str, name: str, image: str, image_id: str, rootless: bool
) -> str:
    """/run/.containerenv with its engine, name, id, image, imageid and rootless lines."""
    return (
        f'engine="pypod-{pypod.__version__}"\nname="{name}"\nid="{container_id}"\n'
        f'image="{image}"\nimageid="{image_id}"\nrootless={1 if rootless else 0}\n'
    )
