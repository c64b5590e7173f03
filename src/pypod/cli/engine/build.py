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
    Flag(("file", "f"), True, multiple=True, help="pathname or URL of a Containerfile"),
    Flag(("tag", "t"), True, multiple=True, help="tagged name to apply to the built image"),
    Flag(("target",), True, help="set the target build stage to build"),
    Flag(("build-arg",), True, multiple=True, help="argument=value to supply to the builder"),
    Flag(("label",), True, multiple=True, help="set metadata for an image (default [])"),
    Flag(("annotation",), True, multiple=True, help="set metadata for an image (default [])"),
    Flag(("layers",), default=None, help="cache intermediate layers during build (default true)"),
    Flag(("no-cache",), help="do not use existing cached images for the container build"),
    Flag(("squash",), help="squash all image layers into a single layer"),
    Flag(("squash-all",), help="squash all layers into a single layer"),
    Flag(("format",), True, help="format of the built image's manifest and metadata (oci, docker)"),
    Flag(("iidfile",), True, help="write the image ID to the file"),
    Flag(("timestamp",), True, help="set created timestamp to the specified epoch seconds"),
    Flag(("isolation",), True, help="type of process isolation to use (oci, chroot)"),
    Flag(("network", "net"), True, help="network for RUN instructions (host, none)"),
    Flag(("pull",), help="pull the image if not present (always with a bare --pull)"),
    Flag(("pull-policy",), True, help="--pull=VALUE: always, missing, never, newer"),
    Flag(("pull-always",), help="pull the image even if the named image is present in store"),
    Flag(("pull-never",), help="do not pull the image, use the image present in store"),
    Flag(("quiet", "q"), help="refrain from announcing build instructions and image read/write"),
    Flag(("rm",), default=None, help="remove intermediate containers after a successful build"),
    Flag(("force-rm",), default=None, help="always remove intermediate containers"),
    Flag(("ignorefile",), True, help="path to an alternate .dockerignore file"),
    Flag(("secret",), True, multiple=True, help="secret file to expose to the build"),
    Flag(("volume", "v"), True, multiple=True, help="bind mount a volume into RUN containers"),
    Flag(("platform",), True, help="set the OS/ARCH[/VARIANT] of the image (this host only)"),
    Flag(("arch",), True, help="set the ARCH of the image (this host only)"),
    Flag(("os",), True, help="set the OS of the image (this host only)"),
    Flag(("tls-verify",), help="require HTTPS and verify certificates when accessing registries"),
    Flag(("creds",), True, help="use `[username[:password]]` for accessing the registry"),
    Flag(("authfile",), True, help="path of the authentication file"),
    Flag(("cert-dir",), True, help="use certificates at the specified path to access the registry"),
    Flag(("disable-compression", "D"), help="don't compress layers (layers are kept as tar)"),
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


def _bool(opts: Parsed, name: str, default: bool) -> bool:
    value = opts.values.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "")


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


def _build_args(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"--build-arg {item!r}: the name is empty: use NAME=VALUE")
        if sep:
            out[key] = value
        elif key in os.environ:  # `--build-arg NAME`: the value comes from the environment
            out[key] = os.environ[key]
    return out


def _secrets(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        sid, src = fields.get("id"), fields.get("src") or fields.get("source")
        if fields.get("type", "file") != "file":
            raise NotSupported(f"--secret {item!r}: only file secrets are supported yet")
        if not sid or not src:
            raise InvalidArgument(f"--secret {item!r}: use id=ID,src=PATH")
        out[sid] = src
    return out


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
        tls_verify=None if tls is None else _bool(opts, "tls-verify", True),
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
        build_args=_build_args(opts.texts("build-arg")),
        labels=tuple(opts.texts("label")),
        annotations=tuple(opts.texts("annotation")),
        layers=_bool(opts, "layers", _env_bool("BUILDAH_LAYERS", True)),
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
        rm=_bool(opts, "rm", True),
        force_rm=_bool(opts, "force-rm", True),
        transfer=transfer,
        ignorefile=opts.text("ignorefile"),
        secrets=_secrets(opts.texts("secret")),
        volumes=tuple(opts.texts("volume")),
        out=sys.stdout,
        err=sys.stderr,
    )
    with open_store(location) as store:
        build(store, options)
    return 0


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true")


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
