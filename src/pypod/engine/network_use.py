"""What the network commands ask of containers: who uses a network, connect, disconnect,
reload (podman's `network rm`, `connect`, `disconnect`, `reload`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from pypod.engine import networking
from pypod.engine.config import to_json
from pypod.engine.containers import Engine
from pypod.engine.rootless import is_rootless
from pypod.engine.state import Container
from pypod.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from pypod.record import replace

LIVE = ("running", "paused")


def containers_using(graphroot: str, runroot: str, network: str) -> list[str]:
    """The IDs of the containers configured on `network` (running or not)."""
    with Engine(graphroot, runroot) as eng:
        return [c.id for c in eng.containers() if _on(c, network)]


def _on(c: Container, network: str) -> bool:
    return c.config.network in ("", "bridge") and network in c.config.networks


def remove_containers(graphroot: str, runroot: str, ids: Iterable[str]) -> None:
    """`network rm -f`: its containers go first (stopped, removed)."""
    with Engine(graphroot, runroot) as eng:
        for cid in ids:
            with contextlib.suppress(NotFound):
                eng.remove(cid, force=True, volumes=False)


def _save_config(eng: Engine, c: Container) -> None:
    eng.db.execute(
        "UPDATE containers SET config = ?, state = ? WHERE id = ?",
        (eng.db.dumps(to_json(c.config)), eng.db.dumps(c.state), c.id),
    )


def connect(graphroot: str, runroot: str, network: str, container: str, *,
            aliases: tuple[str, ...] = (), ip: str | None = None,
            mac: str | None = None) -> None:  # fmt: skip
    """Put `container` on `network` too (at once when it runs, else from its next start)."""
    with Engine(graphroot, runroot) as eng:
        c = eng.lookup(container)
        net = networking.networks_store(eng).get(network)
        with eng.locked(c.id):
            c = eng.sync(eng.lookup(c.id))
            if c.config.network not in ("", "bridge"):
                raise InvalidArgument(
                    f"network mode {c.config.network} of container {c.name} cannot be connected "
                    "to a network: it is not bridge: invalid argument"
                )
            if net.name in c.config.networks:
                raise AlreadyExists(f"container {c.id} is already connected to network {net.name}")
            taken = {o.get("interface_name") for o in c.config.networks.values()}
            index = 0
            while f"eth{index}" in taken:
                index += 1
            entry = {"interface_name": f"eth{index}", "static_ips": [ip] if ip else [],
                     "static_mac": mac or "", "aliases": list(aliases)}  # fmt: skip
            networks = {**c.config.networks, net.name: entry}
            c.config = replace(c.config, networks=networks)
            if c.status in LIVE and c.state.get("netns"):
                opts, nets = networking.setup_options(eng, c, c.state["netns"],
                                                      only={net.name: entry})  # fmt: skip
                if is_rootless():  # in the rootless network namespace, where its bridges are
                    from pypod.network import rootless_netns

                    fresh = rootless_netns.connect(opts, nets, networking.state_dir(eng))
                else:
                    from pypod.network import setup as netsetup
                    from pypod.network.types import to_json as net_json

                    results = netsetup.setup(opts, nets, networking.state_dir(eng))
                    fresh = {k: net_json(v) for k, v in results.items()}
                c.state["networks"] = {**(c.state.get("networks") or {}), **fresh}
            with eng.db.transaction():
                _save_config(eng, c)
                eng.event("network", "connect", net.id, net.name, {"container": c.id})


def disconnect(graphroot: str, runroot: str, network: str, container: str,
               force: bool = False) -> None:  # fmt: skip
    """Take `container` off `network` (at once when it runs)."""
    with Engine(graphroot, runroot) as eng:
        c = eng.lookup(container)
        net = networking.networks_store(eng).get(network)
        with eng.locked(c.id):
            c = eng.sync(eng.lookup(c.id))
            if net.name not in c.config.networks:
                raise NotFound(f"container {c.id} is not connected to network {net.name}")
            if c.status in LIVE and c.state.get("netns"):
                if net.name in (c.state.get("networks") or {}):
                    only = {net.name: c.config.networks[net.name]}
                    opts, nets = networking.setup_options(eng, c, c.state["netns"], only=only)
                    if is_rootless():
                        from pypod.network import rootless_netns

                        rootless_netns.disconnect(opts, nets, networking.state_dir(eng))
                    else:
                        from pypod.network import setup as netsetup

                        netsetup.teardown(opts, nets, networking.state_dir(eng))
                    c.state["networks"] = {
                        k: v for k, v in (c.state.get("networks") or {}).items() if k != net.name
                    }
            elif c.status in LIVE and not force:
                raise InvalidState(f"container {c.name} has no network namespace of its own")
            networks = {k: v for k, v in c.config.networks.items() if k != net.name}
            c.config = replace(c.config, networks=networks)
            with eng.db.transaction():
                _save_config(eng, c)
                eng.event("network", "disconnect", net.id, net.name, {"container": c.id})


def reload(graphroot: str, runroot: str, containers: list[str], every: bool) -> list[str]:
    """Re-create the firewall rules of running containers (after `nft flush ruleset`)."""
    from pypod.network import setup as netsetup
    from pypod.network.types import IfaceSubnet, NetResult

    done: list[str] = []
    with Engine(graphroot, runroot) as eng:
        targets = eng.containers() if every else [eng.lookup(x) for x in containers]
        entries = []
        for c in targets:
            c = eng.sync(c)
            if c.status not in LIVE or not c.state.get("netns"):
                if not every:
                    raise InvalidState(
                        "cannot reload network unless container network has been configured: "
                        "container state improper"
                    )
                continue
            if c.config.network not in ("", "bridge"):
                continue
            opts, nets = networking.setup_options(eng, c, c.state["netns"])
            results = {
                name: NetResult(
                    interface=r.get("interface", ""),
                    mac_address=r.get("mac_address", ""),
                    subnets=tuple(IfaceSubnet(**s) for s in r.get("subnets") or ()),
                    dns_server_ips=tuple(r.get("dns_server_ips") or ()),
                    dns_search_domains=tuple(r.get("dns_search_domains") or ()),
                )
                for name, r in (c.state.get("networks") or {}).items()
            }
            entries.append((opts, nets, results))
            done.append(c.id)
        if is_rootless():
            from pypod.network import rootless_netns

            rootless_netns.reload(networking.state_dir(eng), entries)
        else:
            netsetup.reload(networking.state_dir(eng), entries)
    return done
