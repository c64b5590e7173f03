"""Mount reference counts, kept on disk under the runroot, and the mount table.

`<run_home>/mounts/<layer-id>` holds the number of users of the layer's mount, written atomically
with the driver's mount lock held (`<run_home>/mounts.lock`); a second process (`pypod umount`
after `pypod mount`) reads and drops them the same way.  The runroot is a tmpfs on real hosts,
so counts vanish with the mounts at reboot; `stale()` finds counts whose mount is gone anyway.
"""

from __future__ import annotations

import os

from pypod.atomic import write_atomic
from pypod.errors import StorageError
from pypod.linux.mounts import unescape_mountinfo
from pypod.storage.locks import FileLock


class MountCounts:
    __slots__ = ("_dir", "lock")

    def __init__(self, run_home: str) -> None:
        self._dir = os.path.join(run_home, "mounts")
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        self.lock = FileLock(os.path.join(run_home, "mounts.lock"))

    def _path(self, layer_id: str) -> str:
        return os.path.join(self._dir, layer_id)

    def get(self, layer_id: str) -> int:
        try:
            with open(self._path(layer_id), "rb") as f:
                return int(f.read().strip() or b"0")
        except FileNotFoundError:
            return 0
        except ValueError:
            return 0  # a torn write cannot happen (atomic), but never fail on it

    def set(self, layer_id: str, count: int) -> None:
        assert self.lock.held, "mount counts change only with the mount lock held"
        if count <= 0:
            try:
                os.unlink(self._path(layer_id))
            except FileNotFoundError:
                pass
        else:
            # not fsynced: counts live in the runroot, which a reboot (the only way to lose
            # an unsynced write) empties along with the mounts they count
            write_atomic(self._path(layer_id), str(count).encode(), sync=False)

    def counted(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for name in os.listdir(self._dir):
            if not name.startswith("."):
                found[name] = self.get(name)
        return found


def mount_points(prefix: str = "/") -> set[str]:
    """The mount points of this mount namespace at or below `prefix`."""
    found: set[str] = set()
    prefix = prefix.rstrip("/")
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                parts = line.split(" ", 5)
                if len(parts) < 5:
                    continue
                point = unescape_mountinfo(parts[4])
                if not prefix or point == prefix or point.startswith(prefix + "/"):
                    found.add(point)
    except OSError as e:
        raise StorageError(f"read the mount table: {e.strerror}") from e
    return found


def is_mount_point(path: str) -> bool:
    return path.rstrip("/") in mount_points(path)
