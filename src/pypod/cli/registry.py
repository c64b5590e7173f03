"""The registry side of `pypod` and `pypod-build` transfers: the shared flags (--tls-verify,
--creds, --authfile, --cert-dir, --retry, --platform), the SystemContext they make, progress
lines, `login` and `logout`.

The copy pipeline is imported when a transfer happens, not when this module is: commands that
only name these flags (`pypod-build containers`) need no registry code.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument, NotSupported

if TYPE_CHECKING:
    from pypod.image import transfer
    from pypod.image.transports.containers_storage import StoreLocation
    from pypod.image.types import SystemContext

AUTHFILE_FLAG = Flag(("authfile",), True, help="path of the authentication file")
#: how to reach a registry (both programs)
ACCESS_FLAGS = (
    Flag(("tls-verify",), help="require HTTPS and verify certificates when contacting registries"),
    Flag(("creds",), True, help="use `[username[:password]]` for accessing the registry"),
    AUTHFILE_FLAG,
    Flag(("cert-dir",), True, help="use certificates at the specified path to access the registry"),
)
RETRY_FLAG = Flag(("retry",), True, help="number of times to retry in case of failure (default 3)")
#: which image of an index to pull
PLATFORM_FLAGS = (
    Flag(("arch",), True, help="use ARCH instead of the architecture of the machine"),
    Flag(("os",), True, help="use OS instead of the running OS"),
    Flag(("variant",), True, help="use VARIANT instead of the running variant"),
    Flag(("platform",), True, True, help="use OS/ARCH[/VARIANT] instead of the host's platform"),
)
#: what a push writes (read by `transfer_options`)
PUSH_FLAGS = (
    Flag(("format", "f"), True, help="manifest type (oci, v2s2) to use in the destination"),
    Flag(("compression-format",), True, help="compression format to use (gzip, zstd)"),
    Flag(("digestfile",), True, help="after copying the image, write its digest here"),
)


def bool_flag(opts: Parsed, name: str) -> bool | None:
    """A `--flag[=true|false]` given as a boolean or a value (--tls-verify); None: not given."""
    value = opts.values.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "")


def platform(opts: Parsed, *, exclusive: bool = False) -> tuple[str | None, str | None, str | None]:
    """(os, arch, variant) from --os, --arch, --variant and --platform OS/ARCH[/VARIANT] (the
    first one when the flag may be repeated), which wins.  `exclusive`: podman refuses
    --platform with the other three."""
    os_, arch, variant = opts.text("os"), opts.text("arch"), opts.text("variant")
    value = next(iter(opts.texts("platform")), None) or opts.text("platform")
    if not value:
        return os_, arch, variant
    if exclusive and (os_ or arch or variant):
        raise InvalidArgument("--platform option can not be specified with --arch or --os")
    parts = value.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f'invalid platform syntax for "{value}" (use OS/ARCH[/VARIANT])')
    return parts[0], parts[1], parts[2] if len(parts) == 3 else variant


def system_context(
    opts: Parsed, *, exclusive_platform: bool = False, tmpdir: str | None = None
) -> SystemContext:
    """The registry side of a transfer from the flags above (REGISTRY_AUTH_FILE when no
    --authfile)."""
    from pypod.image.types import SystemContext

    os_, arch, variant = platform(opts, exclusive=exclusive_platform)
    return SystemContext(
        os=os_,
        arch=arch,
        variant=variant,
        tls_verify=bool_flag(opts, "tls-verify"),
        authfile=opts.text("authfile") or os.environ.get("REGISTRY_AUTH_FILE"),
        credentials=opts.text("creds"),
        certs_dir=opts.text("cert-dir"),
        tmpdir=tmpdir,
        retries=opts.number("retry", 3),
        environ=dict(os.environ),
    )


def progress_line(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def transfer_options(
    store: StoreLocation, ctx: SystemContext, opts: Parsed, *, quiet: bool = False
) -> transfer.TransferOptions:
    """Options of a pull or push: progress on stderr unless `quiet` or --quiet; --format
    (oci, v2s2), --compression-format, --digestfile."""
    from pypod.image import transfer

    fmt = opts.text("format")
    if fmt == "v2s1":
        raise NotSupported("--format v2s1: schema 1 images cannot be written")
    return transfer.TransferOptions(
        store=store,
        ctx=ctx,
        progress=None if quiet or opts.flag("quiet") else progress_line,
        manifest_format=fmt,
        compression=opts.text("compression-format"),
        digest_file=opts.text("digestfile"),
    )


def login(opts: Parsed, ctx: SystemContext, *, no_registry: str) -> None:
    """`login REGISTRY` with --username, --password or --password-stdin (asked for on a
    terminal), or --get-login (the user stored for it); `no_registry`: the program's message
    when REGISTRY is missing."""
    from pypod.image import transfer

    if len(opts.args) != 1:
        raise InvalidArgument(no_registry)
    if opts.flag("get-login"):
        print(_stored_user(opts.args[0], ctx))
        return
    username, password = opts.text("username"), opts.text("password")
    if opts.flag("password-stdin"):
        password = sys.stdin.readline().rstrip("\n")
    if username is None:
        username = input("Username: ") if sys.stdin.isatty() else ""
    if password is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("password required: use --password or --password-stdin")
        import getpass

        password = getpass.getpass("Password: ")
    if not username:
        raise InvalidArgument("username required: use --username")
    transfer.login(opts.args[0], username, password, ctx)
    print("Login Succeeded!")


def _stored_user(registry: str, ctx: SystemContext) -> str:
    from pypod.image.registry.auth import lookup_credentials

    host = registry.removeprefix("https://").removeprefix("http://").split("/")[0]
    found = lookup_credentials(host, authfile=ctx.authfile, environ=dict(ctx.environ))
    if found is None:
        raise InvalidArgument(f"not logged into {host}")
    return found.username


def logout(opts: Parsed, ctx: SystemContext, *, no_registry: str) -> None:
    """`logout REGISTRY` or `logout --all`; `no_registry`: the program's message."""
    from pypod.image import transfer

    if opts.flag("all"):
        transfer.logout(None, ctx)
        print("Removed login credentials for all registries")
        return
    if len(opts.args) != 1:
        raise InvalidArgument(no_registry)
    if not transfer.logout(opts.args[0], ctx):
        raise InvalidArgument(f"not logged into {opts.args[0]}")
    print(f"Removed login credentials for {opts.args[0]}")
