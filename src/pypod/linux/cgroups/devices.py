"""Device-cgroup rules: normalisation of the OCI rules and an emulator of the v1 semantics.

The OCI list is applied in order the way cgroup v1's devices.allow / devices.deny would apply
it: an "a" rule resets the default (allow-all or deny-all) and drops the exceptions; any other
rule adds an exception when its action differs from the default, or removes (part of) one
when it equals it.  The emulator computes the resulting state, which gives

- v1: the writes that move a devices cgroup from what `devices.list` shows to the target with
  as little disruption as possible (no "deny everything" blip when nothing changes), and
- v2: the clean exception list the eBPF filter is generated from (see bpf_devices.py),

so both versions enforce the same thing.  Modelled on runc's devices emulator.
"""

from __future__ import annotations

from pypod.errors import InvalidArgument
from pypod.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Protocol

    class SpecDeviceRule(Protocol):
        """What the OCI LinuxDeviceCgroup gives (pypod.oci.runtime_spec)."""

        @property
        def allow(self) -> bool: ...
        @property
        def type(self) -> str | None: ...
        @property
        def major(self) -> int | None: ...
        @property
        def minor(self) -> int | None: ...
        @property
        def access(self) -> str | None: ...


WILDCARD = -1
_ACCESS_ORDER = "rwm"


@record(kw_only=False)
class DeviceRule:
    """One rule: type "a", "b" or "c"; major/minor -1 for "*"; access a subset of "rwm"."""

    allow: bool
    type: str
    major: int
    minor: int
    access: str

    def cgroup_string(self) -> str:
        """The devices.allow / devices.deny line: "c 1:3 rwm", "a *:* rwm"."""
        if self.type == "a":
            return "a *:* rwm"
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _canonical_access(access: str | None) -> str:
    if not access:
        return _ACCESS_ORDER
    bad = set(access) - set(_ACCESS_ORDER)
    if bad:
        raise InvalidArgument(
            f'cgroup: invalid device access "{access}": only r, w and m are allowed'
        )
    return "".join(c for c in _ACCESS_ORDER if c in access)


def normalize(rule: SpecDeviceRule) -> DeviceRule:
    """An OCI rule -> DeviceRule (type None means "a", major/minor None mean "*")."""
    dtype = rule.type or "a"
    if dtype not in ("a", "b", "c"):
        raise InvalidArgument(f'cgroup: invalid device type "{dtype}": expected a, b or c')
    major = WILDCARD if rule.major is None else rule.major
    minor = WILDCARD if rule.minor is None else rule.minor
    for what, number in (("major", major), ("minor", minor)):
        if number < WILDCARD or number > 0x7FFFFFFF:
            raise InvalidArgument(f"cgroup: invalid device {what} number {number}")
    return DeviceRule(rule.allow, dtype, major, minor, _canonical_access(rule.access))


_Key = tuple[str, int, int]


def _sort_key(key: _Key) -> tuple[int, int, str]:
    return (key[1], key[2], key[0])


class Emulator:
    """The state of a devices cgroup: a default action plus exceptions to it."""

    def __init__(self, *, default_allow: bool = False) -> None:
        self.default_allow = default_allow
        self._exceptions: dict[_Key, frozenset[str]] = {}

    @classmethod
    def from_rules(cls, rules: Iterable[DeviceRule]) -> Emulator:
        """The state a fresh deny-all cgroup reaches by applying `rules` in order."""
        emu = cls(default_allow=False)
        for rule in rules:
            emu.apply(rule)
        return emu

    @classmethod
    def from_list(cls, text: str) -> Emulator:
        """The state shown by a v1 `devices.list` (an allow list; "a *:* rwm" = allow-all)."""
        emu = cls(default_allow=False)
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            fields = _list_line(line)
            if fields is None:
                raise InvalidArgument(f"cgroup: unexpected devices.list line {line!r}")
            dtype, major, minor, access = fields
            if dtype == "a":
                return cls(default_allow=True)
            emu.apply(
                DeviceRule(
                    True,
                    dtype,
                    WILDCARD if major == "*" else int(major),
                    WILDCARD if minor == "*" else int(minor),
                    _canonical_access(access),
                )
            )
        return emu

    def apply(self, rule: DeviceRule) -> None:
        if rule.type == "a":
            self.default_allow = rule.allow
            self._exceptions = {}
            return
        key = (rule.type, rule.major, rule.minor)
        if rule.allow == self.default_allow:
            self._remove(key, frozenset(rule.access), rule)
        else:
            self._exceptions[key] = self._exceptions.get(key, frozenset()) | frozenset(rule.access)

    def _remove(self, key: _Key, access: frozenset[str], rule: DeviceRule) -> None:
        # cgroup v1 silently ignores removing part of a wildcard exception ("punching a hole");
        # refuse it rather than give a false sense of security (as runc does).
        dtype, major, minor = key
        for partial in ((dtype, WILDCARD, minor), (dtype, major, WILDCARD), (dtype, -1, -1)):
            if partial == key:
                continue
            if self._exceptions.get(partial, frozenset()) & access:
                raise InvalidArgument(
                    f'cgroup: device rule "{rule.cgroup_string()}" '
                    f"({'allow' if rule.allow else 'deny'}) cannot punch a hole in the "
                    f"wildcard exception {_key_string(partial, self._exceptions[partial])}; "
                    "list the specific devices instead"
                )
        remaining = self._exceptions.get(key, frozenset()) - access
        if remaining:
            self._exceptions[key] = remaining
        else:
            self._exceptions.pop(key, None)

    def exceptions(self) -> list[DeviceRule]:
        """The exceptions as rules (action = not the default), sorted by (major, minor, type)."""
        return [
            DeviceRule(not self.default_allow, k[0], k[1], k[2], _ordered(self._exceptions[k]))
            for k in sorted(self._exceptions, key=_sort_key)
        ]

    def transition(self, target: Emulator) -> list[DeviceRule]:
        """The rules to write to go from this state (current) to `target`.

        A black-list source cannot be read back exactly (devices.list shows only "a *:* rwm"),
        so it, like a change of default, starts with the disruptive "a" rule.
        """
        out: list[DeviceRule] = []
        old = self._exceptions
        if self.default_allow or self.default_allow != target.default_allow:
            out.append(DeviceRule(target.default_allow, "a", WILDCARD, WILDCARD, "rwm"))
            old = {}
        for key in sorted(old, key=_sort_key):
            dropped = old[key] - target._exceptions.get(key, frozenset())
            if dropped:
                out.append(DeviceRule(target.default_allow, *key, _ordered(dropped)))
        for key in sorted(target._exceptions, key=_sort_key):
            gained = target._exceptions[key] - old.get(key, frozenset())
            if gained:
                out.append(DeviceRule(not target.default_allow, *key, _ordered(gained)))
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Emulator):
            return NotImplemented
        return self.default_allow == other.default_allow and self._exceptions == other._exceptions

    __hash__ = None  # type: ignore[assignment]


def _ordered(access: frozenset[str]) -> str:
    return "".join(c for c in _ACCESS_ORDER if c in access)


def _key_string(key: _Key, access: frozenset[str]) -> str:
    return DeviceRule(True, key[0], key[1], key[2], _ordered(access)).cgroup_string()


def _list_line(line: str) -> tuple[str, str, str, str] | None:
    """(type, major, minor, access) of a devices.list line `c 1:3 rwm` (`*` for any number),
    None if it is not one.  (No regular expression: compiling one costs ~0.2 ms, and every
    create reads devices.list.)"""
    parts = line.split()
    if len(parts) != 3 or parts[0] not in ("a", "b", "c"):
        return None
    major, colon, minor = parts[1].partition(":")
    access = parts[2]
    numbers_ok = all(n == "*" or (n.isascii() and n.isdecimal()) for n in (major, minor))
    if not colon or not numbers_ok or not access or access.strip("rwm"):
        return None
    return parts[0], major, minor, access
