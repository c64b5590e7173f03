"""`pypod-build pull`, `push`, `login`, `logout` (buildah 1.28) over pypod.image.transfer."""

from __future__ import annotations

import getpass
import os
import sys
from typing import TYPE_CHECKING

from pypod.cli.build.common import exactly, open_build_store, store_location
from pypod.cli.build.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.errors import ImageNotFound, InvalidArgument, NotSupported

if TYPE_CHECKING:  # imported when used: `containers`, `mount` ... need no registry code
    from pypod.image import transfer
    from pypod.image.types import SystemContext


def _tls(opts: Parsed) -> bool | None:
    value = opts.values.get("tls-verify")
    if value is None:
        return None
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "")


def context(opts: Parsed) -> SystemContext:
    """The registry side of a transfer from the common flags (--tls-verify, --creds ...)."""
    from pypod.image.types import SystemContext

    os_, arch, variant = opts.text("os"), opts.text("arch"), opts.text("variant")
    platforms = opts.texts("platform")
    if platforms:
        parts = platforms[0].split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f'invalid platform syntax for "{platforms[0]}": use OS/ARCH')
        os_, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) == 3 else variant
    return SystemContext(
        os=os_,
        arch=arch,
        variant=variant,
        tls_verify=_tls(opts),
        authfile=opts.text("authfile") or os.environ.get("REGISTRY_AUTH_FILE"),
        credentials=opts.text("creds"),
        certs_dir=opts.text("cert-dir"),
        retries=opts.number("retry", 3),
        environ=dict(os.environ),
    )


def progress_line(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def options(g: Globals, opts: Parsed, *, quiet: bool = False) -> transfer.TransferOptions:
    from pypod.image import transfer

    fmt = opts.text("format")
    if fmt == "v2s1":
        raise NotSupported("--format v2s1: schema 1 images cannot be written")
    return transfer.TransferOptions(
        store=store_location(g),
        ctx=context(opts),
        progress=None if quiet or opts.flag("quiet") else progress_line,
        manifest_format=fmt,
        compression=opts.text("compression-format"),
        digest_file=opts.text("digestfile"),
    )


def pull(g: Globals, name: str, policy: str, topts: transfer.TransferOptions) -> str:
    from pypod.image import transfer

    """The image `name` by buildah's pull policy (missing, always, never, newer = missing)."""
    if policy not in ("missing", "always", "never", "newer", "ifmissing", "ifnewer"):
        raise InvalidArgument(f'unsupported pull policy "{policy}"')
    if policy != "always":
        from pypod.image import local

        with open_build_store(g) as store:
            try:
                return local.find_image(store, name.removeprefix("docker://")).id
            except (ImageNotFound, InvalidArgument):
                if policy == "never":
                    raise ImageNotFound(
                        f"{name}: image not known (pull policy is never: pull it first)"
                    ) from None
    return transfer.pull_image(name, topts)


def cmd_pull(g: Globals, opts: Parsed) -> int:
    from pypod.image import transfer

    exactly(opts.args, 1)
    topts = options(g, opts)
    if opts.flag("all-tags"):
        for image_id in transfer.pull_all_tags(opts.args[0], topts):
            print(image_id)
        return 0
    print(pull(g, opts.args[0], opts.text("policy") or "missing", topts))
    return 0


def cmd_push(g: Globals, opts: Parsed) -> int:
    from pypod.image import transfer

    if not 1 <= len(opts.args) <= 2:
        raise InvalidArgument("source image ID must be specified (and at most one destination)")
    dest = opts.args[1] if len(opts.args) > 1 else None
    transfer.push_image(opts.args[0], dest, options(g, opts))
    return 0


def cmd_login(g: Globals, opts: Parsed) -> int:
    from pypod.image import transfer

    if len(opts.args) != 1:
        raise InvalidArgument("please provide a registry to login to")
    username, password = opts.text("username"), opts.text("password")
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
    transfer.login(opts.args[0], username, password, context(opts))
    print("Login Succeeded!")
    return 0


def cmd_logout(g: Globals, opts: Parsed) -> int:
    from pypod.image import transfer

    ctx = context(opts)
    if opts.flag("all"):
        transfer.logout(None, ctx)
        print("Removed login credentials for all registries")
        return 0
    if len(opts.args) != 1:
        raise InvalidArgument("registry must be given")
    if not transfer.logout(opts.args[0], ctx):
        raise InvalidArgument(f"not logged into {opts.args[0]}")
    print(f"Removed login credentials for {opts.args[0]}")
    return 0


REMOTE_FLAGS = (
    Flag(("tls-verify",), help="require HTTPS and verify certificates when accessing the registry"),
    Flag(("creds",), True, help="use `[username[:password]]` for accessing the registry"),
    Flag(("authfile",), True, help="path of the authentication file"),
    Flag(("cert-dir",), True, help="use certificates at the specified path to access the registry"),
    Flag(("retry",), True, help="number of times to retry in case of failure (default 3)"),
    Flag(("retry-delay",), True, help='delay between retries (default "2s")'),
)
PLATFORM_FLAGS = (
    Flag(("arch",), True, help="prefer ARCH instead of the architecture of the machine"),
    Flag(("os",), True, help="prefer OS instead of the running OS for choosing images"),
    Flag(("variant",), True, help="override the variant of the specified image"),
    Flag(("platform",), True, True, help="prefer OS/ARCH instead of the current platform"),
)

COMMANDS: dict[str, Command] = {
    "pull": Command(
        handler=cmd_pull,
        flags=(
            *REMOTE_FLAGS,
            *PLATFORM_FLAGS,
            Flag(("all-tags", "a"), help="download all tagged images in the repository"),
            Flag(("policy",), True, help='missing, always, or never. (default "missing")'),
            Flag(("quiet", "q"), help="don't output progress information when pulling images"),
            Flag(("remove-signatures",), help="don't copy signatures when pulling image"),
        ),
        help="Pull an image from the specified location",
        long="Pulls an image from a registry and stores it locally.",
        usage="[flags] IMAGE",
        storeless=False,
    ),
    "push": Command(
        handler=cmd_push,
        flags=(
            *REMOTE_FLAGS,
            Flag(("format", "f"), True, help="manifest type (oci, v2s2) to use in the destination"),
            Flag(("compression-format",), True, help="compression format to use"),
            Flag(("digestfile",), True, help="after copying the image, write its digest here"),
            Flag(("quiet", "q"), help="don't output progress information when pushing images"),
            Flag(("remove-signatures",), help="don't copy signatures when pushing image"),
        ),
        help="Push an image to a specified destination",
        long="Pushes an image to a specified location.",
        usage="[flags] IMAGE [DESTINATION]",
    ),
    "login": Command(
        handler=cmd_login,
        flags=(
            *REMOTE_FLAGS,
            Flag(("username", "u"), True, help="Username for registry"),
            Flag(("password", "p"), True, help="Password for registry"),
            Flag(("password-stdin",), help="Take the password from stdin"),
            Flag(("get-login",), help="Return the current login user for the registry"),
        ),
        help="Login to a container registry",
        long="Login to a container registry on a specified server.",
        usage="[flags] REGISTRY",
        storeless=True,
        check_order=False,
    ),
    "logout": Command(
        handler=cmd_logout,
        flags=(
            Flag(("authfile",), True, help="path of the authentication file"),
            Flag(("all", "a"), help="Remove the cached credentials for all registries"),
        ),
        help="Logout of a container registry",
        long="Remove the cached username and password for the registry.",
        usage="[flags] REGISTRY",
        storeless=True,
        check_order=False,
    ),
}
