"""Bridge networks for rootless containers: one shared "rootless-netns" per rootless engine.

What podman 4 does: a rootless user cannot put a bridge, veths or nftables rules in the host's
network namespace, so they live in a network namespace of the user's own, made inside the
rootless user namespace and kept by a bind mount at `<runroot>/netns/rootless-netns`.  A pasta
(`pasta --config-net --netns PATH`) attached to it is the way out: it copies the host's
address and default route into the namespace and carries what leaves it through the host's
sockets.  Inside it live the networks' bridges, the `inet pypod` nftables table and the DNS
responder; each container's own namespace gets a veth into a bridge there, set up by
`pypod.network.setup` exactly as for root.

The setup code works on "the host" = the caller's network namespace, so `run_in` runs it in a
forked child that joined the rootless-netns (its `nft` subprocesses and the DNS responder's
double fork inherit it) and mounted a sysfs of that namespace on a private /sys (the bridge
port files under /sys/class/net are the mounting namespace's).  A child, not a thread: a
process in the rootless user namespace cannot go back to the host's network namespace, and a
thread cannot have a mount namespace of its own.

Published ports: pasta cannot add ports to a running instance, and restarting the
namespace's pasta with a longer port list would cut every connection of every container
(outbound ones too).  So each container publishing ports gets a pasta of its own attached to
the rootless-netns with only those ports (`-t HOST_PORT`, tap down, nothing configured): a
connection to 127.0.0.1:HOST_PORT on the host is spliced by it to 127.0.0.1:HOST_PORT in the
rootless-netns, where the ordinary DNAT rules (`firewall.py`'s output chain) take it to the
container.  It starts and ends with its container, so no other container is disturbed.
(slirp4netns's `add_hostfwd` could add ports at run time, but its throughput is a fraction of
pasta's.)  Connections from the host to its other addresses are not forwarded (pasta only
splices loopback ones without a configured tap).

Without pasta installed, slirp4netns is the way out (`helper`): its tap gets 10.0.2.100/24
in the rootless-netns, and a container's published ports are added to it at run time through
its API socket (`add_hostfwd` host port -> 10.0.2.100:host port, where the DNAT rules take
them; `remove_hostfwd` when the container goes), reachable on every host address.

The rootless-netns (its pasta, and the namespace) goes away when its last container goes;
the containers using it are listed in `rootless-netns.users`, changed under
`rootless-netns.lock`, both next to the namespace file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from pypod.errors import CommandNotFound, InvalidState, NotSupported, PypodError
from pypod.network.types import NetResult, Network, PortMapping, SetupOptions

T = TypeVar("T")

NAME = "rootless-netns"
#: the pasta recorded for the rootless-netns (its `rootless_net.start` info)
_INFO = NAME + ".json"
_USERS = NAME + ".users"
_LOCK = NAME + ".lock"
#: the port forwarder of a container, in its run directory
PORTS_INFO = "rootless-ports.json"
READY_TIMEOUT = 10.0


class RootlessNetnsError(PypodError):
    """The rootless network namespace or one of its helpers could not be set up."""


def directory(runroot: str) -> str:
    return os.path.join(os.path.abspath(runroot), "netns")


def path(runroot: str) -> str:
    """Where the rootless-netns of the engine with run root `runroot` is kept."""
    return os.path.join(directory(runroot), NAME)


def exists(runroot: str) -> bool:
    """Whether the rootless-netns is there (the bind mount of a namespace)."""
    return os.path.ismount(path(runroot))


@contextlib.contextmanager
def locked(runroot: str) -> Iterator[None]:
    """Hold the rootless-netns lock (its creation, users and removal)."""
    os.makedirs(directory(runroot), mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory(runroot), _LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- running code in the rootless-netns --------------------------------------------------------
def run_in(runroot: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in a forked child in the rootless-netns of `runroot` (None: in a
    new empty network namespace, for releasing what a vanished rootless-netns held), its
    result; the child's PypodError is raised again (same class when it can be).  The result
    must be JSON data (the child sends it through a pipe)."""
    target = path(runroot) if runroot is not None else None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(read_end)
            try:
                _enter(target)
                out: dict[str, Any] = {"ok": fn(*args, **kwargs)}
            except PypodError as e:
                out = {"error": type(e).__name__, "message": str(e), "errno": e.errno}
            except BaseException as e:  # reported to the parent, which raises
                out = {"error": "PypodError", "message": f"rootless network setup: {e!r}"}
            view = memoryview(json.dumps(out).encode())
            while view:
                view = view[os.write(write_end, view) :]
        except BaseException:  # nothing can be reported: the parent sees EOF
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    try:
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not chunks:
        raise RootlessNetnsError(
            f"rootless network setup in {target or 'a new network namespace'} failed: its "
            "process ended without a word"
        )
    out = json.loads(b"".join(chunks))
    if "error" in out:
        raise _error(out)
    result: T = out["ok"]
    return result


def _error(out: Mapping[str, Any]) -> PypodError:
    import pypod.errors

    cls = getattr(pypod.errors, str(out["error"]), None)
    if not (isinstance(cls, type) and issubclass(cls, PypodError)):
        cls = RootlessNetnsError if out["error"] == RootlessNetnsError.__name__ else PypodError
    try:
        error = cls(out["message"])
    except TypeError:  # an error class with other arguments
        error = PypodError(out["message"])
    if out.get("errno") is not None:
        error.errno = int(out["errno"])
    return error


def _enter(target: str | None) -> None:  # pragma: no cover - runs in the child
    """Join the network namespace at `target` (None: a new one), with a sysfs of it on a
    /sys of this process's own (a mount namespace that still receives the parent's mounts)."""
    from pypod.linux import netns
    from pypod.linux import syscalls as sc

    if target is None:
        sc.unshare(sc.CLONE_NEWNET)
        netns.set_link_up("lo")
    else:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, sc.CLONE_NEWNET)
        finally:
            os.close(fd)
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE, None)
    sc.mount("sysfs", "/sys", "sysfs", sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_NODEV, None)


# --- the namespace and its pasta ---------------------------------------------------------------
def ensure(runroot: str) -> str:
    """The rootless-netns of `runroot`, made (with its pasta) when missing, its pasta started
    again when it died; its path.  Call with `locked(runroot)` held."""
    from pypod.linux import netns
    from pypod.network import rootless_net

    ns = path(runroot)
    if not exists(runroot):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ns)  # a file whose mount went (the pause process was restarted)
        _forget_pasta(runroot)
        netns.create(ns)
    info = _pasta_info(runroot)
    if info is not None and _alive(info):
        return ns
    try:
        info = rootless_net.start(helper(), ns, NAME, (), (), _pasta_dir(runroot))
    except PypodError as e:
        if not _users(runroot):
            _remove_netns_file(ns)
        raise RootlessNetnsError(
            f"cannot connect the rootless network namespace {ns} to the host: {e}"
        ) from e
    from pypod.atomic import write_atomic

    write_atomic(os.path.join(directory(runroot), _INFO), json.dumps(info).encode(), mode=0o600)
    return ns


def remove_if_unused(runroot: str) -> bool:
    """Stop the pasta and remove the rootless-netns when no container uses it; whether it is
    gone.  Call with `locked(runroot)` held."""

    if _users(runroot):
        return False
    _forget_pasta(runroot)
    _remove_netns_file(path(runroot))
    return not os.path.exists(path(runroot))


def _remove_netns_file(ns: str) -> None:
    """Unmount and delete the namespace file `ns`; only delete it when nothing is mounted
    there any more (the rootless user namespace it was mounted in was killed)."""
    from pypod.linux import netns

    if os.path.ismount(ns):
        with contextlib.suppress(PypodError, OSError):
            netns.remove(ns)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ns)


def helper() -> str:
    """What connects the rootless-netns to the host: pasta, or slirp4netns without it."""
    if shutil.which("pasta"):
        return "pasta"
    if shutil.which("slirp4netns"):
        return "slirp4netns"
    raise CommandNotFound(
        "neither pasta nor slirp4netns is in $PATH: install Debian's 'passt' (or "
        "'slirp4netns') package for the networks of rootless containers"
    )


def _pasta_dir(runroot: str) -> str:
    return os.path.join(directory(runroot), NAME + ".d")


def _pasta_info(runroot: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(directory(runroot), _INFO)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _forget_pasta(runroot: str) -> None:
    from pypod.network import rootless_net

    info = _pasta_info(runroot)
    if info is not None:
        rootless_net.stop(info)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory(runroot), _INFO))
    shutil.rmtree(_pasta_dir(runroot), ignore_errors=True)


def _alive(info: Mapping[str, Any]) -> bool:
    from pypod.linux.userns import process_start

    pid = info.get("pid")
    return isinstance(pid, int) and pid > 0 and process_start(pid) == info.get("start_time")


# --- the containers that use it ----------------------------------------------------------------
def _users(runroot: str) -> dict[str, str]:
    """{container id: its network namespace} of the containers on the rootless-netns, those
    whose namespace is gone left out (killed with the rootless user namespace, say)."""
    try:
        with open(os.path.join(directory(runroot), _USERS)) as f:
            users = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(users, dict):
        return {}
    return {str(c): str(ns) for c, ns in users.items() if os.path.ismount(str(ns))}


def _set_users(runroot: str, users: Mapping[str, str]) -> None:
    from pypod.atomic import write_atomic

    where = os.path.join(directory(runroot), _USERS)
    if users:
        write_atomic(where, json.dumps(dict(sorted(users.items()))).encode(), mode=0o600)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(where)


def _without(runroot: str, container_id: str) -> dict[str, str]:
    return {c: ns for c, ns in _users(runroot).items() if c != container_id}


def users(runroot: str) -> list[str]:
    """The ids of the containers on the rootless-netns."""
    return sorted(_users(runroot))


# --- what the engine calls ---------------------------------------------------------------------
def setup(
    opts: SetupOptions, networks: Mapping[str, Network], runroot: str, rundir: str
) -> dict[str, Any]:
    """`pypod.network.setup.setup` for a rootless container (its namespace at `opts.netns`),
    done in the rootless-netns (made when needed), plus the forwarder of its published ports;
    the NetResults as JSON.  `rundir`: the container's run directory (the forwarder's files).
    Nothing is left behind when it fails."""
    from pypod.network import setup as netsetup
    from pypod.network.types import to_json

    def in_ns() -> dict[str, Any]:
        results = netsetup.setup(opts, networks, runroot)
        return {name: to_json(r) for name, r in results.items()}

    with locked(runroot):
        ns = ensure(runroot)
        _set_users(runroot, {**_users(runroot), opts.container_id: opts.netns})
        try:
            results = run_in(runroot, in_ns)
        except BaseException:
            _set_users(runroot, _without(runroot, opts.container_id))
            remove_if_unused(runroot)
            raise
    if opts.port_mappings:
        try:
            info = _pasta_info(runroot) or {}
            if info.get("kind") == "slirp4netns":
                add_hostfwds(str(info.get("api_socket")), opts.container_id,
                             opts.port_mappings, rundir)  # fmt: skip
            else:
                start_forwarder(ns, opts.container_id, opts.port_mappings, rundir)
        except BaseException:
            teardown(opts, networks, runroot, rundir)
            raise
    return results


def teardown(
    opts: SetupOptions | None,
    networks: Mapping[str, Network],
    runroot: str,
    rundir: str,
    *,
    container_id: str = "",
    namespace_going: bool = False,
) -> None:
    """Undo `setup` (idempotent): the port forwarder, `pypod.network.setup.teardown` in the
    rootless-netns (or, when it vanished, in an empty namespace: leases and DNS records are
    files), the container's place on the rootless-netns, and the namespace with its last
    container.  `opts` None (its networks are not known any more): only the last two."""
    stop_forwarder(rundir)
    cid = opts.container_id if opts is not None else container_id
    with locked(runroot):
        failure: PypodError | None = None
        if opts is not None:
            from pypod.network import setup as netsetup

            try:
                run_in(
                    runroot if exists(runroot) else None,
                    netsetup.teardown,
                    opts,
                    networks,
                    runroot,
                    namespace_going=namespace_going,
                )
            except PypodError as e:
                failure = e
        _set_users(runroot, _without(runroot, cid))
        remove_if_unused(runroot)
    if opts is not None and not os.path.ismount(opts.netns):
        # a container namespace file whose mount went with a killed rootless user namespace
        with contextlib.suppress(FileNotFoundError):
            os.unlink(opts.netns)
    if failure is not None:
        raise failure


def connect(opts: SetupOptions, networks: Mapping[str, Network], runroot: str) -> dict[str, Any]:
    """`pypod network connect` of a running rootless container (on the rootless-netns):
    `pypod.network.setup.setup` of `opts.networks` in there; the NetResults as JSON."""
    from pypod.network import setup as netsetup
    from pypod.network.types import to_json

    def in_ns() -> dict[str, Any]:
        results = netsetup.setup(opts, networks, runroot)
        return {name: to_json(r) for name, r in results.items()}

    with locked(runroot):
        if not exists(runroot) or opts.container_id not in _users(runroot):
            raise InvalidState(
                f"container {opts.container_id[:12]} is not on a bridge network: only a "
                "container started on one can be connected to another while it runs"
            )
        ensure(runroot)  # its pasta, should it have died
        result: dict[str, Any] = run_in(runroot, in_ns)
        return result


def disconnect(opts: SetupOptions, networks: Mapping[str, Network], runroot: str) -> None:
    """`pypod network disconnect` of a running rootless container: `pypod.network.setup.
    teardown` of `opts.networks` in the rootless-netns (which stays: the container is on it)."""
    from pypod.network import setup as netsetup

    with locked(runroot):
        target = runroot if exists(runroot) else None
        run_in(target, netsetup.teardown, opts, networks, runroot)


def reload(
    runroot: str,
    entries: Sequence[tuple[SetupOptions, Mapping[str, Network], dict[str, NetResult]]],
) -> None:
    """`pypod network reload` rootless: the firewall rules of `entries` made again in the
    rootless-netns, whose pasta is started again should it have died."""
    from pypod.network import setup as netsetup

    with locked(runroot):
        if not exists(runroot) or not _users(runroot):
            return
        ensure(runroot)
        run_in(runroot, netsetup.reload, runroot, list(entries))


# --- published ports -------------------------------------------------------------------------
def forwarder_args(
    ns: str, container_id: str, ports: Sequence[PortMapping], pid_file: str
) -> list[str]:
    """The port forwarder's pasta arguments: each host port to the same port of the
    rootless-netns, on a tap of its own that stays down."""
    args = ["--netns", ns, "-I", "pf" + container_id[:12]]
    tcp: list[str] = []
    udp: list[str] = []
    for p in ports:
        last = p.host_port + max(p.range, 1) - 1
        spec = f"{p.host_port}" if last == p.host_port else f"{p.host_port}-{last}"
        if p.host_ip:
            spec = f"{p.host_ip}/{spec}"
        for proto in p.protocol.split(","):
            if proto == "tcp":
                tcp.append(spec)
            elif proto == "udp":
                udp.append(spec)
            else:
                raise NotSupported(f"'-p .../{proto}' is not supported rootless: tcp or udp")
    for flag, specs in (("-t", tcp), ("-u", udp)):
        for spec in specs or ["none"]:
            args += [flag, spec]
    args += ["-T", "none", "-U", "none", "--no-dhcp", "--no-dhcpv6", "--no-ndp", "--no-ra"]
    return [*args, "--pid", pid_file, "--quiet"]


def start_forwarder(
    ns: str, container_id: str, ports: Sequence[PortMapping], rundir: str
) -> dict[str, Any]:
    """Start the pasta that forwards the container's published host ports to the
    rootless-netns; what `stop_forwarder` needs (also written to `rundir`)."""
    from pypod.atomic import write_atomic
    from pypod.linux.userns import process_start

    exe = shutil.which("pasta")
    if exe is None:
        raise CommandNotFound(
            "pasta not found in $PATH: install Debian's 'passt' package to publish ports of "
            "rootless containers on bridge networks"
        )
    os.makedirs(rundir, mode=0o700, exist_ok=True)
    pid_file = os.path.join(rundir, "pasta-ports.pid")
    argv = [exe, *forwarder_args(ns, container_id, ports, pid_file)]
    from pypod.network import rootless_net

    try:
        pid = rootless_net.run_pasta(argv, pid_file, os.path.join(rundir, "pasta-ports.log"))
    except rootless_net.NetworkHelperError as e:
        raise RootlessNetnsError(
            f"cannot publish the ports of container {container_id[:12]}: {e}"
        ) from None
    info = {"kind": "pasta", "pid": pid, "start_time": process_start(pid), "pid_file": pid_file}
    write_atomic(os.path.join(rundir, PORTS_INFO), json.dumps(info).encode(), mode=0o600)
    return info


def add_hostfwds(
    api_socket: str, container_id: str, ports: Sequence[PortMapping], rundir: str
) -> dict[str, Any]:
    """With slirp4netns as the rootless-netns' way out: forward the container's published
    host ports to the same ports of its tap address (10.0.2.100), where the DNAT rules take
    them to the container (slirp4netns adds and removes them at run time, through its API
    socket); what `stop_forwarder` needs (also written to `rundir`)."""
    from pypod.atomic import write_atomic

    ids: list[int] = []
    info: dict[str, Any] = {"kind": "slirp4netns-hostfwd", "socket": api_socket, "ids": ids}
    try:
        for p in ports:
            for proto in p.protocol.split(","):
                if proto not in ("tcp", "udp"):
                    raise NotSupported(f"'-p .../{proto}' is not supported rootless: tcp or udp")
                for i in range(max(p.range, 1)):
                    ids.append(
                        _hostfwd(api_socket, container_id, proto, p.host_ip, p.host_port + i)
                    )
    except BaseException:
        _remove_hostfwds(info)
        raise
    os.makedirs(rundir, mode=0o700, exist_ok=True)
    write_atomic(os.path.join(rundir, PORTS_INFO), json.dumps(info).encode(), mode=0o600)
    return info


def _hostfwd(api_socket: str, container_id: str, proto: str, host_ip: str, port: int) -> int:
    from pypod.network.rootless_net import SLIRP_CIDR, _slirp_api

    guest = SLIRP_CIDR.rsplit(".", 1)[0] + ".100"
    request = {
        "execute": "add_hostfwd",
        "arguments": {"proto": proto, "host_addr": host_ip or "0.0.0.0", "host_port": port,
                      "guest_addr": guest, "guest_port": port},
    }  # fmt: skip
    try:
        reply = _slirp_api(api_socket, request)
    except (OSError, ValueError) as e:
        reply = {"error": {"desc": str(e)}}
    if "error" in reply or not isinstance(reply.get("return"), dict):
        raise RootlessNetnsError(
            f"cannot publish the ports of container {container_id[:12]}: slirp4netns: "
            f"{host_ip or '0.0.0.0'}:{port}/{proto}: {reply.get('error', reply)}"
        )
    return int(reply["return"]["id"])


def _remove_hostfwds(info: Mapping[str, Any]) -> None:
    from pypod.network.rootless_net import _slirp_api

    for id_ in info.get("ids") or ():
        with contextlib.suppress(OSError, ValueError):
            _slirp_api(str(info["socket"]), {"execute": "remove_hostfwd",
                                             "arguments": {"id": id_}})  # fmt: skip


def stop_forwarder(rundir: str) -> None:
    """Stop the container's port forwarder (or remove its slirp4netns forwards), if it has one
    (idempotent)."""
    from pypod.network import rootless_net

    where = os.path.join(rundir, PORTS_INFO)
    try:
        with open(where) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return
    if isinstance(info, dict) and info.get("kind") == "slirp4netns-hostfwd":
        _remove_hostfwds(info)
    elif isinstance(info, dict):
        rootless_net.stop(info)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(where)
