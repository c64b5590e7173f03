"""The files a build step sees bind-mounted on /etc and /run, as buildah 1.28 writes them.

Written into the run's private directory (never into the rootfs, so never into the layer):

* `/etc/hostname`: the hostname and a newline;
* `/etc/hosts` (not with `--network none`, where the image's own file stays and changes to it
  are kept, as buildah does): the host's entries as "IP<TAB>names", then `localhost`
  (127.0.0.1, ::1) and `host.containers.internal` (the host's address) for names not there
  yet, then "127.0.0.1<TAB>hostname name" with a network namespace of its own;
* `/etc/resolv.conf` (not with `--network none`): a copy of the host's;
* `/run/.containerenv`: the engine, name, id, image, imageid and rootless lines.

The rules are those of containers/common's etchosts that podman uses too
(`pypod.engine.etcfiles`, which the build layer may not import).
"""

from __future__ import annotations

import contextlib
import os

import pypod
from pypod.atomic import write_atomic

__all__ = ["containerenv_text", "host_address", "hosts_text", "write_etc_files"]

HOST_HOSTS = "/etc/hosts"
HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_CONTAINERS_INTERNAL = "host.containers.internal"
#: TEST-NET-2 (RFC 5737): "connecting" a UDP socket sends nothing, the kernel picks the source
_PROBE_ADDRESS = ("198.51.100.1", 9)


def hosts_text(base: str | None, host_ip: str | None, own: tuple[str, ...]) -> str:
    """/etc/hosts: `base`'s entries, then the special names not yet present; `own`: the names
    put on 127.0.0.1 (hostname and container name) when the step has a network of its own."""
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
    if own:
        special.append(("127.0.0.1", list(dict.fromkeys(n for n in own if n))))
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


def containerenv_text(*, container_id: str, name: str, image: str, image_id: str) -> str:
    rootless = 0 if os.geteuid() == 0 else 1
    return (
        f'engine="pypod-{pypod.__version__}"\nname="{name}"\nid="{container_id}"\n'
        f'image="{image}"\nimageid="{image_id}"\nrootless={rootless}\n'
    )


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_etc_files(
    directory: str,
    *,
    hostname: str,
    network: str,
    container_id: str,
    name: str,
    image: str,
    image_id: str,
    skip: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Write the files into `directory`; returns {destination in the container: host file}.
    Destinations in `skip` (the step mounts something there itself) are left out."""
    files: dict[str, tuple[str, str]] = {
        "/etc/hostname": ("hostname", hostname + "\n"),
    }
    if network != "none":
        own = () if network == "host" else (hostname, name)
        files["/etc/hosts"] = ("hosts", hosts_text(_read(HOST_HOSTS), host_address(), own))
        files["/etc/resolv.conf"] = ("resolv.conf", _read(HOST_RESOLV_CONF) or "")
    files["/run/.containerenv"] = (
        ".containerenv",
        containerenv_text(container_id=container_id, name=name, image=image, image_id=image_id),
    )
    out = {}
    for destination, (filename, text) in files.items():
        if destination in skip:
            continue
        path = os.path.join(directory, filename)
        write_atomic(path, text.encode(), sync=False)
        os.chmod(path, 0o644)
        out[destination] = path
    return out
