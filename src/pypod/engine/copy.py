"""`pypod cp` and `pypod export`: files between containers, the host and tar streams.

The rules are podman's (which are docker cp's), step by step as `cmd/podman/containers/cp.go`
takes them:

- `CTR:PATH` names a path in a container; an argument starting with `.` or `/` never does;
  `-` is a tar stream on stdin or stdout.  A relative container path starts at the container's
  working directory.
- The source must exist.  Its symlinks are followed, inside the container's root, and the copy
  is named after what they lead to (`cp c:/link .` writes the link's target's name).
- A destination that exists is a directory to copy into, or a file to replace.  One that does
  not exist is created as a copy of the source, provided its parent exists (a trailing `/`
  means it must exist).  `SRC/.` copies a directory's content rather than the directory.
- A directory cannot replace a file ("destination must be a directory when copying a
  directory"); stdin must be a (compressed) tar and go to a directory.
- Into a container, files get the container user's uid and gid (`--archive`, the default), or
  keep those in the tar; into the host they get the caller's.  Devices are not copied to the
  host.  Replacing a directory by a non-directory, or the other way round, needs
  `--overwrite`.

Paths inside a container are resolved by the kernel inside its root (`pypod.engine.mounts`),
tar streams read and written by file descriptor (`pypod.engine.tarcopy`): no symlink in a
container can make a copy read or write outside it.
"""

from __future__ import annotations

import os
import posixpath
import stat
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, BinaryIO

from pypod.engine.mounts import ContainerRoot, Location
from pypod.engine.tarcopy import TarWriter, extract
from pypod.errors import ContainerNotFound, InvalidArgument, NotFound, OSLevelError
from pypod.linux.mounts import open_in_root
from pypod.record import record

if TYPE_CHECKING:
    from pypod.engine.containers import Engine
    from pypod.engine.state import Container

_DIR_FD = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
#: what podman leaves out when it copies a container's whole root
_ROOT_EXCLUDES = ("dev", "proc", "sys")
_MAX_LINKS = 255


@record
class PathInfo:
    exists: bool
    is_dir: bool
    #: the path once its symlinks are followed (podman's LinkTarget), with the user's trailing
    #: "/" or "/." kept; for a path that does not exist, as far as it resolved
    link_target: str


@record
class _Found:
    info: PathInfo
    location: Location
    #: the path inside `location.root_fd`, resolved
    rel: str


# --- Go's path functions, as podman uses them ---------------------------------------------------
def _base(path: str) -> str:
    """filepath.Base: the last element, trailing slashes ignored; "/" for the root."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return stripped.rsplit("/", 1)[-1] if stripped else "/"


def _dir(path: str) -> str:
    """filepath.Dir: all but the last element, cleaned."""
    return posixpath.normpath(posixpath.dirname(path) or ".")


def _preserve_base(original: str, resolved: str) -> str:
    """podman's PreserveBasePath: keep the trailing "/" or "/." the user wrote."""
    if original.endswith("/"):
        return resolved if resolved.endswith("/") else resolved + "/"
    if original.endswith("/."):
        if resolved.endswith("/"):
            return resolved + "."
        if not resolved.endswith("/."):
            return resolved + "/."
    return resolved


def split_argument(arg: str) -> tuple[str | None, str]:
    """(container, path) of a `cp` argument; no container for a host path."""
    if not arg or arg[0] in "./":
        return None, arg
    name, sep, path = arg.partition(":")
    return (name or None, path) if sep else (None, arg)


# --- paths in a container -----------------------------------------------------------------------
def resolve_in_root(root_fd: int, rel: str) -> tuple[str, os.stat_result | None]:
    """Follow `rel` inside the root `root_fd` as a chroot would: symlinks (absolute ones from
    the root, ".." stopping there); (the resolved relative path, its lstat or None when it
    does not exist — then the path is resolved as far as it goes)."""
    todo = [p for p in rel.split("/") if p and p != "."]
    todo.reverse()
    done: list[str] = []
    links = 0
    st: os.stat_result = os.fstat(root_fd)
    while todo:
        name = todo.pop()
        if name == "..":
            if done:
                done.pop()
            continue
        try:
            pfd = open_in_root(root_fd, "/".join(done), os.O_PATH | os.O_DIRECTORY)
        except OSLevelError:
            return "/".join([*done, name, *reversed(todo)]), None
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidArgument(f"/{rel}: too many levels of symbolic links")
                target = os.readlink(name, dir_fd=pfd)
                if target.startswith("/"):
                    done = []
                todo.extend(reversed([p for p in target.split("/") if p and p != "."]))
                continue
        except (FileNotFoundError, NotADirectoryError):
            return "/".join([*done, name, *reversed(todo)]), None
        finally:
            os.close(pfd)
        done.append(name)
        if todo and not stat.S_ISDIR(st.st_mode):
            return "/".join([*done, *reversed(todo)]), None
    if not done:
        st = os.fstat(root_fd)
    return "/".join(done), st


def _stat(root: ContainerRoot, path: str) -> _Found:
    """podman's container stat: the path resolved inside the container."""
    asked = "/." if path == "/" else path
    loc = root.locate(asked)
    if "*" in path:  # wildcards are not supported (podman: no such file)
        return _Found(info=PathInfo(exists=False, is_dir=False, link_target=path), location=loc,
                      rel=loc.rel)  # fmt: skip
    rel, st = resolve_in_root(loc.root_fd, loc.rel)
    exists = st is not None
    is_dir = st is not None and stat.S_ISDIR(st.st_mode)
    if exists and not is_dir and asked.endswith(("/", "/.")):
        exists = False  # "file/" is no file
    target = _preserve_base(asked, loc.container_path(rel))
    return _Found(info=PathInfo(exists=exists, is_dir=is_dir, link_target=target), location=loc,
                  rel=rel)  # fmt: skip


def _not_on_container(path: str, name: str) -> NotFound:
    return NotFound(f'"{path}" could not be found on container {name}: no such file or directory')


def _not_on_host(path: str) -> NotFound:
    return NotFound(f'"{path}" could not be found on the host: no such file or directory')


def _lookup(eng: Engine, name: str) -> Container:
    try:
        return eng.lookup(name)
    except ContainerNotFound:
        raise ContainerNotFound(f'container "{name}" does not exist') from None


def _destination(root: ContainerRoot, name: str, path: str, *, stdin: bool
                 ) -> tuple[_Found, str, bool]:  # fmt: skip
    """(where to copy into, the name to give the copy, whether the path named a new entry in
    that directory) — podman's resolvePathOnDestinationContainer."""
    found = _stat(root, path)
    if found.info.exists:
        return found, _base(found.info.link_target), False
    if path.endswith("/"):
        raise _not_on_container(path, name)
    if stdin:
        raise InvalidArgument("destination must be a directory when copying from stdin")
    missing = found.info.link_target  # a dangling symlink: where it points
    parent = _stat(root, _dir(missing))
    if not parent.info.exists or not parent.info.is_dir:
        raise _not_on_container(path, name)
    return parent, _base(missing), True


def _write_container(writer: TarWriter, found: _Found, arcname: str | None) -> None:
    """The source (resolved) into the tar as `arcname`; a directory's content alone for None."""
    loc, rel = found.location, found.rel
    if found.info.is_dir:
        fd = open_in_root(loc.root_fd, rel, _DIR_FD)
        try:
            whole_root = rel == "" and loc.mounted_at == "/" and not loc.source_rel
            excludes = _ROOT_EXCLUDES if whole_root else ()
            if arcname is None:
                writer.add_contents(fd, excludes=excludes)
            else:
                writer.add_dir(fd, arcname, excludes=excludes)
        finally:
            os.close(fd)
        return
    parent, _, leaf = rel.rpartition("/")
    pfd = open_in_root(loc.root_fd, parent, _DIR_FD)
    try:
        writer.add(pfd, leaf, arcname or leaf)
    finally:
        os.close(pfd)


def _arcname(source_target: str, source_is_dir: bool, dest_base: str, rename: bool) -> str | None:
    """The name of the copy in the tar (None: a directory's content, unnamed)."""
    if rename:
        return dest_base
    base = _base(source_target)
    if source_is_dir and base in (".", "/"):
        return None
    return base


# --- host paths ---------------------------------------------------------------------------------
def _host_info(path: str) -> PathInfo | None:
    """podman's ResolveHostPath: absolute, the trailing "/" or "/." kept, symlinks followed for
    the type (not in the path)."""
    resolved = _preserve_base(path, os.path.abspath(path))
    try:
        st = os.stat(resolved)
    except OSError:
        return None
    return PathInfo(exists=True, is_dir=stat.S_ISDIR(st.st_mode), link_target=resolved)


def _host_destination(path: str) -> tuple[PathInfo, str, bool]:
    info = _host_info(path)
    if info is not None:
        if not info.is_dir and not stat.S_ISREG(os.stat(info.link_target).st_mode):
            raise InvalidArgument(
                f'invalid destination: "{path}" must be a directory or a regular file'
            )
        return info, _base(info.link_target), False
    if path.endswith("/"):
        raise _not_on_host(path)
    parent = _host_info(_dir(os.path.abspath(path)))
    if parent is None or not parent.is_dir:
        raise _not_on_host(path)
    return parent, _base(path), True


def _write_host(writer: TarWriter, path: str, is_dir: bool, arcname: str | None) -> None:
    """A host path (its symlinks followed: the caller's own files) into the tar."""
    if is_dir:
        fd = os.open(path, _DIR_FD)
        try:
            if arcname is None:
                writer.add_contents(fd)
            else:
                writer.add_dir(fd, arcname)
        finally:
            os.close(fd)
        return
    real = os.path.realpath(path)
    pfd = os.open(os.path.dirname(real) or "/", _DIR_FD)
    try:
        writer.add(pfd, os.path.basename(real), arcname or os.path.basename(real))
    finally:
        os.close(pfd)


# --- moving the tar -----------------------------------------------------------------------------
def _pipe(produce: Callable[[BinaryIO], None], consume: Callable[[BinaryIO], None]) -> None:
    """Run `produce` (writing a tar) in a thread, `consume` (reading it) here, joined by a
    pipe; the producer's error first when both fail (the consumer then saw a cut stream)."""
    r, w = os.pipe()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with os.fdopen(w, "wb", buffering=1 << 16) as out:
                produce(out)
        except BrokenPipeError:
            pass  # the consumer stopped; its error is the one to report
        except BaseException as e:  # handed over to the caller's thread
            failed.append(e)

    thread = threading.Thread(target=run, name="pypod-cp-writer", daemon=True)
    thread.start()
    try:
        with os.fdopen(r, "rb") as inp:
            consume(inp)
    except BaseException as e:
        thread.join()
        if failed:
            raise failed[0] from e
        raise
    thread.join()
    if failed:
        raise failed[0]


def _spool(stdin: BinaryIO, tmpdir: str | None) -> IO[bytes]:
    """stdin in a temporary file, checked to be a (compressed) tar, as podman does first."""
    import shutil
    import tarfile
    import tempfile
    from typing import cast

    from pypod.errors import PypodError
    from pypod.storage.archive.stream import TarStream

    directory = tmpdir or "/var/tmp"
    os.makedirs(directory, exist_ok=True)
    spool = tempfile.TemporaryFile(dir=directory)
    try:
        shutil.copyfileobj(stdin, spool, 1 << 20)
        spool.seek(0)
        try:
            with tarfile.open(fileobj=cast(IO[bytes], TarStream(cast(BinaryIO, spool))),
                              mode="r|") as tf:  # fmt: skip
                ok = tf.next() is not None
        except (tarfile.TarError, EOFError, PypodError, OSError):
            ok = False
        if not ok:
            raise InvalidArgument(
                "source must be a (compressed) tar archive when copying from stdin"
            )
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


# --- cp -------------------------------------------------------------------------------------------
def copy(
    eng: Engine,
    source: str,
    destination: str,
    *,
    archive: bool = True,
    overwrite: bool = False,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    tmpdir: str | None = None,
) -> None:
    """`podman cp SOURCE DESTINATION` (see the module's text for the rules)."""
    src_name, src_path = split_argument(source)
    dst_name, dst_path = split_argument(destination)
    if not src_path or not dst_path:
        raise InvalidArgument(
            f'invalid arguments "{source}", "{destination}": you must specify paths'
        )
    if src_name and dst_name:
        _between(eng, src_name, src_path, dst_name, dst_path, archive=archive,
                 overwrite=overwrite)  # fmt: skip
    elif src_name:
        _from_container(eng, src_name, src_path, dst_path, stdout=stdout, overwrite=overwrite)
    elif dst_name:
        _to_container(eng, dst_name, dst_path, src_path, archive=archive, overwrite=overwrite,
                      stdin=stdin, tmpdir=tmpdir)  # fmt: skip
    else:
        raise InvalidArgument(
            f'invalid arguments "{source}", "{destination}": one of them must be a path in a '
            "container, CONTAINER:PATH"
        )


def _from_container(eng: Engine, name: str, path: str, host_path: str, *,
                    stdout: BinaryIO | None, overwrite: bool) -> None:  # fmt: skip
    c = _lookup(eng, name)
    with ContainerRoot(eng, c) as root:
        found = _stat(root, path)
        if not found.info.exists:
            raise _not_on_container(path, name)
        owner = root.user_ids()
        if host_path == "-":
            if stdout is None:
                raise InvalidArgument("no standard output to write the tar stream to")
            writer = TarWriter(stdout, owner=owner)
            info = found.info
            _write_container(writer, found, _arcname(info.link_target, info.is_dir, "", False))
            writer.close()
            stdout.flush()
            return
        host, host_base, to_parent = _host_destination(host_path)
        target = found.info.link_target
        if to_parent and found.info.is_dir and target.endswith("."):
            target = _dir(target)
        if found.info.is_dir and not host.is_dir:
            raise InvalidArgument("destination must be a directory when copying a directory")
        rename = (not found.info.is_dir and not host.is_dir) or to_parent
        arcname = _arcname(target, found.info.is_dir, host_base, rename)
        into = host.link_target if host.is_dir else _dir(host.link_target)
        root_fd = os.open(into, _PATH_DIR)
        try:
            _pipe(
                lambda out: _produce(TarWriter(out, owner=owner), found, arcname),
                lambda inp: extract(inp, root_fd, "", owner=(os.geteuid(), os.getegid()),
                                    ignore_devices=True, overwrite=overwrite),
            )  # fmt: skip
        finally:
            os.close(root_fd)


def _produce(writer: TarWriter, found: _Found, arcname: str | None) -> None:
    _write_container(writer, found, arcname)
    writer.close()


def _to_container(eng: Engine, name: str, path: str, host_path: str, *, archive: bool,
                  overwrite: bool, stdin: BinaryIO | None, tmpdir: str | None) -> None:  # fmt: skip
    c = _lookup(eng, name)
    from_stdin = host_path == "-"
    host: PathInfo | None = None
    if not from_stdin:
        host = _host_info(host_path)
        if host is None:
            raise _not_on_host(host_path)
    with ContainerRoot(eng, c) as root:
        dest, dest_base, to_parent = _destination(root, name, path, stdin=from_stdin)
        if host is None:
            if not dest.info.is_dir:
                raise InvalidArgument("destination must be a directory when copying from stdin")
            if stdin is None:
                raise InvalidArgument("no standard input to read the tar stream from")
            with _spool(stdin, tmpdir) as spool:
                _into_container(root, dest, lambda out: _send(spool, out), archive=archive,
                                overwrite=overwrite)  # fmt: skip
            return
        source = host.link_target
        if to_parent and host.is_dir and source.endswith("."):
            source = _dir(source)
        if host.is_dir and not dest.info.is_dir:
            raise InvalidArgument("destination must be a directory when copying a directory")
        rename = (not host.is_dir and not dest.info.is_dir) or to_parent
        arcname = _arcname(source, host.is_dir, dest_base, rename)
        is_dir = host.is_dir

        def produce(out: BinaryIO) -> None:
            writer = TarWriter(out)
            _write_host(writer, source, is_dir, arcname)
            writer.close()

        _into_container(root, dest, produce, archive=archive, overwrite=overwrite)


def _send(spool: IO[bytes], out: BinaryIO) -> None:
    while chunk := spool.read(1 << 20):
        out.write(chunk)


def _into_container(root: ContainerRoot, dest: _Found, produce: Callable[[BinaryIO], None], *,
                    archive: bool, overwrite: bool) -> None:  # fmt: skip
    target = dest.info.link_target if dest.info.is_dir else _dir(dest.info.link_target)
    loc = root.locate(target)
    owner = root.user_ids() if archive else None
    _pipe(produce, lambda inp: extract(inp, loc.root_fd, loc.rel, owner=owner,
                                       overwrite=overwrite))  # fmt: skip


def _between(eng: Engine, src_name: str, src_path: str, dst_name: str, dst_path: str, *,
             archive: bool, overwrite: bool) -> None:  # fmt: skip
    src = _lookup(eng, src_name)
    dst = _lookup(eng, dst_name)
    with ContainerRoot(eng, src) as sroot, ContainerRoot(eng, dst) as droot:
        found = _stat(sroot, src_path)
        if not found.info.exists:
            raise _not_on_container(src_path, src_name)
        dest, dest_base, to_parent = _destination(droot, dst_name, dst_path, stdin=False)
        if found.info.is_dir and not dest.info.is_dir:
            raise InvalidArgument("destination must be a directory when copying a directory")
        target = found.info.link_target
        if to_parent and found.info.is_dir and target.endswith("."):
            target = _dir(target)
        rename = (not found.info.is_dir and not dest.info.is_dir) or to_parent
        arcname = _arcname(target, found.info.is_dir, dest_base, rename)
        owner = sroot.user_ids()
        _into_container(droot, dest,
                        lambda out: _produce(TarWriter(out, owner=owner), found, arcname),
                        archive=archive, overwrite=overwrite)  # fmt: skip


# --- export ---------------------------------------------------------------------------------------
def export(eng: Engine, id_or_name: str, out: BinaryIO) -> None:
    """`podman export`: the container's whole root filesystem (its storage, not its volumes)
    as a tar, names relative to the root, owners and times as they are."""
    c = eng.lookup(id_or_name)
    path = eng.store.mount_container(c.id)
    try:
        fd = os.open(path, _DIR_FD)
        try:
            writer = TarWriter(out, host_names=True)
            writer.add_contents(fd)
            writer.close()
        finally:
            os.close(fd)
        out.flush()
    finally:
        eng.store.unmount_container(c.id)
