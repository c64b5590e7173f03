"""The value parsers behind `pypod run`/`create` flags, with podman 4.3's rules and messages.

Each function mirrors the Go code podman uses, so that the same words are accepted and the same
errors are printed: sizes as go-units' `RAMInBytes` (`-m 512m`, binary units) and
`FromHumanSize` (`--log-opt max-size=10mb`, decimal units), durations as Go's
`time.ParseDuration` (`1m30s`, `500ms`), integers as pflag's `strconv.ParseInt(s, 0, 64)`,
signals as podman's `ParseSignal`, ulimits as go-units' `ParseUlimit`, detach keys as
`term.ToBytes`, environment lines as containers/common's `env` package.  Every error is an
`InvalidArgument` (exit code 125).
"""

from __future__ import annotations

import os

from pypod.errors import InvalidArgument
from pypod.stdlite import is_decimal, is_digits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping

__all__ = [
    "SIGNALS",
    "ULIMIT_NAMES",
    "FlagValueError",
    "go_errno_text",
    "go_quote",
    "is_decimal",
    "is_digits",
    "parse_bool",
    "parse_detach_keys",
    "parse_duration",
    "parse_env_file",
    "parse_env_line",
    "parse_float",
    "parse_human_size",
    "parse_int",
    "parse_size",
    "parse_signal",
    "parse_uint",
    "parse_ulimit",
    "read_lines",
]


# --- Go's wording ---------------------------------------------------------------------------
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\", '"': '\\"'}  # fmt: skip


def go_quote(text: str) -> str:
    """`strconv.Quote`: a double-quoted Go string literal."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def go_errno_text(err: OSError) -> str:
    """An OSError's text as Go prints a syscall.Errno: "no such file or directory"."""
    text = os.strerror(err.errno) if err.errno else str(err)
    return text[:1].lower() + text[1:]


# --- numbers --------------------------------------------------------------------------------
# Checked by hand, not with `re` (whose import costs ~6 ms at the start of every `run`);
# tests/unit/test_run_values_syntax.py holds each check to the regular expression it stands for.
_DEC_DIGITS = "0123456789"
_HEX_DIGITS = "0123456789abcdefABCDEF"
_OCT_DIGITS = "01234567"
_BIN_DIGITS = "01"


def _is_digit_run(text: str, digits: str) -> bool:
    """`_?D(?:_?D)*` for the digits D: digits, each after at most one underscore."""
    if not text or text[-1] == "_" or "__" in text:
        return False
    return all(c == "_" or c in digits for c in text)


def _go_int_body(text: str) -> tuple[str, int] | None:
    """(digits with their underscores, base) of Go's integer syntax (`strconv.ParseInt(s, 0,
    ..)` without the sign: 0x.., 0b.., 0o.., 0.. octal, decimal), None when it is not one."""
    prefix = text[:2]
    if prefix in ("0x", "0X"):
        return (text[2:], 16) if _is_digit_run(text[2:], _HEX_DIGITS) else None
    if prefix in ("0b", "0B"):
        return (text[2:], 2) if _is_digit_run(text[2:], _BIN_DIGITS) else None
    if prefix in ("0o", "0O"):
        return (text[2:], 8) if _is_digit_run(text[2:], _OCT_DIGITS) else None
    if text[:1] == "0":
        return (text, 8) if text == "0" or _is_digit_run(text[1:], _OCT_DIGITS) else None
    if text[:1] and text[0] in "123456789":
        return (text, 10) if len(text) == 1 or _is_digit_run(text[1:], _DEC_DIGITS) else None
    return None


def _go_int(text: str, fn: str, lo: int, hi: int, signed: bool) -> int:
    sign = text[:1] if text[:1] in ("+", "-") else ""
    body = _go_int_body(text[len(sign) :])
    if body is None or (not signed and sign):
        raise ValueError(f"strconv.{fn}: parsing {go_quote(text)}: invalid syntax")
    value = int(body[0].replace("_", ""), body[1])
    if sign == "-":
        value = -value
    if not lo <= value <= hi:
        raise ValueError(f"strconv.{fn}: parsing {go_quote(text)}: value out of range")
    return value


class FlagValueError(InvalidArgument):
    """A flag's value is not of the flag's type (pflag's "invalid argument ... for ... flag")."""


def _flag_error(flag: str, text: str, err: ValueError) -> FlagValueError:
    return FlagValueError(f'invalid argument "{text}" for "{flag}" flag: {err}')


def parse_int(text: str, flag: str) -> int:
    """A pflag int/int64 value (`strconv.ParseInt(s, 0, 64)`: 0x.., 0o.., 0b.., 0.. octal)."""
    try:
        return _go_int(text, "ParseInt", -(1 << 63), (1 << 63) - 1, True)
    except ValueError as e:
        raise _flag_error(flag, text, e) from None


def parse_uint(text: str, flag: str) -> int:
    """A pflag uint/uint64 value (`strconv.ParseUint(s, 0, 64)`: no sign)."""
    try:
        return _go_int(text, "ParseUint", 0, (1 << 64) - 1, False)
    except ValueError as e:
        raise _flag_error(flag, text, e) from None


def _is_float(text: str) -> bool:
    r"""`[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?`: Go's decimal float
    syntax without its underscores."""
    text = text[1:] if text[:1] in ("+", "-") else text
    e = max(text.find("e"), text.find("E"))
    mantissa, exponent = (text[:e], text[e + 1 :]) if e >= 0 else (text, None)
    if exponent is not None and not is_decimal(exponent):
        return False
    whole, dot, fraction = mantissa.partition(".")
    if not dot:
        return is_digits(whole)
    if not whole:
        return is_digits(fraction)
    return is_digits(whole) and (fraction == "" or is_digits(fraction))


def parse_float(text: str, flag: str) -> float:
    """A pflag float64 value (decimal notation; Go's inf/nan are refused as meaningless)."""
    if not _is_float(text):
        raise _flag_error(
            flag, text, ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax")
        )
    return float(text)


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(text: str, flag: str) -> bool:
    """`strconv.ParseBool`, as pflag reads `--rm=false`."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _flag_error(
        flag, text, ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")
    )


# --- sizes ----------------------------------------------------------------------------------
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def _split_size(text: str) -> tuple[str, str] | None:
    r"""(number, unit letter or "") of `([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?`,
    go-units' size syntax; None when `text` is not one."""
    end = 0
    while end < len(text) and text[end] in "0123456789.":
        end += 1
    number, rest = text[:end], text[end:]
    if not all(is_digits(part) for part in number.split(".")):
        return None
    rest = rest.removeprefix(" ")
    unit = rest[:1] if rest[:1] and rest[0] in "kKmMgGtTpP" else ""
    rest = rest[len(unit) :]
    if rest[:1] and rest[0] in "iI":
        rest = rest[1:]
    if rest[:1] and rest[0] in "bB":
        rest = rest[1:]
    return (number, unit) if not rest else None


def _size(text: str, units: Mapping[str, int]) -> int:
    split = _split_size(text)
    if split is None:
        raise InvalidArgument(f"invalid size: '{text}'")
    digits, unit = split
    try:
        number = float(digits)
    except ValueError:
        raise InvalidArgument(
            f"strconv.ParseFloat: parsing {go_quote(digits)}: invalid syntax"
        ) from None
    size = number * units.get(unit.lower(), 1)
    if size >= 1 << 63:
        raise InvalidArgument(f"invalid size: '{text}': too large")
    return int(size)


def parse_size(text: str) -> int:
    """go-units `RAMInBytes`: "512m", "1.5g", "10 MB", "1KiB", "100" -> bytes (k = 1024)."""
    return _size(text, _BINARY)


def parse_human_size(text: str) -> int:
    """go-units `FromHumanSize`: "10mb" -> 10000000 (k = 1000, as `--log-opt max-size`)."""
    return _size(text, _DECIMAL)


# --- durations ------------------------------------------------------------------------------
def parse_duration(text: str) -> int:
    """Go's `time.ParseDuration` in nanoseconds: "30s", "1m30s", "500ms", "-1.5h", "0"
    (InvalidArgument with Go's words otherwise)."""
    from pypod.image.gotime import parse_go_duration

    return parse_go_duration(text)


# --- signals --------------------------------------------------------------------------------
#: Linux signal names (x86_64 numbers) as podman's signal map has them, without "SIG"
SIGNALS: dict[str, int] = {
    "ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8, "HUP": 1,
    "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27,
    "PWR": 30, "QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15,
    "TRAP": 5, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12,
    "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25, "RTMIN": 34, "RTMAX": 64,
    **{f"RTMIN+{i}": 34 + i for i in range(1, 16)},
    **{f"RTMAX-{i}": 64 - i for i in range(1, 15)},
}  # fmt: skip


def parse_signal(text: str) -> int:
    """A signal by name or number (SIGTERM, TERM, term, 15) -> 1..64, as podman's
    `--stop-signal`."""
    if is_decimal(text):
        number = int(text)
        if number == 0:
            raise InvalidArgument(f"invalid signal: {text}")
    else:
        upper = text.upper()
        number = SIGNALS.get(upper[3:] if upper.startswith("SIG") else upper, -1)
        if number < 0:
            raise InvalidArgument(f"invalid signal: {text}")
    if not 1 <= number <= 64:
        raise InvalidArgument("valid signals are 1 through 64")
    return number


# --- ulimits --------------------------------------------------------------------------------
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")  # fmt: skip


def parse_ulimit(text: str) -> tuple[str, int, int]:
    """`name=soft[:hard]` -> (name, soft, hard); -1 or "unlimited" is no limit."""

    def fail(why: str) -> InvalidArgument:
        return InvalidArgument(
            f'ulimit option "{text}" requires name=SOFT:HARD, failed to be parsed: {why}'
        )

    name, eq, limits = text.partition("=")
    if not eq:
        raise fail(f"invalid ulimit argument: {text}")
    if name not in ULIMIT_NAMES:
        raise fail(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise fail(
            f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
        )
    values = []
    for part in parts:
        if part == "unlimited":
            values.append(-1)
        elif not is_decimal(part):
            raise fail(f"strconv.ParseInt: parsing {go_quote(part)}: invalid syntax")
        elif not -(1 << 63) <= int(part) < 1 << 63:
            raise fail(f"strconv.ParseInt: parsing {go_quote(part)}: value out of range")
        else:
            values.append(int(part))
    soft = values[0]
    hard = values[1] if len(values) == 2 else soft
    if hard != -1 and (soft > hard or soft == -1):
        raise fail(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return name, soft, hard


# --- detach keys ----------------------------------------------------------------------------
_CTRL = ["ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)),
         "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]  # fmt: skip


def parse_detach_keys(text: str) -> bytes:
    """`ctrl-p,ctrl-q` -> b"\\x10\\x11": single characters or `ctrl-<x>`, comma separated;
    "" means no detach sequence."""
    if text == "":
        return b""
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out += key.encode()
        elif key in _CTRL:
            out.append(_CTRL.index(key))
        else:
            raise InvalidArgument(f"invalid detach keys: Unknown character: '{key}'")
    return bytes(out)


# --- environment ----------------------------------------------------------------------------
_WHITESPACE = " \t"


def parse_env_line(
    env: MutableMapping[str, str], line: str, host: Mapping[str, str] | None = None
) -> None:
    """One `-e` value or env-file line into `env`: `K=V`; `K` (the host's value, if set);
    `K*` (every host variable starting with K)."""
    name, eq, value = line.partition("=")
    if name == "":
        raise InvalidArgument(f"invalid environment variable: {go_quote(line)}")
    name = name.lstrip(_WHITESPACE)
    if eq:
        env[name] = value
        return
    host = os.environ if host is None else host
    if name.endswith("*"):
        prefix = name[:-1]
        for key, val in host.items():
            if key.startswith(prefix):
                env[key] = val
    elif name in host:
        env[name] = host[name]


def read_lines(path: str, what: str) -> list[str]:
    """The lines of an env or label file that say something: leading blanks dropped, empty
    lines and `#` comments skipped.  `what` starts the message when the file cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"{what}: open {path}: {go_errno_text(e)}") from None
    stripped = (raw.lstrip(_WHITESPACE) for raw in lines)
    return [line for line in stripped if line and not line.startswith("#")]


def parse_env_file(
    env: MutableMapping[str, str], path: str, host: Mapping[str, str] | None = None
) -> None:
    """An `--env-file` (podman 4.3): one variable a line as `-e` takes it; leading blanks,
    empty lines and `#` comments ignored; nothing else trimmed or unquoted."""
    what = f'parsing env file "{path}"'
    for line in read_lines(path, what):
        try:
            parse_env_line(env, line, host)
        except InvalidArgument as e:
            raise InvalidArgument(f"{what}: {e}") from None
