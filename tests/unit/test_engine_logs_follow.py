"""engine.logs: reading a k8s-file log while it is written (no line lost or read twice), and
Go's duration text (engine.processes.go_duration) for `top`'s ELAPSED and `stats`' CPU TIME."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.engine.logs import follow_many, read_log, timegm
from pypod.engine.processes import go_duration

LINE = "2026-11-25T19:02:29.{n:09d}+00:00 stdout F line{n}\n"


def test_read_log_stops_before_a_line_being_written(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_text(LINE.format(n=1) + LINE.format(n=2) + "2026-11-25T19:02:29.3+00:00 std")
    entries, end = read_log(str(log))
    assert [e.text for e in entries] == [b"line1", b"line2"]
    assert end == len(LINE.format(n=1) + LINE.format(n=2))
    with log.open("a") as f:
        f.write("out F line3\n")
    got = list(follow_many([("k", str(log), lambda: False, end)]))
    assert [(k, e.text) for k, e in got] == [("k", b"line3")]


def test_follow_many_reads_until_each_stops(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("")
    b.write_text("")
    polls = {"a": 0, "b": 0}

    def running(key: str, path: Path, lines: int) -> bool:
        polls[key] += 1
        if polls[key] <= lines:
            with path.open("a") as f:
                f.write(LINE.format(n=polls[key]))
            return True
        return False

    got = list(follow_many([
        ("a", str(a), lambda: running("a", a, 2), 0),
        ("b", str(b), lambda: running("b", b, 3), 0),
    ], poll=0.001))  # fmt: skip
    assert [(k, e.text) for k, e in got if k == "a"] == [("a", b"line1"), ("a", b"line2")]
    assert [e.text for k, e in got if k == "b"] == [b"line1", b"line2", b"line3"]


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"), (7, "7ns"), (1500, "1.5µs"), (963_798_314, "963.798314ms"),
        (2_000_000, "2ms"), (1_290_495_088, "1.290495088s"), (61_500_000_000, "1m1.5s"),
        (3_723_000_000_000, "1h2m3s"), (-1500, "-1.5µs"),
    ],
)  # fmt: skip
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@given(
    st.integers(1, 9999), st.integers(1, 12), st.integers(-5, 40),
    st.integers(-3, 30), st.integers(-5, 70), st.integers(-5, 70),
)  # fmt: skip
def test_timegm_is_calendars(y: int, mo: int, d: int, h: int, mi: int, s: int) -> None:
    """engine.logs.timegm (no `calendar`: it imports datetime) gives calendar.timegm's
    seconds, fields that overflow included."""
    import calendar

    assert timegm(y, mo, d, h, mi, s) == calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


@pytest.mark.parametrize("fields", [(0, 1, 1), (10000, 1, 1), (2000, 0, 1), (2000, 13, 1)])
def test_timegm_rejects_what_calendar_rejects(fields: tuple[int, int, int]) -> None:
    import calendar

    with pytest.raises(ValueError):
        calendar.timegm((*fields, 0, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError):
        timegm(*fields, 0, 0, 0)
