"""Go's `time.ParseDuration`, as the reference tools read every duration they are given.

One parser for pypod's Go durations: HEALTHCHECK options and `--healthcheck-*` flags
(buildah), `until=` filters (podman).  It lives in `image`, the lowest layer that the build,
the engine and the CLI may all import.  It follows Go 1.19's `time/format.go` step by step:
exact nanoseconds (integers, with Go's float arithmetic only for a fraction), the same
overflow limits and the same error messages, so that a caller that wants podman's own words
can pass them on unchanged.
"""

from __future__ import annotations

import re

from pypod.errors import InvalidArgument

__all__ = ["parse_go_duration"]

#: Go's unitMap: nanoseconds per unit ("µs" as U+00B5 and as U+03BC)
_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}  # fmt: skip
_MAX = 1 << 63
#: a number: [0-9]* then an optional (\.[0-9]*); then the unit: anything up to a digit or "."
_NUMBER = re.compile(r"([0-9]*)(\.([0-9]*))?")
_UNIT = re.compile(r"[^0-9.]*")


def _quote(text: str) -> str:
    """Go's time.quote: a double-quoted string, each byte of a non-ASCII or control
    character as \\xNN."""
    out = ['"']
    for ch in text:
        if ch >= "\x80" or ch < " ":
            out += [f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape")]
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def _leading_fraction(digits: str) -> tuple[int, float]:
    """Go's leadingFraction: (f, scale), digits kept while they fit in an int64."""
    f, scale = 0, 1.0
    for d in digits:
        if f > (_MAX - 1) // 10:
            break
        nxt = f * 10 + ord(d) - 48
        if nxt > _MAX:
            break
        f, scale = nxt, scale * 10
    return f, scale


def parse_go_duration(text: str) -> int:
    """`time.ParseDuration(text)` in nanoseconds: "30s", "1m30s", "500ms", "-1.5h", "0".

    A possibly signed sequence of decimal numbers, each with an optional fraction and a unit
    (ns, us, µs, ms, s, m, h); "0" alone needs no unit.  Raises InvalidArgument with Go's
    message (`time: invalid duration "1x"`, `time: missing unit in duration "10"`,
    `time: unknown unit "x" in duration "1x"`).
    """

    def invalid() -> InvalidArgument:
        return InvalidArgument(f"time: invalid duration {_quote(text)}")

    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid()
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid()
        number = _NUMBER.match(s)
        assert number is not None  # it matches the empty string
        whole, dot, frac = number.group(1), number.group(2), number.group(3) or ""
        if not whole and not frac:
            raise invalid()
        whole = whole.lstrip("0")
        if len(whole) > 19 or int(whole or "0") > _MAX:  # Go's leadingInt overflows
            raise invalid()
        s = s[number.end() :]
        unit = _UNIT.match(s)
        assert unit is not None
        name = unit.group()
        if not name:
            raise InvalidArgument(f"time: missing unit in duration {_quote(text)}")
        s = s[unit.end() :]
        scale = _UNITS.get(name)
        if scale is None:
            raise InvalidArgument(f"time: unknown unit {_quote(name)} in duration {_quote(text)}")
        value = int(whole or "0")
        if value > _MAX // scale:
            raise invalid()
        value *= scale
        if dot and frac:
            f, div = _leading_fraction(frac)
            if f > 0:
                value += int(float(f) * (scale / div))
                if value > _MAX:
                    raise invalid()
        total += value
        if total > _MAX:
            raise invalid()
    if neg:
        return -total
    if total > _MAX - 1:
        raise invalid()
    return total
