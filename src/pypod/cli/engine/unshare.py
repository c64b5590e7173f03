"""`pypod unshare [--] [COMMAND [ARG...]]`: a command in the rootless user and mount namespace.

As `podman unshare`: `pypod` has already joined the user's namespace (the pause process, see
`pypod.engine.rootless`) when a regular user runs it, so the command (default `$SHELL`, else
/bin/sh) is executed in place, as uid 0 of that namespace, with CONTAINERS_GRAPHROOT and
CONTAINERS_RUNROOT set to the store's locations.  Its exit code is pypod's; 127 when it is not
found, 126 when it cannot be executed; 125 for pypod's own errors (root: "please use unshare
with rootless").
"""

from __future__ import annotations

import os

from pypod.cli.engine.main import Command, Globals, UsageError
from pypod.cli.flags import Flag, Parsed
from pypod.errors import CannotInvoke, CommandNotFound, InvalidArgument, NotSupported

_FLAGS = (
    Flag(
        ("rootless-netns",),
        help="Join the rootless network namespace used for CNI and netavark networking",
    ),
)


def cmd_unshare(g: Globals, opts: Parsed) -> int:
    args = list(opts.args)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "--":
            break
        if flag in ("--rootless-netns", "--rootless-cni"):
            raise NotSupported(
                f"'{flag}' is not supported yet: rootless containers get a network namespace "
                "each (pasta or slirp4netns), there is no shared rootless one to join"
            )
        raise UsageError(f"unknown flag: {flag}\nSee 'pypod unshare --help'")
    from pypod.engine import rootless

    if not rootless.is_rootless():
        raise InvalidArgument("please use unshare with rootless")
    if not args:
        args = [os.environ.get("SHELL") or "/bin/sh"]
    env = dict(os.environ)
    env["CONTAINERS_GRAPHROOT"] = g.graphroot
    env["CONTAINERS_RUNROOT"] = g.runroot
    _exec(args, env)
    raise AssertionError("unreachable")  # pragma: no cover


def _exec(args: list[str], env: dict[str, str]) -> None:
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(args[0], args, env)
    except FileNotFoundError:
        if "/" in args[0]:
            raise CommandNotFound(f"fork/exec {args[0]}: no such file or directory") from None
        raise CommandNotFound(f'exec: "{args[0]}": executable file not found in $PATH') from None
    except PermissionError:
        raise CannotInvoke(f"fork/exec {args[0]}: permission denied") from None
    except OSError as e:
        raise CannotInvoke(f"fork/exec {args[0]}: {(e.strerror or str(e)).lower()}") from None


COMMANDS: dict[str, Command] = {
    "unshare": Command(
        handler=cmd_unshare,
        flags=_FLAGS,
        help="Run a command in a modified user namespace",
        usage="[options] [COMMAND [ARG...]]",
        raw=True,
    ),
}
