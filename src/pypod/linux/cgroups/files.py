"""Reading and writing cgroup control files; the only place that turns their OSErrors into
pypod errors, so every message names the file and the value.

Kept free of any v1/v2 knowledge: both managers and the hybrid-mode helpers build on these.
"""

from __future__ import annotations

import errno
import os
import time

from pypod.errors import NotFound, NotSupported, PypodError, from_oserror
from pypod.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

log = get_logger(__name__)

PROCS = "cgroup.procs"


def write(directory: str, name: str, value: str, *, controller: str = "") -> None:
    """Write `value` to the control file `directory/name` (no O_CREAT: cgroupfs has no such)."""
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as err:
        raise _error("write", path, value, err, controller) from None
    try:
        os.write(fd, value.encode())
    except OSError as err:
        raise _error("write", path, value, err, controller) from None
    finally:
        os.close(fd)


def read(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise _error("read", path, None, err, "") from None


def read_optional(directory: str, name: str) -> str | None:
    """The file's content, or None when it does not exist (controller or kernel without it)."""
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ENODEV:
            return None
        raise _error("read", os.path.join(directory, name), None, err, "") from None


def read_int(directory: str, name: str) -> int | None:
    """A single-number file ("max" reads as None, a missing file as None)."""
    text = read_optional(directory, name)
    if text is None:
        return None
    text = text.strip()
    if text in ("max", ""):
        return None
    return int(text)


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A flat keyed file ("key value" per line: memory.stat, cpu.stat, cgroup.events...)."""
    text = read_optional(directory, name)
    out: dict[str, int] = {}
    if text is None:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def exists(directory: str, name: str) -> bool:
    return os.path.exists(os.path.join(directory, name))


def _error(op: str, path: str, value: str | None, err: OSError, controller: str) -> PypodError:
    what = f'cgroup: cannot write "{value}" to {path}' if op == "write" else f"cgroup: read {path}"
    if err.errno == errno.ENOENT:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            e: PypodError = NotFound(f"{what}: cgroup directory {directory} does not exist")
        else:
            ctl = f"the {controller} controller" if controller else "this cgroup"
            e = NotSupported(
                f"{what}: no such file: {ctl} does not support {os.path.basename(path)} "
                "on this host (controller not enabled, or kernel without the feature)"
            )
        e.errno = err.errno
        return e
    return from_oserror(what, err)


# --- processes --------------------------------------------------------------------------------


def add_proc(directory: str, pid: int) -> None:
    """Move `pid` into the cgroup; retries EINVAL (a task still in TASK_NEW), like runc."""
    path = os.path.join(directory, PROCS)
    for attempt in range(5):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as err:
            raise _error("write", path, str(pid), err, "") from None
        try:
            os.write(fd, str(pid).encode())
            return
        except OSError as err:
            if err.errno == errno.EINVAL and attempt < 4:
                time.sleep(0.03)
                continue
            raise _error("write", path, str(pid), err, "") from None
        finally:
            os.close(fd)


def make_dir(path: str) -> None:
    """Create the cgroup directory `path` (its parent must exist); an existing one is fine."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    except OSError as err:
        raise from_oserror(f"cgroup: create {path}", err) from None


def read_procs(directory: str) -> list[int]:
    text = read_optional(directory, PROCS)
    if text is None:
        return []
    return [int(x) for x in text.split()]


def walk_dirs(top: str) -> Iterator[str]:
    """`top` and every cgroup below it, parents before children; vanished ones are skipped."""
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                children = [e.path for e in it if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            continue
        except OSError as err:
            raise from_oserror(f"cgroup: list {current}", err) from None
        yield current
        stack.extend(sorted(children, reverse=True))


def all_pids(top: str) -> list[int]:
    """Every process in `top` and its descendants (runc's GetAllPids)."""
    pids: list[int] = []
    for directory in walk_dirs(top):
        pids.extend(read_procs(directory))
    return pids


# --- removal ----------------------------------------------------------------------------------


def remove_tree(top: str, *, timeout: float = 5.0) -> None:
    """rmdir `top` and every cgroup below it, deepest first.

    A cgroup whose last processes are still exiting answers EBUSY for a moment: retry with a
    growing delay until `timeout`.  A directory already gone is fine.
    """
    if not os.path.isdir(top):
        return
    dirs = list(walk_dirs(top))
    deadline = time.monotonic() + timeout
    for directory in reversed(dirs):
        _rmdir_retry(directory, deadline)


def _rmdir_retry(directory: str, deadline: float) -> None:
    delay = 0.005
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno not in (errno.EBUSY, errno.EAGAIN) or time.monotonic() >= deadline:
                procs = read_procs(directory) if err.errno == errno.EBUSY else []
                hint = f" (still holds processes {procs[:8]})" if procs else ""
                e = from_oserror(f"cgroup: cannot remove {directory}{hint}", err)
                raise e from None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
