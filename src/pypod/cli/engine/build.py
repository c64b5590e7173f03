"""`pypod build` / `pypod image build`: podman 4.3's build command over `build.executor`.

Defaults as podman's: `--layers` (the layer cache), `--rm` and `--force-rm` (working
containers removed, also after a failure), `--pull missing`, OCI format.  The output is
podman's (STEP lines, RUN's output, `--> <id>`, `COMMIT`, `Successfully tagged`, the image
ID last; `-q`: the ID only).  A failing RUN makes `pypod build` exit with the command's exit
status, as podman does; other errors exit 125.  `SOURCE_DATE_EPOCH` in the environment is a
default for `--timestamp`.  RUN uses the host's network by default (`--network none` to
cut it off).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pypod.cli.build_flags import SHARED_FLAGS, build_args, env_bool, flag_bool, secrets
from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument, NotSupported

_PULL_VALUES = {
    "true": "always",
    "always": "always",
    "false": "missing",
    "missing": "missing",
    "ifmissing": "missing",
    "never": "never",
    "newer": "newer",
    "ifnewer": "newer",
}

FLAGS = (
    *SHARED_FLAGS,
    Flag(("layers",), default=None, help="cache intermediate layers during build (default true)"),
    Flag(("squash",), help="squash all image layers into a single layer"),
    Flag(("squash-all",), help="squash all layers into a single layer"),
    Flag(("network", "net"), True, help="network for RUN instructions (host, none)"),
    Flag(("pull",), help="pull the image if not present (always with a bare --pull)"),
    Flag(("pull-policy",), True, help="--pull=VALUE: always, missing, never, newer"),
    Flag(("rm",), default=None, help="remove intermediate containers after a successful build"),
    Flag(("force-rm",), default=None, help="always remove intermediate containers"),
    Flag(("platform",), True, help="set the OS/ARCH[/VARIANT] of the image (this host only)"),
    Flag(("arch",), True, help="set the ARCH of the image (this host only)"),
    Flag(("os",), True, help="set the OS of the image (this host only)"),
    Flag(("tls-verify",), help="require HTTPS and verify certificates when accessing registries"),
    Flag(("creds",), True, help="use `[username[:password]]` for accessing the registry"),
    Flag(("authfile",), True, help="path of the authentication file"),
    Flag(("cert-dir",), True, help="use certificates at the specified path to access the registry"),
)


def _pre_parse(args: Sequence[str]) -> list[str]:
    """`--pull=VALUE` carries a value while a bare `--pull` means always: split the two."""
    out = []
    for arg in args:
        if arg.startswith("--pull="):
            out.append("--pull-policy=" + arg.partition("=")[2])
        else:
            out.append(arg)
    return out


def _pull_policy(opts: Parsed) -> str:
    if opts.flag("pull-always"):
        return "always"
    if opts.flag("pull-never"):
        return "never"
    value = opts.text("pull-policy")
    if value is not None:
        policy = _PULL_VALUES.get(value.lower())
        if policy is None:
            raise InvalidArgument(
                f'invalid pull policy "{value}": use always, missing, never or newer'
            )
        return policy
    return "always" if opts.flag("pull") else "missing"


def _timestamp(opts: Parsed) -> int | None:
    text = opts.text("timestamp")
    if text is None:
        text = os.environ.get("SOURCE_DATE_EPOCH") or None
        if text is None:
            return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f'invalid timestamp "{text}": use seconds since the epoch') from None


def _check_platform(opts: Parsed) -> None:
    from pypod.build.stages import host_platform

    os_, arch, variant = host_platform()
    wanted = opts.text("platform")
    if wanted:
        parts = wanted.split("/")
        if parts[0] != os_ or (len(parts) > 1 and parts[1] != arch):
            raise NotSupported(f"building for platform {wanted!r} is not supported yet: "
                               f"pypod builds for this host ({os_}/{arch}) only")  # fmt: skip
    for name, here in (("os", os_), ("arch", arch)):
        value = opts.text(name)
        if value and value != here:
            raise NotSupported(f"--{name} {value}: building for another platform is not "
                               f"supported yet ({here} only)")  # fmt: skip
    del variant


def _context(args: Sequence[str], files: list[str]) -> tuple[str, list[str]]:
    if len(args) > 1:
        raise InvalidArgument(f"accepts at most 1 arg(s), received {len(args)}")
    context = args[0] if args else "."
    if context.startswith(("http://", "https://", "git://", "github.com/")):
        raise NotSupported(f"a remote build context ({context}) is not supported yet")
    if os.path.isfile(context):  # `pypod build path/Containerfile`: its directory is the context
        if not files:
            files = [context]
        context = os.path.dirname(os.path.abspath(context))
    if not os.path.isdir(context):
        raise InvalidArgument(f"context directory {context!r} does not exist: name a directory")
    return os.path.abspath(context), files


def cmd_build(g: Globals, opts: Parsed) -> int:
    from pypod.build.executor import BuildOptions, build
    from pypod.image.transfer import TransferOptions
    from pypod.image.transports.containers_storage import StoreLocation, open_store
    from pypod.image.types import SystemContext

    _check_platform(opts)
    context, files = _context(opts.args, opts.texts("file"))
    fmt = opts.text("format") or os.environ.get("BUILDAH_FORMAT") or "oci"
    if fmt not in ("oci", "docker"):
        raise InvalidArgument(f'unrecognized image type "{fmt}": use oci or docker')
    isolation = opts.text("isolation") or os.environ.get("BUILDAH_ISOLATION") or "oci"
    if isolation == "default":
        isolation = "oci"
    if isolation not in ("oci", "chroot"):
        raise NotSupported(f'--isolation {isolation}: use "oci" or "chroot"')
    network = opts.text("network") or "host"
    if network == "default":
        network = "host"
    if network not in ("host", "none", "private"):
        raise NotSupported(f"--network {network}: RUN can use the host's network or none")
    location = StoreLocation(graphroot=g.graphroot, runroot=g.runroot, driver=g.driver)
    tls = opts.values.get("tls-verify")
    ctx = SystemContext(
        tls_verify=None if tls is None else flag_bool(opts, "tls-verify", True),
        authfile=opts.text("authfile") or os.environ.get("REGISTRY_AUTH_FILE"),
        credentials=opts.text("creds"),
        certs_dir=opts.text("cert-dir"),
        tmpdir=g.tmpdir,
        environ=dict(os.environ),
    )
    quiet = opts.flag("quiet")
    # pull progress: the executor reports it (to stderr, as podman), not quiet
    transfer = TransferOptions(store=location, ctx=ctx)
    options = BuildOptions(
        containerfiles=tuple(files),
        context_dir=context,
        tags=tuple(opts.texts("tag")),
        target=opts.text("target"),
        build_args=build_args(opts.texts("build-arg")),
        labels=tuple(opts.texts("label")),
        annotations=tuple(opts.texts("annotation")),
        layers=flag_bool(opts, "layers", env_bool("BUILDAH_LAYERS", True)),
        no_cache=opts.flag("no-cache"),
        squash=opts.flag("squash"),
        squash_all=opts.flag("squash-all"),
        format=fmt,
        iidfile=opts.text("iidfile"),
        timestamp=_timestamp(opts),
        isolation=isolation,
        network=network,
        pull=_pull_policy(opts),
        quiet=quiet,
        rm=flag_bool(opts, "rm", True),
        force_rm=flag_bool(opts, "force-rm", True),
        transfer=transfer,
        ignorefile=opts.text("ignorefile"),
        secrets=secrets(opts.texts("secret")),
        volumes=tuple(opts.texts("volume")),
        out=sys.stdout,
        err=sys.stderr,
    )
    with open_store(location) as store:
        build(store, options)
    return 0


def _handler(g: Globals, raw: Parsed) -> int:
    from pypod.cli.flags import parse

    return cmd_build(g, parse(_pre_parse(raw.args), FLAGS, interspersed=True))


def _command() -> Command:
    return Command(
        handler=_handler,
        flags=FLAGS,
        help="Build an image using instructions from Containerfiles",
        usage="[options] [CONTEXT]",
        raw=True,  # `--pull` alone or `--pull=VALUE`: parsed by the handler
    )


COMMANDS: dict[str, Command] = {"build": _command(), "image build": _command()}
