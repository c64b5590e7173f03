"""The security side of a container's spec: capabilities, masked paths and seccomp, as podman 4.3.

* capabilities: podman's default set with `--cap-add`/`--cap-drop` (names with or without
  CAP_, any case, ALL; containers/common's MergeCapabilities and its messages); `--privileged`
  and `--cap-add ALL` mean every capability this process holds (its bounding set).  Root in the
  container gets the set as bounding, effective and permitted set; another user only as
  bounding set, plus what `--cap-add` names in every set (podman 4.3);
* masked and read-only paths: podman's lists, less `unmask=` (ALL, paths or Go globs), plus
  `mask=`; none with `--privileged`;
* seccomp: podman's default profile (:mod:`pypod.config.seccomp_default`) or
  `seccomp=FILE`, converted for the container's bounding set; none with `seccomp=unconfined`,
  nor with `--privileged` unless a file is given.
"""

from __future__ import annotations

from pypod.engine.config import ContainerConfig
from pypod.errors import InvalidArgument
from pypod.oci.runtime_spec import LinuxCapabilities, LinuxSeccomp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_READONLY_PATHS",
    "bounding_set",
    "capabilities",
    "masked_paths",
    "merge_caps",
    "seccomp",
]

#: podman's default capability set (containers.conf `default_capabilities`)
DEFAULT_CAPABILITIES = tuple(
    "CAP_" + c
    for c in "CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP "
    "SETUID SYS_CHROOT".split()
)
DEFAULT_MASKED_PATHS = (
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux",
    "/sys/dev/block",
)  # fmt: skip
DEFAULT_READONLY_PATHS = (
    "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)  # fmt: skip


def _known_capabilities() -> dict[str, int]:
    from pypod.linux.capabilities import CAP_NAMES, last_cap

    top = last_cap()
    return {name: n for name, n in CAP_NAMES.items() if n <= top}


def bounding_set(cfg: ContainerConfig) -> tuple[str, ...]:
    """The container's bounding set: podman's defaults with --cap-add/--cap-drop, or with
    --privileged every capability this process holds."""
    if cfg.privileged:
        return _caller_bounding()
    return merge_caps(DEFAULT_CAPABILITIES, cfg.cap_add, cfg.cap_drop)


def _caller_bounding() -> tuple[str, ...]:
    from pypod.linux.capabilities import read_status, to_names

    known = _known_capabilities()
    return tuple(sorted(n for n in to_names(read_status()["CapBnd"]) if n in known))


def _normalize_caps(names: Sequence[str]) -> list[str]:
    known = _known_capabilities()
    out = []
    for raw in names:
        name = raw.strip().upper()
        if name != "ALL" and not name.startswith("CAP_"):
            name = "CAP_" + name
        if name != "ALL" and name not in known:
            raise InvalidArgument(f'"{name}": unknown capability')
        out.append(name)
    return out


def merge_caps(base: Sequence[str], adds: Sequence[str], drops: Sequence[str]) -> tuple[str, ...]:
    """containers/common's MergeCapabilities."""
    if not adds and not drops:
        return tuple(base)
    cap_add, cap_drop = _normalize_caps(adds), _normalize_caps(drops)
    if "ALL" in cap_drop:
        if "ALL" in cap_add:
            raise InvalidArgument("adding all caps and removing all caps not allowed")
        return tuple(sorted(dict.fromkeys(cap_add)))
    if "ALL" in cap_add:
        base, cap_add = _caller_bounding(), []
    for cap in cap_add:
        if cap in cap_drop:
            raise InvalidArgument(f'capability "{cap}" cannot be dropped and added')
    caps = [c for c in base if c not in cap_drop]
    caps += [c for c in cap_add if c not in base]
    return tuple(sorted(dict.fromkeys(caps)))


def capabilities(cfg: ContainerConfig, bounding: tuple[str, ...], uid: int) -> LinuxCapabilities:
    """Root gets the bounding set as effective and permitted set; another user only what
    --cap-add names (also inheritable and ambient), as podman does."""
    if uid == 0:
        return LinuxCapabilities(bounding=bounding, effective=bounding, permitted=bounding)
    caller = set(_caller_bounding())
    added = tuple(c for c in merge_caps((), cfg.cap_add, ()) if c in caller)
    return LinuxCapabilities(
        bounding=bounding, effective=added, permitted=added, inheritable=added, ambient=added
    )


def masked_paths(cfg: ContainerConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """podman's masked and read-only paths, less `unmask=` (ALL, paths or globs), plus
    `mask=`; none at all with --privileged."""
    if cfg.privileged:
        return (), ()
    if "ALL" in cfg.unmask:
        return tuple(dict.fromkeys(cfg.mask)), ()

    def kept(path: str) -> bool:
        return not any(_path_match(pattern, path) for pattern in cfg.unmask)

    masked = [p for p in DEFAULT_MASKED_PATHS if kept(p)]
    masked += [p for p in cfg.mask if p not in masked]
    readonly = tuple(p for p in DEFAULT_READONLY_PATHS if kept(p))
    return tuple(masked), readonly


def _path_match(pattern: str, path: str) -> bool:
    """Go's filepath.Match: `*` and `?` do not cross "/"."""
    import re

    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                return pattern == path
            out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(out), path) is not None


def seccomp(cfg: ContainerConfig, bounding: tuple[str, ...]) -> LinuxSeccomp | None:
    """Podman's default profile unless `seccomp=unconfined` or --privileged (without a profile
    of its own); `seccomp=FILE` loads a Docker/podman profile."""
    from pypod.config import seccomp_profile

    choice = cfg.seccomp_profile
    if choice == "unconfined" or (cfg.privileged and not choice):
        return None
    if not choice:
        return seccomp_profile.default_seccomp(bounding)
    profile = seccomp_profile.load_file(choice)
    source = f"seccomp profile {choice}"
    return seccomp_profile.to_oci(profile, bounding=bounding, source=source)
