"""A container's network: its namespace, the networks it joins, its published ports.

`resolve` runs when a container is created (the network mode, the networks' names and each
one's options, `-P`, the random host ports: inspect shows them from then on, as podman's);
`attach` when it is initialised (a network namespace of its own with lo up, then the bridge
networks through pypod.network.setup); `detach` when it ends (everything attach made is
undone, even when its monitor died).  The /etc/hosts and /etc/resolv.conf lines that follow
from the result are worked out by `etc_network`.
"""

from __future__ import annotations

import os

from pypod import jsoncodec
from pypod.errors import InvalidArgument, InvalidState, NotSupported, PypodError
from pypod.record import replace
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from pypod.engine.config import ContainerConfig
    from pypod.engine.containers import Engine
    from pypod.engine.etcfiles import NetworkFiles
    from pypod.engine.state import Container
    from pypod.network.types import Network, SetupOptions

#: the modes `--network` takes besides network names
MODES = ("bridge", "none", "host", "private", "slirp4netns", "pasta")
#: podman's search domain of the names its DNS responder serves
DNS_DOMAIN = "dns.podman"


def _rootless() -> bool:
    from pypod.linux.userns import rootless

    return rootless()


def default_mode() -> str:
    """What a container gets without `--network`: bridge as root, pasta rootless."""
    return "pasta" if _rootless() else "bridge"


def state_dir(eng: Engine) -> str:
    """Where the host-wide network state lives (IPAM leases, DNS records).

    The bridges and firewall rules are the host's, whatever `--root` an engine has, so the
    state that must agree with them is the host's too: root's under /run/pypod, a rootless
    user's under its engine's run root.
    """
    return eng.paths.runroot if _rootless() else "/run/pypod"


def networks_store(eng: Engine) -> Any:
    from pypod.network.store import Networks

    return Networks(eng.paths.graphroot, state_dir(eng))


# --- at create -------------------------------------------------------------------------------
def resolve(eng: Engine, cfg: ContainerConfig, image: Mapping[str, Any]) -> ContainerConfig:
    """The container's network settings made definite (`image`: the image's config)."""
    mode = cfg.network or default_mode()
    networks = dict(cfg.networks)
    if mode == "private":
        mode = default_mode()
    if mode not in MODES and not mode.startswith(("ns:", "container:", "path:")):
        # a network name (`--network NAME[,NAME2]`) is bridge mode on those networks
        networks = {name: dict(networks.get(name, {})) for name in mode.split(",")}
        mode = "bridge"
    if mode.startswith("container:"):
        other = eng.lookup(mode.partition(":")[2])
        mode = f"container:{other.id}"
    if mode == "bridge":
        if not networks:
            from pypod.network.types import DEFAULT_NETWORK

            networks = {DEFAULT_NETWORK: {}}
        networks = _checked_networks(eng, networks)
    elif networks:
        raise InvalidArgument(f"--network {mode} cannot be combined with named networks")
    ports = _ports(cfg, image, mode)
    return replace(cfg, network=mode, networks=networks, ports=ports)


def _checked_networks(eng: Engine, wanted: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from pypod.network.types import DEFAULT_NETWORK

    store = None
    out: dict[str, dict[str, Any]] = {}
    for i, (name, opts) in enumerate(wanted.items()):
        if name == DEFAULT_NETWORK:  # built in: no need to load the store (start-up time)
            out[name] = _entry(opts, i)
            continue
        store = store or networks_store(eng)
        net = store.get(name)  # NetworkNotFound names it
        out[net.name] = _entry(opts, i)
    return out


def _entry(opts: Mapping[str, Any], index: int) -> dict[str, Any]:
    return {
        "interface_name": opts.get("interface_name") or f"eth{index}",
        "static_ips": list(opts.get("static_ips") or ()),
        "static_mac": opts.get("static_mac") or "",
        "aliases": list(opts.get("aliases") or ()),
    }


def _ports(cfg: ContainerConfig, image: Mapping[str, Any], mode: str) -> tuple[dict[str, Any], ...]:
    if not cfg.ports and not cfg.publish_all:
        return ()
    from pypod.network import ports as portlib
    from pypod.network.types import PortMapping, to_json

    given = tuple(PortMapping(**p) for p in cfg.ports)
    exposed: tuple[PortMapping, ...] = ()
    if cfg.publish_all:  # only where no -p publishes the port already
        exposed = portlib.expose_all([*(image.get("ExposedPorts") or {}), *cfg.expose])
    if not given and not exposed:
        return ()
    if mode not in ("bridge", "slirp4netns", "pasta"):
        if mode == "host" or mode == "none":
            return ()  # podman ignores -p with the host's network or none
        raise InvalidArgument(f"--publish cannot be used with --network {mode}")
    return tuple(to_json(p) for p in portlib.assign_random_ports(given, exposed))


# --- at init ---------------------------------------------------------------------------------
def attach(eng: Engine, c: Container) -> tuple[str | None, dict[str, Any]]:
    """Give `c` its network; (the namespace path for the spec, what to keep in its state).

    The state keys: "netns" (a namespace pypod made and removes), "netns_join" (another's,
    only joined), "networks" ({name: NetResult as JSON}).
    """
    cfg = c.config
    mode = cfg.network or default_mode()
    if mode in ("host", "none"):
        # none: the runtime makes the namespace, with lo up (runc's, crun's and pypod's
        # "loopback" network), as podman leaves it to them: no file to keep, SandboxKey ""
        return None, {"netns": None, "networks": {}}
    if mode.startswith(("ns:", "path:")):
        return None, {"netns": None, "networks": {}}
    if mode.startswith("container:"):
        other = eng.lookup(mode.partition(":")[2])
        if other.status not in ("running", "paused"):
            raise InvalidState(
                f"cannot join the network namespace of container {other.name}: it is not "
                "running: container state improper"
            )
        path = f"/proc/{int(other.state['pid'])}/ns/net"
        return path, {"netns": None, "netns_join": path, "networks": {}}
    netns = make_netns(eng, c.id)
    try:
        results: dict[str, Any] = {}
        if mode == "bridge":
            results = _setup_bridge(eng, c, netns)
        elif mode in ("slirp4netns", "pasta"):
            results = _setup_rootless(eng, c, netns, mode)
    except BaseException:
        remove_netns(netns)
        raise
    return netns, {"netns": netns, "networks": results}


class Background:
    """Network work (`work()`, JSON-able result) in a forked child while the caller goes on.

    Setting a container up on a bridge (loading netlink, the veth, the nft rules) takes
    about as long as the monitor's creating the container does, and neither needs the other:
    `init` overlaps them and waits for this before the container starts; the same for the
    teardown and the rest of a cleanup.  `result()` gives `work()`'s result or raises its
    error; it is to be called exactly once.
    """

    def __init__(self, work: Callable[[], Any]) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: set up, report, and leave without running any cleanup
            code = 0
            try:
                os.close(read_end)
                try:
                    out: dict[str, Any] = {"ok": work()}
                except PypodError as e:
                    out = {"error": type(e).__name__, "message": str(e)}
                except BaseException as e:  # reported: the parent raises it
                    out = {"error": "PypodError", "message": f"network setup failed: {e!r}"}
                view = memoryview(jsoncodec.dumps(out).encode())
                while view:
                    view = view[os.write(write_end, view) :]
            except BaseException:  # nothing can be reported: the parent sees an empty answer
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        self.pid, self.fd = pid, read_end

    def result(self) -> Any:
        chunks = []
        try:
            while chunk := os.read(self.fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(self.fd)
            os.waitpid(self.pid, 0)
        if not chunks:
            raise PypodError("network setup failed: its process ended without a word")
        out = jsoncodec.loads(b"".join(chunks))
        if "error" in out:
            import pypod.errors

            cls = getattr(pypod.errors, str(out["error"]), PypodError)
            if not (isinstance(cls, type) and issubclass(cls, PypodError)):
                cls = PypodError
            try:
                error = cls(out["message"])
            except TypeError:  # an error class with other arguments
                error = PypodError(out["message"])
            raise error
        results: Any = out["ok"]
        return results


def attach_overlapped(
    eng: Engine, c: Container
) -> tuple[str | None, dict[str, Any], Background | None]:
    """`attach`, with a bridge setup left running in the background (`Background`): then the
    state has no "networks" yet; the caller adds `background.result()` when it is done."""
    if (c.config.network or default_mode()) != "bridge" or _rootless():
        netns, state = attach(eng, c)
        return netns, state, None
    netns = make_netns(eng, c.id)
    try:
        background = Background(lambda: _setup_bridge(eng, c, netns))
    except BaseException:
        remove_netns(netns)
        raise
    return netns, {"netns": netns, "networks": {}}, background


def _setup_bridge(eng: Engine, c: Container, netns: str) -> dict[str, Any]:
    from pypod.network import setup as netsetup
    from pypod.network.types import to_json

    opts, networks = setup_options(eng, c, netns)
    if _rootless():  # in the user's rootless-netns, with its pasta
        from pypod.network import rootless_netns

        done: dict[str, Any] = rootless_netns.setup(
            opts, networks, state_dir(eng), eng.paths.rundir(c.id)
        )
        return done
    results = netsetup.setup(opts, networks, state_dir(eng))
    return {name: to_json(r) for name, r in results.items()}


def _setup_rootless(eng: Engine, c: Container, netns: str, mode: str) -> dict[str, Any]:
    try:
        from pypod.network import rootless_net
    except ImportError:
        raise NotSupported(f"'--network {mode}' is not supported yet") from None
    from pypod.network.types import PortMapping

    ports = tuple(PortMapping(**p) for p in c.config.ports)
    info: dict[str, Any] = rootless_net.start(
        mode, netns, c.id, ports, tuple(c.config.network_options), eng.paths.rundir(c.id)
    )
    return {mode: info}


def setup_options(
    eng: Engine, c: Container, netns: str, only: Mapping[str, dict[str, Any]] | None = None
) -> tuple[SetupOptions, dict[str, Network]]:
    """The request pypod.network.setup takes for `c` (its networks, or `only` these)."""
    from pypod.network.types import PerNetworkOptions, PortMapping, SetupOptions

    store = networks_store(eng)
    wanted = c.config.networks if only is None else only
    networks = {name: store.get(name) for name in wanted}
    per = {
        name: PerNetworkOptions(
            interface_name=o.get("interface_name") or "eth0",
            static_ips=tuple(o.get("static_ips") or ()),
            static_mac=o.get("static_mac") or "",
            aliases=tuple(o.get("aliases") or ()),
        )
        for name, o in wanted.items()
    }
    opts = SetupOptions(
        container_id=c.id,
        container_name=c.name,
        netns=netns,
        networks=per,
        port_mappings=tuple(PortMapping(**p) for p in c.config.ports) if only is None else (),
    )
    return opts, networks


def netns_path(eng: Engine, cid: str) -> str:
    return os.path.join(eng.paths.runroot, "netns", f"pypod-{cid}")


def forget_crashed(eng: Engine, c: Container) -> None:
    """What a start killed half way (SIGKILL during `init`) left of `c`'s network: its
    namespace file is there but its state names no network.  Its leases, rules and DNS
    records are found by its ID and removed; the namespace goes."""
    path = netns_path(eng, c.id)
    if not os.path.exists(path) or c.state.get("netns") == path:
        return
    mode = c.config.network or default_mode()
    if mode == "bridge" and c.config.networks and not _rootless():
        from pypod.network import setup as netsetup

        with suppress(PypodError, OSError):
            opts, networks = setup_options(eng, c, path)
            remove_netns(path)
            netsetup.teardown(opts, networks, state_dir(eng), namespace_going=True)
    remove_netns(path)


def make_netns(eng: Engine, cid: str) -> str:
    """A network namespace of the container's own, with lo up."""
    from pypod.linux import netns

    path = netns_path(eng, cid)
    with suppress(PypodError, OSError):
        netns.remove(path)  # what a crashed start left
    netns.create(path)
    return path


def remove_netns(path: str | None) -> None:
    if path:
        from pypod.linux import netns

        with suppress(PypodError, OSError):
            netns.remove(path)


# --- at the end ------------------------------------------------------------------------------
def detach_begin(eng: Engine, c: Container) -> Callable[[], None]:
    """`detach`, with a bridge teardown left running in the background meanwhile (the rules
    and leases go in another process while the caller unmounts); call the answer to wait
    for it (after which everything is gone, as after `detach`)."""
    netns = c.state.get("netns")
    bridge = (c.config.network or default_mode()) == "bridge"
    if not (c.state.get("networks") and netns and bridge) or _rootless():
        detach(eng, c)
        return lambda: None
    joined = _joined(c)
    remove_netns(netns)
    c.state["netns"] = None
    c.state["netns_join"] = None
    c.state["networks"] = {}

    def teardown() -> None:  # all of it in the child: even loading the network modules
        from pypod.network import setup as netsetup

        opts, networks = setup_options(eng, c, netns, only=joined)
        netsetup.teardown(opts, networks, state_dir(eng), namespace_going=True)

    try:
        background = Background(teardown)
    except OSError:
        with suppress(PypodError, OSError):
            teardown()
        return lambda: None

    def finish() -> None:
        with suppress(PypodError, OSError):
            background.result()

    return finish


def detach(eng: Engine, c: Container) -> None:
    """Undo `attach` (idempotent: after it, the state says there is nothing left)."""
    netns = c.state.get("netns")
    results = c.state.get("networks") or {}
    mode = c.config.network or default_mode()
    if results and mode == "bridge" and netns:
        from pypod.network import setup as netsetup

        try:
            opts, networks = setup_options(eng, c, netns, only=_joined(c))
        except PypodError:
            opts, networks = None, {}
        # The namespace goes first: its end takes the container's interfaces (and their veth
        # peers on the bridges) along, faster than deleting them one by one.
        remove_netns(netns)
        if _rootless():  # in the user's rootless-netns (which goes with its last container)
            from pypod.network import rootless_netns

            with suppress(PypodError, OSError):
                rootless_netns.teardown(
                    opts, networks, state_dir(eng), eng.paths.rundir(c.id),
                    container_id=c.id, namespace_going=True,
                )  # fmt: skip
        elif opts is not None:
            with suppress(PypodError, OSError):
                netsetup.teardown(opts, networks, state_dir(eng), namespace_going=True)
    elif results and mode in ("slirp4netns", "pasta"):
        with suppress(ImportError, PypodError, OSError):
            from pypod.network import rootless_net

            rootless_net.stop(results.get(mode) or {})
    remove_netns(netns)
    c.state["netns"] = None
    c.state["netns_join"] = None
    c.state["networks"] = {}


def _joined(c: Container) -> dict[str, dict[str, Any]]:
    """The networks `c` is on now (`network connect/disconnect` change them while it runs)."""
    results = c.state.get("networks") or {}
    return {name: o for name, o in c.config.networks.items() if name in results}


# --- what the container's /etc files say ------------------------------------------------------
def etc_network(
    c: Container, results: Mapping[str, Any], joined: Container | None = None
) -> NetworkFiles:
    """/etc/hosts and /etc/resolv.conf contents that follow from `c`'s network (`joined`:
    the container whose network namespace `c` joins: its addresses and name servers, and
    its own line in /etc/hosts, as podman writes them)."""
    from pypod.engine.etcfiles import NetworkFiles

    cfg = c.config
    mode = cfg.network or default_mode()
    peers: tuple[tuple[str, str, str], ...] = ()
    if joined is not None:
        other = etc_network(joined, joined.state.get("networks") or {})
        if other.ips:
            hostname = joined.config.hostname or joined.id[:12]
            peers = ((other.ips[0], hostname, joined.name),)
        files = etc_network(c, {})
        return replace(files, host_ip=other.host_ip, peers=peers,
                       nameservers=files.nameservers or other.nameservers,
                       search=files.search or other.search)  # fmt: skip
    ips: list[str] = []
    gateway = None
    servers: list[str] = []
    for result in results.values():
        if not isinstance(result, dict):
            continue
        for sub in result.get("subnets") or ():
            ip = str(sub.get("ipnet", "")).partition("/")[0]
            if ip:
                ips.append(ip)
            if gateway is None and sub.get("gateway"):
                gateway = str(sub["gateway"])
        servers.extend(result.get("dns_server_ips") or ())
    return NetworkFiles(
        mode=mode,
        ips=tuple(ips[:1]),
        host_ip=gateway,
        nameservers=tuple(cfg.dns_servers) or tuple(dict.fromkeys(servers)),
        replace_servers=bool(cfg.dns_servers),
        search=tuple(cfg.dns_search) or ((DNS_DOMAIN,) if servers else ()),
        replace_search=bool(cfg.dns_search),
        options=tuple(cfg.dns_options),
        add_hosts=tuple(cfg.add_hosts),
        no_hosts=cfg.no_hosts,
    )


# --- what inspect shows ----------------------------------------------------------------------
_ENDPOINT_EMPTY: dict[str, Any] = {
    "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "",
}  # fmt: skip


def port_bindings(c: Container) -> dict[str, list[dict[str, str]]]:
    """{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}: inspect's Ports and PortBindings."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in c.config.ports:
        for i in range(int(p.get("range") or 1)):
            for proto in str(p.get("protocol") or "tcp").split(","):
                key = f"{int(p['container_port']) + i}/{proto}"
                out.setdefault(key, []).append(
                    {"HostIp": p.get("host_ip") or "", "HostPort": str(int(p["host_port"]) + i)}
                )
    return out


def _endpoint(result: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(_ENDPOINT_EMPTY)
    out["MacAddress"] = result.get("mac_address", "")
    for sub in result.get("subnets") or ():
        ip, _, prefix = str(sub.get("ipnet", "")).partition("/")
        if ":" in ip:
            if not out["GlobalIPv6Address"]:
                out.update(GlobalIPv6Address=ip, GlobalIPv6PrefixLen=int(prefix or 0),
                           IPv6Gateway=sub.get("gateway", ""))  # fmt: skip
        elif not out["IPAddress"]:
            out.update(IPAddress=ip, IPPrefixLen=int(prefix or 0), Gateway=sub.get("gateway", ""))
    return out


def network_settings(c: Container) -> dict[str, Any]:
    """inspect's NetworkSettings, as podman 4.3 fills it."""
    from pypod.network.types import DEFAULT_NETWORK

    results = c.state.get("networks") or {} if c.status in ("running", "paused") else {}
    mode = c.config.network or default_mode()
    top = dict(_ENDPOINT_EMPTY)
    networks: dict[str, Any] = {}
    if mode == "bridge":
        for name, opts in c.config.networks.items():
            endpoint = _endpoint(results.get(name) or {})
            if name == DEFAULT_NETWORK and len(c.config.networks) == 1:
                top.update(endpoint)
            networks[name] = {
                **endpoint,
                "NetworkID": name,
                "DriverOpts": None,
                "IPAMConfig": None,
                "Links": None,
                "Aliases": [*opts.get("aliases", ()), c.id[:12]],
            }
    out: dict[str, Any] = {
        **{k: top[k] for k in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen",
                               "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen",
                               "MacAddress")},
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": port_bindings(c),
        "SandboxKey": c.state.get("netns") or c.state.get("netns_join") or ""
        if c.status in ("running", "paused") else "",
    }  # fmt: skip
    if networks:
        out["Networks"] = networks
    return out
