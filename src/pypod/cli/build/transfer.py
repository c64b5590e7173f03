"""`pypod-build pull`, `push`, `login`, `logout` (buildah 1.28) over pypod.image.transfer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pypod.cli import registry
from pypod.cli.build.common import RETRY_FLAGS, exactly, open_build_store, store_location
from pypod.cli.build.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.cli.registry import progress_line
from pypod.errors import ImageNotFound, InvalidArgument

if TYPE_CHECKING:  # imported when used: `containers`, `mount` ... need no registry code
    from pypod.image import transfer
    from pypod.image.types import SystemContext

__all__ = ["COMMANDS", "PLATFORM_FLAGS", "REMOTE_FLAGS", "context", "options", "progress_line",
           "pull"]  # fmt: skip


def context(opts: Parsed) -> SystemContext:
    """The registry side of a transfer from the common flags (--tls-verify, --creds ...)."""
    return registry.system_context(opts)


def options(g: Globals, opts: Parsed, *, quiet: bool = False) -> transfer.TransferOptions:
    return registry.transfer_options(store_location(g), context(opts), opts, quiet=quiet)


def pull(g: Globals, name: str, policy: str, topts: transfer.TransferOptions) -> str:
    """The image `name` by buildah's pull policy (missing, always, never, newer = missing)."""
    from pypod.image import transfer

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
    registry.login(opts, context(opts), no_registry="please specify a registry to login to")
    return 0


def cmd_logout(g: Globals, opts: Parsed) -> int:
    registry.logout(opts, context(opts), no_registry="registry must be given")
    return 0


REMOTE_FLAGS = (*registry.ACCESS_FLAGS, *RETRY_FLAGS)
PLATFORM_FLAGS = registry.PLATFORM_FLAGS


def _copy_flags(doing: str) -> tuple[Flag, ...]:
    """--quiet and --remove-signatures of pull and push (`doing`: "pulling", "pushing")."""
    return (
        Flag(("quiet", "q"), help=f"don't output progress information when {doing} images"),
        Flag(("remove-signatures",), help=f"don't copy signatures when {doing} image"),
    )


COMMANDS: dict[str, Command] = {
    "pull": Command(
        handler=cmd_pull,
        flags=(
            *REMOTE_FLAGS,
            *PLATFORM_FLAGS,
            Flag(("all-tags", "a"), help="download all tagged images in the repository"),
            Flag(("policy",), True, help='missing, always, or never. (default "missing")'),
            *_copy_flags("pulling"),
        ),
        help="Pull an image from the specified location",
        long="Pulls an image from a registry and stores it locally.",
        usage="[flags] IMAGE",
    ),
    "push": Command(
        handler=cmd_push,
        flags=(
            *REMOTE_FLAGS,
            *registry.PUSH_FLAGS,
            *_copy_flags("pushing"),
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
    ),
    "logout": Command(
        handler=cmd_logout,
        flags=(
            registry.AUTHFILE_FLAG,
            Flag(("all", "a"), help="Remove the cached credentials for all registries"),
        ),
        help="Logout of a container registry",
        long="Remove the cached username and password for the registry.",
        usage="[flags] REGISTRY",
        storeless=True,
    ),
}
