"""pypod's commands that move images: pull, push, save, load, import, login, logout."""

from __future__ import annotations

import sys

from pypod.cli import registry
from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument
from pypod.image import transfer
from pypod.image.transports.containers_storage import StoreLocation


def _options(g: Globals, opts: Parsed, *, quiet: bool = False) -> transfer.TransferOptions:
    ctx = registry.system_context(opts, exclusive_platform=True, tmpdir=g.tmpdir)
    store = StoreLocation(graphroot=g.graphroot, runroot=g.runroot, driver=g.driver)
    return registry.transfer_options(store, ctx, opts, quiet=quiet)


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
    ctx = _options(g, opts).ctx
    registry.login(opts, ctx, no_registry="please provide a registry to log in to")
    return 0


def cmd_logout(g: Globals, opts: Parsed) -> int:
    ctx = _options(g, opts).ctx
    registry.logout(opts, ctx, no_registry="please provide a registry to log out from")
    return 0


_REMOTE = (
    *registry.ACCESS_FLAGS,
    Flag(("quiet", "q"), help="suppress output information when copying images"),
    registry.RETRY_FLAG,
)

COMMANDS: dict[str, Command] = {
    "pull": Command(
        handler=cmd_pull,
        flags=(
            *_REMOTE,
            Flag(("all-tags", "a"), help="All tagged images in the repository will be pulled"),
            *registry.PLATFORM_FLAGS,
        ),
        help="Pull an image from a registry",
        usage="[options] IMAGE",
    ),
    "push": Command(
        handler=cmd_push,
        flags=(
            *_REMOTE,
            *registry.PUSH_FLAGS,
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
        flags=(registry.AUTHFILE_FLAG, Flag(("all", "a"))),
        help="Log out of a container registry",
        usage="[options] REGISTRY",
    ),
}
for _name in ("pull", "push", "save", "load", "import"):
    COMMANDS[f"image {_name}"] = COMMANDS[_name]
