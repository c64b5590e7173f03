"""Turn `pypod-runtime exec` and `update` flags into the runtime-spec documents they stand for."""

from __future__ import annotations

import re
from typing import Any

from pypod.cli.flags import Parsed
from pypod.errors import InvalidArgument

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str, flag: str) -> int:
    """RAM sizes as Go's units.RAMInBytes reads them: 100, 100k, 64m, 1.5g; -1 for unlimited."""
    if text.strip() == "-1":
        return -1
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise InvalidArgument(f"invalid value {text!r} for --{flag}: expected a size like 64m")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def exec_request(opts: Parsed) -> Any:
    """`exec`'s flags as the runtime's ExecRequest."""
    from pypod.runtime.exec_process import ExecRequest

    return ExecRequest(
        args=tuple(opts.args[1:]),
        process_file=opts.text("process"),
        env=tuple(opts.texts("env")),
        cwd=opts.text("cwd"),
        user=opts.text("user"),
        additional_gids=tuple(opts.texts("additional-gids")),
        caps=tuple(opts.texts("cap")),
        tty=opts.flag("tty"),
        no_new_privs=opts.flag("no-new-privs"),
    )


def resources_from_flags(opts: Parsed) -> dict[str, Any]:
    """runc update's flags as a (partial) runtime-spec LinuxResources object."""
    path = opts.text("resources")
    if path:
        from pypod.runtime.exec_process import read_json

        data = read_json(path, "resources")
        if not isinstance(data, dict):
            raise InvalidArgument(f"resources {path}: expected a JSON object")
        return data
    res: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        res.setdefault(section, {})[key] = value

    def number(flag: str) -> int | None:
        return None if opts.text(flag) is None else opts.number(flag)

    for flag, section, key in (
        ("cpu-period", "cpu", "period"),
        ("cpu-quota", "cpu", "quota"),
        ("cpu-share", "cpu", "shares"),
        ("cpu-rt-period", "cpu", "realtimePeriod"),
        ("cpu-rt-runtime", "cpu", "realtimeRuntime"),
        ("pids-limit", "pids", "limit"),
        ("blkio-weight", "blockIO", "weight"),
    ):
        value = number(flag)
        if value is not None:
            put(section, key, value)
    for flag, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if opts.text(flag) is not None:
            put("cpu", key, opts.text(flag))
    for flag, key in (
        ("memory", "limit"),
        ("memory-reservation", "reservation"),
        ("memory-swap", "swap"),
        ("kernel-memory-tcp", "kernelTCP"),
    ):
        text = opts.text(flag)
        if text is not None:
            put("memory", key, parse_size(text, flag))
    if opts.text("kernel-memory") is not None:
        raise InvalidArgument("--kernel-memory: kernel memory limits are deprecated; not set")
    if not res:
        raise InvalidArgument("update: nothing to update; give a flag or --resources FILE")
    return res
