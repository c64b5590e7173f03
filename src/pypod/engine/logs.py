"""Reading a container's log (the k8s-file format the monitor writes) for `pypod logs`.

Each line of the file is `TIMESTAMP STREAM TAG TEXT`: an RFC 3339 time with nanoseconds,
`stdout` or `stderr`, `F` for a full line (a newline followed it) or `P` for a partial one
(what one read returned without a newline), then the text.  `--tail N` counts full lines;
`--since`/`--until` compare timestamps; `follow` keeps reading while the container runs.
"""

from __future__ import annotations

import os
import time

from pypod.errors import InvalidArgument
from pypod.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@record
class LogEntry:
    #: as written: "2026-11-25T19:02:29.845001309+00:00"
    timestamp: str
    #: seconds since the epoch
    time: float
    stream: str
    #: False for a partial line (no newline after `text`)
    full: bool
    text: bytes


def parse_line(line: bytes) -> LogEntry | None:
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[2] not in (b"F", b"P"):
        return None
    stamp = parts[0].decode("ascii", "replace")
    return LogEntry(
        timestamp=stamp,
        time=parse_timestamp(stamp),
        stream=parts[1].decode("ascii", "replace"),
        full=parts[2] == b"F",
        text=parts[3] if len(parts) > 3 else b"",
    )


def parse_timestamp(stamp: str) -> float:
    """RFC 3339 with up to nanoseconds and a zone (Z or +HH:MM) -> seconds since the epoch."""
    try:
        date, _, rest = stamp.partition("T")
        y, mo, d = (int(x) for x in date.split("-"))
        zone_at = max(rest.rfind("+"), rest.rfind("-"), rest.find("Z"))
        clock, zone = (rest[:zone_at], rest[zone_at:]) if zone_at > 0 else (rest, "Z")
        hms, _, frac = clock.partition(".")
        h, mi, s = (int(x) for x in hms.split(":"))
        offset = 0
        if zone not in ("Z", "z", ""):
            sign = -1 if zone[0] == "-" else 1
            zh, _, zm = zone[1:].partition(":")
            offset = sign * (int(zh) * 3600 + int(zm or 0) * 60)
        whole = timegm(y, mo, d, h, mi, s) - offset
        return whole + (float("0." + frac) if frac else 0.0)
    except (ValueError, IndexError):
        raise InvalidArgument(f"{stamp!r}: not an RFC 3339 timestamp") from None


def timegm(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """`calendar.timegm((year, month, day, hour, minute, second, ...))` without `calendar`
    (it imports `datetime`): seconds since the epoch of a UTC time.  As calendar's, a year
    outside 1-9999 or a month outside 1-12 is a ValueError; the other fields may overflow."""
    if not 1 <= year <= 9999:
        raise ValueError(f"year {year} is out of range")
    if not 1 <= month <= 12:
        raise ValueError("month must be in 1..12")
    # days from 0001-01-01 to the first of the month (datetime.date.toordinal() - 1)
    y = year - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 + _DAYS_BEFORE_MONTH[month]
    if month > 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        days += 1
    days += day - 1 - 719162  # 719162: 1970-01-01's days from 0001-01-01
    return ((days * 24 + hour) * 60 + minute) * 60 + second


_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def parse_time_arg(value: str, *, now: float | None = None) -> float:
    """`--since`/`--until`: a timestamp (RFC 3339, a date, Unix seconds) or a duration ago."""
    now = time.time() if now is None else now
    try:
        return float(value)
    except ValueError:
        pass
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    if parts and "".join(n + u for n, u in parts) == value:
        units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        return now - sum(float(n) * units[u] for n, u in parts)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return parse_timestamp(value + "T00:00:00Z")
    try:
        return parse_timestamp(value)
    except InvalidArgument:
        raise InvalidArgument(
            f'invalid value "{value}": use a timestamp (2006-01-02T15:04:05Z), a date, '
            "Unix seconds or a duration (10m)"
        ) from None


def read_entries(
    path: str, *, since: float | None = None, until: float | None = None, tail: int = -1
) -> list[LogEntry]:
    """The entries of the log at `path` (none when it does not exist yet)."""
    return read_log(path, since=since, until=until, tail=tail)[0]


def read_log(
    path: str, *, since: float | None = None, until: float | None = None, tail: int = -1
) -> tuple[list[LogEntry], int]:
    """The entries of the log's complete lines, and the offset after them (where `follow`
    goes on: a line being written is read there, not twice and not never)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    entries = [e for e in map(parse_line, data[:end].splitlines()) if e is not None]
    if since is not None:
        entries = [e for e in entries if e.time >= since]
    if until is not None:
        entries = [e for e in entries if e.time <= until]
    if tail >= 0:
        entries = _last_lines(entries, tail)
    return entries, end


def _last_lines(entries: list[LogEntry], n: int) -> list[LogEntry]:
    """The entries that make up the last `n` full lines (podman counts `F` entries)."""
    if n == 0:
        return []
    count = 0
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].full:
            count += 1
            if count > n:
                return entries[i + 1 :]
    return entries


class _Tail:
    """The new complete lines of one log file, read from an offset on."""

    def __init__(self, path: str, start: int) -> None:
        self.path = path
        self.offset = start
        self.pending = b""

    def read(self) -> list[LogEntry]:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:  # truncated (max-size): start again at its beginning
                    self.offset = 0
                    self.pending = b""
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        self.offset += len(data)
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()
        return [e for e in map(parse_line, lines) if e is not None]


def follow(
    path: str, running: Callable[[], bool], *, start: int, poll: float = 0.1
) -> Iterator[LogEntry]:
    """Entries written after byte offset `start`, until the container stops running."""
    for _key, entry in follow_many([("", path, running, start)], poll=poll):
        yield entry


def follow_many(
    sources: list[tuple[str, str, Callable[[], bool], int]], *, poll: float = 0.1
) -> Iterator[tuple[str, LogEntry]]:
    """(key, entry) for the entries written to several logs after their offsets, each
    until its container stops running; sources are (key, path, running, start)."""
    live = [(key, _Tail(path, start), running) for key, path, running, start in sources]
    while live:
        still = []
        for key, tail, running in live:
            alive = running()  # before reading: what it wrote before it stopped is read
            for entry in tail.read():
                yield key, entry
            if alive:
                still.append((key, tail, running))
        live = still
        if live:
            time.sleep(poll)


def log_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
