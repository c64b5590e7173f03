"""`pypod ps` (`container list`): podman 4.3's columns, `--format json` keys, Go template
fields (psReporter's: `.State` is the status text), `--filter`, `--sort`, `-n`, `-l`, `--size`."""

from __future__ import annotations

import sys
import time

from pypod.cli.engine.containers import _filters
from pypod.cli.engine.formats import is_json, render_rows
from pypod.cli.engine.main import Globals
from pypod.cli.engine.shared import engine
from pypod.cli.engine.units import since
from pypod.cli.flags import Parsed
from pypod.errors import InvalidArgument, PypodError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from pypod.engine.containers import Engine
    from pypod.engine.state import Container


_PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedHuman": "CREATED",
    "Created": "CREATED", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
    "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "State": "STATE", "ImageID": "IMAGE ID",
    "Pid": "PID", "ExitCode": "EXIT CODE", "Networks": "NETWORKS", "Pod": "POD ID",
    "PodName": "PODNAME",
}  # fmt: skip
_PS_DEFAULT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Ports}}\t"
    "{{.Names}}"
)


def _shown_status(c: Container) -> str:
    from pypod.engine.state import shown_status

    return shown_status(c.status)


def _command(c: Container, image_cmd: Sequence[str] | None = None) -> list[str]:
    args = list(c.state.get("args") or ())
    if args:
        return args
    return list(c.config.entrypoint or ()) + list(c.config.command)


def _status_text(c: Container, now: float, *, health: bool = True) -> str:
    s = c.status
    if s == "running":
        check = (c.state.get("health") or {}).get("status") if health else None
        up = f"Up {since(float(c.state.get('started_at', now)), now)}"
        return f"{up} ({check})" if check else up
    if s == "paused":
        return "Paused"
    if s == "exited":
        code = c.state.get("exit_code")
        return f"Exited ({code}) {since(float(c.state.get('finished_at', now)), now)}"
    if s == "stopping":
        return "Stopping"
    if s == "created":
        return "Initialized"
    return "Created"


def _ps_struct(c: Container, now: float, *, no_trunc: bool, size: dict[str, int] | None,
               pod_names: dict[str, str] | None = None,
               net_owner: Container | None = None) -> dict[str, Any]:  # fmt: skip
    """`net_owner`: the container whose network namespace `c` joins (a pod's infra): its
    published ports are shown, as podman shows them."""
    cmd = " ".join(_command(c))
    if not no_trunc and len(cmd) > 20:
        cmd = cmd[:17] + "..."
    started = float(c.state.get("started_at", 0))
    finished = float(c.state.get("finished_at", 0))
    # a plain dict: formats.render_rows fills the default listing in without the template
    # engine (it imports json and re), and makes it a gotemplate.Struct for the engine
    return dict(
        ID=c.id if no_trunc else c.id[:12],
        Id=c.id,
        Image=c.config.image,
        ImageID=c.config.image_id if no_trunc else c.config.image_id[:12],
        Command=cmd,
        CreatedHuman=since(c.created, now),
        RunningFor=since(c.created, now),
        Created=_go_time_string(c.created),
        CreatedAt=_go_time_string(c.created),
        Status=_status_text(c, now),
        # podman's psReporter.State(): the status without the health
        State=_status_text(c, now, health=False),
        Ports=_ports_text(net_owner or c),
        Names=c.name,
        Labels=dict(c.config.labels) or None,
        Mounts=[m.destination for m in c.config.mounts],
        Pid=int(c.state.get("pid", 0)) if c.status in ("running", "paused") else 0,
        ExitCode=int(c.state.get("exit_code") or 0),
        Exited=c.status == "exited",
        ExitedAt=int(finished) if finished else -62135596800,
        StartedAt=int(started) if started else -62135596800,
        AutoRemove=c.config.remove,
        Networks=",".join(_network_names(c)),
        Pod=c.config.pod if no_trunc else c.config.pod[:12],
        PodName=(pod_names or {}).get(c.config.pod, ""),
        Size=size,
        IsInfra=c.config.infra,
        # no --ns: libpod's empty namespace struct (seven strings), as Go prints it
        Namespaces="{      }",
    )


def _network_names(c: Container) -> list[str]:
    return list(c.config.networks) if c.config.network in ("", "bridge") else []


def _ports_text(c: Container) -> str:
    """podman's PORTS column: "0.0.0.0:8080->80/tcp, 0.0.0.0:9000-9001->90-91/udp"."""
    out = []
    for p in c.config.ports:
        host_ip = p.get("host_ip") or "0.0.0.0"
        size = int(p.get("range") or 1)
        hp, cp = int(p["host_port"]), int(p["container_port"])
        hosts = f"{hp}-{hp + size - 1}" if size > 1 else str(hp)
        ctrs = f"{cp}-{cp + size - 1}" if size > 1 else str(cp)
        for proto in str(p.get("protocol") or "tcp").split(","):
            out.append(f"{host_ip}:{hosts}->{ctrs}/{proto}")
    return ", ".join(out)


def _go_time_string(t: float) -> str:
    from pypod.engine.inspect import go_time_string

    return go_time_string(t)


def _ps_json(s: dict[str, Any], c: Container) -> dict[str, Any]:
    return {
        "AutoRemove": s["AutoRemove"],
        "Command": _command(c),
        "CreatedAt": s["CreatedHuman"],
        "Created": int(c.created),
        "Exited": s["Exited"],
        "ExitedAt": s["ExitedAt"],
        "ExitCode": s["ExitCode"],
        "Id": c.id,
        "Image": s["Image"],
        "ImageID": c.config.image_id,
        "IsInfra": c.config.infra,
        "Labels": s["Labels"],
        "Mounts": s["Mounts"],
        "Names": [c.name],
        "Namespaces": {},
        "Networks": _network_names(c),
        "Pid": s["Pid"],
        "Pod": c.config.pod,
        "PodName": s["PodName"],
        "Ports": [dict(p) for p in c.config.ports] or None,
        "Size": s["Size"],
        "StartedAt": s["StartedAt"],
        "State": _shown_status(c),
        "Status": s["Status"],
    }


_PS_SORT = ("command", "created", "id", "image", "names", "runningfor", "size", "status")


def cmd_ps(g: Globals, opts: Parsed) -> int:
    from pypod.errors import NotSupported

    for flag in ("watch", "ns", "external"):
        if opts.values.get(flag) not in (None, False):
            raise NotSupported(f"'--{flag}' is not supported yet")
    sort_by = opts.text("sort") or "created"
    if sort_by not in _PS_SORT:
        raise InvalidArgument(
            "invalid option for --sort, options are: command, created, id, image, names, "
            "runningfor, size, or status"
        )
    eng = engine(g)
    found = eng.containers()
    by_id = {c.id: c for c in found}
    if not opts.flag("all") and not opts.flag("latest") and opts.text("last") is None:
        found = [c for c in found if c.status == "running"]  # podman: status=running
    if opts.texts("filter"):
        from pypod.cli.engine.container_filters import matcher

        match = matcher(eng, _filters(opts))
        found = [c for c in found if match(c)]
    found.sort(key=lambda c: c.created, reverse=True)
    if opts.flag("latest"):
        found = found[:1]
    last = opts.number("last", -1)
    if last >= 0:
        found = found[:last]
    found.sort(key=lambda c: c.created)
    now = time.time()
    sizes = {c.id: _size(eng, c) for c in found} if opts.flag("size") or sort_by == "size" else {}
    found = _sorted(found, sort_by, now, sizes)
    if not opts.flag("size"):
        sizes = {}
    # podman fills PODNAME with --pod only
    pod_names = _pod_names(eng) if opts.flag("pod") and any(c.config.pod for c in found) else {}
    structs = [
        _ps_struct(c, now, no_trunc=opts.flag("no-trunc"), size=sizes.get(c.id),
                   pod_names=pod_names, net_owner=_net_owner(c, by_id))
        for c in found
    ]  # fmt: skip
    fmt = opts.text("format")
    if opts.flag("quiet") and not is_json(fmt):
        fmt = "{{.ID}}"
    if is_json(fmt):
        from pypod import jsoncodec

        print(
            jsoncodec.dumps([_ps_json(s, c) for s, c in zip(structs, found, strict=True)], indent=2)
        )
        return 0
    if fmt is None:
        fmt = _PS_DEFAULT
        if opts.flag("pod"):
            fmt += "\t{{.Pod}}\t{{.PodName}}"
        if opts.flag("size"):
            fmt += "\t{{.Size}}"
            for s in structs:
                s["Size"] = _size_text(s["Size"])
    sys.stdout.write(render_rows(fmt, structs, _PS_HEADERS))
    return 0


def _net_owner(c: Container, by_id: dict[str, Container]) -> Container | None:
    if not c.config.network.startswith("container:"):
        return None
    return by_id.get(c.config.network.partition(":")[2])


def _pod_names(eng: Engine) -> dict[str, str]:
    from pypod.engine.pods import Pods

    return {p.id: p.name for p in Pods(eng).list_pods()}


def _sorted(found: list[Container], by: str, now: float,
            sizes: dict[str, dict[str, int]]) -> list[Container]:  # fmt: skip
    """podman's `ps --sort` orders (stable, on top of the creation order)."""
    keys: dict[str, Callable[[Container], Any]] = {
        "command": lambda c: " ".join(_command(c)),
        "created": lambda c: c.created,
        "id": lambda c: c.id,
        "image": lambda c: c.config.image,
        "names": lambda c: c.name,
        "runningfor": lambda c: -c.created,
        "size": lambda c: (sizes.get(c.id) or {}).get("RwSize", 0),
        "status": lambda c: _status_text(c, now),
    }
    return sorted(found, key=keys[by])


def _size(eng: Engine, c: Container) -> dict[str, int]:
    from pypod.image.local import image_size

    rw = 0
    try:
        storage = eng.store.container(c.id)
        rw = eng.store.layer_size(storage.layer_id) if hasattr(eng.store, "layer_size") else 0
        root = image_size(eng.store, eng.store.image(c.config.image_id))
    except PypodError:
        root = 0
    return {"RwSize": rw, "RootFsSize": root + rw}


def _size_text(size: dict[str, int] | None) -> str:
    from pypod.cli.engine.units import human_size

    if not size:
        return ""
    return f"{human_size(size['RwSize'])} (virtual {human_size(size['RootFsSize'])})"
