"""Turn `pypod-runtime exec` and `update` flags into the runtime-spec documents they stand for."""

from __future__ import annotations

import copy
import json
import re
import sys
from typing import Any

from pypod.cli.flags import Parsed
from pypod.errors import InvalidArgument, from_oserror
from pypod.oci.runtime_spec import Process, parse_process

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str, flag: str) -> int:
    """RAM sizes as Go's units.RAMInBytes reads them: 100, 100k, 64m, 1.5g; -1 for unlimited."""
    if text.strip() == "-1":
        return -1
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise InvalidArgument(f"invalid value {text!r} for --{flag}: expected a size like 64m")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _read_json(path: str, what: str) -> Any:
    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise from_oserror(f"{what} {path}", e) from e
    except ValueError as e:
        raise InvalidArgument(f"{what} {path}: invalid JSON: {e}") from e


def process_for_exec(config: dict[str, Any], opts: Parsed) -> Process:
    """The process `exec` runs: --process FILE, or the arguments over the container's process."""
    path = opts.text("process")
    if path:
        return parse_process(_read_json(path, "process"), source=path)
    args = opts.args[1:]
    if not args:
        raise InvalidArgument("exec args cannot be empty")
    proc: dict[str, Any] = copy.deepcopy(config.get("process", {}))
    proc["args"] = args
    proc["terminal"] = opts.flag("tty")
    proc.pop("consoleSize", None)
    proc["env"] = [*proc.get("env", []), *opts.texts("env")]
    if opts.text("cwd"):
        proc["cwd"] = opts.text("cwd")
    user = proc.setdefault("user", {"uid": 0, "gid": 0})
    if opts.text("user"):
        uid, _, gid = (opts.text("user") or "").partition(":")
        try:
            user["uid"] = int(uid)
            if gid:
                user["gid"] = int(gid)
        except ValueError:
            raise InvalidArgument(
                f"--user {opts.text('user')}: expected <uid>[:<gid>] as numbers"
            ) from None
    gids = opts.texts("additional-gids")
    if gids:
        try:
            user["additionalGids"] = [int(g) for g in gids]
        except ValueError:
            raise InvalidArgument(f"--additional-gids {gids}: expected numbers") from None
    caps = opts.texts("cap")
    if caps:
        sets = proc.setdefault("capabilities", {})
        # bounding, effective and permitted only: runc stopped adding --cap to the inheritable
        # and ambient sets (CVE-2022-29162), and so do we
        for name in ("bounding", "effective", "permitted"):
            sets[name] = [*sets.get(name, []), *[c for c in caps if c not in sets.get(name, [])]]
    if opts.flag("no-new-privs"):
        proc["noNewPrivileges"] = True
    return parse_process(proc, source="exec")


def resources_from_flags(opts: Parsed) -> dict[str, Any]:
    """runc update's flags as a (partial) runtime-spec LinuxResources object."""
    path = opts.text("resources")
    if path:
        data = _read_json(path, "resources")
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
