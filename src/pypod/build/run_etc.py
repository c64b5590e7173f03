"""The files a build step sees bind-mounted on /etc and /run, as buildah 1.28 writes them.

Written into the run's private directory (never into the rootfs, so never into the layer):

* `/etc/hostname`: the hostname and a newline;
* `/etc/hosts` (not with `--network none`, where the image's own file stays and changes to it
  are kept, as buildah does): the host's entries as "IP<TAB>names", then `localhost`
  (127.0.0.1, ::1) and `host.containers.internal` (the host's address) for names not there
  yet, then "127.0.0.1<TAB>hostname name" with a network namespace of its own;
* `/etc/resolv.conf` (not with `--network none`): a copy of the host's;
* `/run/.containerenv`: the engine, name, id, image, imageid and rootless lines.

The rules are those of containers/common's etchosts that podman uses too: the shared code is
:mod:`pypod.config.etchosts`.
"""

from __future__ import annotations

import os

from pypod.atomic import write_atomic
from pypod.config import etchosts

__all__ = ["write_etc_files"]


def write_etc_files(
    directory: str,
    *,
    hostname: str,
    network: str,
    container_id: str,
    name: str,
    image: str,
    image_id: str,
    rootless: bool,
    skip: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Write the files into `directory`; returns {destination in the container: host file}.
    Destinations in `skip` (the step mounts something there itself) are left out."""
    files: dict[str, tuple[str, str]] = {
        "/etc/hostname": ("hostname", hostname + "\n"),
    }
    if network != "none":
        own = [] if network == "host" else [(hostname, name)]
        base = etchosts.read_host_file(etchosts.HOST_HOSTS)
        hosts = etchosts.hosts_text(base, own, etchosts.host_address())
        files["/etc/hosts"] = ("hosts", hosts)
        resolv = etchosts.read_host_file(etchosts.HOST_RESOLV_CONF) or ""
        files["/etc/resolv.conf"] = ("resolv.conf", resolv)
    files["/run/.containerenv"] = (
        ".containerenv",
        etchosts.containerenv_text(
            container_id=container_id,
            name=name,
            image=image,
            image_id=image_id,
            rootless=rootless,
        ),
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
