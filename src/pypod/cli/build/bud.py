"""`pypod-build bud` / `build` (buildah 1.28) over pypod.build.executor.

buildah's defaults, which differ from `pypod build`'s: no layer cache (`--layers` or
BUILDAH_LAYERS=true turns it on), and `--squash` makes one layer of the whole image (podman's
`--squash-all`).  A failed RUN exits with the command's own status, as buildah does.
"""

from __future__ import annotations

import os
import sys

from pypod.cli.build.common import open_build_store, store_location
from pypod.cli.build.main import Command, CommandError, Globals
from pypod.cli.build.transfer import PLATFORM_FLAGS, REMOTE_FLAGS, context, progress_line
from pypod.cli.build.working import pull_policy
from pypod.cli.build_flags import SHARED_FLAGS, build_args, env_bool, flag_bool, secrets
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument, NotSupported

#: buildah flags that pypod-build does not implement yet (each fails with NotSupported)
_NOT_YET = ("add-host", "all-platforms", "build-context", "cache-from", "cache-to",
            "cache-ttl", "cap-add", "cap-drop", "cgroup-parent", "cgroupns", "cpp-flag",
            "cpu-period", "cpu-quota", "cpu-shares", "cpuset-cpus", "cpuset-mems",
            "decryption-key", "device", "dns", "dns-option", "dns-search", "env", "from",
            "hooks-dir", "ipc", "jobs", "logfile", "logsplit", "manifest", "memory",
            "memory-swap", "os-feature", "os-version", "output", "pid", "runtime",
            "runtime-flag", "security-opt", "shm-size", "sign-by", "ssh", "ulimit", "unsetenv",
            "userns", "userns-gid-map", "userns-gid-map-group", "userns-uid-map",
            "userns-uid-map-user", "uts")  # fmt: skip


def cmd_bud(g: Globals, opts: Parsed) -> int:
    from pypod.build.executor import BuildError, BuildOptions, build
    from pypod.image import transfer

    for name in _NOT_YET:
        if opts.values.get(name) not in (None, [], False):
            raise NotSupported(f"'bud --{name}' is not supported yet")
    if opts.flag("no-hosts") or opts.flag("omit-history"):
        flag = "no-hosts" if opts.flag("no-hosts") else "omit-history"
        raise NotSupported(f"'bud --{flag}' is not supported yet")
    if not flag_bool(opts, "skip-unused-stages", True):
        raise NotSupported("'bud --skip-unused-stages=false' is not supported yet")
    if len(opts.args) > 1:
        raise InvalidArgument(f"accepts at most 1 arg(s), received {len(opts.args)}")
    context_dir = opts.args[0] if opts.args else "."
    if "://" in context_dir or context_dir.startswith("git@"):
        raise NotSupported(f"building from {context_dir!r} (a URL) is not supported yet")
    if not os.path.isdir(context_dir):
        raise InvalidArgument(f"context directory {context_dir!r} does not exist")
    layers = flag_bool(opts, "layers", env_bool("BUILDAH_LAYERS", False))
    fmt = (opts.text("format") or os.environ.get("BUILDAH_FORMAT") or "oci").lower()
    if fmt not in ("oci", "docker"):
        raise InvalidArgument(f'unrecognized image type "{fmt}"')
    pull = pull_policy(opts.text("pull"))
    if opts.flag("pull-always"):
        pull = "always"
    if opts.flag("pull-never"):
        pull = "never"
    timestamp = opts.number("timestamp") if opts.text("timestamp") is not None else None
    quiet = opts.flag("quiet")
    if opts.flag("stdin"):
        raise NotSupported("'bud --stdin' is not supported yet")
    build_opts = BuildOptions(
        containerfiles=tuple(opts.texts("file")),
        context_dir=os.path.abspath(context_dir),
        tags=tuple(opts.texts("tag")),
        target=opts.text("target"),
        build_args=build_args(opts.texts("build-arg"), opts.texts("build-arg-file")),
        labels=tuple(opts.texts("label")),
        annotations=tuple(opts.texts("annotation")),
        layers=layers,
        no_cache=opts.flag("no-cache"),
        squash_all=opts.flag("squash"),
        format=fmt,
        iidfile=opts.text("iidfile"),
        timestamp=timestamp,
        isolation=opts.text("isolation") or os.environ.get("BUILDAH_ISOLATION") or "oci",
        network=opts.text("network") or "host",
        pull=pull,
        quiet=quiet,
        rm=flag_bool(opts, "rm", True),
        # buildah 1.28 removes the working container of a failed build too (observed)
        force_rm=flag_bool(opts, "force-rm", True),
        transfer=transfer.TransferOptions(
            store=store_location(g), ctx=context(opts), progress=None if quiet else progress_line
        ),
        ignorefile=opts.text("ignorefile"),
        secrets=secrets(opts.texts("secret")),
        volumes=tuple(opts.texts("volume")),
        out=sys.stdout,
        err=sys.stderr,  # pull and commit progress, as buildah
    )
    with open_build_store(g) as store:
        try:
            build(store, build_opts)
        except BuildError as e:
            sys.stdout.flush()
            raise CommandError(str(e), code=e.engine_exit_code) from None
    sys.stdout.flush()
    return 0


def _flags() -> tuple[Flag, ...]:
    not_yet = tuple(Flag((n,), True, multiple=True) for n in _NOT_YET)
    return (
        *REMOTE_FLAGS,
        *PLATFORM_FLAGS,
        *SHARED_FLAGS,
        Flag(("build-arg-file",), True, True, help="file of `argument=value` lines"),
        Flag(("compress",), help="this is a legacy option, which has no effect on the image"),
        Flag(("disable-content-trust",), help="this is a Docker specific option and is a NOOP"),
        Flag(("force-rm",), True, help="always remove intermediate containers after a build"),
        Flag(("http-proxy",), help="pass through HTTP Proxy environment variables"),
        Flag(("identity-label",), help="add default identity label (default true)"),
        Flag(("layers",), True, help="cache intermediate layers during build"),
        Flag(("network",), True, help="'private', 'none' or 'host' (the default)"),
        Flag(("no-hosts",), help="do not create new /etc/hosts files for RUN instructions"),
        Flag(("omit-history",), help="omit build history information from built image"),
        Flag(("pull",), True, help="pull the image: true (if newer or missing), false, always, "
             "never"),
        Flag(("rm",), True, help="remove intermediate containers after a successful build"),
        Flag(("skip-unused-stages",), True, help="skips stages in multi-stage builds which "
             "do not affect the final target (default true)"),
        Flag(("squash",), help="squash all image layers into a single layer"),
        Flag(("stdin",), help="pass stdin into containers"),
        *not_yet,
    )  # fmt: skip


COMMANDS: dict[str, Command] = {
    "bud": Command(
        handler=cmd_bud,
        flags=_flags(),
        help="Build an image using instructions in a Containerfile",
        long="Builds an OCI image using instructions in one or more Containerfiles.\n\n"
        "  If no arguments are specified, Buildah will use the current working directory\n"
        "  as the build context and look for a Containerfile.",
        usage="[flags] [CONTEXT]",
        check_order=False,
        optional_values=("pull", "layers", "rm", "force-rm", "skip-unused-stages"),
    ),
}
