"""Compiled seccomp programs kept between container starts (pypod.linux.seccomp_cache).

What a cached program does is checked by installing it for real, in a forked child (as in
test_caps_seccomp.py): the cache must never change what a profile allows.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import platform
import shutil
import stat
from pathlib import Path

import pytest

from pypod.errors import InvalidArgument
from pypod.linux import seccomp as sc
from pypod.linux import seccomp_cache as cache
from pypod.oci.runtime_spec import LinuxSeccomp, LinuxSyscall
from tests.integration.test_caps_seccomp import NR_CLONE3, ok, oserror_errno

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (seccomp without NNP)"),
    pytest.mark.skipif(
        ctypes.util.find_library("seccomp") is None, reason="libseccomp.so.2 is not installed"
    ),
    pytest.mark.skipif(
        platform.machine() != "x86_64", reason="the allow list and syscall numbers are x86_64 ones"
    ),
]

#: enough for Python to return from a system call and report through a pipe
_PYTHON = """
brk close exit exit_group fstat futex getpid getrandom gettid ioctl lseek madvise mmap
mprotect mremap munmap newfstatat read rt_sigaction rt_sigprocmask rt_sigreturn write
""".split()


def allow_list(errno_ret: int | None = None) -> LinuxSeccomp:
    """Deny everything but what Python needs (mkdir: EPERM, or `errno_ret`)."""
    return LinuxSeccomp(
        default_action="SCMP_ACT_ERRNO",
        default_errno_ret=errno_ret,
        architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        syscalls=(LinuxSyscall(names=tuple(_PYTHON), action="SCMP_ACT_ALLOW"),),
    )


def entries(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("*.bpf")) if cache_dir.is_dir() else []


_BUILD_FILTER = sc.build_filter


def compiled(profile: LinuxSeccomp) -> sc.Program:
    """The program of `profile` straight from libseccomp (not counted by `compiles`)."""
    with _BUILD_FILTER(profile) as filt:
        return filt.compile()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "@seccomp-cache"


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the profiles compiled through libseccomp."""
    calls: list[int] = []

    def counting(profile: LinuxSeccomp) -> sc.Filter:
        calls.append(1)
        return _BUILD_FILTER(profile)

    monkeypatch.setattr(sc, "build_filter", counting)
    return calls


def test_the_cached_program_is_the_compiled_one(cache_dir: Path, compiles: list[int]) -> None:
    profile = allow_list()
    first = cache.program_for(profile, str(cache_dir))
    second = cache.program_for(profile, str(cache_dir))
    assert len(compiles) == 1  # the second came from the cache
    assert first == second == compiled(profile)
    (entry,) = entries(cache_dir)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert entry.stat().st_uid == os.geteuid()


def test_a_cached_program_enforces_the_profile(cache_dir: Path) -> None:
    profile = allow_list()
    cache.program_for(profile, str(cache_dir))  # compiled and stored
    prog = cache.program_for(profile, str(cache_dir))  # from the cache
    libc = ctypes.CDLL(None, use_errno=True)

    def body() -> dict[str, int]:
        prog.load()
        ret = libc.syscall(ctypes.c_long(NR_CLONE3), None, ctypes.c_size_t(0))
        return {
            "mkdir": oserror_errno(lambda: os.mkdir("/nonexistent-dir/x")),
            "clone3": ctypes.get_errno() if ret == -1 else 0,
            "getpid": oserror_errno(os.getpid),
        }

    got = ok(body)
    assert got["mkdir"] == errno.EPERM  # the default action
    assert got["clone3"] == errno.ENOSYS  # newer than any the profile names: the stub
    assert got["getpid"] == 0


def test_a_changed_profile_is_compiled_again(cache_dir: Path, compiles: list[int]) -> None:
    eperm = cache.program_for(allow_list(), str(cache_dir))
    eacces = cache.program_for(allow_list(errno.EACCES), str(cache_dir))
    assert len(compiles) == 2 and len(entries(cache_dir)) == 2
    assert eperm != eacces
    assert eacces == compiled(allow_list(errno.EACCES))

    def body() -> int:
        eacces.load()
        return oserror_errno(lambda: os.mkdir("/nonexistent-dir/x"))

    assert ok(body) == errno.EACCES


def test_another_libseccomp_is_a_miss(
    cache_dir: Path, compiles: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache.program_for(allow_list(), str(cache_dir))
    version, api, path = sc.library()
    assert os.path.isabs(path) and "libseccomp" in path
    monkeypatch.setattr(
        sc, "library", lambda: ((version[0], version[1], version[2] + 1), api, path)
    )
    cache.program_for(allow_list(), str(cache_dir))
    assert len(compiles) == 2 and len(entries(cache_dir)) == 2
    # the same version from another file (a distribution's fixed build): another entry too
    copy = tmp_path / "libseccomp.so.2"
    shutil.copy(path, copy)
    monkeypatch.setattr(sc, "library", lambda: (version, api, str(copy)))
    cache.program_for(allow_list(), str(cache_dir))
    assert len(compiles) == 3 and len(entries(cache_dir)) == 3


def test_a_corrupt_entry_is_ignored_and_rewritten(cache_dir: Path, compiles: list[int]) -> None:
    profile = allow_list()
    good = cache.program_for(profile, str(cache_dir))
    (entry,) = entries(cache_dir)
    data = entry.read_bytes()
    for broken in (b"", b"garbage", data[:-3], data[:40], data.replace(b'"key_size"', b'"k"')):
        entry.write_bytes(broken)
        assert cache.program_for(profile, str(cache_dir)) == good
        assert entry.read_bytes() == data  # stored again
    assert len(compiles) == 6


def test_an_entry_of_another_profile_is_never_used(cache_dir: Path, compiles: list[int]) -> None:
    """Entry names are checksums: an entry is used only for the very key it holds."""
    permissive = LinuxSeccomp(default_action="SCMP_ACT_ALLOW")
    cache.program_for(permissive, str(cache_dir))
    (entry,) = entries(cache_dir)
    strict = allow_list()
    entry.rename(cache_dir / cache.entry_name(cache.cache_key(strict)))
    assert cache.program_for(strict, str(cache_dir)) == compiled(strict)
    assert len(compiles) == 2


def test_a_cache_others_can_write_is_not_used(
    cache_dir: Path, compiles: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    profile = allow_list()
    cache.program_for(profile, str(cache_dir))
    (entry,) = entries(cache_dir)
    entry.chmod(0o620)  # group-writable entry
    assert cache.program_for(profile, str(cache_dir)) == compiled(profile)
    assert len(compiles) == 2
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600  # replaced by a good one
    cache_dir.chmod(0o777)  # a directory anyone can write
    with caplog.at_level(logging.WARNING):
        assert cache.program_for(profile, str(cache_dir)) == compiled(profile)
    assert len(compiles) == 3
    assert "is not the runtime's own: not used" in caplog.text


def test_a_symlink_is_not_followed(tmp_path: Path, compiles: list[int]) -> None:
    real = tmp_path / "elsewhere"
    cache.program_for(allow_list(), str(real))
    link = tmp_path / "link"
    link.symlink_to(real)
    cache.program_for(allow_list(), str(link))
    assert len(compiles) == 2  # neither read through the link
    assert link.is_symlink() and len(entries(real)) == 1


def test_without_a_cache_directory_nothing_is_stored(tmp_path: Path, compiles: list[int]) -> None:
    assert cache.program_for(allow_list(), None) == compiled(allow_list())
    assert list(tmp_path.iterdir()) == []
    unwritable = tmp_path / "file"
    unwritable.write_text("")  # the cache cannot be made: the program is used anyway
    assert cache.program_for(allow_list(), str(unwritable / "sub")) == compiled(allow_list())


def test_warnings_are_given_again_from_the_cache(
    cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    profile = LinuxSeccomp(
        default_action="SCMP_ACT_ERRNO",
        architectures=("SCMP_ARCH_X86_64",),
        syscalls=(LinuxSyscall(names=("no_such_syscall",), action="SCMP_ACT_ALLOW"),),
    )
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            cache.program_for(profile, str(cache_dir))
        assert "could not find any syscalls for architecture 0xc000003e" in caplog.text


def test_the_cache_stays_small(cache_dir: Path) -> None:
    cache_dir.mkdir(mode=0o700)
    for i in range(cache._MAX_ENTRIES + 5):
        path = cache_dir / f"old{i:03d}.bpf"
        path.write_bytes(b"x")
        os.utime(path, ns=(i * 10**9, i * 10**9))
    cache.program_for(allow_list(), str(cache_dir))
    names = [p.name for p in entries(cache_dir)]
    assert len(names) == cache._MAX_ENTRIES
    assert "old000.bpf" not in names and "old068.bpf" in names  # the oldest went
    assert cache.entry_name(cache.cache_key(allow_list())) in names


def test_program_checks() -> None:
    with pytest.raises(InvalidArgument, match="at most 4096"):
        sc.Program(code=b"\0" * 8 * 4097).check()
    with pytest.raises(InvalidArgument, match="not a sequence of 8-byte instructions"):
        sc.Program(code=b"\0" * 12).check()
    with pytest.raises(InvalidArgument, match="not a sequence"):
        sc.Program(code=b"").check()
    with pytest.raises(InvalidArgument, match="number of the seccomp system call"):
        sc.Program(code=b"\0" * 8, kernel_flags=sc.SECCOMP_FILTER_FLAG_LOG).check()
    sc.Program(code=b"\x06\0\0\0\0\0\xff\x7f").check()  # ret ALLOW


def test_a_profile_as_read_is_parsed_only_to_compile_it(
    cache_dir: Path, compiles: list[int]
) -> None:
    """program_for_config keys the entry by config.json's JSON: found, nothing is parsed; the
    program is the one the parsed profile compiles to."""
    config = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": list(_PYTHON), "action": "SCMP_ACT_ALLOW"}],
    }
    parsed: list[int] = []

    def parse() -> LinuxSeccomp:
        parsed.append(1)
        return allow_list()

    first = cache.program_for_config(config, parse, str(cache_dir))
    second = cache.program_for_config(dict(reversed(config.items())), parse, str(cache_dir))
    assert parsed == compiles == [1]  # the second (the same JSON, keys in another order) was read
    assert first == second == compiled(allow_list())
    assert len(entries(cache_dir)) == 1
    other = {**config, "defaultErrnoRet": errno.EACCES}
    cache.program_for_config(other, lambda: allow_list(errno.EACCES), str(cache_dir))
    assert len(entries(cache_dir)) == 2 and len(compiles) == 2
    assert cache.program_for_config(config, parse, None) == first  # no cache: compiled
    assert len(parsed) == 2
