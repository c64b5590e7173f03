"""`-v/--volume`, `--mount`, `--tmpfs`, `--volumes-from` and `--device` of `pypod run`/`create`.

Parsed and validated as podman 4.3 does (containers/common `parse.ValidateVolumeOpts`, podman's
`GenVolumeMounts`, `--mount` option parsing and `util.ProcessOptions`), with its messages.

What comes out is a `MountSpec` per mount, destination normalised, sorted so that a parent
directory is mounted before what is mounted below it:

* a bind mount: `type="bind"`, `source` the absolute host path (relative paths are taken from
  the current directory, a missing path is an error: `statfs X: no such file or directory`);
* a named volume: `type="bind"`, `source=""`, `volume=NAME` (the engine creates the volume when
  missing and binds its `_data` directory); an anonymous volume (`-v /dst`, `--mount
  type=volume` without a source): `volume=""`;
* a tmpfs: `type="tmpfs"`, `source="tmpfs"`.

`options` are OCI mount options, with podman's defaults already added: "rw" unless "ro",
"rprivate" unless another propagation, "rbind" unless "bind" (bind mounts and volumes);
"nosuid" and "nodev" for volumes; "noexec", "nosuid", "nodev" and "tmpcopyup" for tmpfs (unless
the opposite is given).  The flags podman copies from the host mount of a bind source (a
`nosuid` host mount stays `nosuid`) are the engine's to add.  SELinux labels (`z`, `Z`,
`relabel=`) are accepted and dropped: this host has no SELinux.  `U` sets `chown`.
"""

from __future__ import annotations

import os
import posixpath

from pypod.cli.engine.run_values import go_errno_text, go_quote, is_digits
from pypod.engine.config import MountSpec
from pypod.engine.names import is_valid_name
from pypod.errors import InvalidArgument, NotSupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "check_device",
    "check_volumes_from",
    "parse_mount",
    "parse_tmpfs",
    "parse_volume",
    "unify",
]


_PROPAGATION = ("private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
                "runbindable")  # fmt: skip
#: -v option -> its group; at most one option of a group (ValidateVolumeOpts)
_VOLUME_OPTION_GROUPS: dict[str, tuple[str, str]] = {
    **{o: ("exec", "can only specify 1 'noexec' or 'exec' option") for o in ("noexec", "exec")},
    **{o: ("dev", "can only specify 1 'nodev' or 'dev' option") for o in ("nodev", "dev")},
    **{o: ("suid", "can only specify 1 'nosuid' or 'suid' option") for o in ("nosuid", "suid")},
    **{o: ("rw", "can only specify 1 'rw' or 'ro' option") for o in ("rw", "ro")},
    **{o: ("label", "can only specify 1 'z', 'Z', or 'O' option") for o in ("z", "Z", "O")},
    "U": ("chown", "can only specify 1 'U' option"),
    **{
        o: ("prop", "can only specify 1 '[r]shared', '[r]private', '[r]slave' or "
                    "'[r]unbindable' option")
        for o in _PROPAGATION
    },
    **{o: ("bind", "can only specify 1 '[r]bind' option") for o in ("bind", "rbind")},
    **{o: ("copy", "can only specify 1 'copy' or 'nocopy' option") for o in ("copy", "nocopy")},
}  # fmt: skip
#: options that select, not mount: they never reach the OCI spec
_DROPPED = {"z", "Z", "U", "copy", "nocopy", "cached", "delegated"}


def _clean(path: str) -> str:
    """`path.Clean` for an absolute path ("//x/" -> "/x")."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _check_destination(dest: str) -> str:
    if dest == "":
        raise InvalidArgument("container directory cannot be empty")
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid container path {go_quote(dest)}, must be an absolute path")
    return _clean(dest)


def _host_path(src: str) -> str:
    """The absolute host path of a bind source, which must exist."""
    path = os.path.abspath(src)
    try:
        os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"statfs {path}: {go_errno_text(e)}") from None
    return path


def _check_volume_name(name: str) -> None:
    if not is_valid_name(name):
        raise InvalidArgument(
            f'creating named volume "{name}": running volume create option: names must match '
            "[a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument"
        )


def _finish(options: list[str], *, tmpfs: bool = False, volume: bool = False) -> tuple[str, ...]:
    """podman's ProcessOptions defaults added to the user's options."""
    out = [o for o in options if o not in _DROPPED]
    present = {o.partition("=")[0] for o in out}
    if not present & {"ro", "rw"}:
        out.append("rw")
    if not present & set(_PROPAGATION):
        out.append("rprivate")
    if tmpfs:
        for flag, opposite in (("noexec", "exec"), ("nosuid", "suid"), ("nodev", "dev")):
            if not present & {flag, opposite}:
                out.append(flag)
        if "notmpcopyup" in present:
            out.remove("notmpcopyup")
        elif "tmpcopyup" not in present:
            out.append("tmpcopyup")
        return tuple(out)
    if volume:
        for flag, opposite in (("nosuid", "suid"), ("nodev", "dev")):
            if not present & {flag, opposite}:
                out.append(flag)
    if not present & {"bind", "rbind"}:
        out.append("rbind")
    return tuple(out)


# --- -v -------------------------------------------------------------------------------------
def _validate_volume_options(options: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    kept = []
    for opt in options:
        group = _VOLUME_OPTION_GROUPS.get(opt)
        if opt in ("cached", "delegated"):
            continue
        if group is None:
            if opt.startswith("idmap"):
                raise NotSupported(f"volume option '{opt}' is not supported yet")
            raise InvalidArgument(f"invalid option type {go_quote(opt)}")
        seen[group[0]] = seen.get(group[0], 0) + 1
        if seen[group[0]] > 1:
            raise InvalidArgument(f"invalid options {go_quote(', '.join(options))}, {group[1]}")
        kept.append(opt)
    if "O" in kept:
        raise NotSupported("overlay volumes (the 'O' option) are not supported yet")
    return kept


def parse_volume(text: str) -> MountSpec:
    """One `-v [SRC:]DST[:OPTS]`."""
    parts = text.split(":")
    if len(parts) > 3:
        raise InvalidArgument(
            f"{text}: incorrect volume format, should be [host-dir:]ctr-dir[:option]"
        )
    options = _validate_volume_options(parts[2].split(",")) if len(parts) > 2 else []
    if len(parts) == 1:
        src, dest = "", parts[0]
    else:
        src, dest = parts[0], parts[1]
        if src == "":
            raise InvalidArgument("host directory cannot be empty")
    dest = _check_destination(dest)
    chown = "U" in options
    if src.startswith("/") or src.startswith("."):
        return MountSpec(type="bind", source=_host_path(src), destination=dest,
                         options=_finish(options), chown=chown)  # fmt: skip
    if src:
        _check_volume_name(src)
    if "nocopy" in options:
        raise NotSupported(
            "the 'nocopy' volume option is not supported yet: a new volume gets the image's files"
        )
    return MountSpec(type="bind", source="", destination=dest, volume=src,
                     options=_finish(options, volume=True), chown=chown)  # fmt: skip


# --- --mount --------------------------------------------------------------------------------
_MOUNT_FORMAT = (
    "incorrect mount format: should be --mount type=<bind|tmpfs|volume>,"
    "[src=<host-dir|volume-name>,]target=<ctr-dir>[,options]"
)
_ONCE = "must provide an argument for option"


def parse_mount(text: str) -> MountSpec:
    """One `--mount type=bind|volume|tmpfs,src=...,dst=...,OPTIONS`."""
    import csv  # here: only --mount needs it

    try:
        tokens = next(csv.reader([text]), [])
    except csv.Error:
        raise InvalidArgument(_MOUNT_FORMAT) from None
    kind = None
    rest = []
    for token in tokens:
        key, eq, value = token.partition("=")
        if key == "type" and eq:
            kind = value
        else:
            rest.append(token)
    if kind is None:
        raise InvalidArgument(_MOUNT_FORMAT)
    if kind not in ("bind", "volume", "tmpfs"):
        if kind in ("image", "devpts", "ramfs", "glob", "artifact"):
            raise NotSupported(f"'--mount type={kind}' is not supported yet")
        raise InvalidArgument(f"invalid filesystem type {go_quote(kind)}")
    source: str | None = None
    dest: str | None = None
    options: list[str] = []
    chown = False
    flags_seen: set[str] = set()

    def once(group: str, message: str) -> None:
        if group in flags_seen:
            raise InvalidArgument(f"{message}: {_ONCE}")
        flags_seen.add(group)

    for token in rest:
        name, eq, value = token.partition("=")
        if name in ("src", "source"):
            if kind == "tmpfs":
                raise InvalidArgument("source is not supported with tmpfs mounts")
            if not eq:
                raise InvalidArgument(f"{name}: {_ONCE}")
            if value == "":
                raise InvalidArgument(f"host directory cannot be empty: {_ONCE}")
            source = value
        elif name in ("target", "dst", "destination"):
            if not eq:
                raise InvalidArgument(f"{name}: {_ONCE}")
            dest = _check_destination(value)
        elif name in ("ro", "rw", "readonly"):
            once("rw", "cannot pass 'readonly', 'ro', or 'rw' options more than once")
            flag = "ro" if name == "readonly" else name
            if not eq or value.lower() == "true":
                options.append(flag)
            elif value.lower() == "false":
                if flag == "rw":
                    options.append("ro")
            else:
                raise InvalidArgument(
                    f"'readonly', 'ro', or 'rw' must be set to true or false, instead received "
                    f"{go_quote(value)}: {_ONCE}"
                )
        elif name in ("nosuid", "suid", "nodev", "dev", "noexec", "exec") and not eq:
            base = name.removeprefix("no")
            once(base, f"cannot pass 'no{base}' and '{base}' options more than once")
            options.append(name)
        elif name in ("U", "chown") and kind != "tmpfs":
            once("chown", "cannot pass 'U' or 'chown' option more than once")
            if value.lower() in ("", "true"):
                chown = True
            elif value.lower() != "false":
                raise InvalidArgument(
                    f"'U' or 'chown' must be set to true or false, instead received "
                    f"{go_quote(value)}: {_ONCE}"
                )
        elif name in ("z", "Z") and not eq and kind != "tmpfs":
            once("relabel", "cannot pass 'relabel' option more than once")
        elif name == "relabel" and kind != "tmpfs":
            once("relabel", "cannot pass 'relabel' option more than once")
            if value not in ("private", "shared"):
                raise InvalidArgument(
                    "relabel mount option must be 'private' or 'shared': invalid mount option"
                )
        elif name == "consistency":
            continue
        elif name == "bind-propagation" and kind == "bind":
            if not eq:
                raise InvalidArgument(f"{name}: {_ONCE}")
            if value not in _PROPAGATION:
                raise InvalidArgument(f"invalid option type {go_quote(value)}")
            once("prop", "cannot pass 'bind-propagation' more than once")
            options.append(value)
        elif name == "bind-nonrecursive" and kind == "bind":
            options.append("bind")
        elif name in ("tmpfs-size", "tmpfs-mode") and kind == "tmpfs":
            if not eq:
                raise InvalidArgument(f"{name}: {_ONCE}")
            option = ("size=" if name == "tmpfs-size" else "mode=") + value
            _check_tmpfs_option(option)
            options.append(option)
        elif name in ("tmpcopyup", "notmpcopyup") and kind == "tmpfs" and not eq:
            once("copyup", "cannot pass 'tmpcopyup' and 'notmpcopyup' options more than once")
            options.append(name)
        elif name in ("volume-opt", "volume-label", "idmap", "volume-subpath", "subpath"):
            raise NotSupported(f"'--mount {name}' is not supported yet")
        else:
            raise InvalidArgument(f"{name}: invalid mount option")
    if dest is None:
        raise InvalidArgument("must set volume destination")
    if kind == "tmpfs":
        return MountSpec(type="tmpfs", source="tmpfs", destination=dest,
                         options=_finish(options, tmpfs=True))  # fmt: skip
    if kind == "volume":
        name = source or ""
        if name:
            _check_volume_name(name)
        return MountSpec(type="bind", source="", destination=dest, volume=name,
                         options=_finish(options, volume=True), chown=chown)  # fmt: skip
    return MountSpec(type="bind", source=_host_path(source or dest), destination=dest,
                     options=_finish(options), chown=chown)  # fmt: skip


# --- --tmpfs --------------------------------------------------------------------------------
def _number_and(suffixes: str) -> Callable[[str], bool]:
    """A check of `[0-9]+[SUFFIXES]?`."""

    def check(value: str) -> bool:
        return is_digits(value[:-1] if value[-1:] and value[-1] in suffixes else value)

    return check


def _is_mode(value: str) -> bool:
    """`[0-7]{1,4}`."""
    return 0 < len(value) <= 4 and all(c in "01234567" for c in value)


#: tmpfs option -> (a check of its value, what it must be)
_TMPFS_VALUES: dict[str, tuple[Callable[[str], bool], str]] = {
    "size": (_number_and("kKmMgGtTpPeE%"), "a number of bytes with an optional k, m or g "
                                             "suffix, or a percentage of memory"),
    "mode": (_is_mode, "an octal mode such as 1777"),
    "uid": (is_digits, "a numeric user ID"),
    "gid": (is_digits, "a numeric group ID"),
    "nr_inodes": (_number_and("kKmMgG%"), "a number of inodes"),
    "nr_blocks": (_number_and("kKmMgG%"), "a number of blocks"),
}  # fmt: skip
_TMPFS_FLAGS = {
    **{o: "rw" for o in ("rw", "ro")},
    **{o: "exec" for o in ("exec", "noexec")},
    **{o: "suid" for o in ("suid", "nosuid")},
    **{o: "dev" for o in ("dev", "nodev")},
    **{o: "prop" for o in ("private", "rprivate", "slave", "rslave", "shared", "rshared")},
    **{o: "copyup" for o in ("tmpcopyup", "notmpcopyup")},
}
_TMPFS_DUPLICATE = {
    "rw": "only one of 'rw' and 'ro' can be used",
    "exec": "only one of 'noexec' and 'exec' can be used",
    "suid": "only one of 'nosuid' and 'suid' can be used",
    "dev": "only one of 'nodev' and 'dev' can be used",
    "prop": "only one root propagation mode can be used",
    "copyup": "the 'tmpcopyup' or 'notmpcopyup' option can only be set once",
}


def _check_tmpfs_option(option: str) -> str:
    """The group of a tmpfs option, after checking its value."""
    key, eq, value = option.partition("=")
    if key in _TMPFS_VALUES and eq:
        valid, what = _TMPFS_VALUES[key]
        if not valid(value):
            raise InvalidArgument(f"invalid tmpfs option {go_quote(option)}: {key} must be {what}")
        return key
    if key in _TMPFS_FLAGS and not eq:
        return _TMPFS_FLAGS[key]
    if key in ("bind", "rbind"):
        raise InvalidArgument(
            "the 'bind' and 'rbind' options are not allowed with tmpfs mounts: invalid mount option"
        )
    if key in ("z", "Z"):
        raise InvalidArgument(
            "the 'z' and 'Z' options are not allowed with tmpfs mounts: invalid mount option"
        )
    raise InvalidArgument(f"unknown mount option {go_quote(option)}: invalid mount option")


def parse_tmpfs(text: str) -> MountSpec:
    """One `--tmpfs DST[:OPTIONS]`."""
    parts = text.split(":")
    dest = _check_destination(parts[0])
    options = parts[1].split(",") if len(parts) > 1 and parts[1] else []
    seen: set[str] = set()
    for opt in options:
        group = _check_tmpfs_option(opt)
        if group in seen:
            message = _TMPFS_DUPLICATE.get(group, f"only one tmpfs {group} can be specified")
            raise InvalidArgument(f"{message}: duplicate mount option passed")
        seen.add(group)
    return MountSpec(type="tmpfs", source="tmpfs", destination=dest,
                     options=_finish(options, tmpfs=True))  # fmt: skip


# --- together -------------------------------------------------------------------------------
def unify(
    volumes: Sequence[str], mounts: Sequence[str], tmpfs: Sequence[str]
) -> tuple[MountSpec, ...]:
    """Every `--mount`, `-v` and `--tmpfs`, one mount per destination (an identical repeat is
    dropped, as podman does), parents before children."""
    by_dest: dict[str, MountSpec] = {}
    for origin, texts, parse in (("mount", mounts, parse_mount), ("volume", volumes, parse_volume),
                                 ("tmpfs", tmpfs, parse_tmpfs)):  # fmt: skip
        for text in texts:
            spec = parse(text)
            old = by_dest.get(spec.destination)
            if old is None:
                by_dest[spec.destination] = spec
            elif old == spec or (origin == "tmpfs" and old.type == "tmpfs"):
                continue
            else:
                raise InvalidArgument(f"{spec.destination}: duplicate mount destination")
    ordered = list(by_dest.values())
    ordered.sort(key=lambda m: 0 if m.destination == "/" else m.destination.count("/"))
    return tuple(ordered)


# --- --volumes-from, --device ---------------------------------------------------------------
def check_volumes_from(text: str) -> str:
    """`CTR[:z,ro|rw]`, kept as text for the engine to resolve."""
    ctr, colon, opts = text.partition(":")
    if ctr == "":
        raise InvalidArgument(f"invalid --volumes-from {go_quote(text)}: name a container")
    if colon:
        rw_seen = False
        for opt in opts.split(","):
            if opt in ("ro", "rw"):
                if rw_seen:
                    raise InvalidArgument("cannot set ro or rw options more than once")
                rw_seen = True
            elif opt != "z":
                raise InvalidArgument(
                    f"invalid option {go_quote(opt)} specified - volumes from another container "
                    "can only use z,ro,rw options"
                )
    return text


def _device_mode(mode: str) -> bool:
    return mode != "" and len(set(mode)) == len(mode) and set(mode) <= set("rwm")


def check_device(text: str) -> str:
    """`HOST[:CONTAINER][:PERMISSIONS]` (permissions from r, w, m); the host path must exist."""
    parts = text.split(":")
    if len(parts) > 3 or parts[0] == "":
        raise InvalidArgument(f"invalid device specification: {text}")
    if len(parts) == 3 and not _device_mode(parts[2]):
        raise InvalidArgument(f"invalid device mode: {parts[2]}")
    if len(parts) >= 2 and not _device_mode(parts[1]) and not parts[1].startswith("/"):
        raise InvalidArgument(f"invalid device mode: {parts[1]}")
    try:
        os.stat(parts[0])
    except OSError as e:
        raise InvalidArgument(f"stat {parts[0]}: {go_errno_text(e)}") from None
    return text
