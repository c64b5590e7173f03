"""Docker/podman seccomp profiles -> the OCI `linux.seccomp` object, as containers/common does.

A profile (podman's default, :mod:`pypod.config.seccomp_default`, or the JSON file of
`--security-opt seccomp=FILE`) lists rules with conditions; :func:`to_oci` keeps the rules that
apply to this container, as containers/common 0.50's `setupSeccomp` (podman 4.3):

* `archMap`: the entry of the native architecture, with its sub-architectures, becomes
  `architectures`; `architectures` (old profiles) is copied; giving both is an error;
* a rule is skipped when `excludes.arches` names the native architecture, when `excludes.caps`
  names a capability of the bounding set, when `includes.arches` does not name the native
  architecture, or when one of `includes.caps` is missing from the bounding set;
  `includes.minKernel` (Docker's) keeps a rule only on a kernel at least that recent;
* `errno` / `defaultErrno` (a name such as "EPERM" or a number) win over `errnoRet` /
  `defaultErrnoRet`;
* a profile with neither `defaultAction` nor rules means "no seccomp" (None).

Unlike containers/common 0.50, `flags` are copied (as Docker does), so a file profile asking for
SECCOMP_FILTER_FLAG_LOG gets it.  Architectures use libseccomp's names ("amd64", "arm64"...).
"""

from __future__ import annotations

import errno as errno_mod
import os

from pypod import jsoncodec
from pypod.errors import InvalidArgument
from pypod.oci.runtime_spec import (
    SECCOMP_ACTIONS,
    SECCOMP_OPERATORS,
    LinuxSeccomp,
    LinuxSeccompArg,
    LinuxSyscall,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["default_seccomp", "kernel_version", "load_file", "native_arch", "to_json", "to_oci"]

#: uname machine -> libseccomp-golang's architecture name (what profiles' "arches" use)
_MACHINE_TO_ARCH = {
    "x86_64": "amd64", "i386": "x86", "i686": "x86", "aarch64": "arm64", "armv7l": "arm",
    "armv6l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "s390": "s390",
    "mips64": "mips64", "mips": "mips", "riscv64": "riscv64", "loongarch64": "loong64",
}  # fmt: skip
#: native architecture -> the archMap entry that applies (containers/common's nativeToSeccomp)
_NATIVE_TO_SECCOMP = {
    "amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32", "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mipsel64n32": "SCMP_ARCH_MIPSEL64N32", "s390x": "SCMP_ARCH_S390X",
}  # fmt: skip


def native_arch() -> str:
    """This machine's architecture as libseccomp names it ("amd64" on x86_64)."""
    machine = os.uname().machine
    return _MACHINE_TO_ARCH.get(machine, machine)


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    return _parse_kernel(os.uname().release) or (0, 0)


def _parse_kernel(text: str) -> tuple[int, int] | None:
    parts = text.split(".")
    try:
        major = int(parts[0])
        minor = int("".join(c for c in parts[1].split("-")[0] if c.isdigit()) or "0")
    except (ValueError, IndexError):
        return None
    return major, minor


def load_file(path: str) -> Mapping[str, Any]:
    """Read the JSON profile of `--security-opt seccomp=PATH` (podman's messages on failure)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InvalidArgument(
            f"opening seccomp profile failed: open {path}: {e.strerror.lower()}"
            if e.strerror
            else f"opening seccomp profile failed: {path}: {e}"
        ) from e
    try:
        profile = jsoncodec.loads(data)
    except ValueError as e:
        raise InvalidArgument(
            f"loading seccomp profile ({path}) failed: decoding seccomp profile failed: {e}"
        ) from e
    if not isinstance(profile, dict):
        raise InvalidArgument(
            f"loading seccomp profile ({path}) failed: decoding seccomp profile failed: "
            "the profile must be a JSON object"
        )
    return profile


def to_oci(
    profile: Mapping[str, Any],
    *,
    bounding: Sequence[str],
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
    source: str = "the seccomp profile",
) -> LinuxSeccomp | None:
    """The OCI seccomp object of `profile` for a container whose bounding set is `bounding`.

    `arch` (libseccomp name) and `kernel` default to this machine's.
    """
    default_action = _str(profile, "defaultAction", source)
    if default_action and default_action not in SECCOMP_ACTIONS:
        raise InvalidArgument(f"{source}: defaultAction: unknown action {default_action!r}")
    rules = profile.get("syscalls") or []
    if not isinstance(rules, list):
        raise InvalidArgument(f"{source}: syscalls: must be a list of rules")
    if not default_action and not rules:
        return None
    arch = arch or native_arch()
    caps = frozenset(bounding)
    architectures = _architectures(profile, arch, source)
    default_errno = _errno(profile.get("defaultErrno"), profile.get("defaultErrnoRet"), source)
    syscalls: list[LinuxSyscall] = []
    for i, rule in enumerate(rules):
        where = f"{source}: syscalls[{i}]"
        if not isinstance(rule, dict):
            raise InvalidArgument(f"{where}: must be an object")
        if not _applies(rule, arch, caps, kernel, where):
            continue
        name = rule.get("name") or ""
        names = rule.get("names") or []
        if name and names:
            raise InvalidArgument(
                f"{where}: 'name' and 'names' were specified in the seccomp profile, use "
                "either 'name' or 'names'"
            )
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidArgument(f"{where}: names: must be a list of system call names")
        action = _str(rule, "action", where)
        if action not in SECCOMP_ACTIONS:
            raise InvalidArgument(f"{where}: action: unknown action {action!r}")
        errno_ret = _errno(rule.get("errno"), rule.get("errnoRet"), where)
        args = tuple(_arg(a, f"{where}: args[{j}]") for j, a in enumerate(rule.get("args") or []))
        for group in ([name] if name else [], names):
            if group:
                syscalls.append(
                    LinuxSyscall(names=tuple(group), action=action, errno_ret=errno_ret, args=args)
                )
    flags = profile.get("flags") or []
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise InvalidArgument(f"{source}: flags: must be a list of strings")
    return LinuxSeccomp(
        default_action=default_action,
        default_errno_ret=default_errno,
        architectures=architectures,
        flags=tuple(flags),
        syscalls=tuple(syscalls),
    )


def default_seccomp(bounding: Sequence[str]) -> LinuxSeccomp | None:
    """Podman's (and buildah's) default profile for a process whose bounding set is `bounding`."""
    from pypod.config.seccomp_default import profile

    return to_oci(profile(), bounding=bounding, source="the default seccomp profile")


def to_json(seccomp: LinuxSeccomp) -> dict[str, Any]:
    """The spec's JSON form of `seccomp` (the `linux.seccomp` object of a config.json)."""
    from pypod.oci.runtime_spec import Linux, Spec, spec_to_dict

    out: dict[str, Any] = spec_to_dict(Spec(linux=Linux(seccomp=seccomp)))["linux"]["seccomp"]
    return out


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key) or ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: {key}: must be a string")
    return value


def _architectures(profile: Mapping[str, Any], arch: str, source: str) -> tuple[str, ...]:
    listed = profile.get("architectures") or []
    arch_map = profile.get("archMap") or []
    if listed and arch_map:
        raise InvalidArgument(
            f"{source}: 'architectures' and 'archMap' were specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'"
        )
    if not isinstance(listed, list) or not isinstance(arch_map, list):
        raise InvalidArgument(f"{source}: architectures and archMap must be lists")
    out = [str(a) for a in listed]
    wanted = _NATIVE_TO_SECCOMP.get(arch)
    for entry in arch_map:
        if isinstance(entry, dict) and wanted and entry.get("architecture") == wanted:
            out.append(wanted)
            out.extend(str(a) for a in entry.get("subArchitectures") or [])
            break
    return tuple(out)


def _applies(
    rule: Mapping[str, Any],
    arch: str,
    caps: frozenset[str],
    kernel: tuple[int, int] | None,
    where: str,
) -> bool:
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if not isinstance(excludes, dict) or not isinstance(includes, dict):
        raise InvalidArgument(f"{where}: includes and excludes must be objects")
    if arch in (excludes.get("arches") or ()):
        return False
    if any(c in caps for c in excludes.get("caps") or ()):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if any(c not in caps for c in includes.get("caps") or ()):
        return False
    min_kernel = includes.get("minKernel")
    if min_kernel:
        wanted = _parse_kernel(str(min_kernel))
        if wanted is None:
            raise InvalidArgument(
                f"{where}: includes.minKernel: invalid kernel version {min_kernel!r}"
            )
        if (kernel or kernel_version()) < wanted:
            return False
    return True


def _errno(name: object, number: object, where: str) -> int | None:
    """`errno` (a name or a number as text) if given, else `errnoRet` (containers' getErrno)."""
    if name not in (None, ""):
        text = str(name)
        if text.isdigit():
            return int(text)
        value = getattr(errno_mod, text, None) if text.startswith("E") else None
        if not isinstance(value, int):
            raise InvalidArgument(f"{where}: unknown errno {text}")
        return value
    if number is None:
        return None
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise InvalidArgument(f"{where}: errnoRet: must be a non-negative number")
    return number


def _arg(arg: object, where: str) -> LinuxSeccompArg:
    if not isinstance(arg, dict):
        raise InvalidArgument(f"{where}: must be an object")
    values = {}
    for key in ("index", "value", "valueTwo"):
        v = arg.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidArgument(f"{where}: {key}: must be a non-negative number")
        values[key] = v
    op = _str(arg, "op", where)
    if op not in SECCOMP_OPERATORS:
        raise InvalidArgument(f"{where}: op: unknown operator {op!r}")
    return LinuxSeccompArg(
        index=values["index"], value=values["value"], value_two=values["valueTwo"], op=op
    )
