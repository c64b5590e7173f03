"""pypod's network commands (podman 4.3's flags, output and exit codes) over pypod.network.store.

network create, network ls / list, network inspect, network exists, network rm / remove,
network prune, network connect, network disconnect, network reload.  Which containers use a
network, removing them, connecting, disconnecting and reloading are the engine's
(`pypod.engine.network_use`); this module parses the flags and prints what podman prints.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pypod.cli.engine.formats import render_rows, report_errors
from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.cli.gotemplate import Struct
from pypod.errors import (
    EXIT_ENGINE_ERROR,
    AlreadyExists,
    InUse,
    InvalidArgument,
    NotFound,
    NotSupported,
)
from pypod.network.store import Networks, to_json
from pypod.network.types import DEFAULT_NETWORK, Network

#: podman's exit codes of `network rm`: no such network, network in use
_EXIT_NO_SUCH_NETWORK = 1
_EXIT_NETWORK_IN_USE = 2
_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Labels": "LABELS",
            "Created": "CREATED", "NetworkInterface": "NETWORK INTERFACE",
            "IPv6Enabled": "IPV6", "DNSEnabled": "DNS", "Internal": "INTERNAL"}  # fmt: skip
_LS_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}"
_LS_FILTERS = ("name", "id", "driver", "label", "label!", "until", "dangling")
_PRUNE_FILTERS = ("label", "label!", "until")


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _error(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr)


def _networks(g: Globals) -> Networks:
    return Networks(g.graphroot, g.runroot)


def _csv(texts: Sequence[str]) -> list[str]:
    """A pflag `strings`/`ipSlice` flag: each value is a comma-separated list."""
    out: list[str] = []
    for text in texts:
        out.extend(v for v in text.split(",") if v)
    return out


def _labels(texts: Sequence[str]) -> dict[str, str]:
    """`--label k=v` / `--label k` (podman's parse.GetAllLabels)."""
    out: dict[str, str] = {}
    for text in texts:
        key, _, value = text.partition("=")
        if not key.strip():
            raise InvalidArgument(f'failed to parse labels: invalid label format: "{text}"')
        out[key] = value
    return out


def _options(texts: Sequence[str]) -> dict[str, str]:
    """`-o k=v` (the last value of a key wins; `-o k` is an empty value, as podman)."""
    out: dict[str, str] = {}
    for text in texts:
        key, _, value = text.partition("=")
        out[key] = value
    return out


def parse_filters(texts: Sequence[str], allowed: Sequence[str]) -> dict[str, list[str]]:
    """`--filter key=value` (repeated) -> {key: [values]}; podman's "invalid filter"."""
    out: dict[str, list[str]] = {}
    for text in texts:
        key, eq, value = text.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid filter {text!r}: use --filter key=value")
        key = key.lower()
        if key not in allowed:
            raise InvalidArgument(f'invalid filter "{key}"')
        out.setdefault(key, []).append(value)
    return out


# --- the engine's side (written by the lead; absent until then) ----------------------------
def _users(g: Globals, name: str) -> list[str]:
    """IDs of the containers using network `name` (none while the engine cannot tell)."""
    try:
        from pypod.engine.network_use import containers_using
    except ImportError:
        return []
    return list(containers_using(g.graphroot, g.runroot, name))


def _engine(what: str) -> Any:
    """The engine function `what` of pypod.engine.network_use, or NotSupported."""
    import importlib

    try:
        use: Any = importlib.import_module("pypod.engine.network_use")
    except ImportError:
        use = None
    fn = getattr(use, what, None)
    if fn is None:
        raise NotSupported(f"'network {what}' is not supported yet")
    return fn


# --- templates ----------------------------------------------------------------------------
def _go_time(created: str) -> str:
    """RFC 3339 -> Go's time.Time.String(): "2026-11-26 00:49:58.9782073 +0000 UTC"."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", created)
    if m is None:
        return created
    day, clock, frac, zone = m.groups()
    if zone == "Z":
        return f"{day} {clock}{frac or ''} +0000 UTC"
    return f"{day} {clock}{frac or ''} {zone.replace(':', '')} {zone.replace(':', '')}"


def _struct(net: Network, *, trunc: bool = False) -> Struct:
    """A network as the Go struct podman's templates see."""
    subnets = [
        Struct(Subnet=s.subnet, Gateway=s.gateway or "<nil>",
               LeaseRange=None if s.lease_range is None else Struct(
                   StartIP=s.lease_range.start_ip, EndIP=s.lease_range.end_ip))
        for s in net.subnets
    ]  # fmt: skip
    return Struct(
        Name=net.name,
        ID=net.id[:12] if trunc else net.id,
        Driver=net.driver,
        NetworkInterface=net.network_interface,
        Created=_go_time(net.created),
        Subnets=subnets,
        Routes=[],
        IPv6Enabled=net.ipv6_enabled,
        Internal=net.internal,
        DNSEnabled=net.dns_enabled,
        NetworkDNSServers=[],
        Labels=dict(net.labels),
        Options=dict(net.options),
        IPAMOptions=dict(net.ipam_options),
    )


def _ls_struct(net: Network, *, trunc: bool) -> Struct:
    """`network ls` rows: the network, its ID shortened, Labels as "k=v,k=v"."""
    row = _struct(net, trunc=trunc)
    row["Labels"] = ",".join(f"{k}={v}" for k, v in net.labels.items())
    return row


def _is_json(fmt: str | None) -> bool:
    """`json` and `{{json .}}` both print the JSON array, as podman."""
    return (
        fmt is not None and re.fullmatch(r"\s*(json|\{\{\s*json\s+\.\s*\}\})\s*", fmt) is not None
    )


# --- network create -----------------------------------------------------------------------
def cmd_create(g: Globals, opts: Parsed) -> int:
    if len(opts.args) > 1:
        raise InvalidArgument(f"accepts at most 1 arg(s), received {len(opts.args)}")
    ipam = opts.text("ipam-driver")
    if ipam not in (None, "", "host-local"):
        raise NotSupported(f"'{ipam}' IPAM driver is not supported yet: use host-local")
    net = _networks(g).create(
        opts.args[0] if opts.args else None,
        driver=opts.text("driver") or "bridge",
        subnets=opts.texts("subnet"),
        gateways=_csv(opts.texts("gateway")),
        ip_ranges=opts.texts("ip-range"),
        internal=opts.flag("internal"),
        labels=_labels(opts.texts("label")),
        options=_options(opts.texts("opt")),
        dns=not opts.flag("disable-dns"),
        ipv6=opts.flag("ipv6"),
        interface_name=opts.text("interface-name"),
        ignore_existing=opts.flag("ignore"),
    )
    _out(net.name + "\n")
    return 0


# --- network ls ---------------------------------------------------------------------------
def _matcher(g: Globals, filters: dict[str, list[str]]) -> Callable[[Network], bool]:
    """podman's network filters: every key must match (values of one key: any of them, but
    every label)."""
    from pypod.cli.engine.container_filters import label_match

    preds: list[Callable[[Network], bool]] = []
    for key, values in filters.items():
        preds.append(_predicate(g, key, values, label_match))
    return lambda n: all(p(n) for p in preds)


def _predicate(
    g: Globals, key: str, values: list[str], label_match: Callable[[dict[str, str], str], bool]
) -> Callable[[Network], bool]:
    if key == "name":
        patterns = [_regex(v) for v in values]
        return lambda n: any(p.search(n.name) for p in patterns)
    if key == "id":
        return lambda n: any(n.id.startswith(v) for v in values)
    if key == "driver":
        return lambda n: n.driver in values
    if key == "label":
        return lambda n: all(label_match(n.labels, v) for v in values)
    if key == "label!":
        return lambda n: not all(label_match(n.labels, v) for v in values)
    if key == "until":
        limit = _until(values)
        return lambda n: _created(n) < limit
    if key == "dangling":
        want = _dangling_value(values)
        return lambda n: _is_dangling(g, n) == want
    raise InvalidArgument(f'invalid filter "{key}"')


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as e:
        raise InvalidArgument(f"invalid name filter {text!r}: {e}") from None


def _until(values: list[str]) -> float:
    if len(values) != 1:
        raise InvalidArgument("specify exactly one timestamp for until")
    from pypod.image.local import parse_until

    return float(parse_until(values[0]))


def _created(net: Network) -> float:
    import datetime as dt

    m = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", net.created)
    if m is None:
        return 0.0
    base, frac, zone = m.groups()
    when = dt.datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return when.timestamp() + (float(f"0.{frac}") if frac else 0.0)


def _dangling_value(values: list[str]) -> bool:
    if len(values) != 1 or values[0].lower() not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid dangling filter value {values!r}: use true or false")
    return values[0].lower() in ("true", "1")


def _is_dangling(g: Globals, net: Network) -> bool:
    """No container uses it (the default network never counts as dangling, as podman)."""
    return net.name != DEFAULT_NETWORK and not _users(g, net.name)


def cmd_ls(g: Globals, opts: Parsed) -> int:
    if opts.args:
        raise InvalidArgument(f"accepts 0 arg(s), received {len(opts.args)}")
    match = _matcher(g, parse_filters(opts.texts("filter"), _LS_FILTERS))
    found = sorted((n for n in _networks(g).list() if match(n)), key=lambda n: n.name)
    fmt = opts.text("format")
    trunc = not opts.flag("no-trunc")
    if opts.flag("quiet"):
        _out("".join(n.name + "\n" for n in found))
    elif _is_json(fmt):
        _out(json.dumps([to_json(n) for n in found], indent=2) + "\n")
    else:
        fmt = fmt or _LS_FORMAT
        if opts.flag("noheading") and fmt.startswith("table"):
            fmt = fmt[len("table") :].lstrip()
        _out(render_rows(fmt, [_ls_struct(n, trunc=trunc) for n in found], _HEADERS))
    return 0


# --- network inspect ----------------------------------------------------------------------
def cmd_inspect(g: Globals, opts: Parsed) -> int:
    if not opts.args:
        raise InvalidArgument("requires at least 1 arg(s), only received 0")
    store = _networks(g)
    found: list[Network] = []
    errors: list[str] = []
    for name in opts.args:
        try:
            found.append(store.get(name))
        except NotFound as err:
            errors.append(f"network {name}: {err}")
    fmt = opts.text("format")
    if fmt is None or _is_json(fmt):
        _out(json.dumps([to_json(n) for n in found], indent=5) + "\n")
    else:
        _out(render_rows(fmt, [_struct(n) for n in found], _HEADERS))
    if errors:
        for e in errors[1:]:
            print(f"error inspecting object: {e}", file=sys.stderr)
        _error(f"inspecting object: {errors[0]}")
        return EXIT_ENGINE_ERROR
    return 0


# --- network exists -----------------------------------------------------------------------
def cmd_exists(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    return 0 if _networks(g).exists(opts.args[0]) else 1


# --- network rm ---------------------------------------------------------------------------
def cmd_rm(g: Globals, opts: Parsed) -> int:
    if not opts.args:
        raise InvalidArgument("requires at least 1 arg(s), only received 0")
    force = opts.flag("force")
    opts.number("time", 10)  # validated; the engine stops containers with their own timeout
    store = _networks(g)
    errors: list[tuple[str, int]] = []
    for name in opts.args:
        try:
            net = store.get(name)
            if net.name == DEFAULT_NETWORK:
                raise InvalidArgument(f"default network {DEFAULT_NETWORK} cannot be removed")
            users = _users(g, net.name)
            if users and not force:
                raise InUse(
                    f'"{net.name}" has associated containers with it. Use -f to forcibly '
                    "delete containers and pods: network is being used"
                )
            if users:
                _engine("remove_containers")(g.graphroot, g.runroot, users)
            store.remove(net.name)
        except NotFound as e:
            errors.append((str(e), _EXIT_NO_SUCH_NETWORK))
            continue
        except InUse as e:
            errors.append((str(e), _EXIT_NETWORK_IN_USE))
            continue
        except InvalidArgument as e:
            errors.append((str(e), EXIT_ENGINE_ERROR))
            continue
        _out(net.name + "\n")
    return report_errors(errors)


# --- network prune ------------------------------------------------------------------------
def cmd_prune(g: Globals, opts: Parsed) -> int:
    if opts.args:
        raise InvalidArgument(f"accepts 0 arg(s), received {len(opts.args)}")
    match = _matcher(g, parse_filters(opts.texts("filter"), _PRUNE_FILTERS))
    if not opts.flag("force"):
        _out(
            "WARNING! This will remove all networks not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] "
        )
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    store = _networks(g)
    removed: list[str] = []
    for net in store.list():
        if net.name == DEFAULT_NETWORK or not match(net) or _users(g, net.name):
            continue
        try:
            store.remove(net.name)
        except NotFound:  # removed meanwhile
            continue
        removed.append(net.name)
    _out("".join(n + "\n" for n in removed))
    return 0


# --- network connect / disconnect / reload ------------------------------------------------
def cmd_connect(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 2:
        raise InvalidArgument(f"accepts 2 arg(s), received {len(opts.args)}")
    network, container = opts.args
    net = _networks(g).get(network)
    if opts.text("ip") and opts.text("ip6"):
        raise NotSupported("'--ip' together with '--ip6' is not supported yet: give one of them")
    ip = opts.text("ip") or opts.text("ip6")
    try:
        _engine("connect")(
            g.graphroot, g.runroot, net.name, container,
            aliases=tuple(_csv(opts.texts("alias"))), ip=ip, mac=opts.text("mac-address"),
        )  # fmt: skip
    except AlreadyExists:  # podman: connecting again is no error and prints nothing
        pass
    return 0


def cmd_disconnect(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 2:
        raise InvalidArgument(f"accepts 2 arg(s), received {len(opts.args)}")
    network, container = opts.args
    net = _networks(g).get(network)
    _engine("disconnect")(g.graphroot, g.runroot, net.name, container, opts.flag("force"))
    return 0


def cmd_reload(g: Globals, opts: Parsed) -> int:
    everything = opts.flag("all")
    if everything and opts.args:
        raise InvalidArgument("--all and containers cannot be given together")
    if not everything and not opts.args:
        raise InvalidArgument("you must provide at least one container name or ID, or --all")
    ids = _engine("reload")(g.graphroot, g.runroot, list(opts.args), everything)
    _out("".join(i + "\n" for i in ids))
    return 0


_CREATE_FLAGS = (
    Flag(("driver", "d"), True, help='driver to manage the network (default "bridge")'),
    Flag(("disable-dns",), help="disable dns plugin"),
    Flag(("gateway",), True, True, help="IPv4 or IPv6 gateway for the subnet"),
    Flag(("ignore",), help="Don't fail if network already exists"),
    Flag(("interface-name",), True, help="interface name which is used by the driver"),
    Flag(("internal",), help="restrict external access from this network"),
    Flag(("ip-range",), True, True, help="allocate container IP from range"),
    Flag(("ipam-driver",), True, help="IP Address Management Driver"),
    Flag(("ipv6",), help="enable IPv6 networking"),
    Flag(("label",), True, True, help="set metadata on a network"),
    Flag(("opt", "o"), True, True, help="Set driver specific options (default [])"),
    Flag(("subnet",), True, True, help="subnets in CIDR format"),
)
_LS_FLAGS = (
    Flag(("filter", "f"), True, True, help="Provide filter values (e.g. 'name=podman')"),
    Flag(("format",), True, help="Pretty-print networks to JSON or using a Go template"),
    Flag(("noheading",), help="Do not print headers"),
    Flag(("no-trunc",), help="Do not truncate the network ID"),
    Flag(("quiet", "q"), help="display only names"),
)
_INSPECT_FLAGS = (
    Flag(("format", "f"), True, help="Pretty-print network to JSON or using a Go template"),
)
_RM_FLAGS = (
    Flag(("force", "f"), help="remove any containers using network"),
    Flag(("time", "t"), True, help="Seconds to wait for running containers to stop (default 10)"),
)
_PRUNE_FLAGS = (
    Flag(("filter",), True, True, help="Provide filter values (e.g. 'label=<key>=<value>')"),
    Flag(("force", "f"), help="do not prompt for confirmation"),
)
_CONNECT_FLAGS = (
    Flag(("alias",), True, True, help="network scoped alias for container"),
    Flag(("ip",), True, help="set a static ipv4 address for this container network"),
    Flag(("ip6",), True, help="set a static ipv6 address for this container network"),
    Flag(("mac-address",), True, help="set a static mac address for this container network"),
)
_DISCONNECT_FLAGS = (
    Flag(("force", "f"), help="force removal of container from network"),
)  # fmt: skip
_RELOAD_FLAGS = (Flag(("all", "a"), help="Reload network configuration of all containers"),)

_ls = Command(handler=cmd_ls, flags=_LS_FLAGS, help="List networks", usage="[options]")
_rm = Command(handler=cmd_rm, flags=_RM_FLAGS, help="Remove networks",
              usage="[options] NETWORK [NETWORK...]")  # fmt: skip

COMMANDS: dict[str, Command] = {
    "network create": Command(handler=cmd_create, flags=_CREATE_FLAGS,
                              help="Create networks for containers and pods",
                              usage="[options] [NAME]"),
    "network ls": _ls,
    "network list": _ls,
    "network inspect": Command(handler=cmd_inspect, flags=_INSPECT_FLAGS,
                               help="Displays the raw CNI network configuration for one or "
                                    "more networks.",
                               usage="[options] NETWORK [NETWORK...]"),
    "network exists": Command(handler=cmd_exists, flags=(), help="network exists",
                              usage="NETWORK"),
    "network rm": _rm,
    "network remove": _rm,
    "network prune": Command(handler=cmd_prune, flags=_PRUNE_FLAGS,
                             help="Prune unused networks", usage="[options]"),
    "network connect": Command(handler=cmd_connect, flags=_CONNECT_FLAGS,
                               help="Add container to a network",
                               usage="[options] NETWORK CONTAINER"),
    "network disconnect": Command(handler=cmd_disconnect, flags=_DISCONNECT_FLAGS,
                                  help="Disconnect a container from a network",
                                  usage="[options] NETWORK CONTAINER"),
    "network reload": Command(handler=cmd_reload, flags=_RELOAD_FLAGS,
                              help="Reload firewall rules for one or more containers",
                              usage="[options] [CONTAINER...]"),
}  # fmt: skip
