"""Compiled seccomp programs kept between container starts.

Compiling a profile as long as podman's default one through libseccomp takes ~15 ms (building
the rules, then generating the BPF program); every container of a machine uses one of a few
profiles.  :func:`program_for` returns the :class:`~pypod.linux.seccomp.Program` of a profile,
from the cache when an entry for exactly this profile, compiled here, exists, else compiled and
stored.  The program is the same bytes either way: the entry is what
:meth:`~pypod.linux.seccomp.Filter.compile` returned, and its key covers everything that result
depends on: the profile itself, libseccomp (version, file, API level), the kernel and machine, and
pypod's compiler (its version and this module's and seccomp.py's files).  An entry holds its
whole key, compared byte for byte (the file name is only a checksum of it: no hash has to be
collision-proof, and hashlib, 2 ms to import, is not needed).

The runtime keeps the cache in its state root (normally a tmpfs, emptied at boot; where it is
not, the key still tells a new kernel or libseccomp apart), in a directory only its user may
write.  An entry is read only from a directory and a file owned by that user and
writable by nobody else, and only when it holds its own key and a sequence of BPF
instructions; anything else is ignored (and rewritten).  A failure to store an entry is
not an error: the compiled program is used anyway.
"""

from __future__ import annotations

import errno
import os
import stat

import pypod
from pypod import jsoncodec
from pypod.errors import InvalidArgument
from pypod.linux import seccomp
from pypod.log import get_logger
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from pypod.linux.seccomp import LinuxSeccompLike, Program

log = get_logger(__name__)

#: bump when the program pypod compiles for a profile changes without a file changing
_FORMAT = 1
_MAGIC = b"pypod-seccomp-bpf\n"
_MAX_HEADER = 64 * 1024
_MAX_ENTRIES = 64
_SUFFIX = ".bpf"


def program_for(profile: LinuxSeccompLike, cache_dir: str | None) -> Program:
    """The compiled program of `profile`, through the cache in `cache_dir` (None: no cache)."""
    if cache_dir is None:
        return _compile(profile)[0]
    return _through_cache(cache_dir, cache_key(profile), lambda: profile)


def program_for_config(
    config: Mapping[str, Any], parse: Callable[[], LinuxSeccompLike], cache_dir: str | None
) -> Program:
    """The compiled program of config.json's `linux.seccomp` object as read (`config`), keyed
    by that JSON itself: an entry found needs no parsing at all (`parse()` gives the profile
    to compile otherwise, and says what is wrong in it).  The same JSON always parses to the
    same profile, so its program is the one `program_for` would give."""
    if cache_dir is None:
        return _compile(parse())[0]
    return _through_cache(cache_dir, _key({"profile_json": config}), parse)


def _through_cache(cache_dir: str, key: bytes, profile: Callable[[], LinuxSeccompLike]) -> Program:
    cached = _read(cache_dir, key)
    if cached is not None:
        prog, warnings = cached
        for text in warnings:
            log.warning("%s", text)
        return prog
    prog, warnings = _compile(profile())
    try:
        _store(cache_dir, key, prog, warnings)
    except OSError as e:
        log.debug("seccomp: cannot cache the compiled filter in %s: %s", cache_dir, e)
    return prog


def cache_key(profile: LinuxSeccompLike) -> bytes:
    """Everything the compiled program depends on (canonical JSON)."""
    return _key({"profile": _profile_data(profile)})


def _key(profile: dict[str, Any]) -> bytes:
    """The cache key for a profile (given as JSON-able data under one name)."""
    version, api, path = seccomp.library()
    uname = os.uname()
    parts: dict[str, Any] = {
        "format": _FORMAT,
        "pypod": pypod.__version__,
        "compiler": [_file_id(seccomp.__file__), _file_id(__file__)],
        # the file too: a fixed build of the same version (a distribution's security update)
        # may generate other programs
        "libseccomp": [list(version), _file_id(path)],
        "api": api,
        "kernel": [uname.sysname, uname.release, uname.machine],
        **profile,
    }
    return jsoncodec.dumps(parts, sort_keys=True, separators=(",", ":")).encode()


def entry_name(key: bytes) -> str:
    """The file of the entry for `key` (a checksum: two keys may share it, then take turns)."""
    import zlib  # an extension module: loaded when a key is made (not by the monitor's warm-up)

    return f"{zlib.crc32(key):08x}-{len(key):x}{_SUFFIX}"


def _profile_data(profile: LinuxSeccompLike) -> list[Any]:
    """Every field of the profile the compiler reads, in a JSON-able form."""
    return [
        profile.default_action,
        profile.default_errno_ret,
        list(profile.architectures),
        list(profile.flags),
        profile.listener_path,
        [
            [
                list(call.names),
                call.action,
                call.errno_ret,
                [[a.index, a.value, a.value_two, a.op] for a in call.args],
            ]
            for call in profile.syscalls
        ],
    ]


def _file_id(path: str | None) -> list[Any]:
    if not path:
        return []
    try:
        st = os.stat(path)
    except OSError:
        return [path]
    return [path, st.st_size, st.st_mtime_ns, st.st_ino]


def _compile(profile: LinuxSeccompLike) -> tuple[Program, list[str]]:
    with seccomp.build_filter(profile) as filt:
        return filt.compile(), list(filt.warnings)


# --- entries ---------------------------------------------------------------------------------
#
# <_MAGIC><header: one line of JSON: key_size, kernel_flags, syscall_nr, instructions, warnings>\n
# <the key: key_size bytes><the program: instructions * 8 bytes>


def _encode(key: bytes, prog: Program, warnings: list[str]) -> bytes:
    header = {
        "key_size": len(key),
        "kernel_flags": prog.kernel_flags,
        "syscall_nr": prog.syscall_nr,
        "instructions": prog.instructions,
        "warnings": warnings,
    }
    return _MAGIC + jsoncodec.dumps(header).encode() + b"\n" + key + prog.code


def _decode(data: bytes, key: bytes) -> tuple[Program, list[str]] | None:
    if not data.startswith(_MAGIC):
        return None
    end = data.find(b"\n", len(_MAGIC), len(_MAGIC) + _MAX_HEADER)
    if end < 0:
        return None
    try:
        header = jsoncodec.loads(data[len(_MAGIC) : end])
        key_end = end + 1 + int(header["key_size"])
        if data[end + 1 : key_end] != key:
            return None  # another profile (or pypod, libseccomp, kernel) with the same checksum
        code = data[key_end:]
        prog = seccomp.Program(
            code=code,
            kernel_flags=int(header["kernel_flags"]),
            syscall_nr=int(header["syscall_nr"]),
        )
        if prog.instructions != int(header["instructions"]):
            return None
        prog.check()
        warnings = [str(w) for w in header["warnings"]]
    except (ValueError, KeyError, TypeError, InvalidArgument):
        return None
    return prog, warnings


def _trusted(st: os.stat_result) -> bool:
    """Owned by us, writable by nobody else."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read(cache_dir: str, key: bytes) -> tuple[Program, list[str]] | None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        dir_fd = os.open(cache_dir, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        if not _trusted(os.fstat(dir_fd)):
            log.warning("seccomp: cache %s is not the runtime's own: not used", cache_dir)
            return None
        try:
            fd = os.open(entry_name(key), flags, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or not _trusted(st):
                return None
            data = _read_all(fd)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
    entry = _decode(data, key)
    if entry is None:
        log.debug("seccomp: no valid entry %s in %s: compiling", entry_name(key), cache_dir)
    return entry


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _store(cache_dir: str, key: bytes, prog: Program, warnings: list[str]) -> None:
    from pypod.atomic import write_atomic

    try:
        os.mkdir(cache_dir, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(cache_dir)
    if not stat.S_ISDIR(st.st_mode) or not _trusted(st):
        raise OSError(errno.EPERM, "not a directory of the runtime's own", cache_dir)
    _prune(cache_dir)
    path = os.path.join(cache_dir, entry_name(key))
    write_atomic(path, _encode(key, prog, warnings), mode=0o600, sync=False)


def _prune(cache_dir: str) -> None:
    """Keep the cache small: past _MAX_ENTRIES, drop the oldest entries."""
    with os.scandir(cache_dir) as it:
        entries = [e for e in it if e.name.endswith(_SUFFIX)]
    if len(entries) < _MAX_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns)
    for entry in entries[: len(entries) - _MAX_ENTRIES + 1]:
        with suppress(OSError):
            os.unlink(entry.path)
