"""pypod's system commands: version, info, events, system prune, system reset."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from typing import Any

import pypod
from pypod.cli.engine.container_filters import label_match as _label_match
from pypod.cli.engine.formats import is_json, render_rows
from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.shared import _cmd, _err, _f, engine
from pypod.cli.flags import Parsed
from pypod.cli.gotemplate import Struct
from pypod.errors import InvalidArgument, PypodError


def _struct(value: Any) -> Any:
    if isinstance(value, dict):
        return Struct({k: _struct(v) for k, v in value.items()})
    return value


#: Go field names of podman's info structs whose JSON names are not just lower-cased
_GO_NAMES = {"ociRuntime": "OCIRuntime", "cgroupVersion": "CgroupsVersion", "cpus": "CPUs",
             "os": "OS", "seccompEnabled": "SECCOMPEnabled",
             "slirp4netns": "Slirp4NetNS"}  # fmt: skip


def _go_struct(value: Any) -> Any:
    """podman's info for a Go template: the struct field names (`{{.Host.OCIRuntime.Name}}`),
    not the JSON keys (`host.ociRuntime.name`)."""
    if isinstance(value, dict):
        return Struct({_GO_NAMES.get(k, k[:1].upper() + k[1:]): _go_struct(v)
                       for k, v in value.items()})  # fmt: skip
    return value


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def cmd_version(g: Globals, opts: Parsed) -> int:
    info = {
        "Client": {
            "APIVersion": pypod.__version__,
            "Version": pypod.__version__,
            "GoVersion": f"python{platform.python_version()}",
            "GitCommit": "",
            "BuiltTime": "Thu Jan  1 00:00:00 1970",
            "Built": 0,
            "OsArch": f"linux/{_arch()}",
            "Os": "linux",
        }
    }
    fmt = opts.text("format")
    if is_json(fmt):
        print(json.dumps(info, separators=(",", ":")))  # podman: one line
        return 0
    if fmt:
        sys.stdout.write(render_rows(fmt, [_struct(info)], {}))
        return 0
    c = info["Client"]
    print(f"Client:       pypod Engine\nVersion:      {c['Version']}\n"
          f"API Version:  {c['APIVersion']}\nPython Version: {platform.python_version()}\n"
          f"Built:        {c['BuiltTime']}\nOS/Arch:      {c['OsArch']}")  # fmt: skip
    return 0


def _info(g: Globals) -> dict[str, Any]:
    from pypod.engine.rootless import is_rootless

    eng = engine(g)
    counts = {"running": 0, "paused": 0, "stopped": 0}
    containers = eng.containers()
    for c in containers:
        key = c.status if c.status in ("running", "paused") else "stopped"
        counts[key] += 1
    uname = os.uname()
    mem_total = mem_free = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
            elif line.startswith("MemFree:"):
                mem_free = int(line.split()[1]) * 1024
    return {
        "host": {
            "arch": _arch(),
            "cgroupManager": "cgroupfs",
            "cgroupVersion": "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1",
            "cpus": os.cpu_count() or 1,
            "hostname": uname.nodename,
            "kernel": uname.release,
            "memFree": mem_free,
            "memTotal": mem_total,
            "os": "linux",
            "ociRuntime": {
                "name": "pypod",
                "package": "pypod",
                "path": sys.executable,
                "version": f"pypod-runtime version {pypod.__version__}",
            },  # fmt: skip
            "networkBackend": "pypod",
            "pasta": _helper("pasta", "passt"),
            "slirp4netns": _helper("slirp4netns", "slirp4netns"),
            "security": {"rootless": is_rootless(), "seccompEnabled": True},
            "uptime": _uptime(),
        },
        "store": {
            "configFile": "",
            "containerStore": {"number": len(containers), **counts},
            "graphDriverName": g.driver or "overlay",
            "graphRoot": eng.paths.graphroot,
            "imageStore": {"number": len(eng.store.images())},
            "runRoot": eng.paths.runroot,
            "volumePath": os.path.join(eng.paths.graphroot, "volumes"),
        },
        "registries": {},
        "version": {
            "APIVersion": pypod.__version__,
            "Version": pypod.__version__,
            "OsArch": f"linux/{_arch()}",
            "Os": "linux",
        },
    }


def _helper(program: str, package: str) -> dict[str, str]:
    """A rootless network helper as `info` shows it (podman's executable/package keys)."""
    path = shutil.which(program) or ""
    return {"executable": path, "package": package if path else ""}


def _uptime() -> str:
    with open("/proc/uptime") as f:
        seconds = float(f.read().split()[0])
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m}m {s}.00s ({h} hours, {m} minutes)" if h else f"{m}m {s}.00s"


def cmd_info(g: Globals, opts: Parsed) -> int:
    info = _info(g)
    fmt = opts.text("format")
    if is_json(fmt):
        print(json.dumps(info, indent=2))
    elif fmt:
        sys.stdout.write(render_rows(fmt, [_go_struct(info)], {}))
    else:
        sys.stdout.write(_yaml(info))
    return 0


def _yaml(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    out = []
    for k, v in value.items():
        if isinstance(v, dict):
            out.append(f"{pad}{k}:\n{_yaml(v, indent + 1)}")
        else:
            out.append(f"{pad}{k}: {json.dumps(v) if isinstance(v, bool) else v}\n")
    return "".join(out)


# --- events ---------------------------------------------------------------------------------
def _event_time(t: float) -> str:
    """Go's time.Time.String() (podman's events text): nanoseconds without trailing zeros."""
    from pypod.engine.inspect import go_time_string

    return go_time_string(t)


def _labels(attributes: dict[str, Any]) -> dict[str, str]:
    """A container event's labels (older events kept them as plain attributes)."""
    labels = attributes.get("labels")
    if isinstance(labels, dict):
        return labels
    return {k: v for k, v in attributes.items() if k not in ("image", "containerExitCode")}


def _event_matches(row: tuple[Any, ...], filters: list[tuple[str, str]]) -> bool:
    _seq, _t, type_, action, oid, name, attrs = row
    by_key: dict[str, list[str]] = {}
    for k, v in filters:
        by_key.setdefault(k, []).append(v)
    for key, values in by_key.items():
        if key in ("container", "image", "volume"):
            ok = type_ == key and any(oid.startswith(v) or name == v for v in values)
        elif key == "event":
            ok = action in values
        elif key == "type":
            ok = type_ in values
        elif key == "label":
            ok = any(_label_match(_labels(json.loads(attrs)), x) for x in values)
        else:
            raise InvalidArgument(f'"{key}" is not a valid event filter')
        if not ok:
            return False
    return True


def _print_event(row: tuple[Any, ...], fmt: str | None) -> None:
    _seq, t, type_, action, oid, name, attrs = row
    attributes = json.loads(attrs)
    image = str(attributes.get("image", ""))
    code = attributes.get("containerExitCode")
    exit_code = int(code) if code not in (None, "None", "") else 0
    labels = _labels(attributes) if type_ == "container" else {}
    if is_json(fmt):
        doc: dict[str, Any] = {}
        if exit_code:
            doc["ContainerExitCode"] = exit_code
        doc.update({"ID": oid, "Image": image, "Name": name, "Status": action, "Time": _iso(t),
                    "Type": type_, "Attributes": labels})  # fmt: skip
        if type_ != "container":
            doc = {"ID": oid, "Name": name, "Status": action, "Time": _iso(t), "Type": type_,
                   "Attributes": attributes or None}  # fmt: skip
        print(json.dumps(doc, separators=(",", ":")), flush=True)
        return
    if fmt:
        s = Struct(ID=oid, Name=name, Status=action, Time=_iso(t), Type=type_, Image=image,
                   Attributes=labels, ContainerExitCode=exit_code)  # fmt: skip
        sys.stdout.write(render_rows(fmt, [s], {}))
        sys.stdout.flush()
        return
    if type_ == "container":
        details = ", ".join([f"image={image}", f"name={name}",
                             *(f"{k}={v}" for k, v in sorted(labels.items()))])  # fmt: skip
    else:
        details = ", ".join(f"{k}={v}" for k, v in sorted({**attributes, "name": name}.items()))
    print(f"{_event_time(t)} {type_} {action} {oid} ({details})", flush=True)


def _iso(t: float) -> str:
    from pypod.engine.inspect import go_time

    return go_time(t)


def cmd_events(g: Globals, opts: Parsed) -> int:
    from pypod.engine.logs import parse_time_arg

    eng = engine(g)
    filters = []
    for f in opts.texts("filter"):
        k, eq, v = f.partition("=")
        if not eq:
            raise InvalidArgument(f'invalid filter "{f}": use KEY=VALUE')
        filters.append((k, v))
    since_text, until_text = opts.text("since"), opts.text("until")
    since = parse_time_arg(since_text) if since_text else 0.0
    until = parse_time_arg(until_text) if until_text else None
    stream = opts.values.get("stream") not in ("false", False) and until is None
    fmt = opts.text("format")
    seq = 0
    while True:
        rows = eng.db.query(
            "SELECT seq, time, type, action, id, name, attributes FROM events "
            "WHERE seq > ? AND time >= ? ORDER BY seq",
            (seq, since),
        )
        for row in rows:
            seq = row[0]
            if until is not None and row[1] > until:
                continue
            if _event_matches(row, filters):
                _print_event(row, fmt)
        if not stream:
            return 0
        time.sleep(0.2)


# --- system prune / reset -------------------------------------------------------------------
def _confirm(question: str, force: bool) -> bool:
    if force:
        return True
    sys.stdout.write(question + "\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_system_prune(g: Globals, opts: Parsed) -> int:
    warning = ("WARNING! This command removes:\n\t- all stopped containers\n"
               "\t- all dangling images\n\t- all build cache")  # fmt: skip
    if not _confirm(warning, opts.flag("force")):
        return 0
    eng = engine(g)
    before = eng.store.disk_usage()
    rw_sizes = dict(before.containers)
    removed = []
    for c in eng.containers():
        if c.status in ("exited", "configured"):
            try:
                removed.append(eng.remove(c.id))
            except PypodError as e:
                _err(str(e))
    # podman prints a heading only above a list that is not empty
    _print_section("Deleted Containers", removed)
    if opts.flag("volumes"):
        from pypod.engine.volumes import Volumes

        _print_section("Deleted Volumes", Volumes(eng.db, eng.paths.graphroot).prune({}))
    from pypod.image.local import prune_images

    _print_section("Deleted Images", prune_images(eng.store, all_images=opts.flag("all")))
    from pypod.cli.engine.units import human_size

    freed = sum(rw_sizes.get(cid, 0) for cid in removed)
    freed += max(0, before.layers_size - eng.store.disk_usage().layers_size)
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def _print_section(heading: str, items: list[str]) -> None:
    if items:
        print(heading)
        for item in items:
            print(item)


def cmd_system_reset(g: Globals, opts: Parsed) -> int:
    if not _confirm("WARNING! This will remove all containers, pods, volumes, images and "
                    "networks, and reset the storage.", opts.flag("force")):  # fmt: skip
        return 0
    eng = engine(g)
    for c in sorted(eng.containers(), key=lambda c: -c.created):  # dependents first
        try:
            eng.remove(c.id, force=True, volumes=True, timeout=0)
        except PypodError as e:
            _err(str(e))
    from pypod.image.local import remove_images

    for report in remove_images(eng.store, (), force=True, all_images=True):
        if report.error is not None:
            _err(str(report.error))
    graphroot, runroot = eng.paths.graphroot, eng.paths.runroot
    eng.close()
    for root in (graphroot, runroot):
        for entry in os.listdir(root) if os.path.isdir(root) else ():
            path = os.path.join(root, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
    return 0


COMMANDS: dict[str, Command] = {
    "version": _cmd(
        cmd_version,
        (_f("format", "f", value=True, help="Go template or json"),),
        "Display the pypod version information",
        "[options]",
    ),  # fmt: skip
    "info": _cmd(
        cmd_info,
        (_f("format", "f", value=True, help="Go template or json"),),
        "Display pypod system information",
        "[options]",
    ),  # fmt: skip
    "events": _cmd(
        cmd_events,
        (
            _f("filter", "f", value=True, multiple=True, help="filter output"),
            _f("format", value=True, help="format the output using a Go template or json"),
            _f("since", value=True, help="show all events created since timestamp"),
            _f("until", value=True, help="show all events created until timestamp"),
            _f("stream", value=True, help="stream new events; false: print existing ones and exit"),
        ),
        "Show pypod events",
        "[options]",
    ),  # fmt: skip
    "system prune": _cmd(
        cmd_system_prune,
        (
            _f("all", "a", help="remove all unused data"),
            _f("force", "f", help="do not prompt for confirmation"),
            _f("volumes", help="prune volumes"),
            _f("filter", value=True, multiple=True, help="provide filter values"),
        ),
        "Remove unused data",
        "[options]",
    ),  # fmt: skip
    "system reset": _cmd(
        cmd_system_reset,
        (_f("force", "f", help="do not prompt"),),
        "Reset pypod storage",
        "[options]",
    ),  # fmt: skip
}
COMMANDS["system info"] = COMMANDS["info"]
COMMANDS["system events"] = COMMANDS["events"]
