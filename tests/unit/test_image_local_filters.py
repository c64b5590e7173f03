"""`until=` filter times as docker's timetype reads them (podman's image prune --filter)."""

from __future__ import annotations

import time

import pytest

from pypod.errors import InvalidArgument
from pypod.image.local import parse_until

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW - 600),
        ("1h30m", NOW - 5400),
        ("1.5h", NOW - 5400),
        ("300ms", NOW - 0.3),
        ("-2s", NOW + 2),
        ("2h45m3.5s", NOW - (2 * 3600 + 45 * 60 + 3.5)),
        ("1700000000", 1_700_000_000.0),
        ("1600000000.25", 1_600_000_000.25),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000.5),
    ],
)
def test_durations_timestamps_and_unix_seconds(text: str, expected: float) -> None:
    assert parse_until(text, now=NOW) == pytest.approx(expected)


def test_times_without_a_zone_are_local() -> None:
    local = time.mktime((2023, 11, 14, 0, 0, 0, 0, 0, -1))
    assert parse_until("2023-11-14", now=NOW) == local
    assert parse_until("2023-11-14T00:00:00", now=NOW) == local


@pytest.mark.parametrize("text", ["soon", "", "10", "h", "1d", "2023-13-40", "5 minutes"])
def test_what_is_not_a_time(text: str) -> None:
    if text == "10":  # a bare number is Unix seconds, not an error
        assert parse_until(text, now=NOW) == 10.0
        return
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        parse_until(text, now=NOW)
