"""The process `exec` runs: a process.json, or a few settings over the container's own process.

What runc's `exec` flags mean, as a library call: the CLI only collects them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pypod.errors import InvalidArgument, from_oserror
from pypod.oci.runtime_spec import Process, parse_process
from pypod.record import record


@record
class ExecRequest:
    """`exec`'s settings; unset ones keep the container's (config.json's) values."""

    args: tuple[str, ...] = ()
    process_file: str | None = None  # a runtime-spec process object; the rest is then ignored
    env: tuple[str, ...] = ()  # added to the container's environment
    cwd: str | None = None
    user: str | None = None  # "uid[:gid]"
    additional_gids: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()  # added to bounding, effective and permitted
    tty: bool = False
    no_new_privs: bool = False


def process_for_exec(config: dict[str, Any], req: ExecRequest) -> Process:
    if req.process_file:
        return parse_process(read_json(req.process_file, "process"), source=req.process_file)
    if not req.args:
        raise InvalidArgument("exec args cannot be empty")
    proc: dict[str, Any] = copy.deepcopy(config.get("process", {}))
    proc["args"] = list(req.args)
    proc["terminal"] = req.tty
    proc.pop("consoleSize", None)
    proc["env"] = [*proc.get("env", []), *req.env]
    if req.cwd:
        proc["cwd"] = req.cwd
    user = proc.setdefault("user", {"uid": 0, "gid": 0})
    if req.user:
        uid, _, gid = req.user.partition(":")
        try:
            user["uid"] = int(uid)
            if gid:
                user["gid"] = int(gid)
        except ValueError:
            raise InvalidArgument(f"--user {req.user}: expected <uid>[:<gid>] as numbers") from None
    if req.additional_gids:
        try:
            user["additionalGids"] = [int(g) for g in req.additional_gids]
        except ValueError:
            raise InvalidArgument(
                f"--additional-gids {list(req.additional_gids)}: expected numbers"
            ) from None
    if req.caps:
        sets = proc.setdefault("capabilities", {})
        # bounding, effective and permitted only: runc stopped adding --cap to the inheritable
        # and ambient sets (CVE-2022-29162), and so do we
        for name in ("bounding", "effective", "permitted"):
            have = sets.get(name, [])
            sets[name] = [*have, *[c for c in req.caps if c not in have]]
    if req.no_new_privs:
        proc["noNewPrivileges"] = True
    return parse_process(proc, source="exec")


def read_json(path: str, what: str) -> Any:
    """A JSON document from the file `path` ("-": standard input); errors name `what` and path."""
    import sys

    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise from_oserror(f"{what} {path}", e) from e
    except ValueError as e:
        raise InvalidArgument(f"{what} {path}: invalid JSON: {e}") from e
