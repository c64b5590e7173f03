"""Layer tars: apply one to a directory, list a container's changes, export them as a layer.

Shared vocabulary of the three modules: how deletions are written on disk (`WhiteoutFormat`),
the names of whiteout entries in a tar, and id maps between a container and the host.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from pypod.errors import StorageError
from pypod.linux.idmap import IDMapping
from pypod.record import record

#: a tar entry `dir/.wh.name` deletes `dir/name` from the layers below
WHITEOUT_PREFIX = ".wh."
#: a tar entry `dir/.wh..wh..opq` hides everything the layers below have in `dir`
OPAQUE_MARKER = ".wh..wh..opq"
#: AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`), never part of a layer's content
WHITEOUT_META_PREFIX = ".wh..wh."
#: overlayfs' own xattrs; the `user.` ones are what a rootless (userxattr) overlay uses
OPAQUE_XATTR = "trusted.overlay.opaque"
OPAQUE_XATTR_USER = "user.overlay.opaque"
#: (fuse-overlayfs keeps its own markers under user.fuseoverlayfs. while a layer is mounted)
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.")


class WhiteoutFormat(enum.Enum):
    """How a layer directory records deletions from the layers below it."""

    #: overlayfs: a whiteout is a 0:0 character device, an opaque dir has the opaque xattr
    OVERLAY = "overlay"
    #: full copies (vfs, "naive" diff): a whiteout deletes the path, nothing is recorded
    VFS = "vfs"


OVERLAY = WhiteoutFormat.OVERLAY
VFS = WhiteoutFormat.VFS


@record
class IdRange:
    """`size` ids from `container_id` in the container are `host_id`... on the host."""

    container_id: int
    host_id: int
    size: int


def _map(ranges: Sequence[IDMapping], value: int, *, to_host: bool, kind: str) -> int:
    for r in ranges:
        start, other = (r.container_id, r.host_id) if to_host else (r.host_id, r.container_id)
        if start <= value < start + r.size:
            return other + (value - start)
    side = "container" if to_host else "host"
    raise StorageError(
        f"{side} {kind} {value} is not in the id map; add a range that holds it to the "
        "uid/gid map of the store"
    )


@record
class IdMap:
    """The uid and gid maps of a store that keeps its files with shifted ids (--userns)."""

    uids: tuple[IDMapping, ...]
    gids: tuple[IDMapping, ...]

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        return (
            _map(self.uids, uid, to_host=True, kind="uid"),
            _map(self.gids, gid, to_host=True, kind="gid"),
        )

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        return (
            _map(self.uids, uid, to_host=False, kind="uid"),
            _map(self.gids, gid, to_host=False, kind="gid"),
        )


def clean_path(name: str) -> str | None:
    """A tar entry name as a clean path relative to the layer root; "" is the root itself.

    Absolute names are taken relative to the root (as containers/storage does); "." parts go;
    ".." is resolved lexically, and None is returned when it climbs above the root.
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def path_key(path: str) -> list[str]:
    """Sort key that puts a directory right before its content (component-wise order)."""
    return path.split("/")
