"""fork(2) through clone3: a child born in a cgroup2 directory, or in new namespaces.

Moving a process into a cgroup (a write of cgroup.procs by anyone, or of a v1 `tasks` file naming
another thread) takes the kernel's global cgroup_threadgroup_rwsem for writing, and when no move
happened just before that waits for an RCU grace period: 10-20 ms on the test VMs, on the path
of every container's create.  A child born in its cgroup needs no move at all.

A container's init can also be born in its new namespaces (`clone_process` with CLONE_NEW*
flags): with CLONE_NEWPID it is the namespace's pid 1 at once, where unshare(2) would need a
second fork (runc's and pypod's "stage-1") to get a process into the new pid namespace.

`fork_into_cgroup` is `os.fork` with that one flag: the same interpreter bookkeeping around the
system call (PyOS_BeforeFork, PyOS_AfterFork_Child/Parent, what os.register_at_fork added), and
the call made with the GIL held, as os.fork makes it.  Unlike glibc's fork() it does not refresh
the C library's per-thread data in the child (the cached thread id, the robust-mutex list), and
it runs no pthread_atfork handler: it refuses to run in a process with other threads (where a
lock one of them holds would stay locked in the child), and nothing else depends on them.
"""

from __future__ import annotations

import ctypes
import errno
import os

from pypod.errors import OSLevelError
from pypod.linux import syscalls as sc
from pypod.stdlite import signal

#: linux/sched.h: place the child in the cgroup2 directory `cgroup` refers to (Linux 5.7)
CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    """struct clone_args (linux/sched.h), up to CLONE_ARGS_SIZE_VER2."""

    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("pidfd", ctypes.c_uint64),
        ("child_tid", ctypes.c_uint64),
        ("parent_tid", ctypes.c_uint64),
        ("exit_signal", ctypes.c_uint64),
        ("stack", ctypes.c_uint64),
        ("stack_size", ctypes.c_uint64),
        ("tls", ctypes.c_uint64),
        ("set_tid", ctypes.c_uint64),
        ("set_tid_size", ctypes.c_uint64),
        ("cgroup", ctypes.c_uint64),
    ]


def fork_into_cgroup(cgroup_fd: int) -> int:
    """Fork, the child starting out in the cgroup2 directory open as `cgroup_fd`; like
    os.fork: 0 in the child, the child's pid in the parent.

    Raises OSLevelError where the kernel refuses (ENOSYS or EINVAL before Linux 5.7 or under a
    seccomp filter that hides clone3, EOPNOTSUPP/EBUSY for a cgroup that cannot take processes,
    EAGAIN at a pids limit...): the caller then forks as usual and moves the child.
    """
    return clone_process(0, cgroup_fd)


def clone_process(namespaces: int, cgroup_fd: int | None = None) -> int:
    """Fork into new namespaces (CLONE_NEW* flags; 0: none) and, when `cgroup_fd` is given,
    into that cgroup2 directory; like os.fork: 0 in the child, the child's pid in the parent
    (as the parent's pid namespace numbers it).

    Raises OSLevelError where the kernel refuses (as fork_into_cgroup; EPERM or EINVAL for
    namespaces, ENOSPC past a namespace limit); no process was created then.
    """
    what = "fork into new namespaces" if namespaces else "fork into a cgroup"
    if len(os.listdir("/proc/self/task")) != 1:
        raise OSLevelError(f"{what}: the process has other threads", errno=errno.EBUSY)
    # the GIL stays held across the call, as os.fork holds it (PyDLL, not CDLL): the child
    # starts with the interpreter's locks as os.fork's child does
    libc = ctypes.PyDLL(None, use_errno=True)
    call = libc.syscall
    call.restype = ctypes.c_long
    api = ctypes.pythonapi
    flags = namespaces | (CLONE_INTO_CGROUP if cgroup_fd is not None else 0)
    args = _CloneArgs(flags=flags, exit_signal=signal.SIGCHLD, cgroup=cgroup_fd or 0)
    number = sc.nr("clone3")
    api.PyOS_BeforeFork()
    pid = call(ctypes.c_long(number), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    err = ctypes.get_errno()
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSLevelError(f"{what} (clone3)", errno=err or errno.ENOSYS)
    return int(pid)
