"""Persistent network namespaces: made once, kept by a bind mount, joined by path.

A container on a bridge (or pasta, slirp4netns) network gets a namespace the engine makes
before the container, with `lo` up, so that the network can be set up in it while the runtime
creates the container; its path goes in the spec (`ip netns add` does the same: unshare, bind
mount /proc/thread-self/ns/net on a file).  `--network none` needs none of this: the runtime
makes that namespace (and brings its `lo` up, as runc and crun do).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from pypod.errors import OSLevelError, from_oserror
from pypod.linux import syscalls as sc
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def set_link_up(name: str) -> None:
    """Bring interface `name` of the current network namespace up (ioctl, no netlink needed)."""
    import _socket  # not `socket`: its selectors etc. are ~2 ms of every `run`'s start-up

    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        req = struct.pack("16sh14x", name.encode(), 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", name.encode(), flags | IFF_UP))
    finally:
        s.close()


def set_link_up_in(pid: int, name: str) -> None:
    """Bring interface `name` up in the network namespace of process `pid`."""
    call_in(f"/proc/{pid}/ns/net", lambda: set_link_up(name))


def call_in(path: str, fn: Callable[[], T]) -> T:
    """`fn()` called with this thread in the network namespace at `path`, then back in its own."""
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise from_oserror(f"open network namespace {path}", e) from e
    try:
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                sc.setns(target, CLONE_NEWNET)
            except OSError as e:
                raise from_oserror(f"join network namespace {path}", e) from e
            try:
                return fn()
            finally:
                sc.setns(original, CLONE_NEWNET)
        finally:
            os.close(original)
    finally:
        os.close(target)


def create(path: str) -> None:
    """A new network namespace with `lo` up, kept at `path` (a new file)."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except OSError as e:
        raise from_oserror(f"create network namespace file {path}", e) from e
    os.close(fd)
    from pypod.linux import userns

    if userns.in_user_namespace():  # rootless: no way back to the host's namespace; a child
        try:
            return userns.create_netns_in_child(path)
        except BaseException:
            os.unlink(path)
            raise
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    mounted = False
    try:
        sc.unshare(CLONE_NEWNET)
        try:
            set_link_up("lo")
            sc.mount("/proc/thread-self/ns/net", path, None, MS_BIND, None)
            mounted = True
        finally:
            sc.setns(original, CLONE_NEWNET)
    except BaseException:
        if mounted:
            with suppress(OSError):
                sc.umount2(path, MNT_DETACH)
        with suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(original)


def remove(path: str) -> None:
    """Drop the namespace kept at `path` (it ends when no process is left in it)."""
    try:
        sc.umount2(path, MNT_DETACH)
    except OSLevelError as e:  # (what the syscall layer raises)
        if e.errno not in (errno.EINVAL, errno.ENOENT):  # not mounted (any more): fine
            raise
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise from_oserror(f"unmount network namespace {path}", e) from e
    with suppress(FileNotFoundError):
        os.unlink(path)
