"""`pypod-build copy`, `add`, `run` (buildah 1.28) over Builder.copy and pypod.build.run."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from pypod.cli.build.common import (
    ADD_HISTORY_FLAG,
    RETRY_FLAGS,
    add_history_wanted,
    open_build_store,
    out,
)
from pypod.cli.build.main import Command, CommandError, Globals
from pypod.cli.build.working import open_builder
from pypod.cli.flags import Flag, Parsed
from pypod.errors import (
    CannotInvoke,
    CommandNotFound,
    ContainerNotFound,
    InvalidArgument,
    NotSupported,
)

if TYPE_CHECKING:
    from pypod.build.builder import Builder
    from pypod.image.transports.containers_storage import Store


# --- copy, add ------------------------------------------------------------------------------
def _copy(g: Globals, opts: Parsed, *, add: bool) -> int:
    verb = "ADD" if add else "COPY"
    if not opts.args:
        raise InvalidArgument("container ID must be specified")
    if len(opts.args) < 2:
        raise InvalidArgument("src must be specified")
    container, *rest = opts.args
    # buildah: a lone source goes to the working directory
    sources, dest = (rest[:-1], rest[-1]) if len(rest) > 1 else (rest, "")
    given = opts.text("contextdir")
    if given:
        # buildah: with --contextdir the sources are absolute paths inside it
        context_dir = os.path.abspath(given)
        inside = []
        for src in sources:
            if "://" in src:
                inside.append(src)
            elif not os.path.isabs(src):
                raise InvalidArgument(
                    f'adding content to container "{container}": computing path of "{src}" '
                    f'relative to "{context_dir}": Rel: can\'t make {src} relative to {context_dir}'
                )
            elif os.path.commonpath([src, context_dir]) == context_dir:
                inside.append(os.path.relpath(src, context_dir))
            else:
                inside.append(src)
        sources = inside
    else:
        # buildah without --contextdir: sources are host paths, relative ones from here
        context_dir = "/"
        cwd = os.getcwd()
        sources = [s if "://" in s else os.path.join(cwd, s) for s in sources]
    ignore = None
    ignorefile = opts.text("ignorefile")
    if ignorefile:
        from pypod.build.ignore import load_ignore

        ignore = load_ignore(context_dir, ignorefile=ignorefile)
    with open_build_store(g) as store:
        builder = open_builder(store, container)
        from_name = opts.text("from")
        temporary: Builder | None = None
        from_root = None
        source: Builder | None = None
        try:
            if from_name:
                source, temporary = _source_builder(store, from_name)
                from_root = source.mount()
            digest = builder.copy(
                sources,
                dest,
                context_dir=context_dir,
                add=add,
                chown=opts.text("chown"),
                chmod=opts.text("chmod"),
                ignore=ignore,
                from_root=from_root,
            )
        finally:
            if source is not None and from_root is not None:
                source.unmount()
            if temporary is not None:
                temporary.remove()
        if add_history_wanted(opts):
            builder.add_history(f"/bin/sh -c #(nop) {verb} {digest}")
            builder.save()
    if not opts.flag("quiet"):
        out(digest.partition(":")[2] + "\n")
    return 0


def _source_builder(store: Store, name: str) -> tuple[Builder, Builder | None]:
    """(the container to read `--from` sources from, the temporary one to remove after):
    a working container, else a container made for the purpose from the image `name`."""
    from pypod.build.builder import Builder, FromOptions

    try:
        return open_builder(store, name), None
    except ContainerNotFound:
        pass
    import secrets

    temp = Builder.new(store, name, FromOptions(name=f"pypod-build-copy-{secrets.token_hex(6)}",
                                               pull="missing"))  # fmt: skip
    return temp, temp


def cmd_copy(g: Globals, opts: Parsed) -> int:
    return _copy(g, opts, add=False)


def cmd_add(g: Globals, opts: Parsed) -> int:
    return _copy(g, opts, add=True)


# --- run ------------------------------------------------------------------------------------
def cmd_run(g: Globals, opts: Parsed) -> int:
    from pypod.build.run import RunOptions, run

    if not opts.args:
        raise InvalidArgument("container ID must be specified")
    container, *argv = opts.args
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise InvalidArgument("command must be specified")
    for name in ("cap-add", "cap-drop", "runtime", "runtime-flag", "ipc", "pid", "uts",
                 "cgroupns", "no-pivot", "no-hosts"):  # fmt: skip
        if opts.values.get(name) not in (None, [], False):
            raise NotSupported(f"'run --{name}' is not supported yet")
    network = opts.text("network") or "host"
    isolation = opts.text("isolation") or os.environ.get("BUILDAH_ISOLATION") or "oci"
    if isolation == "rootless":
        isolation = "oci"
    terminal = opts.flag("terminal")
    with open_build_store(g) as store:
        builder = open_builder(store, container)
        run_opts = RunOptions(
            argv=tuple(argv),
            env=tuple(opts.texts("env")),
            user=opts.text("user"),
            workdir=opts.text("workingdir"),
            hostname=opts.text("hostname"),
            volumes=tuple(opts.texts("volume")),
            mounts=tuple(opts.texts("mount")),
            network=network,
            isolation=isolation,
            terminal=terminal,
            context_dir=opts.text("contextdir"),
        )
        sys.stdout.flush()
        try:
            code = run(builder, run_opts)
        except (CommandNotFound, CannotInvoke) as e:
            # buildah: the runtime's create fails and buildah reports its exit status (1)
            raise CommandError(
                f"{e}\nError: while running runtime: exit status 1", code=1
            ) from None
        if add_history_wanted(opts):
            builder.add_history("/bin/sh -c " + " ".join(argv))
            builder.save()
    if code != 0:
        raise CommandError(f"while running runtime: exit status {code}", code=code)
    return 0


_COPY_FLAGS = (
    ADD_HISTORY_FLAG,
    Flag(("chmod",), True, help="set the access permissions of the destination content"),
    Flag(("chown",), True, help="set the user and group ownership of the destination content"),
    Flag(("contextdir",), True, help="context directory path"),
    Flag(("from",), True, help="use the specified container's or image's root directory as "
         "the source root directory"),
    Flag(("ignorefile",), True, help="path to .containerignore file"),
    Flag(("quiet", "q"), help="don't output a digest of the newly-added/copied content"),
    *RETRY_FLAGS,
)  # fmt: skip

COMMANDS: dict[str, Command] = {
    "copy": Command(
        handler=cmd_copy,
        flags=_COPY_FLAGS,
        help="Copy content into the container",
        long="Copies the contents of a file, URL, or directory into a container's working\n"
        "  directory.",
        usage="[flags] CONTAINER [[SRC ...] DEST]",
    ),
    "add": Command(
        handler=cmd_add,
        flags=_COPY_FLAGS,
        help="Add content to the container",
        long="Adds the contents of a file, URL, or directory to a container's working\n"
        "  directory.  If a local file appears to be an archive, its contents are\n"
        "  extracted and added instead of the archive file itself.",
        usage="[flags] CONTAINER [[SRC ...] DEST]",
    ),
    "run": Command(
        handler=cmd_run,
        flags=(
            ADD_HISTORY_FLAG,
            Flag(("cap-add",), True, True, help="add the specified capability"),
            Flag(("cap-drop",), True, True, help="drop the specified capability"),
            Flag(("cgroupns",), True, help="'private', or 'host'"),
            Flag(("contextdir",), True, help="context directory path"),
            Flag(("env", "e"), True, True, help="add environment variable to be set temporarily"),
            Flag(("hostname",), True, help="set the hostname inside of the container"),
            Flag(("ipc",), True, help="'private', path of IPC namespace to join, or 'host'"),
            Flag(("isolation",), True, help="type of process isolation to use (oci, chroot)"),
            Flag(("mount",), True, True, help="attach a filesystem mount to the container"),
            Flag(("network", "net"), True, help="'private', 'none' or 'host' (the default)"),
            Flag(("no-hosts",), help="do not override the /etc/hosts file within the container"),
            Flag(("no-pivot",), help="do not use pivot root to jail process inside rootfs"),
            Flag(("pid",), True, help="private, path of PID namespace to join, or 'host'"),
            Flag(("runtime",), True, help="path to an alternate OCI runtime"),
            Flag(("runtime-flag",), True, True, help="add global flags for the runtime"),
            Flag(("terminal", "t"), help="allocate a pseudo-TTY in the container"),
            Flag(("user",), True, help="user[:group] to run the command as"),
            Flag(("uts",), True, help="private, :path of UTS namespace to join, or 'host'"),
            Flag(
                ("volume", "v"),
                True,
                True,
                help="bind mount a host location into the " "container while running the command",
            ),
            Flag(("workingdir",), True, help="temporarily set working directory for command"),
        ),  # fmt: skip
        help="Run a command inside of the container",
        long="Runs a specified command using the container's root filesystem as a root\n"
        "  filesystem, using configuration settings inherited from the container's\n"
        "  image or as specified using previous calls to the config command.",
        usage="[flags] CONTAINER [--] COMMAND [ARGS...]",
        check_order=False,
    ),
}
