"""pypod's commands on containers' files (podman 4.3's flags, output, messages and exit codes).

cp, diff, export, commit, mount, umount/unmount, port, and the same under `container`.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from pypod.cli.engine.containers import _each
from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.shared import _cmd, _f, engine
from pypod.cli.flags import Parsed
from pypod.errors import InvalidArgument

if TYPE_CHECKING:
    from pypod.engine.containers import Engine
    from pypod.engine.state import Container


def _bool(opts: Parsed, name: str, default: bool) -> bool:
    value = opts.values.get(name)
    return default if value is None else value is True


def _one_or_latest(eng: Engine, opts: Parsed, what: str) -> str:
    if opts.flag("latest"):
        if opts.args:
            raise InvalidArgument("--latest and containers cannot be used together")
        return eng.latest().id
    if len(opts.args) != 1:
        raise InvalidArgument(f'"pypod {what}" requires a name, id, or the "--latest" flag')
    return opts.args[0]


# --- cp -------------------------------------------------------------------------------------------
def cmd_cp(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 2:
        raise InvalidArgument(f"accepts 2 arg(s), received {len(opts.args)}")
    from pypod.engine.copy import copy

    copy(
        engine(g),
        opts.args[0],
        opts.args[1],
        archive=_bool(opts, "archive", True),
        overwrite=opts.flag("overwrite"),
        stdin=sys.stdin.buffer,
        stdout=sys.stdout.buffer,
        tmpdir=g.tmpdir,
    )
    return 0


# --- diff -----------------------------------------------------------------------------------------
def cmd_diff(g: Globals, opts: Parsed) -> int:
    fmt = opts.text("format")
    if fmt is not None and fmt != "json":
        raise InvalidArgument("only supported value for '--format' is 'json'")
    eng = engine(g)
    from pypod.engine.diff import diff, diff_between

    if len(opts.args) == 2 and not opts.flag("latest"):
        changes = diff_between(eng, opts.args[0], opts.args[1])
    else:
        changes = diff(eng, _one_or_latest(eng, opts, "diff"))
    if fmt == "json":
        body: dict[str, list[str]] = {}
        for key, kind in (("changed", "C"), ("added", "A"), ("deleted", "D")):
            paths = [ch.path for ch in changes if ch.kind.value == kind]
            if paths:
                body[key] = paths
        sys.stdout.write(json.dumps(body, indent=5) + "\n")
        return 0
    sys.stdout.write("".join(f"{ch}\n" for ch in changes))
    return 0


# --- export ---------------------------------------------------------------------------------------
def cmd_export(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    from pypod.engine.copy import export

    output = opts.text("output")
    eng = engine(g)
    if not output:
        if sys.stdout.isatty():
            raise InvalidArgument("refusing to export to terminal. Use -o flag or redirect")
        export(eng, opts.args[0], sys.stdout.buffer)
        return 0
    eng.lookup(opts.args[0])  # before the file is made
    with open(output, "wb") as out:
        export(eng, opts.args[0], out)
    return 0


# --- commit ---------------------------------------------------------------------------------------
def cmd_commit(g: Globals, opts: Parsed) -> int:
    if not 1 <= len(opts.args) <= 2:
        raise InvalidArgument(f"accepts between 1 and 2 arg(s), received {len(opts.args)}")
    from pypod.engine.commit import CommitOptions, commit

    quiet = opts.flag("quiet")

    def progress(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    options = CommitOptions(
        changes=tuple(opts.texts("change")),
        message=opts.text("message") or "",
        author=opts.text("author") or "",
        pause=opts.flag("pause"),
        format=opts.text("format") or "oci",
        squash=opts.flag("squash"),
        include_volumes=opts.flag("include-volumes"),
        progress=None if quiet else progress,
        tmpdir=g.tmpdir,
    )
    name = opts.args[1] if len(opts.args) > 1 else None
    image_id = commit(engine(g), opts.args[0], name, options)
    iidfile = opts.text("iidfile")
    if iidfile:
        from pypod.atomic import write_atomic

        write_atomic(iidfile, image_id.encode())
    print(image_id)
    return 0


# --- mount / umount -------------------------------------------------------------------------------
def cmd_mount(g: Globals, opts: Parsed) -> int:
    from pypod.engine import mounts

    eng = engine(g)
    fmt = opts.text("format")
    if opts.flag("latest") and opts.args:
        raise InvalidArgument("--latest and containers cannot be used together")
    if opts.args or opts.flag("latest") or opts.flag("all"):
        names = list(opts.args)
        if opts.flag("latest"):
            names = [eng.latest().id]
        elif opts.flag("all"):
            names = [c.id for c in eng.containers()]
        return _each(names, lambda n: mounts.mount(eng, n))
    if fmt is not None and fmt != "json":
        raise InvalidArgument(f'unknown --format argument: "{fmt}"')
    found = mounts.mounted(eng)
    if fmt == "json":
        body = [{"id": c.id, "Names": [c.name], "mountpoint": path} for c, path in found]
        print(json.dumps(body, indent=1))
        return 0
    no_trunc = opts.flag("no-trunc")
    width = 64 if no_trunc else 12
    for c, path in found:
        ident = c.id if no_trunc else c.id[:12]
        sys.stdout.write(f"{ident:<{max(width, 12)}}  {path}\n")
    return 0


def cmd_unmount(g: Globals, opts: Parsed) -> int:
    from pypod.engine import mounts

    eng = engine(g)
    force = opts.flag("force")
    if opts.flag("all"):
        names = [c.id for c in eng.containers() if mounts.mount_count(eng, c) > 0]
    elif opts.flag("latest"):
        names = [eng.latest().id]
    elif opts.args:
        names = list(opts.args)
    else:
        raise InvalidArgument("you must provide at least one name or id")

    def unmount(name: str) -> str:
        mounts.unmount(eng, name, force=force)
        return name

    return _each(names, unmount)


# --- port -----------------------------------------------------------------------------------------
def published_ports(c: Container) -> tuple[tuple[str, int, int, str, int], ...]:
    """(host ip, host port, container port, protocols, range) of each port the container
    publishes."""
    return tuple(
        (p.get("host_ip") or "", int(p["host_port"]), int(p["container_port"]),
         p.get("protocol") or "tcp", int(p.get("range") or 1))
        for p in c.config.ports
    )  # fmt: skip


def port_lines(ports: tuple[tuple[str, int, int, str, int], ...], want: tuple[int, str] | None
               ) -> list[str] | None:  # fmt: skip
    """podman's `port` lines: `80/tcp -> 0.0.0.0:8080` for each port, or only `HOSTIP:PORT`
    of the container port `want`; None when `want` is not published."""
    out: list[str] = []
    if want is not None:
        number, proto = want
        for host_ip, host_port, cport, protocols, size in ports:
            if cport <= number < cport + size and proto in protocols.split(","):
                out.append(f"{host_ip or '0.0.0.0'}:{host_port + number - cport}")
        return out or None
    for host_ip, host_port, cport, protocols, size in ports:
        for proto in protocols.split(","):
            for i in range(size):
                out.append(f"{cport + i}/{proto} -> {host_ip or '0.0.0.0'}:{host_port + i}")
    return out


def _parse_port(text: str) -> tuple[int, str]:
    number, _, proto = text.partition("/")
    if "/" in proto:
        raise InvalidArgument(f"port formats are port/protocol. '{text}' is invalid")
    if not number.isdigit() or not 0 <= int(number) < 65536:
        raise InvalidArgument(f'strconv.ParseUint: parsing "{number}": invalid syntax')
    return int(number), proto or "tcp"


def cmd_port(g: Globals, opts: Parsed) -> int:
    args = list(opts.args)
    every, latest = opts.flag("all"), opts.flag("latest")
    if not args and not latest and not every:
        raise InvalidArgument("you must supply a running container name or id")
    if len(args) > 2:
        raise InvalidArgument("`port` accepts at most 2 arguments")
    port_arg = args[0] if latest and len(args) == 1 else (args[1] if len(args) > 1 else None)
    want = _parse_port(port_arg) if port_arg else None
    eng = engine(g)
    if every:
        found = [c for c in eng.containers()]
    elif latest:
        found = [eng.latest()]
    else:
        found = [eng.lookup(args[0])]
    for c in found:
        ports = published_ports(c)
        if c.status != "running" or not ports:
            continue
        lines = port_lines(ports, want)
        if lines is None:
            raise InvalidArgument(f'failed to find published port "{port_arg}"')
        if every:
            print(c.id[:12])
        for line in lines:
            print(line)
    return 0


# --- the table ------------------------------------------------------------------------------------
_LATEST = _f("latest", "l", help="act on the latest container pypod is aware of")

COMMANDS: dict[str, Command] = {
    "cp": _cmd(
        cmd_cp,
        (
            _f(
                "archive",
                "a",
                help="chown copied files to the primary uid/gid of the "
                "destination container (default true)",
            ),
            _f(
                "overwrite",
                help="allow to overwrite directories with non-directories and " "vice versa",
            ),
            _f("pause", help="deprecated: has no effect"),
            _f("extract", help="deprecated: has no effect"),
        ),
        "Copy files/folders between a container and the local filesystem",
        "[options] [CONTAINER:]SRC_PATH [CONTAINER:]DEST_PATH",
    ),  # fmt: skip
    "diff": _cmd(
        cmd_diff,
        (_f("format", value=True, help="change the output format (json)"), _LATEST),
        "Display the changes to the object's file system",
        "[options] {CONTAINER|IMAGE} [{CONTAINER|IMAGE}]",
    ),  # fmt: skip
    "export": _cmd(
        cmd_export,
        (
            _f(
                "output",
                "o",
                value=True,
                help="write to a specified file (default: stdout, " "which must be redirected)",
            ),
        ),
        "Export container's filesystem contents as a tar archive",
        "[options] CONTAINER",
    ),  # fmt: skip
    "commit": _cmd(
        cmd_commit,
        (
            _f("author", "a", value=True, help="set the author for the image committed"),
            _f(
                "change",
                "c",
                value=True,
                multiple=True,
                help="apply the following possible "
                "instructions to the created image: CMD | ENTRYPOINT | ENV | EXPOSE | LABEL | "
                "ONBUILD | STOPSIGNAL | USER | VOLUME | WORKDIR",
            ),
            _f(
                "format",
                "f",
                value=True,
                help="format of the image manifest and metadata " '(default "oci")',
            ),
            _f("iidfile", value=True, help="file to write the image ID to"),
            _f("include-volumes", help="include container volumes as image volumes"),
            _f("message", "m", value=True, help="set commit message for imported image"),
            _f("pause", "p", help="pause container during commit"),
            _f("quiet", "q", help="suppress output"),
            _f("squash", "s", help="squash newly built layers into a single new layer"),
        ),
        "Create new image based on the changed container",
        "[options] CONTAINER [IMAGE]",
    ),  # fmt: skip
    "mount": _cmd(
        cmd_mount,
        (
            _f("all", "a", help="mount all containers"),
            _f(
                "format",
                value=True,
                help="print the mounted containers in specified format " "(json)",
            ),
            _LATEST,
            _f("no-trunc", help="do not truncate output"),
        ),
        "Mount a working container's root filesystem",
        "[options] [CONTAINER...]",
    ),  # fmt: skip
    "umount": _cmd(
        cmd_unmount,
        (
            _f("all", "a", help="unmount all of the currently mounted containers"),
            _f(
                "force",
                "f",
                help="force the complete unmount of the specified mounted " "containers",
            ),
            _LATEST,
        ),
        "Unmounts working container's root filesystem",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
    "port": _cmd(
        cmd_port,
        (_f("all", "a", help="display port information for all containers"), _LATEST),
        "List port mappings or a specific mapping for the container",
        "[options] CONTAINER [PORT]",
    ),  # fmt: skip
}
COMMANDS["unmount"] = COMMANDS["umount"]
for _name in ("cp", "diff", "export", "commit", "mount", "umount", "unmount", "port"):
    COMMANDS[f"container {_name}"] = COMMANDS[_name]
