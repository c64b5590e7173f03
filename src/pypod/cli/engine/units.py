"""Sizes and durations as podman prints them (github.com/docker/go-units)."""

from __future__ import annotations

import time

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: "4.262MB", "0B" (decimal units, no space)."""
    i = 0
    while size >= 1000 and i < len(_DECIMAL) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{_DECIMAL[i]}"


def image_size(size: float) -> str:
    """`podman images`' SIZE: three significant digits and a space: "2.13 MB", "843 kB"."""
    text = human_size(size, 3)
    j = len(text)
    while j > 0 and not text[j - 1].isdigit():
        j -= 1
    return f"{text[:j]} {text[j:]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 days"..."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def since(t: float, now: float | None = None) -> str:
    """ "2 minutes ago"."""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - t)) + " ago"


def go_time_string(t: float) -> str:
    """Go's time.Time.String() in local time, whole seconds: "2026-11-25 18:08:46 +0000 UTC"."""
    lt = time.localtime(int(t))
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", lt) + (lt.tm_zone or "UTC")
