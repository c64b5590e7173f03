"""pypod's volume commands (podman 4.3's flags, output and exit codes) over pypod.engine.volumes.

volume create, volume ls / list, volume inspect, volume rm / remove, volume prune,
volume exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence

from pypod.cli.engine.formats import report_errors
from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.cli.gotemplate import Struct, parse
from pypod.cli.output import tabwrite
from pypod.engine.db import EngineDB
from pypod.engine.volumes import Volume, Volumes, inspect_json
from pypod.errors import EXIT_ENGINE_ERROR, InUse, InvalidArgument, NotFound, PypodError

#: podman's exit codes of `volume rm`: no such volume, volume in use
_EXIT_NO_SUCH_VOLUME = 1
_EXIT_VOLUME_IN_USE = 2
_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Mountpoint": "MOUNTPOINT",
            "CreatedAt": "CREATED AT", "MountCount": "MOUNT COUNT", "UID": "UID", "GID": "GID",
            "NeedsCopyUp": "NEEDS COPY UP", "NeedsChown": "NEEDS CHOWN"}  # fmt: skip
_LS_FORMAT = "table {{.Driver}}\t{{.Name}}"


@contextlib.contextmanager
def _volumes(g: Globals) -> Iterator[Volumes]:
    """The volumes of the store, through the engine's database (no container engine opened)."""
    root = os.path.abspath(g.graphroot)
    os.makedirs(root, mode=0o700, exist_ok=True)
    db = EngineDB(os.path.join(root, "engine.db"))
    try:
        yield Volumes(db, root)
    finally:
        db.close()


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _error(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr)


def _key_values(texts: Sequence[str]) -> dict[str, str]:
    """`-l k=v`, `-l k` (empty value), `-o k=v` -> a dict (the last value of a key wins)."""
    out: dict[str, str] = {}
    for text in texts:
        key, _, value = text.partition("=")
        out[key] = value
    return out


def _csv(texts: Sequence[str]) -> list[str]:
    """A pflag `strings` flag: each value is a comma-separated list."""
    import csv

    out: list[str] = []
    for text in texts:
        if text:
            out.extend(next(csv.reader([text]), []))
    return out


def parse_filters(texts: Sequence[str]) -> dict[str, list[str]]:
    """`--filter key=value` (repeated) -> {key: [values]}."""
    out: dict[str, list[str]] = {}
    for text in texts:
        key, eq, value = text.partition("=")
        if not eq:
            raise InvalidArgument(
                f"filter input must be in the form of filter=value: {text} is invalid"
            )
        out.setdefault(key, []).append(value)
    return out


# --- output -------------------------------------------------------------------------------
def _go_time(t: float) -> str:
    """Go's time.Time.String() with nanoseconds: "2026-11-25 19:13:03.4738 +0000 UTC"."""
    lt = time.localtime(int(t))
    frac = f"{t - int(t):.9f}"[2:].rstrip("0")
    clock = time.strftime("%Y-%m-%d %H:%M:%S", lt) + (f".{frac}" if frac else "")
    return f"{clock} {time.strftime('%z', lt)} {lt.tm_zone or 'UTC'}"


def _struct(vol: Volume) -> Struct:
    """A volume as the Go struct podman's templates see (every field, zero values included)."""
    return Struct(
        Name=vol.name,
        Driver=vol.driver,
        Mountpoint=vol.mountpoint,
        CreatedAt=_go_time(vol.created),
        Status={},
        Labels=dict(vol.labels),
        Scope="local",
        Options=dict(vol.options),
        UID=vol.uid or 0,
        GID=vol.gid or 0,
        Anonymous=vol.anonymous,
        MountCount=vol.mount_count,
        NeedsCopyUp=vol.needs_copy_up,
        NeedsChown=vol.needs_chown,
        Timeout=0,
    )


def _is_json(fmt: str | None) -> bool:
    return (
        fmt is not None and re.fullmatch(r"\s*(json|\{\{\s*json\s+\.\s*\}\})\s*", fmt) is not None
    )


def _render(fmt: str, rows: Sequence[Struct], *, heading: bool) -> str:
    """Rows through a Go template as podman's report package does: with the `table` prefix a
    header line (unless `heading` is False) and blanks between fields made column breaks."""
    table = fmt.startswith("table")
    template = fmt[len("table") :].lstrip(" ") if table else fmt
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    if table:
        template = template.replace(" ", "\t")
    tpl = parse(template)
    lines: list[str] = []
    if table and heading:
        header = Struct()
        for name in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", template):
            header[name] = _HEADERS.get(name) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()
        with contextlib.suppress(PypodError):
            lines.append(tpl.execute(header))
    lines += [tpl.execute(row) for row in rows]
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if "\t" in text:
        cells = [line.split("\t") for line in text.rstrip("\n").split("\n")]
        return tabwrite(cells, minwidth=12, padding=2)
    return text


# --- volume create ------------------------------------------------------------------------
def cmd_create(g: Globals, opts: Parsed) -> int:
    if len(opts.args) > 1:
        raise InvalidArgument("too many arguments, create takes at most 1 argument")
    with _volumes(g) as volumes:
        vol = volumes.create(
            opts.args[0] if opts.args else None,
            driver=opts.text("driver") or "local",
            labels=_key_values(_csv(opts.texts("label"))),
            options=_key_values(opts.texts("opt")),
            ignore_if_exists=opts.flag("ignore"),
        )
    _out(vol.name + "\n")
    return 0


# --- volume ls ----------------------------------------------------------------------------
def cmd_ls(g: Globals, opts: Parsed) -> int:
    if opts.args:
        raise InvalidArgument(f"accepts 0 arg(s), received {len(opts.args)}")
    filters = parse_filters(_csv(opts.texts("filter")))
    with _volumes(g) as volumes:
        found = volumes.list(filters)
    fmt = opts.text("format")
    if opts.flag("quiet"):
        _out("".join(v.name + "\n" for v in found))
    elif _is_json(fmt):
        _out(json.dumps([inspect_json(v) for v in found], indent=2) + "\n")
    elif found:  # podman prints nothing, not even a header, when there is no volume
        _out(_render(fmt or _LS_FORMAT, [_struct(v) for v in found],
                     heading=not opts.flag("noheading")))  # fmt: skip
    return 0


# --- volume inspect -----------------------------------------------------------------------
def cmd_inspect(g: Globals, opts: Parsed) -> int:
    if opts.flag("all") and opts.args:
        raise InvalidArgument("when using the --all switch, you may not pass any volume names")
    if not opts.flag("all") and not opts.args:
        raise InvalidArgument("provide one or more volume names or use --all")
    found: list[Volume] = []
    errors: list[str] = []
    with _volumes(g) as volumes:
        if opts.flag("all"):
            found = volumes.all()
        for name in opts.args:
            try:
                found.append(volumes.get(name))
            except NotFound:
                errors.append(f"no such volume {name}")
    fmt = opts.text("format")
    if fmt is None or _is_json(fmt):
        _out(json.dumps([inspect_json(v) for v in found], indent=5) + "\n")
    else:
        _out(_render(fmt, [_struct(v) for v in found], heading=False))
    if errors:
        for e in errors[:-1]:
            _error(e)
        _error(f"inspecting object: {errors[-1]}")
        return EXIT_ENGINE_ERROR
    return 0


# --- volume rm ----------------------------------------------------------------------------
def cmd_rm(g: Globals, opts: Parsed) -> int:
    everything = opts.flag("all")
    if bool(opts.args) == everything:
        raise InvalidArgument("choose either one or more volumes or all")
    force = opts.flag("force")
    timeout = opts.number("time", 10)
    errors: list[tuple[str, int]] = []
    with _volumes(g) as volumes:
        names = [v.name for v in volumes.all()] if everything else list(opts.args)
        for name in names:
            try:
                vol = volumes.get(name)
                users = volumes.users(vol.name)
                if users and force:
                    _remove_containers(g, users, timeout)
                volumes.remove(vol.name, force=force)
            except NotFound:
                errors.append(
                    (f'no volume with name "{name}" found: no such volume', _EXIT_NO_SUCH_VOLUME)
                )
                continue
            except InUse as e:
                errors.append((str(e), _EXIT_VOLUME_IN_USE))
                continue
            _out(vol.name + "\n")
    return report_errors(errors)


def _remove_containers(g: Globals, ids: Sequence[str], timeout: int) -> None:
    """`volume rm -f`: the containers using the volume go first (stopped, then removed)."""
    from pypod.engine.containers import Engine

    with Engine(g.graphroot, g.runroot, driver=g.driver) as eng:
        for cid in ids:
            with contextlib.suppress(NotFound):
                eng.remove(cid, force=True, timeout=timeout)


# --- volume prune -------------------------------------------------------------------------
def cmd_prune(g: Globals, opts: Parsed) -> int:
    if opts.args:
        raise InvalidArgument(f"accepts 0 arg(s), received {len(opts.args)}")
    filters = parse_filters(opts.texts("filter"))
    with _volumes(g) as volumes:
        if not opts.flag("force"):
            unused = [v.name for v in volumes.list({**filters, "dangling": ["true"]})]
            _out(
                "WARNING! This will remove all volumes not used by at least one container. "
                "The following volumes will be removed:\n"
            )
            if not unused:
                _out("No dangling volumes found\n")
                return 0
            _out("".join(n + "\n" for n in unused) + "Are you sure you want to continue? [y/N] ")
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                return 0
        removed = volumes.prune(filters)
    _out("".join(n + "\n" for n in removed))
    return 0


# --- volume exists ------------------------------------------------------------------------
def cmd_exists(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    with _volumes(g) as volumes:
        return 0 if volumes.exists(opts.args[0]) else 1


_CREATE_FLAGS = (
    Flag(("driver", "d"), True, help='Specify volume driver name (default "local")'),
    Flag(("label", "l"), True, True, help="Set metadata for a volume (default [])"),
    Flag(("opt", "o"), True, True, help="Set driver specific options (default [])"),
    Flag(("ignore",), help="Don't fail if the named volume already exists"),
)
_LS_FLAGS = (
    Flag(("filter", "f"), True, True, help="Filter volume output"),
    Flag(("format",), True, help="Format volume output using JSON or a Go template"),
    Flag(("noheading",), help="Do not print headers"),
    Flag(("quiet", "q"), help="Print volume output in quiet mode"),
)
_INSPECT_FLAGS = (
    Flag(("all", "a"), help="Inspect all volumes"),
    Flag(("format", "f"), True, help='Format volume output using Go template (default "json")'),
)
_RM_FLAGS = (
    Flag(("all", "a"), help="Remove all volumes"),
    Flag(("force", "f"), help="Remove a volume by force, even if it is being used by a container"),
    Flag(("time", "t"), True, help="Seconds to wait for running containers to stop (default 10)"),
)
_PRUNE_FLAGS = (
    Flag(("filter",), True, True, help="Provide filter values (e.g. 'label=<key>=<value>')"),
    Flag(("force", "f"), help="Do not prompt for confirmation"),
)

_ls = Command(handler=cmd_ls, flags=_LS_FLAGS, help="List volumes", usage="[options]")
_rm = Command(handler=cmd_rm, flags=_RM_FLAGS, help="Remove one or more volumes",
              usage="[options] VOLUME [VOLUME...]")  # fmt: skip

COMMANDS: dict[str, Command] = {
    "volume create": Command(handler=cmd_create, flags=_CREATE_FLAGS,
                             help="Create a new volume", usage="[options] [NAME]"),
    "volume ls": _ls,
    "volume list": _ls,
    "volume inspect": Command(handler=cmd_inspect, flags=_INSPECT_FLAGS,
                              help="Display detailed information on one or more volumes",
                              usage="[options] VOLUME [VOLUME...]"),
    "volume rm": _rm,
    "volume remove": _rm,
    "volume prune": Command(handler=cmd_prune, flags=_PRUNE_FLAGS,
                            help="Remove all unused volumes", usage="[options]"),
    "volume exists": Command(handler=cmd_exists, flags=(),
                             help="Check if volume exists", usage="VOLUME"),
}  # fmt: skip
