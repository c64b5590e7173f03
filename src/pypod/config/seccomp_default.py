"""Podman's default seccomp profile: containers/common 0.50.1 `pkg/seccomp/seccomp.json`.

The profile podman 4.3.1 applies (Debian installs it as /usr/share/containers/seccomp.json),
in the same JSON shape (a Docker/podman seccomp profile), so that one converter,
:func:`pypod.config.seccomp_profile.to_oci`, serves it and `--security-opt seccomp=FILE`.
It lives with the configuration (containers-common ships it as a configuration file) so that
the engine's containers and the build's RUN steps (:mod:`pypod.build.run`, as buildah) share it.
System call names are kept as space-separated words to keep the module small.  Generated;
`tests/unit/test_engine_spec_seccomp.py` compares it with the installed file when present.
"""

from __future__ import annotations

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
            {
                "names": "personality".split(),
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": "personality".split(),
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": "personality".split(),
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": "personality".split(),
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 131080, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": "personality".split(),
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": "sync_file_range2".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"arches": ["ppc64le"]},
            },
            {
                "names": """
arm_fadvise64_64 arm_sync_file_range breakpoint cacheflush set_tls sync_file_range2
""".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"arches": ["arm", "arm64"]},
            },
            {
                "names": "arch_prctl".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"arches": ["amd64", "x32"]},
            },
            {
                "names": "modify_ldt".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"arches": ["amd64", "x32", "x86"]},
            },
            {
                "names": "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"arches": ["s390", "s390x"]},
            },
            {
                "names": "open_by_handle_at".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_DAC_READ_SEARCH"]},
            },
            {
                "names": "open_by_handle_at".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_DAC_READ_SEARCH"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": """
bpf fanotify_init lookup_dcookie perf_event_open quotactl setdomainname sethostname
setns
""".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_ADMIN"]},
            },
            {
                "names": """
bpf fanotify_init lookup_dcookie perf_event_open quotactl setdomainname sethostname
setns
""".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_ADMIN"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": "chroot".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_CHROOT"]},
            },
            {
                "names": "chroot".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_CHROOT"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": "delete_module finit_module init_module query_module".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_MODULE"]},
            },
            {
                "names": "delete_module finit_module init_module query_module".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_MODULE"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": "acct".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_PACCT"]},
            },
            {
                "names": "acct".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_PACCT"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": "kcmp process_madvise".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_PTRACE"]},
            },
            {
                "names": "kcmp process_madvise".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_PTRACE"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": "ioperm iopl".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_RAWIO"]},
            },
            {
                "names": "ioperm iopl".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_RAWIO"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": "clock_settime clock_settime64 settimeofday stime".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_TIME"]},
            },
            {
                "names": "clock_settime clock_settime64 settimeofday stime".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_TIME"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": "vhangup".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_TTY_CONFIG"]},
            },
            {
                "names": "vhangup".split(),
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_TTY_CONFIG"]},
                "errnoRet": 1,
                "errno": "EPERM",
            },
            {
                "names": "socket".split(),
                "action": "SCMP_ACT_ERRNO",
                "args": [
                    {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                    {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"},
                ],
                "excludes": {"caps": ["CAP_AUDIT_WRITE"]},
                "errnoRet": 22,
                "errno": "EINVAL",
            },
            {
                "names": "socket".split(),
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}],
                "excludes": {"caps": ["CAP_AUDIT_WRITE"]},
            },
            {
                "names": "socket".split(),
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}],
                "excludes": {"caps": ["CAP_AUDIT_WRITE"]},
            },
            {
                "names": "socket".split(),
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}],
                "excludes": {"caps": ["CAP_AUDIT_WRITE"]},
            },
            {
                "names": "socket".split(),
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_AUDIT_WRITE"]},
            },
        ],
    }
