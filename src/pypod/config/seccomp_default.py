"""Podman's default seccomp profile: containers/common 0.50.1 `pkg/seccomp/seccomp.json`.

The profile podman 4.3.1 applies (Debian installs it as /usr/share/containers/seccomp.json),
in the same JSON shape (a Docker/podman seccomp profile), so that one converter,
:func:`pypod.config.seccomp_profile.to_oci`, serves it and `--security-opt seccomp=FILE`.
It lives with the configuration (containers-common ships it as a configuration file) so that
the engine's containers and the build's RUN steps (:mod:`pypod.build.run`, as buildah) share it.
System call names are kept as space-separated words, and the rules that repeat one pattern
(personalities, architectures, capability pairs) are built from small tables, to keep the
module small; the result is the file's rules in its order.
`tests/unit/test_engine_spec_seccomp.py` compares it with the installed file when present.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["profile"]


def profile() -> dict[str, Any]:
    """A fresh copy of the profile (callers may change it)."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "defaultErrno": "ENOSYS",
        "archMap": [
            {
                "architecture": "SCMP_ARCH_X86_64",
                "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            },
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {
                "architecture": "SCMP_ARCH_MIPS64",
                "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
            },
            {
                "architecture": "SCMP_ARCH_MIPS64N32",
                "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
            },
            {
                "architecture": "SCMP_ARCH_MIPSEL64",
                "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
            },
            {
                "architecture": "SCMP_ARCH_MIPSEL64N32",
                "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"],
            },
            {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
        ],
        "syscalls": [
            {
                "names": """
bdflush io_pgetevents kexec_file_load kexec_load migrate_pages move_pages nfsservctl
nice oldfstat oldlstat oldolduname oldstat olduname pciconfig_iobase pciconfig_read
pciconfig_write sgetmask ssetmask swapcontext swapoff swapon sysfs uselib userfaultfd
ustat vm86 vm86old vmsplice
""".split(),
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": """
_llseek _newselect accept accept4 access adjtimex alarm bind brk capget capset chdir
chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 clone clone3 close
close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd
eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64
fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64
fdatasync fgetxattr flistxattr flock fork fremovexattr fsconfig fsetxattr fsmount fsopen
fspick fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futimesat get_mempolicy get_robust_list get_thread_area getcpu getcwd
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname
getsockopt gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_setup io_submit
ioctl ioprio_get ioprio_set ipc keyctl kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
lremovexattr lseek lsetxattr lstat lstat64 madvise mbind membarrier memfd_create
memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mount
mount_setattr move_mount mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
open open_tree openat openat2 pause pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2
pivot_root pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64
preadv preadv2 prlimit64 process_mrelease process_vm_readv process_vm_writev pselect6
pselect6_time64 ptrace pwrite64 pwritev pwritev2 read readahead readdir readlink
readlinkat readv reboot recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min
sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_mempolicy
set_robust_list set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32
setgid setgid32 setgroups setgroups32 setitimer setns setpgid setpriority setregid
setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
setsid setsockopt setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaction
sigaltstack signal signalfd signalfd4 sigpending sigprocmask sigreturn sigsuspend
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync
sync_file_range syncfs syscall sysinfo syslog tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd
timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
tkill truncate truncate64 ugetrlimit umask umount umount2 uname unlink unlinkat unshare
utime utimensat utimensat_time64 utimes vfork wait4 waitid waitpid write writev
""".split(),
                "action": "SCMP_ACT_ALLOW",
            },
            *_personality_rules(),
            *_arch_rules(),
            *_capability_rules(),
            *_socket_rules(),
        ],
    }


#: `personality(2)` personas a container may switch to (PER_LINUX, UNAME26, PER_LINUX32,
#: UNAME26|PER_LINUX32, the query 0xffffffff)
_PERSONAS = (0, 8, 131072, 131080, 4294967295)

#: calls allowed on some architectures only (Go's GOARCH names)
_ARCH_CALLS = (
    ("sync_file_range2", ("ppc64le",)),
    ("arm_fadvise64_64 arm_sync_file_range breakpoint cacheflush set_tls sync_file_range2",
     ("arm", "arm64")),
    ("arch_prctl", ("amd64", "x32")),
    ("modify_ldt", ("amd64", "x32", "x86")),
    ("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr", ("s390", "s390x")),
)  # fmt: skip

#: calls allowed with a capability and refused with EPERM without it
_CAPABILITY_CALLS = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_ADMIN",
     "bpf fanotify_init lookup_dcookie perf_event_open quotactl setdomainname sethostname setns"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module finit_module init_module query_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp process_madvise"),
    ("CAP_SYS_RAWIO", "ioperm iopl"),
    ("CAP_SYS_TIME", "clock_settime clock_settime64 settimeofday stime"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
)  # fmt: skip

_AF_NETLINK = 16
_NETLINK_AUDIT = 9


def _arg(index: int, value: int, op: str) -> dict[str, Any]:
    return {"index": index, "value": value, "op": op}


def _personality_rules() -> list[dict[str, Any]]:
    return [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [_arg(0, v, "SCMP_CMP_EQ")]}
        for v in _PERSONAS
    ]


def _arch_rules() -> list[dict[str, Any]]:
    return [
        {"names": names.split(), "action": "SCMP_ACT_ALLOW", "includes": {"arches": list(arches)}}
        for names, arches in _ARCH_CALLS
    ]


def _capability_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for cap, names in _CAPABILITY_CALLS:
        rules.append({"names": names.split(), "action": "SCMP_ACT_ALLOW",
                      "includes": {"caps": [cap]}})  # fmt: skip
        rules.append({"names": names.split(), "action": "SCMP_ACT_ERRNO",
                      "excludes": {"caps": [cap]}, "errnoRet": 1, "errno": "EPERM"})  # fmt: skip
    return rules


def _socket_rules() -> list[dict[str, Any]]:
    """Without CAP_AUDIT_WRITE, no audit netlink socket (EINVAL); every other socket is
    allowed (the same rules, in the same order, as containers/common's)."""

    def audit() -> dict[str, list[str]]:
        return {"caps": ["CAP_AUDIT_WRITE"]}

    def not_audit_proto() -> list[dict[str, Any]]:
        return [_arg(2, _NETLINK_AUDIT, "SCMP_CMP_NE")]

    return [
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ERRNO",
            "args": [_arg(0, _AF_NETLINK, "SCMP_CMP_EQ"), _arg(2, _NETLINK_AUDIT, "SCMP_CMP_EQ")],
            "excludes": audit(),
            "errnoRet": 22,
            "errno": "EINVAL",
        },
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": not_audit_proto(),
         "excludes": audit()},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [_arg(0, _AF_NETLINK, "SCMP_CMP_NE")], "excludes": audit()},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": not_audit_proto(),
         "excludes": audit()},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "includes": audit()},
    ]  # fmt: skip
