"""`pypod pod ...`: podman 4.3's pod commands (flags, table and `--format` output, messages).

create, ps (ls, list), inspect, exists, start, stop, restart, kill, pause, unpause, rm, prune,
top, stats, logs.  Every action is a call into `pypod.engine.pods`.
"""

from __future__ import annotations

import os
import sys
import time

from pypod import jsoncodec
from pypod.cli.common import read_id_file
from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument, PypodError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from pypod.engine.containers import Engine
    from pypod.engine.pods import Pod, Pods
    from pypod.engine.state import Container

    _Pred = Callable[[Pod, list[Container], str], bool]


def _f(*names: str, value: bool = False, multiple: bool = False, help: str = "") -> Flag:
    return Flag(names, value, multiple, help)


def _cmd(handler: Callable[[Globals, Parsed], int], flags: tuple[Flag, ...], help: str,
         usage: str) -> Command:  # fmt: skip
    return Command(handler=handler, flags=flags, help=help, usage=usage)


def _engine(g: Globals) -> Engine:
    from pypod.engine.containers import Engine

    return Engine(g.graphroot, g.runroot, driver=g.driver)


def _pods(g: Globals) -> Pods:
    from pypod.engine.pods import Pods

    return Pods(_engine(g))


def _err(message: str) -> None:
    sys.stderr.write(f"Error: {message}\n")


def _targets(pods: Pods, opts: Parsed) -> list[str]:
    id_files = opts.texts("pod-id-file")
    if id_files:  # `pod start/stop/rm --pod-id-file FILE`: the pods whose IDs the files hold
        if opts.args or opts.flag("latest"):
            raise InvalidArgument("no arguments are needed with --latest or --pod-id-file")
        return [read_id_file(path, "pod ID file") for path in id_files]
    if opts.flag("all"):
        return [p.id for p in pods.list_pods()]
    if opts.flag("latest"):
        found = pods.list_pods()
        if not found:
            raise InvalidArgument("no pods to use as the latest pod")
        return [found[-1].id]
    if not opts.args:
        raise InvalidArgument("you must provide at least one name or id")
    return list(opts.args)


def _each(names: Sequence[str], action: Callable[[str], str | None]) -> int:
    """Run `action` on each pod, print what it returns; podman's exit code on failures (no
    such pod: 1 as podman's pod commands say it, otherwise the error's)."""
    from pypod.engine.pods import PodNotFound

    failed = 0
    for name in names:
        try:
            out = action(name)
        except PodNotFound as e:
            _err(str(e))
            failed = failed or 1
            continue
        except PypodError as e:
            _err(str(e))
            failed = failed or e.engine_exit_code
            continue
        if out is not None:
            print(out, flush=True)
    return failed


# --- create ---------------------------------------------------------------------------------
def _parse_create(opts: Parsed) -> Any:
    from pypod.cli.engine.run_network import network_fields
    from pypod.cli.engine.run_values import parse_bool, parse_float, parse_size
    from pypod.engine.pods import PodConfig, parse_share

    if len(opts.args) > 1:
        raise InvalidArgument(f"accepts at most 1 arg(s), received {len(opts.args)}")
    name = opts.text("name") or (opts.args[0] if opts.args else "")
    infra_text = opts.text("infra")
    infra = True if infra_text is None else parse_bool(infra_text, "infra")
    net = network_fields(opts.texts, opts.text, opts.flag)
    labels: dict[str, str] = {}
    for path in opts.texts("label-file"):
        from pypod.cli.engine.run_values import read_lines

        for line in read_lines(path, "label file"):
            key, _, value = line.partition("=")
            labels[key] = value
    for text in opts.texts("label"):
        key, _, value = text.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {text!r}: use KEY=VALUE")
        labels[key] = value
    command = opts.text("infra-command")
    memory = opts.text("memory")
    cpus = opts.text("cpus")
    userns, uidmap, gidmap = _userns(opts)
    hostname = opts.text("hostname") or ""
    pidfile = opts.text("infra-conmon-pidfile")
    share = parse_share(opts.text("share"))
    if hostname and "uts" not in share:
        raise InvalidArgument("cannot set hostname when the pod does not share the UTS namespace")
    return PodConfig(
        name=name,
        hostname=hostname,
        labels=labels,
        share=share,
        infra=infra,
        infra_name=opts.text("infra-name") or "",
        infra_command=tuple(
            jsoncodec.loads(command) if command.startswith("[") else command.split()
        )
        if command
        else None,
        infra_image=opts.text("infra-image") or "",
        network=net["network"],
        networks=net["networks"],
        ports=net["ports"],
        dns_servers=net["dns_servers"],
        dns_search=net["dns_search"],
        dns_options=net["dns_options"],
        add_hosts=net["add_hosts"],
        no_hosts=net["no_hosts"],
        cgroup_parent=opts.text("cgroup-parent") or "",
        memory=parse_size(memory) if memory else None,
        cpus=parse_float(cpus, "cpus") if cpus else None,
        userns=userns,
        uidmap=uidmap,
        gidmap=gidmap,
        exit_policy=_exit_policy(opts.text("exit-policy")),
        create_command=(os.path.basename(sys.argv[0]), *sys.argv[1:]),
        infra_conmon_pidfile=os.path.abspath(pidfile) if pidfile else "",
    )


def _userns(opts: Parsed) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """`--userns`, `--uidmap`, `--gidmap` of `pod create`, checked now (podman 4.3's values
    and words: engine/rootless.py userns_plan)."""
    from pypod.engine.rootless import USERNS_AND_MAPS, userns_plan
    from pypod.errors import NotSupported

    for flag in ("subuidname", "subgidname"):
        if opts.text(flag) is not None:
            raise NotSupported(f"'--{flag}' is not supported yet: use --uidmap and --gidmap")
    mode = opts.text("userns")
    uidmap, gidmap = tuple(opts.texts("uidmap")), tuple(opts.texts("gidmap"))
    if mode is not None and (uidmap or gidmap):  # even `--userns=` (podman: the flag is set)
        raise InvalidArgument(USERNS_AND_MAPS)
    userns_plan(mode or "", uidmap, gidmap)
    return mode or "", uidmap, gidmap


def _exit_policy(text: str | None) -> str:
    if text is None or text in ("continue", "stop"):
        return text or "continue"
    raise InvalidArgument(f'running pod create option: invalid pod exit policy: "{text}"')


def cmd_create(g: Globals, opts: Parsed) -> int:
    cfg = _parse_create(opts)
    pods = _pods(g)
    if opts.flag("replace") and cfg.name and pods.exists(cfg.name):
        pods.remove(cfg.name, force=True)
    pod = pods.create(cfg)
    id_file = opts.text("pod-id-file")
    if id_file:
        from pypod.atomic import write_atomic

        write_atomic(id_file, pod.id.encode())
    print(pod.id)
    return 0


# --- ps -------------------------------------------------------------------------------------
_PS_HEADERS = {
    "ID": "POD ID", "Name": "NAME", "Status": "STATUS", "Created": "CREATED",
    "InfraID": "INFRA ID", "NumberOfContainers": "# OF CONTAINERS", "ContainerIds": "IDS",
    "ContainerNames": "NAMES", "ContainerStatuses": "STATUS", "Cgroup": "CGROUP",
    "Namespace": "NAMESPACE", "Networks": "NETWORKS", "Labels": "LABELS",
}  # fmt: skip


def _ps_row(pod: Pod, members: list[Container], status: str, now: float, *, no_trunc: bool,
            ) -> Any:  # fmt: skip
    from pypod.cli.engine.units import since
    from pypod.cli.gotemplate import Struct

    def short(x: str) -> str:
        return x if no_trunc else x[:12]

    infra = next((c for c in members if c.id == pod.infra_id), None)
    return Struct(
        ID=short(pod.id),
        Id=pod.id,
        Name=pod.name,
        Status=status,
        Created=since(pod.created, now),
        InfraID=short(pod.infra_id),
        InfraId=pod.infra_id,
        NumberOfContainers=str(len(members)),
        ContainerIds=",".join(short(c.id) for c in members),
        ContainerNames=",".join(c.name for c in members),
        ContainerStatuses=",".join(_shown(c) for c in members),
        Cgroup=pod.config.cgroup_parent or "/pypod_parent",
        Namespace="",
        Networks=",".join(infra.config.networks) if infra is not None else "",
        Labels=dict(pod.config.labels),
    )


def _shown(c: Container) -> str:
    from pypod.engine.state import shown_status

    return shown_status(c.status)


_POD_STATUSES = ("stopped", "running", "paused", "exited", "dead", "created", "degraded")


def _pod_filter(pods: Pods, filters: list[str]) -> _Pred:
    """podman's `pod ps --filter`: values of one key are alternatives (`label`: all must
    match), different keys must all match."""
    by_key: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq:
            raise InvalidArgument(f'invalid filter "{f}": use KEY=VALUE')
        by_key.setdefault(key, []).append(value)
    preds = [_pod_pred(pods, key, values) for key, values in by_key.items()]
    return lambda p, m, s: all(pred(p, m, s) for pred in preds)


def _pod_pred(pods: Pods, key: str, values: list[str]) -> _Pred:
    import re

    from pypod.cli.engine.container_filters import label_match

    if key in ("id", "name"):
        pats = [re.compile(v) for v in values]
        if key == "id":
            return lambda p, m, s: any(x.search(p.id) for x in pats)
        return lambda p, m, s: any(x.search(p.name) for x in pats)
    if key == "label":
        return lambda p, m, s: all(label_match(p.config.labels, v) for v in values)
    if key == "status":
        for v in values:
            if v not in _POD_STATUSES:
                raise InvalidArgument(f"{v} is not a valid status")
        return lambda p, m, s: s.lower() in values
    if key == "ctr-names":
        return lambda p, m, s: any(c.name in values for c in m)
    if key == "ctr-ids":
        return lambda p, m, s: any(c.id.startswith(v) for c in m for v in values)
    if key == "ctr-number":
        return lambda p, m, s: str(len(m)) in values
    if key == "ctr-status":
        return lambda p, m, s: any(_shown(c) in values for c in m)
    if key == "network":
        return lambda p, m, s: any(
            n in values for c in m if c.id == p.infra_id for n in c.config.networks
        )
    if key == "until":
        from pypod.engine.logs import parse_time_arg

        limit = max(parse_time_arg(v) for v in values)
        return lambda p, m, s: p.created < limit
    if key in ("since", "before"):
        ref = min(pods.lookup(v).created for v in values)
        if key == "before":
            return lambda p, m, s: p.created < ref
        return lambda p, m, s: p.created > ref
    raise InvalidArgument(f"{key} is an invalid filter")


def cmd_ps(g: Globals, opts: Parsed) -> int:
    from pypod.cli.engine.formats import is_json, render_rows

    pods = _pods(g)
    containers = pods.eng.containers()
    found = pods.list_pods()
    keep = _pod_filter(pods, opts.texts("filter"))
    rows = []
    now = time.time()
    no_trunc = opts.flag("no-trunc")
    for pod in found:
        members = pods.members(pod, containers)
        status = pods.status(pod, members)
        if keep(pod, members, status):
            rows.append((pod, members, status))
    sort = opts.text("sort") or "created"
    keys: dict[str, Callable[[tuple[Pod, list[Container], str]], Any]] = {
        "created": lambda r: -r[0].created,
        "id": lambda r: r[0].id,
        "name": lambda r: r[0].name,
        "number": lambda r: len(r[1]),
        "status": lambda r: r[2],
    }
    if sort not in keys:
        raise InvalidArgument(
            "invalid option for --sort, options are: created, id, name, number or status"
        )
    rows.sort(key=keys[sort])
    if opts.flag("latest"):
        rows = sorted(rows, key=lambda r: -r[0].created)[:1]
    fmt = opts.text("format")
    if is_json(fmt):
        print(jsoncodec.dumps([_ps_json(pods, p, m, s) for p, m, s in rows], indent=2))
        return 0
    structs = [_ps_row(p, m, s, now, no_trunc=no_trunc) for p, m, s in rows]
    if opts.flag("quiet"):
        fmt = "{{.ID}}"
    if fmt is None:
        fmt = "table {{.ID}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.InfraID}}"
        extra = ""
        if opts.flag("ctr-ids"):
            extra += "\t{{.ContainerIds}}"
        if opts.flag("ctr-names"):
            extra += "\t{{.ContainerNames}}"
        if opts.flag("ctr-status"):
            extra += "\t{{.ContainerStatuses}}"
        if opts.flag("ns"):
            extra += "\t{{.Cgroup}}\t{{.Namespace}}"
        fmt += extra or "\t{{.NumberOfContainers}}"
        if opts.flag("label"):
            fmt += "\t{{.Labels}}"
        if opts.flag("network"):
            fmt += "\t{{.Networks}}"
    elif fmt.startswith("table") and opts.flag("noheading"):
        fmt = fmt[len("table") :].lstrip()
    if opts.flag("noheading") and fmt.startswith("table"):
        fmt = fmt[len("table") :].lstrip()
    sys.stdout.write(render_rows(fmt, structs, _PS_HEADERS))
    return 0


def _ps_json(pods: Pods, pod: Pod, members: list[Container], status: str) -> dict[str, Any]:
    from pypod.image.local import go_time

    infra = next((c for c in members if c.id == pod.infra_id), None)
    return {
        "Cgroup": pod.config.cgroup_parent or "/pypod_parent",
        "Containers": [{"Id": c.id, "Names": c.name, "Status": _shown(c)} for c in members],
        "Created": go_time(pod.created),
        "Id": pod.id,
        "InfraId": pod.infra_id,
        "Name": pod.name,
        "Namespace": "",
        "Networks": list(infra.config.networks) if infra is not None else [],
        "Status": status,
        "Labels": dict(pod.config.labels),
    }


# --- inspect / exists -------------------------------------------------------------------------
def cmd_inspect(g: Globals, opts: Parsed) -> int:
    from pypod.engine.pods import PodNotFound

    pods = _pods(g)
    names = _targets(pods, opts) if opts.flag("latest") or opts.args else []
    if not names:
        raise InvalidArgument("you must provide at least one name or id")
    docs = []
    missing = []
    containers = pods.eng.containers()
    for name in names:
        try:
            docs.append(pods.inspect(pods.lookup(name), containers))
        except PodNotFound:
            missing.append(name)
    fmt = opts.text("format")
    if fmt and fmt.strip() != "json":
        from pypod.cli.engine.formats import render_rows

        rows = [_struct(d) for d in docs]
        sys.stdout.write(render_rows(fmt, rows, {}))
    elif len(names) == 1 and docs:
        print(jsoncodec.dumps(docs[0], indent=5))  # podman 4.3: one pod, no list, 5 spaces
    else:
        print(jsoncodec.dumps(docs, indent=5) if docs else "[]")
    if missing:
        _err(f"inspecting object: no such pod {missing[0]}")
        return 125
    return 0


#: the Go field names (what a template names) of `pod inspect` JSON keys that differ
_GO_FIELDS = {"PidNS": "pid_ns", "UserNS": "userns", "UtsNS": "uts_ns",
              "MemoryLimit": "memory_limit"}  # fmt: skip
#: the string fields of podman's InspectPodData that its JSON omits when empty
_GO_EMPTY = frozenset({"InfraContainerID", "CgroupPath"})


def _struct(value: Any) -> Any:
    from pypod.cli.gotemplate import Struct

    class PodStruct(Struct):
        """Its JSON keys, and the Go names of those that differ (`{{.InfraConfig.UserNS}}`);
        the string fields JSON omits when empty are "" (`{{.InfraContainerID}}` of a pod
        without one); `{{json .}}` shows the JSON keys only."""

        def __contains__(self, key: object) -> bool:
            return super().__contains__(_GO_FIELDS.get(str(key), key)) or key in _GO_EMPTY

        def __getitem__(self, key: str) -> Any:
            name = _GO_FIELDS.get(key, key)
            if not super().__contains__(name) and key in _GO_EMPTY:
                return ""
            return super().__getitem__(name)

    if isinstance(value, dict):
        return PodStruct({k: _struct(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_struct(v) for v in value]
    return value


def cmd_exists(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    return 0 if _pods(g).exists(opts.args[0]) else 1


# --- lifecycle ------------------------------------------------------------------------------
def _timeout(opts: Parsed) -> int | None:
    text = opts.text("time")
    if text is None:
        return None
    from pypod.cli.engine.run_values import parse_int

    return parse_int(text, "time")


def cmd_start(g: Globals, opts: Parsed) -> int:
    pods = _pods(g)
    return _each(_targets(pods, opts), lambda n: pods.start(n).id)


def cmd_stop(g: Globals, opts: Parsed) -> int:
    pods = _pods(g)
    timeout = _timeout(opts)
    ignore = opts.flag("ignore")

    def stop(name: str) -> str | None:
        from pypod.engine.pods import PodNotFound

        try:
            return pods.stop(name, timeout=timeout).id
        except PodNotFound:
            if ignore:
                return None
            raise

    return _each(_targets(pods, opts), stop)


def cmd_restart(g: Globals, opts: Parsed) -> int:
    pods = _pods(g)
    return _each(_targets(pods, opts), lambda n: pods.restart(n).id)


def cmd_kill(g: Globals, opts: Parsed) -> int:
    from pypod.cli.engine.run_values import parse_signal

    pods = _pods(g)
    sig = parse_signal(opts.text("signal") or "KILL")
    return _each(_targets(pods, opts), lambda n: pods.kill(n, sig).id)


def cmd_pause(g: Globals, opts: Parsed) -> int:
    pods = _pods(g)
    return _each(_targets(pods, opts), lambda n: pods.pause(n).id)


def cmd_unpause(g: Globals, opts: Parsed) -> int:
    pods = _pods(g)
    return _each(_targets(pods, opts), lambda n: pods.unpause(n).id)


def cmd_rm(g: Globals, opts: Parsed) -> int:
    from pypod.engine.pods import PodNotFound

    pods = _pods(g)
    force = opts.flag("force")
    ignore = opts.flag("ignore")
    timeout = _timeout(opts)
    names = _targets(pods, opts)

    def rm(name: str) -> str | None:
        try:
            return pods.remove(name, force=force, timeout=timeout)
        except PodNotFound:
            if ignore:
                return None
            raise

    return _each(names, rm)


def cmd_prune(g: Globals, opts: Parsed) -> int:
    if not opts.flag("force") and sys.stdin.isatty():
        answer = input(
            "WARNING! This will remove all stopped/exited pods..\n"
            "Are you sure you want to continue? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    for pid in _pods(g).prune():
        print(pid)
    return 0


# --- top / stats / logs ------------------------------------------------------------------------
def _running_members(pods: Pods, name: str) -> tuple[Pod, list[Container]]:
    pod = pods.lookup(name)
    live = [c for c in pods.members(pod) if c.status in ("running", "paused")]
    if not live:
        raise InvalidArgument(f"pod {pod.id} is not running: no containers are running")
    return pod, live


def cmd_top(g: Globals, opts: Parsed) -> int:
    from pypod.cli.output import tabwrite
    from pypod.engine.processes import DEFAULT_DESCRIPTORS, top

    pods = _pods(g)
    args = list(opts.args)
    if opts.flag("latest"):
        found = pods.list_pods()
        if not found:
            raise InvalidArgument("no pods to use as the latest pod")
        name = found[-1].id
    elif args:
        name = args.pop(0)
    else:
        raise InvalidArgument("you must provide the name or id of a running pod")
    _, live = _running_members(pods, name)
    descriptors = tuple(d for a in args for d in a.split(",") if d) or DEFAULT_DESCRIPTORS
    rows: list[list[str]] = []
    for c in sorted(live, key=lambda c: c.created):
        found_rows = top(c, descriptors)
        if not rows:
            rows.append(list(found_rows[0]))
        rows += [list(r) for r in found_rows[1:]]
    sys.stdout.write(tabwrite(rows, minwidth=12, padding=2))
    return 0


def cmd_stats(g: Globals, opts: Parsed) -> int:
    from pypod.cli.engine.formats import is_json, render_rows
    from pypod.cli.gotemplate import Struct
    from pypod.engine.processes import stats

    pods = _pods(g)
    if opts.flag("all") or not opts.args:
        targets = [p.id for p in pods.list_pods()]
    else:
        targets = list(opts.args)
    stream = not opts.flag("no-stream")
    interval = float(opts.number("interval", 5)) if opts.text("interval") else 5.0
    while True:
        rows = []
        for name in targets:
            pod = pods.lookup(name)
            for c in pods.members(pod):
                if c.status not in ("running", "paused"):
                    continue
                s = stats(pods.eng, c)
                rows.append(Struct(
                    Pod=pod.id[:12], CID=c.id[:12], Name=c.name,
                    CPU=f"{float(s['AvgCPU']):.2f}%",
                    MemUsage=f"{_size_si(s['MemUsage'])} / {_size_si(s['MemLimit'])}",
                    MemUsageBytes=f"{_size_si(s['MemUsage'])} / {_size_si(s['MemLimit'])}",
                    Mem=f"{float(s['MemPerc']):.2f}%", NetIO="-- / --", BlockIO="-- / --",
                    PIDS=str(s["PIDs"]),
                ))  # fmt: skip
        fmt = opts.text("format")
        if is_json(fmt):
            keys = ("Pod", "CID", "Name", "CPU", "MemUsage", "MemUsageBytes", "Mem", "NetIO",
                    "BlockIO", "PIDS")  # fmt: skip
            print(jsoncodec.dumps([{k: r[k] for k in keys} for r in rows], indent=4))
        else:
            headers = {"Pod": "POD", "CID": "CID", "Name": "NAME", "CPU": "CPU %",
                       "MemUsage": "MEM USAGE/ LIMIT", "MemUsageBytes": "MEM USAGE/ LIMIT",
                       "Mem": "MEM %", "NetIO": "NET IO", "BlockIO": "BLOCK IO",
                       "PIDS": "PIDS"}  # fmt: skip
            template = fmt or ("table {{.Pod}}\t{{.CID}}\t{{.Name}}\t{{.CPU}}\t"
                               "{{.MemUsageBytes}}\t{{.Mem}}\t{{.NetIO}}\t{{.BlockIO}}\t"
                               "{{.PIDS}}")  # fmt: skip
            sys.stdout.write(render_rows(template, rows, headers))
        sys.stdout.flush()
        if not stream:
            return 0
        time.sleep(interval)


def _size_si(n: float) -> str:
    from pypod.cli.engine.units import human_size

    return human_size(n)


def cmd_logs(g: Globals, opts: Parsed) -> int:
    """The logs of the pod's containers (not the infra one), each line after its container's
    ID (`--names`: its name), as podman; `-c NAME` one container's, without a prefix."""
    import functools

    from pypod.cli.engine.container_io import _running, _write
    from pypod.engine import logs

    pods = _pods(g)
    if opts.flag("latest"):
        found = pods.list_pods()
        if not found:
            raise InvalidArgument("no pods to use as the latest pod")
        pod = found[-1]
    else:
        if len(opts.args) != 1:
            raise InvalidArgument("requires exactly 1 arg(s), only received "
                                  f"{len(opts.args)}")  # fmt: skip
        pod = pods.lookup(opts.args[0])
    members = [c for c in pods.members(pod) if c.id != pod.infra_id]
    members.sort(key=lambda c: c.created)
    only = opts.text("container")
    if only:
        chosen = [c for c in members if only in (c.id, c.name) or c.id.startswith(only)]
        if not chosen:
            raise InvalidArgument(f"container {only} is not in pod {pod.name}")
        members = chosen[:1]
    since_text, until_text = opts.text("since"), opts.text("until")
    since = logs.parse_time_arg(since_text) if since_text else None
    until = logs.parse_time_arg(until_text) if until_text else None
    tail = opts.number("tail", -1)
    timestamps = opts.flag("timestamps")
    prefixed = not only
    eng = pods.eng
    sources: list[tuple[str, str, Callable[[], bool], int]] = []
    for c in members:
        if c.config.log_driver == "none":
            continue
        path = eng.paths.log_path(c.id)
        prefix = (f"{c.name} " if opts.flag("names") else f"{c.id[:12]} ") if prefixed else ""
        entries, end = logs.read_log(path, since=since, until=until, tail=tail)
        for entry in entries:
            _write(entry, timestamps=timestamps, prefix=prefix)
        sources.append((prefix, path, functools.partial(_running, eng, c.id), end))
    if opts.flag("follow") and sources:
        for prefix, entry in logs.follow_many(sources):
            if until is not None and entry.time > until:
                continue
            _write(entry, timestamps=timestamps, prefix=prefix)
    return 0


# --- the command table ----------------------------------------------------------------------
_ALL = _f("all", "a", help="act on all pods")
_LATEST = _f("latest", "l", help="act on the latest pod pypod knows of")
_TIME = _f("time", "t", value=True, help="seconds to wait for the containers to stop")
_POD_ID_FILE = _f("pod-id-file", value=True, multiple=True, help="read the pod ID from this file")
_NET_FLAGS = (
    _f("network", "net", value=True, multiple=True, help="connect the pod to a network"),
    _f("publish", "p", value=True, multiple=True, help="publish a port of the pod on the host"),
    _f("add-host", value=True, multiple=True, help="add a custom host-to-IP mapping (host:ip)"),
    _f("dns", value=True, multiple=True, help="set custom DNS servers"),
    _f("dns-search", value=True, multiple=True, help="set custom DNS search domains"),
    _f("dns-option", value=True, multiple=True, help="set custom DNS options"),
    _f("no-hosts", help="do not create /etc/hosts for the pod"),
    _f("ip", value=True, help="the pod's static IPv4 address"),
    _f("mac-address", value=True, help="the pod's static MAC address"),
    _f("network-alias", value=True, multiple=True, help="add a network-scoped alias"),
)

COMMANDS: dict[str, Command] = {
    "pod create": _cmd(
        cmd_create,
        (
            _f("name", "n", value=True, help="assign a name to the pod"),
            _f("hostname", value=True, help="set the pod's hostname"),
            _f("label", "l", value=True, multiple=True, help="set metadata on the pod"),
            _f("label-file", value=True, multiple=True, help="read labels from a file"),
            _f("share", value=True, help="namespaces to share: cgroup, ipc, net, pid, uts"),
            _f("infra", value=True, help="create an infra container for the pod (default true)"),
            _f("infra-name", value=True, help="the name of the pod's infra container"),
            _f("infra-command", value=True, help="the command the infra container runs"),
            _f("infra-image", value=True, help="the image of the infra container"),
            _f("cgroup-parent", value=True, help="the parent cgroup of the pod"),
            _f("memory", "m", value=True, help="memory limit of the pod"),
            _f("cpus", value=True, help="number of CPUs of the pod"),
            _f("userns", value=True, help="user namespace of the pod: host, keep-id, nomap"),
            _f(
                "uidmap",
                value=True,
                multiple=True,
                help="UID map of the pod's user namespace (CONTAINER_ID:HOST_ID:AMOUNT)",
            ),
            _f(
                "gidmap",
                value=True,
                multiple=True,
                help="GID map of the pod's user namespace (CONTAINER_ID:HOST_ID:AMOUNT)",
            ),
            _f("subuidname", value=True, help="name of the subuid range (not supported yet)"),
            _f("subgidname", value=True, help="name of the subgid range (not supported yet)"),
            _f("exit-policy", value=True, help="behaviour when the last container exits"),
            _f("pod-id-file", value=True, help="write the pod ID to this file"),
            _f(
                "infra-conmon-pidfile",
                value=True,
                help="write the infra container's monitor pid to this file",
            ),  # fmt: skip
            _f("replace", help="replace a pod of the same name"),
            *_NET_FLAGS,
        ),
        "Create a new empty pod",
        "[options] [NAME]",
    ),  # fmt: skip
    "pod ps": _cmd(
        cmd_ps,
        (
            _f("ctr-ids", help="display the containers' IDs"),
            _f("ctr-names", help="display the containers' names"),
            _f("ctr-status", help="display the containers' statuses"),
            _f("filter", "f", value=True, multiple=True, help="filter output (KEY=VALUE)"),
            _f("format", value=True, help="pretty-print pods to JSON or a Go template"),
            _f("no-trunc", help="do not truncate pod and container IDs"),
            _f("noheading", help="do not print headers"),
            _f("quiet", "q", help="print the numeric IDs of the pods only"),
            _f("sort", value=True, help="sort by created, id, name, number or status"),
            _f("ns", help="display the namespace information of the pod"),
            _f("label", help="display the pod's labels"),
            _f("network", help="display the pod's networks"),
            _LATEST,
        ),
        "List pods",
        "[options]",
    ),  # fmt: skip
    "pod inspect": _cmd(
        cmd_inspect,
        (
            _f("format", "f", value=True, help="format the output with a Go template"),
            _LATEST,
        ),
        "Display a pod configuration",
        "[options] POD [POD...]",
    ),  # fmt: skip
    "pod exists": _cmd(cmd_exists, (), "Check if a pod exists in local storage", "POD"),
    "pod start": _cmd(
        cmd_start, (_ALL, _LATEST, _POD_ID_FILE), "Start one or more pods", "[options] POD [POD...]"
    ),  # fmt: skip
    "pod stop": _cmd(
        cmd_stop,
        (
            _ALL,
            _LATEST,
            _TIME,
            _f("ignore", "i", help="ignore errors when a pod is missing"),
            _POD_ID_FILE,
        ),  # fmt: skip
        "Stop one or more pods",
        "[options] POD [POD...]",
    ),  # fmt: skip
    "pod restart": _cmd(
        cmd_restart, (_ALL, _LATEST), "Restart one or more pods", "[options] POD [POD...]"
    ),  # fmt: skip
    "pod kill": _cmd(
        cmd_kill,
        (_ALL, _LATEST, _f("signal", "s", value=True, help="the signal (default KILL)")),
        "Send the specified signal or SIGKILL to containers in pod",
        "[options] POD [POD...]",
    ),  # fmt: skip
    "pod pause": _cmd(
        cmd_pause, (_ALL, _LATEST), "Pause one or more pods", "[options] POD [POD...]"
    ),  # fmt: skip
    "pod unpause": _cmd(
        cmd_unpause, (_ALL, _LATEST), "Unpause one or more pods", "[options] POD [POD...]"
    ),  # fmt: skip
    "pod rm": _cmd(
        cmd_rm,
        (
            _ALL,
            _LATEST,
            _TIME,
            _f("force", "f", help="stop and remove running pods"),
            _f("ignore", "i", help="ignore errors when a pod is missing"),
            _POD_ID_FILE,
        ),
        "Remove one or more pods",
        "[options] POD [POD...]",
    ),  # fmt: skip
    "pod prune": _cmd(
        cmd_prune,
        (_f("force", "f", help="do not ask for confirmation"),),
        "Remove all stopped pods and their containers",
        "[options]",
    ),  # fmt: skip
    "pod top": Command(
        handler=cmd_top,
        flags=(_LATEST,),
        help="Display the running processes of containers in a pod",
        usage="[options] POD [FORMAT-DESCRIPTORS|ARGS...]",
    ),  # fmt: skip
    "pod stats": _cmd(
        cmd_stats,
        (
            _ALL,
            _LATEST,
            _f("no-stream", help="disable streaming stats and only pull the first result"),
            _f("no-reset", help="disable resetting the screen between intervals"),
            _f("format", value=True, help="pretty-print stats to JSON or a Go template"),
            _f("interval", "i", value=True, help="time in seconds between stats reports"),
        ),
        "Display a live stream of resource usage statistics for the containers in pods",
        "[options] [POD...]",
    ),  # fmt: skip
    "pod logs": _cmd(
        cmd_logs,
        (
            _LATEST,
            _f("container", "c", value=True, help="filter logs by container name or ID"),
            _f("follow", "f", help="follow log output"),
            _f("names", "n", help="output the container name in the log"),
            _f("since", value=True, help="show logs since TIMESTAMP"),
            _f("until", value=True, help="show logs until TIMESTAMP"),
            _f("tail", value=True, help="output the specified number of LINES at the end"),
            _f("timestamps", "t", help="output the timestamps in the log"),
        ),
        "Fetch logs for pod with one or more containers",
        "[options] POD",
    ),  # fmt: skip
}
COMMANDS["pod ls"] = COMMANDS["pod ps"]
COMMANDS["pod list"] = COMMANDS["pod ps"]
