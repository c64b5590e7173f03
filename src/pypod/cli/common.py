"""Pieces every pypod program shares: the store's default locations, ID files."""

from __future__ import annotations

import os


def default_locations() -> tuple[str, str]:
    """(graphroot, runroot): rootful /var/lib/pypod and /run/pypod, rootless under $HOME."""
    # in the rootless namespace (`pypod unshare`, the monitor) euid is 0: the variable tells
    rootless_uid = os.environ.get("_PYPOD_ROOTLESS_UID")
    if os.geteuid() == 0 and rootless_uid is None:
        return "/var/lib/pypod", "/run/pypod"
    home = os.environ.get("HOME", "/")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    run = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/pypod-run-{rootless_uid or os.geteuid()}"
    return os.path.join(data, "pypod"), os.path.join(run, "pypod")


def read_id_file(path: str, what: str) -> str:
    """The ID a `--cidfile`/`--pod-id-file` holds; podman's error when it cannot be read
    ("reading {what}: open PATH: no such file or directory")."""
    from pypod.errors import InvalidArgument

    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise InvalidArgument(
            f"reading {what}: open {path}: {(e.strerror or str(e)).lower()}"
        ) from e
