"""`RUN --mount=...` and `-v SRC:DST[:OPTS]` of a build step, parsed as buildah 1.28 parses them.

:func:`parse_mount` reads one `--mount` value (`type=bind|cache|tmpfs|secret`, comma-separated
`key[=value]` fields, Docker's and buildah's spellings) and :func:`parse_volume` one `-v`
value; both only read the text (and check that a host path exists) and answer a
:class:`RunMount`.  :func:`prepare_mounts` then turns them into OCI mounts for one run: cache
directories created (and locked with `sharing=locked`), secrets copied into a private
directory outside the rootfs.  Errors are buildah's (`bogus: invalid mount option`,
`must set volume destination`, `invalid filesystem type "x"`...), followed by the value they
come from.

Differences from buildah 1.28, on purpose: a relative `target` is taken below the working
directory (BuildKit, newer buildah) instead of being refused; `type=secret` also works with
`pypod-build run`; `type=tmpfs` takes BuildKit's `size=`/`mode=` besides `tmpfs-size=`/
`tmpfs-mode=`; a cache directory is named after the whole id (or target), quoted, so `/a` and
`/a/b` are two caches and an id cannot point outside the cache root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pypod.build.sources import host_path, resolve_in_root
from pypod.errors import InvalidArgument, NotSupported
from pypod.record import record

__all__ = [
    "PreparedMounts",
    "RunMount",
    "parse_mount",
    "parse_mounts",
    "parse_volume",
    "prepare_mounts",
]

_SYNTAX = (
    "incorrect mount format: should be --mount "
    "type=<bind|tmpfs>,[src=<host-dir>,]target=<ctr-dir>[,options]"
)
_PROPAGATION = ("shared", "rshared", "private", "rprivate", "slave", "rslave")
_SECRETS_DIR = "/run/secrets"


@record
class RunMount:
    """One parsed `--mount` or `-v`."""

    #: "bind" (also -v), "cache", "tmpfs" or "secret"
    type: str
    #: absolute path in the container
    destination: str
    #: bind/-v: the host path; cache: the source below `from_stage` (or ""); secret: the id
    source: str = ""
    #: OCI mount options (bind: ro/rw, rbind/bind, nosuid...; tmpfs: size=, mode=...)
    options: tuple[str, ...] = ()
    #: cache and bind: the `from=` stage or image
    from_stage: str = ""
    #: cache: `id=` (default: the target)
    cache_id: str = ""
    #: cache: "shared" or "locked"
    sharing: str = "shared"
    #: cache/secret: mode, uid, gid of the directory (cache, when created) or file (secret)
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    #: secret: fail when it was not given (else the mount is left out)
    required: bool = False
    #: the text it was parsed from (for messages)
    text: str = ""


def _bad(text: str, message: str) -> InvalidArgument:
    return InvalidArgument(f'{message} (in "{text}")')


def _value(text: str, key: str, value: str | None) -> str:
    if value is None or value == "":
        raise _bad(text, f"{key}: must provide an argument for option")
    return value


def _target(text: str, value: str, workdir: str) -> str:
    if not value.startswith("/"):
        value = os.path.join(workdir or "/", value)
    return _clean(value)


def _clean(path: str) -> str:
    """An absolute path without `.`, `..` or doubled slashes (never above `/`)."""
    return "/" + os.path.normpath("/" + path).lstrip("/")


def _int(text: str, key: str, value: str, *, base: int = 10) -> int:
    try:
        number = int(value, base)
    except ValueError:
        what = "an octal number" if base == 8 else "a number"
        raise _bad(text, f"{key}={value}: must be {what}") from None
    if number < 0:
        raise _bad(text, f"{key}={value}: must not be negative")
    return number


def _bool(text: str, key: str, value: str | None) -> bool:
    if value is None:
        return True
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise _bad(text, f"{key}={value}: must be true or false")


def parse_mount(
    text: str,
    *,
    workdir: str = "/",
    context_dir: str | None = None,
    stage_roots: Mapping[str, str] | None = None,
) -> RunMount:
    """One `--mount` value.  `context_dir`: where a bind's relative source is taken (a build;
    None for `pypod-build run`, where a source must be an absolute host path);
    `stage_roots`: the mounted roots `from=` may name."""
    tokens = text.split(",")
    kind = "bind"
    for field in tokens:
        if field.startswith("type="):
            parts = field.split("=")
            if len(parts) != 2:
                raise InvalidArgument(f'"{text}": {_SYNTAX}')
            kind = parts[1]
    if kind not in ("bind", "cache", "tmpfs", "secret"):
        raise InvalidArgument(
            f'invalid filesystem type "{kind}" (in "{text}"): use bind, cache, tmpfs or secret'
        )
    if len(tokens) < 2 and kind != "secret":
        raise InvalidArgument(f'"{text}": {_SYNTAX}')
    fields = [(k, v if sep else None) for k, sep, v in (t.partition("=") for t in tokens)]
    if kind == "bind":
        return _bind(text, fields, workdir, context_dir, stage_roots or {})
    if kind == "cache":
        return _cache(text, fields, workdir, stage_roots or {})
    if kind == "tmpfs":
        return _tmpfs(text, fields, workdir)
    return _secret(text, fields, workdir)


def _bind(
    text: str,
    fields: list[tuple[str, str | None]],
    workdir: str,
    context_dir: str | None,
    stage_roots: Mapping[str, str],
) -> RunMount:
    options: list[str] = []
    readability = False
    recursive = True
    source: str | None = None
    dest = ""
    stage = ""
    for key, value in fields:
        if key == "type":
            continue
        if key == "bind-nonrecursive":
            recursive = False
        elif key in ("ro", "nosuid", "nodev", "noexec", "readonly"):
            if key in ("ro", "readonly"):
                if not _bool(text, key, value):
                    options.append("rw")
                    readability = True
                    continue
                key = "ro"
            options.append(key)
            readability = readability or key == "ro"
        elif key in ("rw", "readwrite"):
            options.append("rw" if _bool(text, key, value) else "ro")
            readability = True
        elif key in (*_PROPAGATION, "Z", "z", "U"):
            if key == "U":
                raise NotSupported(
                    f"'U' (chown the source) on a bind mount is not supported yet (in \"{text}\")"
                )
            if key in _PROPAGATION:
                options.append(key)
        elif key == "from":
            stage = _value(text, key, value)
        elif key == "bind-propagation":
            prop = _value(text, key, value)
            if prop not in _PROPAGATION:
                raise _bad(
                    text, f"bind-propagation={prop}: must be one of {', '.join(_PROPAGATION)}"
                )
            options.append(prop)
        elif key in ("src", "source"):
            source = _value(text, key, value)
        elif key in ("target", "dst", "destination"):
            dest = _target(text, _value(text, key, value), workdir)
        elif key == "consistency":
            continue
        else:
            raise _bad(text, f"{key}: invalid mount option")
    if not readability:
        options.append("ro")  # buildah: a bind mount is read-only unless asked otherwise
    options.append("rbind" if recursive else "bind")
    if not dest:
        raise _bad(text, "must set volume destination")
    if stage:
        source = _in_stage(text, stage_roots, stage, source, what="stage or image")
    elif context_dir is not None:
        source = host_path(context_dir, resolve_in_root(context_dir, source or "/"))
    else:
        if not source:
            raise _bad(text, "must set volume source")
        _check_host_dir(text, source)
    if not os.path.lexists(source):
        raise _bad(text, f"bind mount source {source}: no such file or directory")
    return RunMount(
        type="bind",
        destination=dest,
        source=source,
        options=tuple(options),
        from_stage=stage,
        text=text,
    )


def _in_stage(
    text: str, stage_roots: Mapping[str, str], stage: str, source: str | None, *, what: str
) -> str:
    """The host path of `source` in the mounted root of `from=<stage>` (`what`: for the error)."""
    root = stage_roots.get(stage)
    if root is None:
        raise _bad(text, f"no {what} found with name {stage}")
    return host_path(root, resolve_in_root(root, source or "/"))


def _check_host_dir(text: str, source: str) -> None:
    if not source.startswith("/"):
        raise _bad(text, f'invalid host path, must be an absolute path "{source}"')
    try:
        os.stat(source)
    except OSError as e:
        raise _bad(text, f"stat {source}: {(e.strerror or str(e)).lower()}") from e


#: the options of cache and secret mounts that set the owner and mode of what is mounted
_OWNERSHIP = ("mode", "uid", "gid")


def _ownership(text: str, key: str, value: str | None) -> int:
    """The number of a mode= (octal), uid= or gid= option."""
    return _int(text, key, _value(text, key, value), base=8 if key == "mode" else 10)


def _cache(
    text: str, fields: list[tuple[str, str | None]], workdir: str, stage_roots: Mapping[str, str]
) -> RunMount:
    options: list[str] = []
    read_only = False
    dest = ""
    source = ""
    cache_id = ""
    stage = ""
    sharing = "shared"
    owner = {"mode": 0o755, "uid": 0, "gid": 0}
    for key, value in fields:
        if key == "type":
            continue
        if key in ("nosuid", "nodev", "noexec"):
            options.append(key)
        elif key in ("rw", "readwrite"):
            read_only = not _bool(text, key, value)
        elif key in ("ro", "readonly"):
            read_only = _bool(text, key, value)
        elif key in ("Z", "z"):
            continue
        elif key in _PROPAGATION:
            options.append(key)
        elif key == "U":
            raise NotSupported(
                f"'U' (chown the source) on a cache mount is not supported yet (in \"{text}\")"
            )
        elif key == "sharing":
            sharing = _value(text, key, value)
            if sharing == "private":
                raise NotSupported(
                    f'cache sharing "private" is not supported yet (in "{text}"): use shared '
                    "or locked"
                )
            if sharing not in ("shared", "locked"):
                raise _bad(text, f'unrecognized value "{sharing}" for field `sharing`')
        elif key == "bind-propagation":
            options.append(_value(text, key, value))
        elif key == "id":
            cache_id = _value(text, key, value)
        elif key == "from":
            stage = _value(text, key, value)
        elif key in ("target", "dst", "destination"):
            dest = _target(text, _value(text, key, value), workdir)
        elif key in ("src", "source"):
            source = _value(text, key, value)
        elif key in _OWNERSHIP:
            owner[key] = _ownership(text, key, value)
        else:
            raise _bad(text, f"{key}: invalid mount option")
    if not dest:
        raise _bad(text, "must set volume destination")
    if stage:
        source = _in_stage(text, stage_roots, stage, source, what="stage")
    options.append("ro" if read_only else "rw")
    options.append("bind")
    return RunMount(
        type="cache",
        destination=dest,
        source=source,
        options=tuple(options),
        from_stage=stage,
        cache_id=cache_id or dest,
        sharing=sharing,
        mode=owner["mode"],
        uid=owner["uid"],
        gid=owner["gid"],
        text=text,
    )


def _tmpfs(text: str, fields: list[tuple[str, str | None]], workdir: str) -> RunMount:
    options: list[str] = []
    dest = ""
    for key, value in fields:
        if key == "type":
            continue
        if key in ("ro", "nosuid", "nodev", "noexec", "tmpcopyup"):
            options.append(key)
        elif key == "readonly":
            options.append("ro")
        elif key in ("tmpfs-mode", "mode"):
            raw = _value(text, key, value)
            _int(text, key, raw, base=8)
            options.append(f"mode={raw}")
        elif key in ("tmpfs-size", "size"):
            options.append(f"size={_value(text, key, value)}")
        elif key in ("src", "source"):
            raise _bad(text, "source is not supported with tmpfs mounts")
        elif key in ("target", "dst", "destination"):
            dest = _target(text, _value(text, key, value), workdir)
        else:
            raise _bad(text, f"{key}: invalid mount option")
    if not dest:
        raise _bad(text, "must set volume destination")
    return RunMount(type="tmpfs", destination=dest, options=tuple(options), text=text)


def _secret(text: str, fields: list[tuple[str, str | None]], workdir: str) -> RunMount:
    secret_id = ""
    dest = ""
    required = False
    owner = {"mode": 0o400, "uid": 0, "gid": 0}
    for key, value in fields:
        if key == "type":
            continue
        if key == "id":
            secret_id = _value(text, key, value)
        elif key in ("target", "dst", "destination"):
            raw = _value(text, key, value)
            dest = _clean(raw if raw.startswith("/") else os.path.join(_SECRETS_DIR, raw))
        elif key == "required":
            required = _bool(text, key, value)
        elif key in _OWNERSHIP:
            owner[key] = _ownership(text, key, value)
        else:
            raise _bad(text, f"{key}: invalid mount option")
    if not secret_id:
        if not dest:
            raise _bad(text, "a secret mount needs id=ID (or a target to name it)")
        secret_id = os.path.basename(dest)
    if not dest:
        dest = os.path.join(_SECRETS_DIR, secret_id)
    return RunMount(
        type="secret",
        destination=dest,
        source=secret_id,
        options=("ro", "rbind", "nosuid", "nodev", "noexec"),
        mode=owner["mode"],
        uid=owner["uid"],
        gid=owner["gid"],
        required=required,
        text=text,
    )


# --------------------------------------------------------------------------- -v


_VOLUME_OPTION_GROUPS = (
    ("rw", "ro"),
    ("exec", "noexec"),
    ("suid", "nosuid"),
    ("dev", "nodev"),
    ("bind", "rbind"),
    (*_PROPAGATION, "unbindable", "runbindable"),
    ("z", "Z"),
)


def _split_colons(text: str) -> list[str]:
    """buildah's SplitStringWithColonEscape: `\\:` is a colon inside a part."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text[i + 1 : i + 2] == ":":
            current.append(":")
            i += 2
            continue
        if ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if current:
        parts.append("".join(current))
    return parts


def parse_volume(text: str) -> RunMount:
    """One `-v HOST-DIR:CONTAINER-DIR[:OPTIONS]`, checked as buildah checks it."""
    parts = _split_colons(text)
    if len(parts) < 2:
        raise InvalidArgument(
            f'incorrect volume format "{text}", should be host-dir:ctr-dir[:option]'
        )
    source, dest = parts[0], parts[1]
    _check_host_dir(text, source)
    if not dest.startswith("/"):
        raise InvalidArgument(f'invalid container path "{dest}", must be an absolute path')
    options: list[str] = []
    if len(parts) > 2:
        seen: dict[int, str] = {}
        for opt in parts[2].split(","):
            group = next((i for i, g in enumerate(_VOLUME_OPTION_GROUPS) if opt in g), None)
            if opt in ("U", "O", "idmap") or opt.startswith("idmap="):
                raise NotSupported(f"volume option '{opt}' is not supported yet (in \"{text}\")")
            if group is None:
                raise InvalidArgument(f'invalid option type "{opt}" (in "{text}")')
            if group in seen:
                raise InvalidArgument(
                    f'invalid options "{parts[2]}", can only specify 1 '
                    f"'{seen[group]}' or '{opt}' option (in \"{text}\")"
                )
            seen[group] = opt
            if opt not in ("z", "Z"):
                options.append(opt)
    if not any(o in ("bind", "rbind") for o in options):
        options.append("rbind")
    return RunMount(
        type="bind",
        destination=_clean(dest),
        source=source,
        options=tuple(options),
        text=text,
    )


def parse_mounts(
    volumes: Sequence[str],
    mounts: Sequence[str],
    *,
    workdir: str = "/",
    context_dir: str | None = None,
    stage_roots: Mapping[str, str] | None = None,
) -> list[RunMount]:
    """All of a run's `--mount`s then `-v`s; a destination given twice is an error."""
    out: list[RunMount] = []
    seen: set[str] = set()
    parsed = [
        parse_mount(m, workdir=workdir, context_dir=context_dir, stage_roots=stage_roots)
        for m in mounts
    ]
    parsed.extend(parse_volume(v) for v in volumes)
    for m in parsed:
        if m.destination in seen:
            raise InvalidArgument(f'{m.destination}: duplicate mount destination (in "{m.text}")')
        seen.add(m.destination)
        out.append(m)
    return out


# --------------------------------------------------------------------------- prepare


class PreparedMounts:
    """The OCI mounts of one run, and what must be released after it (cache locks)."""

    def __init__(self) -> None:
        self.mounts: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> PreparedMounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cache_dir(cache_root: str, cache_id: str) -> str:
    """The host directory of cache `cache_id` (one flat name: quoted, never `..`)."""
    name = urllib.parse.quote(cache_id, safe="")
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    return os.path.join(cache_root, name)


def prepare_mounts(
    parsed: Sequence[RunMount],
    *,
    private_dir: str,
    cache_root: str | None,
    secrets: Mapping[str, str],
) -> PreparedMounts:
    """OCI mount dicts for `parsed`: cache directories made (and locked for sharing=locked),
    secrets copied into `private_dir` (outside the rootfs: never in the layer).  Close the
    answer after the run."""
    prepared = PreparedMounts()
    try:
        for i, m in enumerate(parsed):
            mount = _prepare_one(m, i, private_dir, cache_root, secrets, prepared)
            if mount is not None:
                prepared.mounts.append(mount)
    except BaseException:
        prepared.close()
        raise
    return prepared


def _prepare_one(
    m: RunMount,
    index: int,
    private_dir: str,
    cache_root: str | None,
    secrets: Mapping[str, str],
    prepared: PreparedMounts,
) -> dict[str, Any] | None:
    if m.type == "tmpfs":
        return {"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                "options": list(m.options)}  # fmt: skip
    if m.type == "bind":
        return {"destination": m.destination, "type": "bind", "source": m.source,
                "options": list(m.options)}  # fmt: skip
    if m.type == "cache":
        source = m.source
        if not m.from_stage:
            if cache_root is None:
                raise InvalidArgument(
                    f'a cache mount needs a cache directory (in "{m.text}"): give RunOptions '
                    "cache_root"
                )
            source = _make_cache(cache_root, m)
            if m.sharing == "locked":
                prepared._stack.enter_context(_locked(cache_root, m.cache_id))
        return {"destination": m.destination, "type": "bind", "source": source,
                "options": list(m.options)}  # fmt: skip
    # secret
    host = secrets.get(m.source)
    if host is None:
        if m.required:
            raise InvalidArgument(
                f'secret required but no secret with id {m.source} found (in "{m.text}"): '
                f"pass it with --secret id={m.source},src=FILE"
            )
        return None
    copy = os.path.join(private_dir, "secrets", str(index))
    os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
    try:
        with (
            open(host, "rb") as src,
            open(
                os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "wb"
            ) as dst,
        ):
            shutil.copyfileobj(src, dst)
    except OSError as e:
        raise InvalidArgument(f"reading secret {m.source} from {host}: {e.strerror}") from e
    os.chown(copy, m.uid, m.gid)
    os.chmod(copy, m.mode if m.mode is not None else 0o400)
    return {"destination": m.destination, "type": "bind", "source": copy,
            "options": list(m.options)}  # fmt: skip


def _make_cache(cache_root: str, m: RunMount) -> str:
    os.makedirs(cache_root, mode=0o700, exist_ok=True)
    path = cache_dir(cache_root, m.cache_id)
    try:
        os.mkdir(path, m.mode if m.mode is not None else 0o755)
    except FileExistsError:
        return path  # an existing cache keeps its owner and mode
    os.chown(path, m.uid, m.gid)
    os.chmod(path, m.mode if m.mode is not None else 0o755)
    return path


@contextlib.contextmanager
def _locked(cache_root: str, cache_id: str) -> Iterator[None]:
    """sharing=locked: one run at a time uses the cache (flock on its directory)."""
    fd = os.open(cache_dir(cache_root, cache_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
