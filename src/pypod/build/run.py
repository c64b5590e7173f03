"""RUN and `pypod-build run`: a command in a working container's root, as buildah 1.28 runs it.

:func:`run_in_rootfs` writes an OCI bundle whose root is the given directory, in a private
directory below the runroot (never in the rootfs), and runs it in the foreground with pypod's
runtime (a state root of its own below the runroot).  The process is resolved as buildah does:
the image's Env then the step's, `PATH` and `HOME` (the user's, from the container's
/etc/passwd) and `HOSTNAME` when missing; the user `User`/`--user` with runc's rules; the
working directory created when missing (and kept, as buildah keeps it); buildah's default
capabilities (none effective for a user other than root); the open-files and process limits
at the caller's hard limit (at most 1048576).

Mounts: /proc, /dev (tmpfs, with /dev/pts, /dev/shm, /dev/mqueue), /sys read-only, the
container's cgroups, then generated /etc/hostname, /etc/hosts, /etc/resolv.conf and
/run/.containerenv (:mod:`pypod.build.run_etc`), then the step's `--mount`s and `-v`s
(:mod:`pypod.build.run_mounts`).  Mount points the run had to create in the rootfs (a missing
/run, /etc/hosts, a `--mount` target...) are removed afterwards when they are still empty, so
that they do not end up in the layer (buildah 1.28 leaves them; Docker and newer buildah do
not).

Isolation "oci": new pid, mount, ipc, uts namespaces, and a network namespace unless the
network is "host".  "chroot": only mount and uts namespaces (buildah's chroot isolation:
chroot, a mount namespace, its own hostname), the host's processes visible.  Both get
buildah's default seccomp profile (podman's, :mod:`pypod.config.seccomp_default`) for
buildah's capabilities, as `buildah run` applies it with either isolation.

Network "host" (the default of pypod's builds: buildah's would configure a network, the build
layer has none to configure): the host's network.  "none" and "private": a network namespace
of its own with only the loopback interface, up (the runtime brings it up in a network
namespace it creates, as runc does), so a step can serve and fetch on 127.0.0.1.

Rootless (a regular user's `pypod build`, already in the user's namespace, the pause
process's): the same spec, adapted by :func:`pypod.runtime.rootless_spec.adapt` (no cgroup
where none is delegated, /proc bound from the host with chroot isolation...); the runtime
binds device nodes, /sys and /dev/mqueue itself where it may not make or mount them.

Nothing stays behind: the container's mounts live in its mount namespace, the runtime's state
and the private directory are removed when the command ends, fails to start or is
interrupted.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets as secrets_mod
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pypod.build.run_mounts import parse_mounts, prepare_mounts
from pypod.build.run_stubs import make_stubs, remove_stubs
from pypod.errors import CannotInvoke, CommandNotFound, InvalidArgument, PypodError
from pypod.record import field, record

if TYPE_CHECKING:
    from pypod.build.builder import Builder

__all__ = ["BUILDAH_CAPABILITIES", "DEFAULT_PATH", "RunOptions", "run", "run_in_rootfs"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: what `buildah run` gives the process (containers.conf's defaults plus buildah's own)
BUILDAH_CAPABILITIES = (
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
    "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
)  # fmt: skip
#: buildah's default for RLIMIT_NOFILE and RLIMIT_NPROC, lowered to the caller's hard limit
_RLIMIT_DEFAULT = 1048576
_NETWORKS = ("host", "none", "private")
_ISOLATIONS = ("oci", "chroot")
_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]


@record
class RunOptions:
    argv: tuple[str, ...]
    #: "K=V" over the image's Env ("K" alone: the caller's value of K, if any)
    env: tuple[str, ...] = ()
    #: default: the config's User ("" → root)
    user: str | None = None
    #: default: the config's WorkingDir ("" → /); created if missing
    workdir: str | None = None
    #: default: the first 12 characters of `container_id` (a random one without)
    hostname: str | None = None
    #: -v SRC:DST[:ro,rw,z,Z,...]
    volumes: tuple[str, ...] = ()
    #: RUN --mount=type=bind|cache|tmpfs|secret,...
    mounts: tuple[str, ...] = ()
    #: "host" | "none" | "private" (a network namespace of its own, loopback only)
    network: str = "host"
    #: "oci" (namespaces) | "chroot" (mount and uts namespaces only)
    isolation: str = "oci"
    terminal: bool = False
    #: where a bind mount's source is taken (a build's context); None: absolute host paths
    context_dir: str | None = None
    #: `--mount from=<stage|image>` → a mounted root filesystem
    stage_roots: Mapping[str, str] = field(default_factory=dict)
    #: secret id → host file
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: where type=cache directories live (`<graphroot>/build-cache`)
    cache_root: str | None = None
    #: file descriptors for the command's stdio; None: ours
    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    #: the working container (for the hostname and /run/.containerenv); `run` fills these
    container_id: str = ""
    name: str = ""
    image: str = ""
    image_id: str = ""


def run(builder: Builder, opts: RunOptions) -> int:
    """Run `opts.argv` in the builder's container (mounted for the run); its exit code."""
    from pypod.record import replace

    rootfs = builder.mount()
    try:
        store = builder.store
        cache_root = opts.cache_root or os.path.join(store.graphroot, "build-cache")
        full = replace(
            opts,
            cache_root=cache_root,
            container_id=opts.container_id or builder.container_id,
            name=opts.name or builder.name,
            image=opts.image or builder.from_image,
            image_id=opts.image_id or builder.from_image_id,
        )
        return run_in_rootfs(rootfs, builder.config, full, runroot=store.runroot)
    finally:
        builder.unmount()


def run_in_rootfs(rootfs: str, config: Mapping[str, Any], opts: RunOptions, *, runroot: str) -> int:
    """Run `opts.argv` with `rootfs` as its root and `config` (a Docker-style image config:
    Env, User, WorkingDir) as its defaults; the command's exit code (128+N when killed by
    signal N).  CommandNotFound / CannotInvoke when it cannot be started, with buildah's
    messages.  Nothing is left mounted or in the runtime's state afterwards."""
    _check_options(opts)
    rootfs = os.path.abspath(rootfs)
    if not os.path.isdir(rootfs):
        raise InvalidArgument(f"the container's root {rootfs} is not a directory")
    workdir = _workdir(opts, config)
    user = _user(rootfs, opts, config)
    parsed = parse_mounts(
        opts.volumes,
        opts.mounts,
        workdir=workdir,
        context_dir=opts.context_dir,
        stage_roots=opts.stage_roots,
    )
    from pypod.runtime import rootless_spec

    rootless = rootless_spec.is_rootless()
    run_id = secrets_mod.token_hex(32)
    container_id = opts.container_id or run_id
    hostname = opts.hostname or container_id[:12]
    env = _environment(config, opts, home=user.home, hostname=hostname)
    private = os.path.join(runroot, "build-run", run_id)
    os.makedirs(os.path.dirname(private), mode=0o700, exist_ok=True)
    os.mkdir(private, 0o700)
    stubs = None
    try:
        with prepare_mounts(
            parsed, private_dir=private, cache_root=opts.cache_root, secrets=opts.secrets
        ) as prepared:
            from pypod.build.run_etc import write_etc_files

            etc_dir = os.path.join(private, "etc")
            os.mkdir(etc_dir, 0o755)
            etc = write_etc_files(
                etc_dir,
                hostname=hostname,
                network=opts.network,
                container_id=container_id,
                name=opts.name,
                image=opts.image,
                image_id=opts.image_id,
                rootless=rootless,
                skip=frozenset(m.destination for m in parsed),
            )
            etc_mounts = [
                {"destination": dest, "type": "bind", "source": src,
                 "options": ["rbind", "rprivate"]}
                for dest, src in etc.items()
            ]  # fmt: skip
            spec = _spec(
                rootfs,
                opts,
                argv=list(opts.argv),
                env=env,
                cwd=workdir,
                user=user,
                hostname=hostname,
                mounts=[*etc_mounts, *prepared.mounts],
                run_id=run_id,
            )
            if rootless:
                rootless_spec.adapt(spec)
            stubs = make_stubs(rootfs, spec["mounts"])
            from pypod.oci.runtime_defaults import dump_spec_json

            with open(os.path.join(private, "config.json"), "w") as f:
                f.write(dump_spec_json(spec))
            return _run_bundle(private, run_id, opts, runroot=runroot)
    finally:
        if stubs is not None:
            remove_stubs(rootfs, stubs)
        shutil.rmtree(private, ignore_errors=True)


# --------------------------------------------------------------------------- the process


def _check_options(opts: RunOptions) -> None:
    if not opts.argv:
        raise InvalidArgument("no command given to run: give the command and its arguments")
    if opts.network not in _NETWORKS:
        raise InvalidArgument(
            f'network "{opts.network}" is not known to builds: use host, none or private'
        )
    if opts.isolation not in _ISOLATIONS:
        raise InvalidArgument(f'isolation "{opts.isolation}" is not known: use oci or chroot')


def _workdir(opts: RunOptions, config: Mapping[str, Any]) -> str:
    workdir = opts.workdir if opts.workdir is not None else str(config.get("WorkingDir") or "")
    return "/" + os.path.normpath("/" + (workdir or "/")).lstrip("/")


def _user(rootfs: str, opts: RunOptions, config: Mapping[str, Any]) -> Any:
    from pypod.runtime.users import lookup_user, read_etc_file

    spec = opts.user if opts.user is not None else str(config.get("User") or "")
    passwd = read_etc_file(rootfs, "/etc/passwd")
    group = read_etc_file(rootfs, "/etc/group")
    return lookup_user(spec, passwd=passwd, group=group)


def _environment(
    config: Mapping[str, Any], opts: RunOptions, *, home: str, hostname: str
) -> list[str]:
    """The image's Env, the step's over it (same key replaced), then PATH, HOSTNAME, HOME."""
    merged: dict[str, str] = {}
    for item in config.get("Env") or ():
        key, _, value = str(item).partition("=")
        merged[key] = value
    for item in opts.env:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH.partition("=")[2])
    merged.setdefault("HOSTNAME", hostname)
    merged.setdefault("HOME", home or "/")
    return [f"{k}={v}" for k, v in merged.items()]


def _rlimits() -> list[dict[str, Any]]:
    out = []
    for name, which in (("RLIMIT_NOFILE", resource.RLIMIT_NOFILE),
                        ("RLIMIT_NPROC", resource.RLIMIT_NPROC)):  # fmt: skip
        hard = resource.getrlimit(which)[1]
        limit = _RLIMIT_DEFAULT if hard == resource.RLIM_INFINITY else min(hard, _RLIMIT_DEFAULT)
        out.append({"type": name, "hard": limit, "soft": limit})
    return out


def _spec(
    rootfs: str,
    opts: RunOptions,
    *,
    argv: list[str],
    env: list[str],
    cwd: str,
    user: Any,
    hostname: str,
    mounts: list[dict[str, Any]],
    run_id: str,
) -> dict[str, Any]:
    from pypod.config import seccomp_profile
    from pypod.oci.runtime_defaults import default_spec

    spec = default_spec()
    caps = list(BUILDAH_CAPABILITIES)
    effective = caps if user.uid == 0 else []
    groups = [user.gid, *(g for g in user.sgids if g != user.gid)]
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["hostname"] = hostname
    spec["process"] = {
        "terminal": opts.terminal,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": groups},
        "args": argv,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": effective, "permitted": effective},
        "rlimits": _rlimits(),
        "noNewPrivileges": False,
    }
    base = [m for m in spec["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    base.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": [*_NOSUID_NOEXEC_NODEV, "relatime", "ro"]})  # fmt: skip
    taken = {m["destination"] for m in mounts}
    spec["mounts"] = [m for m in base if m["destination"] not in taken] + mounts
    namespaces = ["mount", "uts"]
    if opts.isolation == "oci":
        namespaces = ["pid", "ipc", "uts", "mount"]
    if opts.network != "host":
        namespaces.append("network")
    linux = spec["linux"]
    linux["namespaces"] = [{"type": t} for t in namespaces]
    seccomp = seccomp_profile.default_seccomp(caps)
    if seccomp is not None:  # buildah's default, with either isolation
        linux["seccomp"] = seccomp_profile.to_json(seccomp)
    linux["cgroupsPath"] = f"/pypod-build-{run_id[:16]}"
    return spec


# --------------------------------------------------------------------------- running


def _run_bundle(bundle: str, run_id: str, opts: RunOptions, *, runroot: str) -> int:
    from pypod.runtime.container import CreateOptions, Runtime
    from pypod.runtime.process import parent
    from pypod.runtime.process.sync import ChildError

    runtime = Runtime(os.path.join(runroot, "build-runtime"))
    with _stdio(opts):
        try:
            if opts.terminal:  # ^C reaches the container through its terminal
                return runtime.run(run_id, CreateOptions(bundle=bundle), detach=False)
            parent.become_subreaper()  # the init is stage-1's child: ours to wait for
            pid = runtime.create(run_id, CreateOptions(bundle=bundle, foreground=True))
            runtime.start(run_id)
            return _wait(runtime, run_id, pid)
        except ChildError as e:
            where = f"creating build container for [{' '.join(opts.argv)}]"
            if e.exit_code == 127:
                raise CommandNotFound(f"{where}: {e}") from e
            if e.exit_code == 126:
                raise CannotInvoke(f"{where}: {e}") from e
            raise
        finally:
            with contextlib.suppress(PypodError, OSError):
                runtime.delete(run_id, force=True)


#: signals that stop a build step: passed on to every process of the step; a second one kills
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _wait(runtime: Any, run_id: str, pid: int) -> int:
    """Wait for the step's command; its exit code as runc computes it (128+N: signal N).

    ^C (SIGINT, SIGTERM, SIGHUP, SIGQUIT) goes to every process of the step, not only to the
    first: as the init of its pid namespace the command ignores signals it has no handler for
    (a plain `sleep`), so a second one kills them all.
    """
    received: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        sig = signal.SIGKILL if len(received) > 1 else signum
        with contextlib.suppress(PypodError, OSError):
            runtime.kill(run_id, sig, all_processes=True)

    old = {}
    with contextlib.suppress(ValueError):  # not the main thread: signals are the caller's
        for sig in _STOP_SIGNALS:
            old[sig] = signal.signal(sig, stop)
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                raise PypodError(f"lost track of the build step's process {pid}") from None
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            if os.WIFEXITED(status):
                return os.WEXITSTATUS(status)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _stdio(opts: RunOptions) -> Iterator[None]:
    """The given descriptors on 0, 1, 2 for the run (the runtime passes its own stdio on)."""
    given = [(0, opts.stdin), (1, opts.stdout), (2, opts.stderr)]
    wanted = [(target, fd) for target, fd in given if fd is not None and fd != target]
    if not wanted:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    saved = [(target, os.dup(target)) for target, _ in wanted]
    try:
        for target, fd in wanted:
            os.dup2(fd, target)
        yield
    finally:
        for target, copy in saved:
            os.dup2(copy, target)
            os.close(copy)
