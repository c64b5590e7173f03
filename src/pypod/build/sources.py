"""The sources and destination of COPY and ADD, resolved as buildah 1.28 does; nothing copied.

`plan_copy` turns `COPY [--chown --chmod] src... dest` into a list of `CopyItem`s (what to
read on the host, where it goes in the container, what kind of entry it is).  The rules,
checked against buildah 1.28.2:

- Sources are relative to the context directory, which acts as `/`: an absolute source or one
  that climbs with `..` stays inside it (`../a` is `a`; buildah clamps, it does not refuse),
  and symbolic links met on the way (and a source that is itself a link) are resolved inside
  it too (`l -> /etc/passwd` reads `<context>/etc/passwd`).  Inside a copied directory links
  are copied as links.
- A source with `*`, `?`, `[` or `\\` is a glob (Go's `filepath.Glob`: each path element
  matched with `filepath.Match`, `*` also matches names starting with `.`).  A source that
  matches nothing fails: `checking on sources under "<context>": copier: stat: "/<src>": no
  such file or directory`.
- `.containerignore` rules (`Ignore`) apply to every source and to what is under a source
  directory; a source left with nothing to copy fails with `no items matching glob ...
  copied (N filtered out using <ignore file>)`.
- A directory source copies its contents (not the directory itself) into the destination.
- The destination is relative to WORKDIR unless absolute.  It is a directory when it ends
  with `/`, is the WORKDIR itself, when there are several sources (no trailing `/` needed:
  buildah creates the directory), when the first match of a single source is a directory
  (or, for ADD, a local archive), or when it exists as a directory in the image; otherwise a
  single file source is copied *as* the destination (all matches of a single glob are
  written there in turn, as buildah does).  A destination that exists as a file while a
  directory is needed fails: `destination /x already exists but is not a directory`.
- ADD unpacks a local tar archive (plain, gzip, bzip2, xz or zstd; at least one entry) into
  the destination directory (never for COPY, never inside a copied directory) and takes
  `http://` and `https://` URLs (planned, not fetched; git URLs are not supported yet).

`parse_chown` / `parse_chmod` check `--chown` and `--chmod` as buildah does; names are kept for
the caller to look up in the image.
"""

from __future__ import annotations

import errno
import lzma
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Sequence
from urllib.parse import urlsplit

from pypod.build.gomatch import BadPattern, clean, has_meta, match
from pypod.build.ignore import Ignore, walk_context
from pypod.errors import InvalidArgument, NotFound, NotSupported, OSLevelError, from_oserror
from pypod.record import record

#: what a `CopyItem` is
MKDIR = "mkdir"  # a directory to create if missing (0755 unless --chmod; owner per --chown)
DIR = "dir"  # a directory copied with its own metadata
FILE = "file"  # a regular file
SYMLINK = "symlink"  # a symbolic link, copied as a link
SPECIAL = "special"  # a FIFO, socket or device node
ARCHIVE = "archive"  # ADD: a local archive to unpack into `dest` (a directory)
URL = "url"  # ADD: a URL to download to `dest` (a file)

#: what a decompressor raises on data that is not what its magic number promised
_DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (zlib.error, lzma.LZMAError)

#: symbolic links followed while resolving one path before giving up (ELOOP)
MAX_LINKS = 255


@record
class CopyItem:
    """One step of a COPY/ADD: read `source` (a host path, a URL for `url`, "" for `mkdir`)
    and put it at `dest` (an absolute, clean path in the container)."""

    source: str
    dest: str
    kind: str


@record
class Chown:
    """A `--chown=user[:group]` value; names are resolved later, in the image's files."""

    user: str
    group: str | None = None

    def numeric(self) -> tuple[int, int] | None:
        """(uid, gid) when no name needs looking up, as buildah's `userForCopy`: the gid
        defaults to the uid (`--chown=5` is 5:5) and an empty user is 0 (`:5` is 0:5)."""
        uid = 0
        if self.user:
            if not _is_uint32(self.user):
                return None
            uid = int(self.user)
        if not self.group:
            return uid, uid
        if not _is_uint32(self.group):
            return None
        return uid, int(self.group)


def parse_chown(value: str) -> Chown | None:
    """`--chown` as buildah takes it: "" is no change (None); `user`, `user:group`."""
    if value == "":
        return None
    user, sep, group = value.partition(":")
    if not user and not group:
        raise InvalidArgument(
            f'looking up UID/GID for "{value}": can\'t find uid for user {value}: '
            "give --chown=USER[:GROUP] (names or numbers)"
        )
    return Chown(user=user, group=group if sep and group else None)


def parse_chmod(value: str) -> int:
    """`--chmod` as buildah 1.28 takes it: octal digits only (no `u+x`), up to 32 bits."""
    if not value or any(c not in "01234567" for c in value) or int(value, 8) > 0xFFFFFFFF:
        raise InvalidArgument(
            f"Error parsing chmod {value}: give an octal mode such as 755 or 0644"
        )
    return int(value, 8)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ADD would unpack this file: a tar stream, maybe compressed, with an entry."""
    import zstandard

    try:
        with open(path, "rb") as f:
            if f.read(4) == b"\x28\xb5\x2f\xfd":
                f.seek(0)
                with (
                    zstandard.ZstdDecompressor().stream_reader(f) as z,
                    tarfile.open(fileobj=z, mode="r|") as tf,
                ):
                    return tf.next() is not None
            f.seek(0)
            with tarfile.open(fileobj=f, mode="r:*") as tf:
                return tf.next() is not None
    except (OSError, EOFError, ValueError, tarfile.TarError, zstandard.ZstdError):
        return False
    except _DECOMPRESSION_ERRORS:
        return False


def resolve_in_root(root: str, path: str, *, follow_last: bool = True) -> str:
    """`path` (taken as absolute inside `root`) with its symbolic links resolved inside
    `root`, which acts as `/`: an absolute link target starts again at `root`, `..` never
    climbs above it.  Returns an absolute, clean path inside `root` (not a host path).
    Missing components are kept as they are; the caller's stat reports them."""
    pending = [p for p in path.split("/") if p]
    done: list[str] = []
    followed = 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        if pending or follow_last:
            host = os.path.join(root, *done, name)
            try:
                is_link = stat.S_ISLNK(os.lstat(host).st_mode)
            except OSError:
                is_link = False
            if is_link:
                followed += 1
                if followed > MAX_LINKS:
                    raise OSLevelError(f"resolving {path} in {root}", errno=errno.ELOOP)
                target = os.readlink(host)
                if target.startswith("/"):
                    done = []
                pending[:0] = [p for p in target.split("/") if p]
                continue
        done.append(name)
    return "/" + "/".join(done)


def host_path(root: str, path: str) -> str:
    """The host path of an absolute path inside `root` (no resolution)."""
    rel = path.lstrip("/")
    return os.path.join(root, rel) if rel else root


def glob_in_root(root: str, pattern: str) -> list[str]:
    """Go's `filepath.Glob(pattern)` run with `root` as `/` (buildah's chrooted copier):
    absolute paths inside `root`, in Go's order.  `BadPattern` for a malformed pattern."""
    match(pattern, "")  # check the whole pattern first, as Go does
    if not has_meta(pattern):
        parent, name = posixpath.split(pattern)
        try:
            os.lstat(host_path(root, posixpath.join(resolve_in_root(root, parent), name)))
        except OSError:
            return []
        return [pattern]
    directory, name = posixpath.split(pattern)
    directory = directory.rstrip("/") or "/"
    if not has_meta(directory):
        return _glob_dir(root, directory, name)
    if directory == pattern:
        raise BadPattern()
    found: list[str] = []
    for d in glob_in_root(root, directory):
        found += _glob_dir(root, d, name)
    return found


def _glob_dir(root: str, directory: str, pattern: str) -> list[str]:
    real = host_path(root, resolve_in_root(root, directory))
    try:
        if not os.path.isdir(real) or os.path.islink(real):
            return []
        names = sorted(os.listdir(real), key=os.fsencode)
    except OSError:
        return []  # Go's Glob ignores I/O errors
    return [posixpath.join(directory, n) for n in names if match(pattern, n)]


def plan_copy(
    context_dir: str | os.PathLike[str],
    sources: Sequence[str],
    dest: str,
    *,
    ignore: Ignore | None = None,
    workdir: str = "/",
    rootfs: str | os.PathLike[str] | None = None,
    add: bool = False,
) -> list[CopyItem]:
    """The plan of `COPY sources dest` (`add=True`: ADD) from `context_dir` (or a stage's or
    image's root for `--from`, with no `ignore`): `CopyItem`s in order; the copier creates
    `mkdir` items, then copies the others in turn (a later one replaces an earlier one).

    `workdir` is the WORKDIR that a relative `dest` is under; `rootfs`, when given, is the
    container's root, where `dest` is looked up (a directory there takes the sources)."""
    root = os.path.abspath(os.fspath(context_dir))
    rules = ignore if ignore is not None else Ignore()
    instruction = "ADD" if add else "COPY"
    if not sources:
        raise InvalidArgument(f"{instruction} requires at least one source and a destination")
    local: dict[int, list[str]] = {}
    for i, src in enumerate(sources):
        if src == "":
            raise InvalidArgument(f"{instruction}: empty source location")
        if is_url(src):
            if not add:
                raise InvalidArgument(f"source can't be a URL for COPY: {src}: use ADD")
            if _is_git(src):
                raise NotSupported(f"'ADD {src}' (a git repository) is not supported yet")
            continue
        glob = clean("/" + src)
        try:
            found = glob_in_root(root, glob)
        except BadPattern:
            raise InvalidArgument(
                f'checking on sources under "{root}": copier: stat: "{glob}": '
                "syntax error in pattern: check its [...] classes and \\ escapes"
            ) from None
        if not found:
            e = NotFound(
                f'checking on sources under "{root}": copier: stat: "{glob}": '
                "no such file or directory"
            )
            e.errno = errno.ENOENT
            raise e
        local[i] = found
    # a single source decides alone whether the destination is a directory or a file
    first_is_dir = first_is_file = False
    if len(sources) == 1:
        if 0 in local:
            kind, _ = _chase(root, local[0][0])
            first_is_file = kind == FILE
            first_is_dir = kind == DIR or (add and first_is_file and _archive(root, local[0][0]))
        else:
            first_is_file = True  # a single URL

    # the destination, as buildah computes it
    work = clean("/" + workdir)
    if dest == "" or not dest.startswith("/"):
        joined = clean(posixpath.join(work, dest))
        raw_dest = joined + "/" if dest == "" or dest.endswith("/") else joined
    else:
        raw_dest = dest
    target = clean(raw_dest)
    must_be_dir = len(sources) > 1 or raw_dest.endswith("/") or target == work or first_is_dir
    existing = _existing(rootfs, target)
    if existing == FILE and must_be_dir:
        raise InvalidArgument(
            f"destination {raw_dest} already exists but is not a directory: "
            "remove it first or name a directory"
        )
    rename = existing in (None, FILE) and not must_be_dir and first_is_file
    into = posixpath.dirname(target) if rename else target

    plan = [CopyItem(source="", dest=into, kind=MKDIR)]
    for i, src in enumerate(sources):
        if i not in local:
            name = posixpath.basename(urlsplit(src).path)
            url_dest = target if rename else _join(into, name)
            plan.append(CopyItem(source=src, dest=url_dest, kind=URL))
            continue
        copied = 0
        for item in local[i]:
            copied += _plan_item(root, rules, item, into, target if rename else None, add, plan)
        if copied == 0:
            using = f" using {rules.path}" if rules.path else ""
            e = NotFound(
                f'no items matching glob "{host_path(root, clean("/" + src))}" copied '
                f"({len(local[i])} filtered out{using}): no such file or directory"
            )
            e.errno = errno.ENOENT
            raise e
    return plan


def _plan_item(
    root: str,
    rules: Ignore,
    item: str,
    into: str,
    rename_to: str | None,
    add: bool,
    plan: list[CopyItem],
) -> int:
    """Plan one glob match; returns how many things it copies (0: all filtered out)."""
    kind, resolved = _chase(root, item)
    rel = item.lstrip("/") or "."
    if rules and rel != "." and rules.excluded(rel, kind == DIR):
        return 0
    if kind != DIR:
        if add and kind == FILE and _archive(root, item):
            plan.append(CopyItem(source=host_path(root, resolved), dest=into, kind=ARCHIVE))
            return 1
        dest = rename_to or _join(into, posixpath.basename(item))
        plan.append(CopyItem(source=host_path(root, resolved), dest=dest, kind=kind))
        return 1
    if rename_to is not None:
        raise InvalidArgument(
            f"cannot copy directory {item} to the file {rename_to}: "
            "end the destination with '/' to copy into a directory"
        )
    top = resolved.lstrip("/")
    count = 0 if rules.matches(rel) else 1  # an excluded directory counts what comes back
    made: set[str] = set()
    prefix = f"{top}/" if top else ""
    for entry in walk_context(root, rules, top=top):
        inner = entry[len(prefix) :]
        # parents skipped by the rules (walked for an exception) are created plain
        parts = inner.split("/")
        for j in range(1, len(parts)):
            parent = "/".join(parts[:j])
            if parent not in made:
                made.add(parent)
                plan.append(CopyItem(source="", dest=_join(into, parent), kind=MKDIR))
        full = host_path(root, "/" + entry)
        entry_kind = _kind(os.lstat(full).st_mode)
        if entry_kind == DIR:
            made.add(inner)
        plan.append(CopyItem(source=full, dest=_join(into, inner), kind=entry_kind))
        count += 1
    return count


def _chase(root: str, item: str) -> tuple[str, str]:
    """The kind of what `item` is once links are followed inside `root`, and its path."""
    try:
        resolved = resolve_in_root(root, item)
    except OSLevelError as e:
        raise InvalidArgument(f"copier: get: resolving symlink {item!r}: {e}") from None
    try:
        st = os.lstat(host_path(root, resolved))
    except OSError as e:
        raise from_oserror(f'copier: get: lstat "{item}"("{resolved}")', e) from None
    return _kind(st.st_mode), resolved


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISLNK(mode):
        return SYMLINK
    return SPECIAL


def _archive(root: str, item: str) -> bool:
    return is_archive(host_path(root, resolve_in_root(root, item)))


def _existing(rootfs: str | os.PathLike[str] | None, target: str) -> str | None:
    """What the destination is in the container: DIR, FILE, another kind, or None."""
    if target == "/":
        return DIR
    if rootfs is None:
        return None
    base = os.fspath(rootfs)
    try:
        st = os.stat(host_path(base, resolve_in_root(base, target)))
    except OSError:
        return None
    return _kind(st.st_mode)


def _join(directory: str, name: str) -> str:
    return clean(posixpath.join(directory, name)) if name else directory


def _is_git(source: str) -> bool:
    """buildah's `\\.git(?:#.+)?$`: a repository, maybe with a `#ref` fragment."""
    path, sep, fragment = source.partition("#")
    return path.endswith(".git") and (not sep or bool(fragment))


def _is_uint32(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= 0xFFFFFFFF
