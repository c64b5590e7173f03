"""Named volumes: `<graphroot>/volumes/<name>/_data`, one row each in the engine's state DB.

A volume row (`volumes(name, config, created)`) holds its driver, labels, options, owner and
its mount count as JSON; every change is one `db.transaction()`, so concurrent pypod commands
never lose an update.  A volume is in use when a container's config mounts it (`"volume":
NAME` in `containers.config`); such a volume is not removed without `force` (the caller
removes the containers first).

The local driver behaves as podman's: a plain volume is a directory; `-o type=tmpfs -o
device=tmpfs -o o=size=10m,uid=1000` (or any filesystem type, or `type=bind` with a device
path) is mounted on `_data` when the first container using it starts (`mount`) and unmounted
when the last one stops (`unmount`), counted in the row.  `uid=`/`gid=` (top level or inside
`o=`) set the owner of `_data`.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

from pypod.engine.db import EngineDB
from pypod.errors import AlreadyExists, InUse, InvalidArgument, NotFound, NotSupported
from pypod.record import field, record, replace

__all__ = ["VOLUME_NAME_RE", "Volume", "Volumes", "go_time"]

VOLUME_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
#: the option keys of podman's local driver (case-insensitive)
_LOCAL_OPTIONS = ("device", "o", "type", "uid", "gid", "size", "inodes", "noquota", "copy",
                  "nocopy")  # fmt: skip
_LIST_FILTERS = ("name", "label", "driver", "dangling", "opt", "scope", "until")
_PRUNE_FILTERS = ("label", "until")
_MNT_DETACH = 2


@record
class Volume:
    name: str
    driver: str = "local"
    #: the directory bound into containers: `<graphroot>/volumes/<name>/_data`
    mountpoint: str
    created: float
    labels: dict[str, str] = field(default_factory=dict)
    #: the driver options as given (`-o KEY=VALUE`), plus podman's "UID"/"GID" keys
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    uid: int | None = None
    gid: int | None = None
    #: how many running containers have it mounted (only counted for mounted volumes)
    mount_count: int = 0
    #: the image's files at the mount point are still to be copied in (first use)
    needs_copy_up: bool = True
    #: still to be chowned to the container's user (first use; not when uid/gid are given)
    needs_chown: bool = True

    @property
    def needs_mount(self) -> bool:
        """A filesystem is mounted on `_data` (`-o type=`/`device=`), not a plain directory."""
        return bool(self.options.get("type") or self.options.get("device"))


def go_time(t: float) -> str:
    """RFC 3339 in UTC with nanoseconds, as Go marshals a time.Time."""
    whole = int(t)
    frac = f"{t - whole:.9f}"[2:].rstrip("0")
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (f".{frac}" if frac else "") + "Z"
    )


class Volumes:
    """The volumes of one store (`--root`)."""

    def __init__(self, db: EngineDB, graphroot: str) -> None:
        self.db = db
        self.root = os.path.join(os.path.abspath(graphroot), "volumes")

    # --- create -----------------------------------------------------------------------------
    def create(
        self,
        name: str | None,
        *,
        driver: str = "local",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        anonymous: bool = False,
        ignore_if_exists: bool = False,
    ) -> Volume:
        """A new volume (a 64-hex name when `name` is None); AlreadyExists if the name is
        taken, unless `ignore_if_exists` (then the existing volume is returned)."""
        if name is None:
            name = os.urandom(32).hex()
        elif VOLUME_NAME_RE.fullmatch(name) is None:
            raise InvalidArgument(
                "running volume create option: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: "
                "invalid argument"
            )
        if driver != "local":
            if driver == "image":
                raise NotSupported("the 'image' volume driver is not supported yet")
            raise NotFound(
                f"volume {name} uses volume plugin {driver} but it could not be retrieved: no "
                f"volume plugin with name {driver} available: required plugin missing"
            )
        opts = dict(options or {})
        uid, gid, shown = _check_options(opts)
        vol = Volume(
            name=name,
            driver=driver,
            mountpoint=self._data(name),
            created=time.time(),
            labels=dict(labels or {}),
            options=shown,
            anonymous=anonymous,
            uid=uid,
            gid=gid,
            needs_copy_up="nocopy" not in {k.lower() for k in opts},
            needs_chown=uid is None and gid is None,
        )
        with self.db.transaction():
            found = self._find(name)
            if found is not None:
                if ignore_if_exists:
                    return found
                raise AlreadyExists(
                    f"volume with name {name} already exists: volume already exists"
                )
            self._make_dirs(vol)
            self.db.execute(
                "INSERT INTO volumes (name, config, created) VALUES (?, ?, ?)",
                (name, self.db.dumps(_row_config(vol)), vol.created),
            )
        return vol

    def _data(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def _make_dirs(self, vol: Volume) -> None:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.dirname(vol.mountpoint), 0o700)
        with contextlib.suppress(FileExistsError):
            os.mkdir(vol.mountpoint, 0o755)
        if vol.uid is not None or vol.gid is not None:
            os.chown(vol.mountpoint, -1 if vol.uid is None else vol.uid,
                     -1 if vol.gid is None else vol.gid)  # fmt: skip

    # --- lookup -----------------------------------------------------------------------------
    def _find(self, name: str) -> Volume | None:
        rows = self.db.query("SELECT name, config, created FROM volumes WHERE name = ?", (name,))
        return self._volume(rows[0]) if rows else None

    def _volume(self, row: tuple[Any, ...]) -> Volume:
        name, config, created = row
        data = self.db.loads(config)
        return Volume(
            name=name,
            driver=data.get("driver", "local"),
            mountpoint=self._data(name),
            created=created,
            labels=data.get("labels", {}),
            options=data.get("options", {}),
            anonymous=data.get("anonymous", False),
            uid=data.get("uid"),
            gid=data.get("gid"),
            mount_count=data.get("mount_count", 0),
            needs_copy_up=data.get("needs_copy_up", True),
            needs_chown=data.get("needs_chown", True),
        )

    def get(self, name: str) -> Volume:
        """A volume by name, or by a unique prefix of its name (podman's lookup)."""
        found = self._find(name)
        if found is not None:
            return found
        if name:
            rows = self.db.query(
                "SELECT name, config, created FROM volumes WHERE substr(name, 1, ?) = ?",
                (len(name), name),
            )
            if len(rows) == 1:
                return self._volume(rows[0])
            if len(rows) > 1:
                raise InvalidArgument(
                    f"more than one result for volume name {name}: volume already exists"
                )
        raise NotFound(f"no such volume {name}")

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except NotFound:
            return False
        return True

    def all(self) -> list[Volume]:
        rows = self.db.query("SELECT name, config, created FROM volumes ORDER BY name")
        return [self._volume(r) for r in rows]

    def users(self, name: str) -> list[str]:
        """The IDs of the containers whose config mounts the volume."""
        rows = self.db.query(
            "SELECT DISTINCT c.id FROM containers AS c, json_each(c.config, '$.mounts') AS m "
            "WHERE json_extract(m.value, '$.volume') = ? ORDER BY c.created",
            (name,),
        )
        return [r[0] for r in rows]

    def _used(self) -> set[str]:
        rows = self.db.query(
            "SELECT DISTINCT json_extract(m.value, '$.volume') FROM containers AS c, "
            "json_each(c.config, '$.mounts') AS m WHERE json_extract(m.value, '$.volume') "
            "IS NOT NULL"
        )
        return {r[0] for r in rows}

    # --- list, inspect ----------------------------------------------------------------------
    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[Volume]:
        """The volumes matching `filters` (podman's: name, label, driver, dangling, opt,
        scope, until; one key's values are alternatives, different keys must all match)."""
        checks = _filters(filters or {}, _LIST_FILTERS, self._used)
        return [v for v in self.all() if all(check(v) for check in checks)]

    def inspect(self, name: str) -> dict[str, Any]:
        """`podman volume inspect`'s JSON object for the volume."""
        return inspect_json(self.get(name))

    # --- remove, prune ----------------------------------------------------------------------
    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove the volume and its data.  A volume that containers use is InUse (the IDs are
        in the message) unless `force`: then the caller has removed those containers, or
        accepts that they lose it."""
        vol = self.get(name)
        with self.db.transaction():
            found = self._find(vol.name)
            if found is None:
                raise NotFound(f"no such volume {name}")
            users = self.users(vol.name)
            if users and not force:
                raise InUse(
                    f"volume {vol.name} is being used by the following container(s): "
                    f"{', '.join(users)}: volume is being used"
                )
            if found.mount_count and found.needs_mount and not force:
                raise InUse(f"volume {vol.name} is mounted by a container: volume is being used")
            if found.needs_mount:
                self._umount(found.mountpoint)
            self.db.execute("DELETE FROM volumes WHERE name = ?", (vol.name,))
        shutil.rmtree(os.path.dirname(vol.mountpoint), ignore_errors=True)

    def prune(self, filters: Mapping[str, Sequence[str]] | None = None) -> builtins.list[str]:
        """Remove the volumes no container uses (and that match `filters`: label, until)."""
        checks = _filters(filters or {}, _PRUNE_FILTERS, self._used)
        used = self._used()
        removed = []
        for vol in self.all():
            if vol.name in used or not all(check(vol) for check in checks):
                continue
            try:
                self.remove(vol.name)
            except (InUse, NotFound):
                continue  # taken (or removed) by another command meanwhile
            removed.append(vol.name)
        return removed

    # --- mount ------------------------------------------------------------------------------
    def mount(self, name: str) -> str:
        """The host path to bind into a container that starts; a volume with a filesystem
        (`-o type=`/`device=`) is mounted on its first use (counted)."""
        vol = self.get(name)
        if not vol.needs_mount:
            return vol.mountpoint
        with self.db.transaction():
            found = self._find(vol.name)
            if found is None:
                raise NotFound(f"no such volume {name}")
            if found.mount_count == 0 and not _is_mountpoint(found.mountpoint):
                _mount_filesystem(found)
            self._save(replace(found, mount_count=found.mount_count + 1))
        return vol.mountpoint

    def unmount(self, name: str) -> None:
        """A container using the volume stopped; the last one unmounts its filesystem."""
        vol = self.get(name)
        if not vol.needs_mount:
            return
        with self.db.transaction():
            found = self._find(vol.name)
            if found is None or found.mount_count == 0:
                return
            count = found.mount_count - 1
            if count == 0:
                self._umount(found.mountpoint)
            self._save(replace(found, mount_count=count))

    def set_needs(
        self, name: str, *, copy_up: bool | None = None, chown: bool | None = None
    ) -> None:
        """Record that the first use copied the image's files in / chowned the volume."""
        with self.db.transaction():
            found = self._find(name)
            if found is None:
                raise NotFound(f"no such volume {name}")
            self._save(
                replace(
                    found,
                    needs_copy_up=found.needs_copy_up if copy_up is None else copy_up,
                    needs_chown=found.needs_chown if chown is None else chown,
                )
            )

    def _save(self, vol: Volume) -> None:
        self.db.execute(
            "UPDATE volumes SET config = ? WHERE name = ?",
            (self.db.dumps(_row_config(vol)), vol.name),
        )

    @staticmethod
    def _umount(path: str) -> None:
        from pypod.errors import OSLevelError
        from pypod.linux import syscalls

        while _is_mountpoint(path):
            try:
                syscalls.umount2(path, _MNT_DETACH)
            except OSLevelError as e:
                raise InUse(f"unmounting volume at {path}: {e}") from e


def _row_config(vol: Volume) -> dict[str, Any]:
    return {
        "driver": vol.driver,
        "labels": vol.labels,
        "options": vol.options,
        "anonymous": vol.anonymous,
        "uid": vol.uid,
        "gid": vol.gid,
        "mount_count": vol.mount_count,
        "needs_copy_up": vol.needs_copy_up,
        "needs_chown": vol.needs_chown,
    }


def inspect_json(vol: Volume) -> dict[str, Any]:
    """podman 4.3's `volume inspect` object (false and unset fields left out, as podman)."""
    out: dict[str, Any] = {
        "Name": vol.name,
        "Driver": vol.driver,
        "Mountpoint": vol.mountpoint,
        "CreatedAt": go_time(vol.created),
        "Labels": dict(vol.labels),
        "Scope": "local",
        "Options": dict(vol.options),
    }
    if vol.uid is not None:
        out["UID"] = vol.uid
    if vol.gid is not None:
        out["GID"] = vol.gid
    if vol.anonymous:
        out["Anonymous"] = True
    out["MountCount"] = vol.mount_count
    if vol.needs_copy_up:
        out["NeedsCopyUp"] = True
    if vol.needs_chown:
        out["NeedsChown"] = True
    return out


# --- options ----------------------------------------------------------------------------------
def _int_option(what: str, text: str) -> int:
    if re.fullmatch(r"[+-]?[0-9]+", text) is None:
        raise InvalidArgument(
            f'cannot convert {what} {text} to integer: strconv.Atoi: parsing "{text}": '
            "invalid syntax"
        )
    value = int(text)
    if value < 0:
        raise InvalidArgument(f"{what} {value} is not a valid {what}: it must be 0 or more")
    return value


def _check_options(opts: dict[str, str]) -> tuple[int | None, int | None, dict[str, str]]:
    """Validate the local driver's options -> (uid, gid, the options as inspect shows them)."""
    uid = gid = None
    shown = dict(opts)
    lowered = {k.lower(): v for k, v in opts.items()}
    for key in opts:
        if key.lower() not in _LOCAL_OPTIONS:
            raise InvalidArgument(
                f"invalid mount option {key} for driver 'local': invalid argument"
            )
    if "uid" in lowered:
        uid = _int_option("UID", lowered["uid"])
    if "gid" in lowered:
        gid = _int_option("GID", lowered["gid"])
    kind = lowered.get("type", "")
    device = lowered.get("device", "")
    for opt in (lowered.get("o") or "").split(","):
        key, eq, value = opt.partition("=")
        if key.lower() == "uid":
            if not eq:
                raise InvalidArgument("uid option must provide a UID: invalid argument")
            uid = _int_option("UID", value)
            shown["UID"] = value
        elif key.lower() == "gid":
            if not eq:
                raise InvalidArgument("gid option must provide a GID: invalid argument")
            gid = _int_option("GID", value)
            shown["GID"] = value
        elif key.lower() in ("size", "inodes") and kind != "tmpfs":
            raise InvalidArgument(
                "volume options size and inodes not supported. Filesystem does not support "
                "Project Quota"
            )
    if ("size" in lowered or "inodes" in lowered) and kind != "tmpfs":
        raise InvalidArgument(
            "volume options size and inodes not supported. Filesystem does not support Project "
            "Quota"
        )
    if device and not kind:
        raise InvalidArgument(
            f"invalid volume option device for driver 'local': give the filesystem of {device} "
            "with -o type=TYPE"
        )
    if kind == "bind":
        if not device:
            raise InvalidArgument("a bind volume needs the path to bind: -o device=PATH")
        try:
            os.stat(device)
        except OSError as e:
            raise InvalidArgument(
                f"invalid volume option device for driver 'local': stat {device}: "
                f"{(e.strerror or str(e)).lower()}"
            ) from None
    return uid, gid, shown


def _is_mountpoint(path: str) -> bool:
    from pypod.linux.mounts import unescape_mountinfo

    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return any(unescape_mountinfo(line.split()[4]) == path for line in f)
    except OSError:
        return False


def _mount_filesystem(vol: Volume) -> None:
    """`mount -t TYPE DEVICE _data -o O`, as podman's local driver."""
    from pypod.errors import OSLevelError
    from pypod.linux import syscalls
    from pypod.linux.mounts import parse_options

    opts = {k.lower(): v for k, v in vol.options.items() if k.lower() in _LOCAL_OPTIONS}
    kind = opts.get("type", "")
    device = opts.get("device") or kind
    words = [w for w in (opts.get("o") or "").split(",") if w]
    parsed = parse_options(words)
    flags = parsed.flags
    try:
        if kind == "bind":
            # a bind mount takes its flags (ro, nosuid...) from a second, remounting call
            bind = syscalls.MS_BIND | (flags & syscalls.MS_REC)
            syscalls.mount(device, vol.mountpoint, None, bind, None)
            if flags & ~bind:
                syscalls.mount(None, vol.mountpoint, None, flags | bind | syscalls.MS_REMOUNT,
                               None)  # fmt: skip
        else:
            syscalls.mount(device, vol.mountpoint, kind, flags, parsed.data or None)
        for propagation in parsed.propagation:
            syscalls.mount(None, vol.mountpoint, None, propagation, None)
    except OSLevelError as e:
        raise InvalidArgument(f"mounting volume {vol.name}: {e}") from e


# --- filters ----------------------------------------------------------------------------------
def parse_until(text: str, now: float | None = None) -> float:
    """podman's `until=`: a Unix time, an RFC 3339 date (or day), or a Go duration before now."""
    from datetime import datetime

    now = time.time() if now is None else now
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    m = re.fullmatch(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+(?:\.[0-9]+)?)s)?", text)
    if m and text:
        hours, minutes, seconds = (float(x) if x else 0.0 for x in m.groups())
        return now - (hours * 3600 + minutes * 60 + seconds)
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d"):  # fmt: skip
        try:
            parsed = datetime.strptime(text.replace("Z", "+0000"), fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise InvalidArgument(f'failed to parse value as time or duration: "{text}"')


def _filters(
    filters: Mapping[str, Sequence[str]],
    allowed: Sequence[str],
    used: Callable[[], set[str]],
) -> list[Callable[[Volume], bool]]:
    """One check per filter key; a key's values are alternatives."""
    checks: list[Callable[[Volume], bool]] = []
    for key, values in filters.items():
        if key not in allowed:
            raise InvalidArgument(f'"{key}" is an invalid volume filter')
        checks.append(_filter(key, list(values), used))
    return checks


def _filter(key: str, values: list[str], used: Callable[[], set[str]]) -> Callable[[Volume], bool]:
    if key == "name":
        try:
            patterns = [re.compile(v) for v in values]
        except re.error as e:
            raise InvalidArgument(f"invalid name filter: {e}") from None
        return lambda v: any(p.search(v.name) for p in patterns)
    if key == "label":
        return lambda v: any(_label_matches(v.labels, w) for w in values)
    if key == "opt":
        return lambda v: any(_label_matches(v.options, w) for w in values)
    if key == "driver":
        return lambda v: v.driver in values
    if key == "scope":
        return lambda v: "local" in values
    if key == "until":
        limits = [parse_until(x) for x in values]
        return lambda v: any(v.created < t for t in limits)
    wanted = set()
    for x in values:  # dangling
        if x.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(
                f'"{x}" is not a valid value for the "dangling" filter - must be true or false'
            )
        wanted.add(x.lower() in ("true", "1"))
    in_use = used()
    return lambda v: (v.name not in in_use) in wanted


def _label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    if key not in labels:
        return False
    return not eq or labels[key] == value
