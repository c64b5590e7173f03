"""pypod's commands that move images: pull, push, save, load, import, login, logout."""

from __future__ import annotations

import getpass
import os
import sys

from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument
from pypod.image import transfer
from pypod.image.transports.containers_storage import StoreLocation
from pypod.image.types import SystemContext


def _bool_flag(opts: Parsed, name: str) -> bool | None:
    """A `--flag[=true|false]` given as a boolean or a value (podman's --tls-verify)."""
    value = opts.values.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "")


def _platform(opts: Parsed) -> tuple[str | None, str | None, str | None]:
    """(os, arch, variant) from --platform OS/ARCH[/VARIANT] or --os, --arch, --variant."""
    os_, arch, variant = opts.text("os"), opts.text("arch"), opts.text("variant")
    platform = opts.text("platform")
    if platform:
        if os_ or arch or variant:
            raise InvalidArgument("--platform option can not be specified with --arch or --os")
        parts = platform.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"invalid platform syntax for --platform={platform!r}: "
                                  "use OS/ARCH[/VARIANT]")  # fmt: skip
        os_, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) == 3 else None
    return os_, arch, variant


def _options(g: Globals, opts: Parsed, *, quiet: bool | None = None) -> transfer.TransferOptions:
    os_, arch, variant = _platform(opts)
    ctx = SystemContext(
        os=os_,
        arch=arch,
        variant=variant,
        tls_verify=_bool_flag(opts, "tls-verify"),
        authfile=opts.text("authfile") or os.environ.get("REGISTRY_AUTH_FILE"),
        credentials=opts.text("creds"),
        certs_dir=opts.text("cert-dir"),
        tmpdir=g.tmpdir,
        retries=opts.number("retry", 3),
        environ=dict(os.environ),
    )
    silent = opts.flag("quiet") if quiet is None else quiet
    return transfer.TransferOptions(
        store=StoreLocation(graphroot=g.graphroot, runroot=g.runroot, driver=g.driver),
        ctx=ctx,
        progress=None if silent else _progress,
        manifest_format=_manifest_format(opts.text("format")),
        compression=opts.text("compression-format"),
        digest_file=opts.text("digestfile"),
    )


def _manifest_format(value: str | None) -> str | None:
    if value in (None, "oci", "v2s2"):
        return value
    if value == "v2s1":
        raise InvalidArgument("--format v2s1: schema 1 images cannot be written")
    return value


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def cmd_pull(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument(f"requires exactly 1 arg(s), only received {len(opts.args)}")
    if opts.flag("all-tags"):
        for image_id in transfer.pull_all_tags(opts.args[0], _options(g, opts)):
            print(image_id)
        return 0
    image_id = transfer.pull_image(opts.args[0], _options(g, opts))
    print(image_id)
    return 0


def cmd_push(g: Globals, opts: Parsed) -> int:
    if not 1 <= len(opts.args) <= 2:
        raise InvalidArgument(f"requires at least 1 arg(s), only received {len(opts.args)}")
    dest = opts.args[1] if len(opts.args) > 1 else None
    transfer.push_image(opts.args[0], dest, _options(g, opts))
    return 0


def cmd_save(g: Globals, opts: Parsed) -> int:
    if not opts.args:
        raise InvalidArgument("need at least 1 argument")
    output = opts.text("output")
    if not output:
        if sys.stdout.isatty():
            raise InvalidArgument("refusing to save to terminal. Use -o flag or redirect")
        output = "/dev/stdout"
    fmt = opts.text("format") or "docker-archive"
    options = _options(g, opts, quiet=True)
    from pypod.record import replace

    transfer.save_images(opts.args, output, fmt, replace(options, manifest_format=None),
                         multi_image=opts.flag("multi-image-archive"))  # fmt: skip
    return 0


def cmd_load(g: Globals, opts: Parsed) -> int:
    path = opts.text("input")
    if opts.args:
        raise InvalidArgument("accepts 0 arg(s): use -i FILE")
    if not path:
        if sys.stdin.isatty():
            raise InvalidArgument("cannot read from terminal, use command-line redirection or "
                                  "the --input flag")  # fmt: skip
        import tempfile

        with tempfile.NamedTemporaryFile(dir=g.tmpdir, delete=False) as tmp:
            import shutil

            shutil.copyfileobj(sys.stdin.buffer, tmp)
            path = tmp.name
    names = transfer.load_images(path, _options(g, opts))
    for name in names:
        print(f"Loaded image: {name}")
    return 0


def cmd_import(g: Globals, opts: Parsed) -> int:
    if not 1 <= len(opts.args) <= 2:
        raise InvalidArgument("need to give the path to the tarball, or must specify a tarball "
                              "of '-' for stdin")  # fmt: skip
    name = opts.args[1] if len(opts.args) > 1 else None
    image_id = transfer.import_tarball(
        opts.args[0],
        name,
        _options(g, opts),
        changes=opts.texts("change"),
        message=opts.text("message") or "",
    )
    print(f"sha256:{image_id}")
    return 0


def cmd_login(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument("please provide a registry to log in to")
    username = opts.text("username")
    password = opts.text("password")
    if opts.flag("password-stdin"):
        password = sys.stdin.readline().rstrip("\n")
    if username is None:
        username = input("Username: ") if sys.stdin.isatty() else ""
    if password is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("password required: use --password or --password-stdin")
        password = getpass.getpass("Password: ")
    if not username:
        raise InvalidArgument("username required: use --username")
    options = _options(g, opts)
    transfer.login(opts.args[0], username, password, options.ctx)
    print("Login Succeeded!")
    return 0


def cmd_logout(g: Globals, opts: Parsed) -> int:
    options = _options(g, opts)
    if opts.flag("all"):
        transfer.logout(None, options.ctx)
        print("Removed login credentials for all registries")
        return 0
    if len(opts.args) != 1:
        raise InvalidArgument("please provide a registry to log out from")
    if not transfer.logout(opts.args[0], options.ctx):
        raise InvalidArgument(f"not logged into {opts.args[0]}")
    print(f"Removed login credentials for {opts.args[0]}")
    return 0


_REMOTE = (
    Flag(("tls-verify",), help="require HTTPS and verify certificates when contacting registries"),
    Flag(("creds",), True, help="use `[username[:password]]` for accessing the registry"),
    Flag(("authfile",), True, help="path of the authentication file"),
    Flag(("cert-dir",), True, help="use certificates at the specified path to access the registry"),
    Flag(("quiet", "q"), help="suppress output information when copying images"),
    Flag(("retry",), True, help="number of times to retry in case of failure"),
)

COMMANDS: dict[str, Command] = {
    "pull": Command(
        handler=cmd_pull,
        flags=(
            *_REMOTE,
            Flag(("all-tags", "a"), help="All tagged images in the repository will be pulled"),
            Flag(("platform",), True, help="specify the platform for selecting the image"),
            Flag(("arch",), True, help="use ARCH instead of the architecture of the machine"),
            Flag(("os",), True, help="use OS instead of the running OS"),
            Flag(("variant",), True, help="use VARIANT instead of the running variant"),
        ),
        help="Pull an image from a registry",
        usage="[options] IMAGE",
    ),
    "push": Command(
        handler=cmd_push,
        flags=(
            *_REMOTE,
            Flag(("format", "f"), True, help="manifest type (oci, v2s2) to use in the destination"),
            Flag(("compression-format",), True, help="compression format to use (gzip, zstd)"),
            Flag(("digestfile",), True, help="write the digest of the pushed image to this file"),
        ),
        help="Push an image to a specified destination",
        usage="[options] IMAGE [DESTINATION]",
    ),
    "save": Command(
        handler=cmd_save,
        flags=(
            Flag(("output", "o"), True, help="write to a specified file (default: stdout)"),
            Flag(("format",), True, help="oci-archive, oci-dir, docker-archive or docker-dir"),
            Flag(
                ("multi-image-archive", "m"),
                help="Interpret additional arguments as images "
                "not tags and create a multi-image-archive (only for docker-archive)",
            ),
            Flag(("quiet", "q")),
        ),  # fmt: skip
        help="Save image(s) to an archive",
        usage="[options] IMAGE [IMAGE...]",
    ),
    "load": Command(
        handler=cmd_load,
        flags=(
            Flag(("input", "i"), True, help="read from specified archive file"),
            Flag(("quiet", "q")),
        ),  # fmt: skip
        help="Load image(s) from a tar archive",
        usage="[options]",
    ),
    "import": Command(
        handler=cmd_import,
        flags=(
            Flag(("change", "c"), True, True, help="apply the following possible instructions"),
            Flag(("message", "m"), True, help="set commit message for imported image"),
            Flag(("quiet", "q")),
        ),
        help="Import a tarball to create a filesystem image",
        usage="[options] PATH [REFERENCE]",
    ),
    "login": Command(
        handler=cmd_login,
        flags=(
            *_REMOTE,
            Flag(("username", "u"), True),
            Flag(("password", "p"), True),
            Flag(("password-stdin",)),
        ),
        help="Log in to a container registry",
        usage="[options] REGISTRY",
    ),
    "logout": Command(
        handler=cmd_logout,
        flags=(Flag(("authfile",), True), Flag(("all", "a"))),
        help="Log out of a container registry",
        usage="[options] REGISTRY",
    ),
}
for _name in ("pull", "push", "save", "load", "import"):
    COMMANDS[f"image {_name}"] = COMMANDS[_name]
