"""`pypod-image`: skopeo's command line over pypod.image (transports and the copy pipeline)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pypod
from pypod.cli.flags import Flag, Parsed, help_text, parse
from pypod.errors import EXIT_TOOL_ERROR, InvalidArgument, NotSupported, PypodError

PROG = "pypod-image"

GLOBAL_FLAGS = (
    Flag(("debug",), help="enable debug output"),
    Flag(("log-level",), True, help="log messages above specified level (debug, info, warn)"),
    Flag(("insecure-policy",), help="run the tool without any policy check"),
    Flag(("policy",), True, help="path to a trust policy file (not supported yet)"),
    Flag(("registries-conf",), True, help="path to the registries.conf file"),
    Flag(("tmpdir",), True, help="directory used to store temporary files"),
    Flag(("override-arch",), True, help="use ARCH instead of the architecture of the machine"),
    Flag(("override-os",), True, help="use OS instead of the running OS for choosing images"),
    Flag(("override-variant",), True, help="use VARIANT instead of the running variant"),
    Flag(("command-timeout",), True, help="timeout for the command execution (not supported yet)"),
    Flag(("help", "h"), help="help for pypod-image"),
    Flag(("version", "v"), help="version for pypod-image"),
)
_AUTH = (
    Flag(("authfile",), True, help="path of the authentication file"),
    Flag(("cert-dir",), True, help="use certificates at PATH to connect to the registry"),
    Flag(("creds",), True, help="Use USERNAME[:PASSWORD] for accessing the registry"),
    Flag(("username",), True, help="Username for accessing the registry"),
    Flag(("password",), True, help="Password for accessing the registry"),
    Flag(("no-creds",), help="Access the registry anonymously"),
    Flag(("tls-verify",), help="require HTTPS and verify certificates"),
    Flag(("retry-times",), True, help="the number of times to possibly retry"),
)


def _side(prefix: str) -> tuple[Flag, ...]:
    return (
        Flag((f"{prefix}-authfile",), True, help="path of the authentication file"),
        Flag((f"{prefix}-cert-dir",), True, help="use certificates at PATH"),
        Flag((f"{prefix}-creds",), True, help="Use USERNAME[:PASSWORD] for the registry"),
        Flag((f"{prefix}-username",), True, help="Username for accessing the registry"),
        Flag((f"{prefix}-password",), True, help="Password for accessing the registry"),
        Flag((f"{prefix}-no-creds",), help="Access the registry anonymously"),
        Flag((f"{prefix}-tls-verify",), help="require HTTPS and verify certificates"),
    )


_COPY = (
    Flag(("all", "a"), help="Copy all images if SOURCE-IMAGE is a list"),
    Flag(("authfile",), True, help="path of the authentication file"),
    *_side("src"),
    *_side("dest"),
    Flag(("format", "f"), True, help="MANIFEST TYPE (oci, v2s2) to use in the destination"),
    Flag(("dest-compress-format",), True, help="FORMAT to use for the compression (gzip, zstd)"),
    Flag(("dest-compress",), help="Compress layers when saving to the destination"),
    Flag(("dest-decompress",), help="(not supported)"),
    Flag(("retry-times",), True, help="the number of times to possibly retry"),
    Flag(("digestfile",), True, help="Write the digest of the pushed image to the file"),
    Flag(("preserve-digests",), help="Preserve digests of images and lists"),
    Flag(("remove-signatures",), help="Do not copy signatures from SOURCE-IMAGE"),
    Flag(("quiet", "q"), help="Suppress output information when copying images"),
)
_LOGIN = (
    Flag(("authfile",), True, help="path of the authentication file"),
    Flag(("username", "u"), True, help="Username"),
    Flag(("password", "p"), True, help="Password"),
    Flag(("password-stdin",), help="Take the password from stdin"),
    Flag(("get-login",), help="Return the current login user for the registry"),
    Flag(("tls-verify",), help="require HTTPS and verify certificates"),
    Flag(("cert-dir",), True, help="use certificates at PATH"),
    Flag(("verbose", "v"), help="Write more detailed information to stdout"),
)
COMMANDS: dict[str, tuple[str, tuple[Flag, ...], str]] = {
    "copy": ("Copy an IMAGE-NAME from one location to another", _COPY,
             "SOURCE-IMAGE DESTINATION-IMAGE"),
    "delete": ("Delete image IMAGE-NAME", _AUTH, "IMAGE-NAME"),
    "inspect": ("Inspect image IMAGE-NAME", (
        *_AUTH,
        Flag(("raw",), help="output raw manifest or configuration"),
        Flag(("config",), help="output configuration"),
        Flag(("format", "f"), True, help="Format the output to a Go template"),
        Flag(("no-tags", "n"), help="Do not list the available tags from the repository"),
    ), "IMAGE-NAME"),
    "list-tags": ("List tags in the transport/repository specified by the SOURCE-IMAGE",
                  _AUTH, "SOURCE-IMAGE"),
    "login": ("Login to a container registry", _LOGIN, "REGISTRY"),
    "logout": ("Logout of a container registry", (
        Flag(("authfile",), True, help="path of the authentication file"),
        Flag(("all", "a"), help="Remove the cached credentials for all registries"),
    ), "REGISTRY"),
    "manifest-digest": ("Compute a manifest digest of a file", (), "MANIFEST-FILE"),
    "sync": ("Synchronize one or more images from one location to another", (
        *(f for f in _COPY if f.names[0] not in ("digestfile", "quiet")),
        Flag(("src", "s"), True, help="SOURCE transport type (docker, dir)"),
        Flag(("dest", "d"), True, help="DESTINATION transport type (docker, dir, oci)"),
        Flag(("scoped",), help="Images at DESTINATION are prefixed with the full source path"),
        Flag(("keep-going",), help="Do not abort the sync if any image copy fails"),
        Flag(("dry-run",), help="Run without actually copying data"),
    ), "--src TRANSPORT --dest TRANSPORT SOURCE DESTINATION"),
}  # fmt: skip


class UsageError(InvalidArgument):
    pass


def entry() -> None:
    """The `pypod-image` program (its console script): `main()`, then the process ends at once
    (cli/process_exit.py), which also has the garbage collector run less often."""
    from pypod.cli.process_exit import run_program

    run_program(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        g = parse(args, GLOBAL_FLAGS)
        if g.flag("version"):
            print(f"{PROG} version {pypod.__version__}")
            return 0
        if not g.args or g.flag("help") or g.args[0] == "help":
            if len(g.args) > 1 and g.args[1] in COMMANDS:
                print(_command_help(g.args[1]))
            else:
                print(_usage())
            return 0
        _setup_logging(g)
        # accepted flags that would change behaviour we do not have: refuse, never pretend
        if g.text("policy"):
            raise NotSupported(
                f"{PROG}: --policy is not supported yet: signatures are neither checked nor "
                "written; leave it out (or use --insecure-policy)"
            )
        if g.text("command-timeout"):
            raise NotSupported(f"{PROG}: --command-timeout is not supported yet")
        name, rest = g.args[0], g.args[1:]
        if name not in COMMANDS:
            raise UsageError(f'unknown command "{name}" for "{PROG}"')
        _, flags, _ = COMMANDS[name]
        opts = parse(rest, (*flags, Flag(("help", "h"))), interspersed=True)
        if opts.flag("help"):
            print(_command_help(name))
            return 0
        return _HANDLERS[name](g, opts)
    except PypodError as e:
        _report(str(e))
        return EXIT_TOOL_ERROR
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        _report(f"{e.strerror or e}{where}")
        return EXIT_TOOL_ERROR
    except KeyboardInterrupt:
        return 130


def _report(msg: str) -> None:
    from pypod.cli.output import logrus_line

    sys.stderr.write(logrus_line("fatal", msg))


def _setup_logging(g: Parsed) -> None:
    level = "debug" if g.flag("debug") else g.text("log-level")
    if not level:
        return
    import logging

    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "warning": logging.WARNING, "error": logging.ERROR}  # fmt: skip
    if level not in levels:
        raise InvalidArgument(f'not a valid logrus Level: "{level}"')
    logging.basicConfig(level=levels[level], format="%(levelname)s %(message)s")


def _usage() -> str:
    cmds = "\n".join(f"  {n:<18}{d}" for n, (d, _, _) in sorted(COMMANDS.items()))
    return (
        f"Various operations with container images and container image registries\n\n"
        f"Usage:\n  {PROG} [flags]\n  {PROG} [command]\n\nAvailable Commands:\n{cmds}\n\n"
        f"Flags:\n{help_text(GLOBAL_FLAGS)}\n\n"
        f'Use "{PROG} [command] --help" for more information about a command.'
    )


def _command_help(name: str) -> str:
    desc, flags, usage = COMMANDS[name]
    return f"{desc}\n\nUsage:\n  {PROG} {name} [command options] {usage}\n\nFlags:\n" + help_text(
        flags
    )


def _args(name: str, opts: Parsed, count: int) -> list[str]:
    if len(opts.args) != count:
        raise UsageError(f"Exactly {count} argument{'s' if count > 1 else ''} expected"
                         if count > 1 else "Exactly one argument expected")  # fmt: skip
    return opts.args


def _tls(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _context(g: Parsed, opts: Parsed, prefix: str = "") -> Any:
    from pypod.image.types import SystemContext

    p = f"{prefix}-" if prefix else ""
    creds = opts.text(f"{p}creds")
    user, password = opts.text(f"{p}username"), opts.text(f"{p}password")
    if user is not None:
        if creds is not None:
            raise InvalidArgument(f"--{p}creds and --{p}username cannot be used together")
        creds = f"{user}:{password or ''}"
    elif password is not None:
        raise InvalidArgument(f"--{p}password needs --{p}username")
    return SystemContext(
        tls_verify=_tls(opts.values.get(f"{p}tls-verify")),
        authfile=opts.text(f"{p}authfile") or opts.text("authfile"),
        credentials=creds,
        registries_conf=g.text("registries-conf"),
        certs_dir=opts.text(f"{p}cert-dir"),
        os=g.text("override-os"),
        arch=g.text("override-arch"),
        variant=g.text("override-variant"),
        tmpdir=g.text("tmpdir"),
        retries=opts.number("retry-times", 3),
        environ=dict(os.environ),
    )


def _image(name: str) -> Any:
    from pypod.image.transports import parse_image_name

    try:
        return parse_image_name(name)
    except PypodError as e:
        raise InvalidArgument(f'Error parsing image name "{name}": {e}') from None


# --------------------------------------------------------------------------- commands


def cmd_copy(g: Parsed, opts: Parsed) -> int:
    from pypod.image.copy import copy_image

    src_name, dst_name = _args("copy", opts, 2)
    src, dst = _image(src_name), _image(dst_name)
    copy_image(src, dst, _copy_options(g, opts, quiet=opts.flag("quiet")))
    return 0


def _copy_options(g: Parsed, opts: Parsed, quiet: bool) -> Any:
    from pypod.image.copy import CopyOptions, ProgressEvent

    compression = opts.text("dest-compress-format")
    if compression is not None and compression not in ("gzip", "zstd"):
        raise InvalidArgument(f"unsupported compression format {compression!r}: gzip or zstd")
    if compression is None and opts.flag("dest-compress"):
        compression = "gzip"
    show = not quiet and sys.stdout.isatty()

    def progress(event: ProgressEvent) -> None:
        print(event.message, flush=True)

    return CopyOptions(
        src_ctx=_context(g, opts, "src"),
        dst_ctx=_context(g, opts, "dest"),
        all_images=opts.flag("all"),
        manifest_format=opts.text("format"),
        dest_compression=compression,
        preserve_digests=opts.flag("preserve-digests"),
        progress=progress if show else None,
        digest_file=opts.text("digestfile"),
    )


def cmd_sync(g: Parsed, opts: Parsed) -> int:
    from pypod.image.copy import copy_image
    from pypod.image.copy.sync import sync_plan

    source, destination = _args("sync", opts, 2)
    src_kind, dest_kind = opts.text("src"), opts.text("dest")
    if not src_kind or not dest_kind:
        raise UsageError("sync: both --src and --dest are required")
    options = _copy_options(g, opts, quiet=False)
    plan = sync_plan(src_kind, source, dest_kind, destination, options.src_ctx,
                     scoped=opts.flag("scoped"))  # fmt: skip
    failed = 0
    for item in plan:
        if opts.flag("dry-run"):
            print(f"Would have copied image ref {item.suffix}")
            continue
        try:
            copy_image(item.source, item.destination, options)
        except PypodError as e:
            if not opts.flag("keep-going"):
                raise
            failed += 1
            _report_error(f"Error copying ref {item.suffix}: {e}")
    print(f"Synced {len(plan) - failed} images from 1 sources")
    return 1 if failed else 0


def _report_error(msg: str) -> None:
    from pypod.cli.output import logrus_line

    sys.stderr.write(logrus_line("error", msg))


def cmd_inspect(g: Parsed, opts: Parsed) -> int:
    from pypod.image.copy.inspect import inspect_image

    (name,) = _args("inspect", opts, 1)
    ref = _image(name)
    ctx = _context(g, opts)
    docker_ref = getattr(ref, "docker_reference", None)
    tags: list[str] | None = None
    if opts.flag("raw") and not opts.flag("config"):
        with ref.new_source(ctx) as source:
            raw, _ = source.get_manifest()
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return 0
    if docker_ref is not None and ref.transport_name == "docker" and not opts.flag("config") \
            and not opts.flag("no-tags"):  # fmt: skip
        tags = ref.list_tags(ctx)
    result = inspect_image(
        ref, ctx, repo_tags=tags, name=docker_ref.name if docker_ref is not None else None
    )
    if opts.flag("config"):
        if opts.flag("raw"):
            sys.stdout.buffer.write(result.raw_config)
            sys.stdout.flush()
        else:
            print(_go_json(json.loads(result.raw_config)))
        return 0
    fmt = opts.text("format")
    if fmt:
        from pypod.cli.gotemplate import Struct, render

        print(render(fmt, Struct(result.document)))
    else:
        print(_go_json(result.document))
    return 0


def _go_json(doc: object) -> str:
    """json.MarshalIndent(doc, "", "    ") with Go's HTML escaping."""
    text = json.dumps(doc, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def cmd_delete(g: Parsed, opts: Parsed) -> int:
    (name,) = _args("delete", opts, 1)
    ref = _image(name)
    ref.delete(_context(g, opts))
    return 0


def cmd_list_tags(g: Parsed, opts: Parsed) -> int:
    (name,) = _args("list-tags", opts, 1)
    ref = _image(name)
    if ref.transport_name != "docker":
        raise InvalidArgument(
            f'Unsupported transport "{ref.transport_name}" for listing tags. Only supported: '
            "docker, docker-archive"
        )
    tags = ref.list_tags(_context(g, opts))
    print(_go_json({"Repository": ref.docker_reference.name, "Tags": tags}))
    return 0


def cmd_manifest_digest(g: Parsed, opts: Parsed) -> int:
    from pypod.image.copy.inspect import manifest_digest

    (path,) = _args("manifest-digest", opts, 1)
    with open(path, "rb") as f:
        data = f.read()
    print(manifest_digest(data))
    return 0


def _registry_key(arg: str) -> str:
    for scheme in ("docker://", "https://", "http://"):
        arg = arg.removeprefix(scheme)
    return arg.rstrip("/")


def cmd_login(g: Parsed, opts: Parsed) -> int:
    from pypod.image.registry import Credentials, RegistryClient, store_credentials
    from pypod.image.registry.auth import lookup_credentials

    (arg,) = _args("login", opts, 1)
    key = _registry_key(arg)
    registry = key.split("/", 1)[0]
    authfile = opts.text("authfile")
    if opts.flag("get-login"):
        found = lookup_credentials(registry, authfile=authfile)
        if found is None:
            raise InvalidArgument(f"not logged into {key}")
        print(found.username)
        return 0
    user, password = opts.text("username"), opts.text("password")
    if opts.flag("password-stdin"):
        if password is not None:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.readline().rstrip("\n")
    if user is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("a username is required (-u) when not on a terminal")
        user = input("Username: ")
    if password is None:
        import getpass

        password = getpass.getpass("Password: ")
    creds = Credentials(username=user, password=password)
    tls = _tls(opts.values.get("tls-verify"))
    with RegistryClient(registry, tls_verify=tls is not False, credentials=creds,
                        certs_dir=opts.text("cert-dir")) as client:  # fmt: skip
        client.ping()
    store_credentials(key, creds, authfile=authfile)
    print("Login Succeeded!")
    return 0


def cmd_logout(g: Parsed, opts: Parsed) -> int:
    from pypod.image.registry import remove_credentials

    authfile = opts.text("authfile")
    if opts.flag("all"):
        remove_credentials(None, authfile=authfile)
        print("Removed login credentials for all registries")
        return 0
    (arg,) = _args("logout", opts, 1)
    key = _registry_key(arg)
    if not remove_credentials(key, authfile=authfile):
        raise InvalidArgument(f"not logged into {key}")
    print(f"Removed login credentials for {key}")
    return 0


_HANDLERS: dict[str, Callable[[Parsed, Parsed], int]] = {
    "copy": cmd_copy,
    "delete": cmd_delete,
    "inspect": cmd_inspect,
    "list-tags": cmd_list_tags,
    "login": cmd_login,
    "logout": cmd_logout,
    "manifest-digest": cmd_manifest_digest,
    "sync": cmd_sync,
}
