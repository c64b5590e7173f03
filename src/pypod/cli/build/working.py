"""Working containers (buildah 1.28): from, containers, rm, mount, umount, rename, commit.

`config` lives in config_cmd.py.  Every action is a call into pypod.build.builder; this
module parses, prints what buildah prints and reports errors with buildah's wording.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pypod.build import config_edit
from pypod.cli.build.common import exactly, open_build_store, out, render
from pypod.cli.build.main import Command, Globals
from pypod.cli.build.transfer import PLATFORM_FLAGS, REMOTE_FLAGS, context, progress_line
from pypod.cli.flags import Flag, Parsed
from pypod.cli.gotemplate import Struct
from pypod.errors import ContainerNotFound, InvalidArgument, NotSupported, PypodError

if TYPE_CHECKING:
    from pypod.build.builder import Builder
    from pypod.image.transports.containers_storage import Store

#: `from` flags that configure later `run`s in buildah; pypod-build does not keep them yet
_RUN_SETTINGS = ("add-host", "cap-add", "cap-drop", "cgroup-parent", "cgroupns", "cpu-period",
                 "cpu-quota", "cpu-shares", "cpuset-cpus", "cpuset-mems", "device", "dns",
                 "dns-option", "dns-search", "ipc", "memory", "memory-swap", "pid",
                 "security-opt", "shm-size", "ulimit", "userns", "uts", "volume",
                 "decryption-key", "userns-uid-map-user", "userns-gid-map-group")  # fmt: skip


def open_builder(store: Store, name: str) -> Builder:
    """The working container `name` (buildah's message when there is none)."""
    from pypod.build.builder import Builder

    try:
        return Builder.open(store, name)
    except ContainerNotFound:
        raise ContainerNotFound(f'reading build container "{name}": container not known') from None


# --- from -----------------------------------------------------------------------------------
def pull_policy(value: str | None) -> str:
    """buildah's --pull: true (the default: if newer or missing), false, always, never."""
    v = (value or "true").lower()
    policies = {"true": "missing", "false": "missing", "missing": "missing",
                "ifmissing": "missing", "newer": "missing", "ifnewer": "missing",
                "always": "always", "never": "never"}  # fmt: skip
    if v not in policies:
        raise InvalidArgument(f'unsupported pull policy "{value}"')
    return policies[v]


def cmd_from(g: Globals, opts: Parsed) -> int:
    from pypod.build.builder import Builder, FromOptions
    from pypod.image import transfer

    if not opts.args:
        raise InvalidArgument('an image name (or "scratch") must be specified')
    if len(opts.args) > 1:
        raise InvalidArgument("too many arguments specified")
    for name in _RUN_SETTINGS:
        if opts.values.get(name) not in (None, [], False):
            raise NotSupported(f"'from --{name}' is not supported yet")
    fmt = opts.text("format")
    if fmt not in (None, "oci", "docker"):
        raise InvalidArgument(f'unrecognized image type "{fmt}"')
    # buildah keeps these for the container's later `run`s and `commit`: not kept yet
    for flag, default in (("format", "oci"), ("isolation", "oci"), ("network", "host")):
        if opts.text(flag) not in (None, default):
            raise NotSupported(
                f"'from --{flag} {opts.text(flag)}' is not supported yet: give it to `run` "
                "or `commit` instead"
            )
    quiet = opts.flag("quiet")
    from_opts = FromOptions(
        name=opts.text("name"),
        pull=pull_policy(opts.text("pull")),
        transfer=transfer.TransferOptions(
            store=_location(g), ctx=context(opts), progress=None if quiet else progress_line
        ),
        progress=None if quiet else progress_line,
    )
    with open_build_store(g) as store:
        builder = Builder.new(store, opts.args[0], from_opts)
    cidfile = opts.text("cidfile")
    if cidfile:
        _write_new(cidfile, builder.container_id)
    print(builder.name)
    return 0


def _location(g: Globals) -> Any:
    from pypod.cli.build.common import store_location

    return store_location(g)


def _write_new(path: str, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InvalidArgument(f"container id file {path} exists: remove it first") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)


# --- containers -----------------------------------------------------------------------------
_CONTAINER_HEADERS = {"ContainerName": "CONTAINER NAME", "ContainerID": "CONTAINER ID",
                      "Builder": "BUILDER", "ImageID": "IMAGE ID",
                      "ImageName": "IMAGE NAME"}  # fmt: skip


def _filter(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    found: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq:
            raise InvalidArgument(
                f'parsing filter: incorrect filter value "{part}", should be of form filter=value'
            )
        if key.strip() not in ("id", "name", "ancestor"):
            raise InvalidArgument(f'parsing filter: invalid filter "{key}"')
        found[key.strip()] = value
    return found


def _matches(filters: dict[str, str], cid: str, name: str, image_id: str, image: str) -> bool:
    if "id" in filters and not cid.startswith(filters["id"]):
        return False
    if "name" in filters and filters["name"] not in name:
        return False
    if "ancestor" in filters:
        want = filters["ancestor"]
        if not image_id.startswith(want) and not _matches_reference(image, want):
            return False
    return True


def _matches_reference(name: str, arg: str) -> bool:
    repo, _, tag = name.rpartition(":") if ":" in name.rpartition("/")[2] else (name, "", "")
    if ":" in arg.rpartition("/")[2]:
        want_repo, _, want_tag = arg.rpartition(":")
        return repo.endswith(want_repo) and tag == want_tag
    return repo.endswith(arg)


def cmd_containers(g: Globals, opts: Parsed) -> int:
    from pypod.build.builder import list_builders

    if opts.args:
        raise InvalidArgument("'pypod-build containers' does not accept arguments")
    if opts.flag("quiet") and opts.text("format"):
        raise InvalidArgument("quiet and format are mutually exclusive")
    filters = _filter(opts.text("filter"))
    rows: list[dict[str, Any]] = []
    with open_build_store(g) as store:
        names: dict[str, str] = {}

        def image_name(image_id: str) -> str:
            if not image_id:
                return "scratch"
            if image_id not in names:
                try:
                    found = store.image(image_id).names
                except PypodError:
                    found = ()
                names[image_id] = found[0] if found else ""
            return names[image_id]

        builders = list_builders(store)
        ours = {b.container_id: b for b in builders}
        if opts.flag("all"):
            for c in store.containers():
                cname = c.names[0] if c.names else ""
                # a scratch builder's storage container has no image ("")
                image_id = ours[c.id].from_image_id if c.id in ours else c.image_id
                rows.append({"id": c.id, "builder": c.id in ours, "imageid": image_id,
                             "imagename": image_name(image_id),
                             "containername": cname})  # fmt: skip
        else:
            for b in builders:
                rows.append({"id": b.container_id, "builder": True,
                             "imageid": b.from_image_id, "imagename": image_name(b.from_image_id),
                             "containername": b.name})  # fmt: skip
    rows = [r for r in rows if _matches(filters, r["id"], r["containername"], r["imageid"],
                                        r["imagename"])]  # fmt: skip
    if opts.flag("json"):
        out(json.dumps(rows or None, indent=4) + "\n")
        return 0
    fmt = opts.text("format")
    if fmt:
        structs = [Struct(ContainerID=r["id"], Builder="   *" if r["builder"] else "",
                          ImageID=r["imageid"], ImageName=r["imagename"],
                          ContainerName=r["containername"]) for r in rows]  # fmt: skip
        out(render(fmt, structs, _CONTAINER_HEADERS))
        return 0
    truncate = not opts.flag("notruncate")
    lines = []
    if opts.flag("quiet"):
        out("".join(f"{r['id']:<64}\n" for r in rows))
        return 0
    if not opts.flag("noheading"):
        lines.append(_container_line(truncate, "CONTAINER ID", "BUILDER", "IMAGE ID",
                                     "IMAGE NAME", "CONTAINER NAME", header=True))  # fmt: skip
    for r in rows:
        lines.append(_container_line(truncate, r["id"], "   *" if r["builder"] else "",
                                     r["imageid"], r["imagename"], r["containername"]))  # fmt: skip
    out("".join(lines))
    return 0


def _container_line(truncate: bool, cid: str, builder: str, image_id: str, image: str,
                    name: str, *, header: bool = False) -> str:  # fmt: skip
    if truncate:
        if len(image) > 32:
            image = image[:29] + "..."
        if header:
            return f"{cid:<12}  {builder:<8} {image_id:<12} {image:<32} {name}\n"
        return f"{cid[:12]:<12}  {builder:<8} {image_id[:12]:<12} {image:<32} {name}\n"
    return f"{cid:<64} {builder:<8} {image_id:<64} {image:<32} {name}\n"


# --- rm, mount, umount, rename ---------------------------------------------------------------
def _each(g: Globals, opts: Parsed, missing: str, action: Callable[[Builder], str | None],
          *, every: Callable[[Store], list[Builder]] | None = None) -> int:  # fmt: skip
    """Run `action` on each named working container (or every one with --all); print what it
    returns; buildah's message for each failure, the last one as the error."""
    from pypod.build.builder import list_builders

    all_flag = opts.flag("all")
    if all_flag and opts.args:
        raise InvalidArgument("when using the --all switch, you may not pass any containers")
    if not all_flag and not opts.args:
        raise InvalidArgument("container ID must be specified")
    last: PypodError | None = None
    with open_build_store(g) as store:
        targets: list[tuple[str, Builder | None]] = []
        if all_flag:
            targets = [(b.name, b) for b in (every or list_builders)(store)]
        else:
            for name in opts.args:
                try:
                    targets.append((name, open_builder(store, name)))
                except ContainerNotFound:
                    targets.append((name, None))
        for name, builder in targets:
            try:
                if builder is None:
                    raise ContainerNotFound(missing.format(name=name))
                shown = action(builder)
            except PypodError as e:
                if last is not None:  # buildah: the earlier errors without "Error: "
                    print(last, file=sys.stderr)
                last = e
                continue
            if shown is not None:
                print(shown)
                sys.stdout.flush()
    if last is not None:
        raise last
    return 0


def cmd_rm(g: Globals, opts: Parsed) -> int:
    def remove(b: Builder) -> str:
        b.remove()
        return b.container_id

    return _each(g, opts, 'removing container "{name}": container not known', remove)


def cmd_mount(g: Globals, opts: Parsed) -> int:
    from pypod.build.builder import list_builders

    as_json = opts.flag("json")
    if not opts.args:
        with open_build_store(g) as store:
            mounted = [(b.name, b.mount_point) for b in list_builders(store) if b.mount_point]
        if as_json:
            out(json.dumps([{"container": n, "mountPoint": p} for n, p in mounted] or None,
                           indent=4) + "\n")  # fmt: skip
        else:
            out("".join(f"{n} {p}\n" for n, p in mounted))
        return 0
    results: list[tuple[str, str]] = []
    last: PypodError | None = None
    with open_build_store(g) as store:
        for name in opts.args:
            try:
                results.append((name, open_builder(store, name).mount()))
            except PypodError as e:
                if last is not None:
                    print(f"Error: {last}", file=sys.stderr)
                last = e
    if as_json:
        out(json.dumps([{"container": n, "mountPoint": p} for n, p in results], indent=4) + "\n")
    elif len(opts.args) == 1:
        out("".join(f"{p}\n" for _, p in results))
    else:
        out("".join(f"{n} {p}\n" for n, p in results))
    if last is not None:
        raise last
    return 0


def cmd_umount(g: Globals, opts: Parsed) -> int:
    from pypod.build.builder import list_builders

    def unmount(b: Builder) -> str | None:
        was = b.mount_point
        b.unmount()
        return b.container_id if was else None

    def mounted(store: Store) -> list[Builder]:
        return [b for b in list_builders(store) if b.mount_point]

    missing = "error unmounting container {name}: container not known"
    return _each(g, opts, missing, unmount, every=mounted)


def cmd_rename(g: Globals, opts: Parsed) -> int:
    exactly(opts.args, 2)
    old, new = opts.args
    with open_build_store(g) as store:
        b = open_builder(store, old)
        if b.name == new:
            raise InvalidArgument("renaming a container with the same name as its current name")
        try:
            open_builder(store, new)
        except ContainerNotFound:
            pass
        else:
            raise InvalidArgument(f"container {new!r} already exists")
        store.set_container_names(b.container_id, [new])
        b.name = new
        b.save()
    return 0


# --- commit ---------------------------------------------------------------------------------
def cmd_commit(g: Globals, opts: Parsed) -> int:
    from pypod.build.builder import CommitOptions

    if not opts.args:
        raise InvalidArgument("container ID must be specified")
    if len(opts.args) > 2:
        raise InvalidArgument("too many arguments specified")
    for name in ("manifest", "sign-by", "encryption-key", "encrypt-layer"):
        if opts.values.get(name) not in (None, []):
            raise NotSupported(f"'commit --{name}' is not supported yet")
    fmt = (opts.text("format") or os.environ.get("BUILDAH_FORMAT") or "oci").lower()
    if fmt in ("oci", "oci-archive"):
        fmt = "oci"
    elif fmt in ("docker", "v2s2"):
        fmt = "docker"
    else:
        raise InvalidArgument(f'unrecognized image type "{fmt}"')
    timestamp = None
    if opts.text("timestamp") is not None:
        timestamp = opts.number("timestamp")
    quiet = opts.flag("quiet")
    iidfile = opts.text("iidfile")
    dest = opts.args[1] if len(opts.args) > 1 else None
    target, push_to = _commit_target(dest)
    commit_opts = CommitOptions(
        format=fmt,
        squash=opts.flag("squash"),
        timestamp=timestamp,
        rm=opts.flag("rm") and push_to is None,
        omit_history=opts.flag("omit-history"),
        # pushed elsewhere: the push shows the progress (once, as buildah)
        progress=None if quiet or push_to is not None else progress_line,
    )
    with open_build_store(g) as store:
        builder = open_builder(store, opts.args[0])
        unset = opts.texts("unsetenv")
        kept = copy.deepcopy(builder.config)
        for name in unset:  # --unsetenv: for the image only, the container keeps them
            config_edit.unset_env(builder.config, name)
        try:
            image_id = builder.commit(target, commit_opts)
        finally:
            if unset and not commit_opts.rm:
                builder.config = kept
                builder.save()
    if push_to is not None:
        from pypod.image import local, transfer

        try:
            transfer.push_image(image_id, push_to, transfer.TransferOptions(
                store=_location(g), ctx=context(opts),
                progress=None if quiet else progress_line,
                manifest_format="v2s2" if fmt == "docker" else "oci",
            ))  # fmt: skip
        finally:
            with open_build_store(g) as store:
                local.remove_images(store, [image_id], force=True)
        if opts.flag("rm"):
            with open_build_store(g) as store:
                open_builder(store, opts.args[0]).remove()
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(f"sha256:{image_id}")
    else:
        print(image_id)
    return 0


def _commit_target(dest: str | None) -> tuple[str | None, str | None]:
    """(name to store the image as, transport:reference to push it to instead)."""
    if dest is None:
        return None, None
    if dest.startswith("containers-storage:"):
        return dest.removeprefix("containers-storage:"), None
    transport, colon, rest = dest.partition(":")
    known = ("docker", "oci", "oci-archive", "docker-archive", "dir")
    if colon and transport in known and (transport != "docker" or rest.startswith("//")):
        return None, dest
    return dest, None


_SHORT = {"volume": "v", "memory": "m", "cpu-shares": "c"}
_FROM_NOT_YET = tuple(
    Flag((n, _SHORT[n]) if n in _SHORT else (n,), True, multiple=True) for n in _RUN_SETTINGS
)

COMMANDS: dict[str, Command] = {
    "from": Command(
        handler=cmd_from,
        flags=(
            *REMOTE_FLAGS,
            *PLATFORM_FLAGS,
            Flag(("name",), True, help="name for the working container"),
            Flag(
                ("pull",),
                True,
                help="pull the image: true (if newer or missing), false, " "always, never",
            ),
            Flag(("quiet", "q"), help="don't output progress information when pulling images"),
            Flag(("cidfile",), True, help="write the container ID to the file"),
            Flag(("format", "f"), True, help="format of the image manifest and metadata"),
            Flag(("isolation",), True, help='type of process isolation to use (default "oci")'),
            Flag(("network",), True, help="'private', 'none' or 'host'"),
            Flag(("http-proxy",), help="pass through HTTP Proxy environment variables"),
            *_FROM_NOT_YET,
        ),  # fmt: skip
        help="Create a working container based on an image",
        long="Creates a new working container, either from scratch or using a specified\n"
        "  image as a starting point.",
        usage="[flags] IMAGE",
        optional_values=("pull",),
    ),
    "containers": Command(
        handler=cmd_containers,
        flags=(
            Flag(("all", "a"), help="also list non-buildah containers"),
            Flag(("filter", "f"), True, help="filter output based on conditions provided"),
            Flag(("format",), True, help="pretty-print containers using a Go template"),
            Flag(("json",), help="output in JSON format"),
            Flag(("noheading", "n"), help="do not print column headings"),
            Flag(("notruncate",), help="do not truncate output"),
            Flag(("quiet", "q"), help="display only container IDs"),
        ),
        help="List working containers and their base images",
        long="Lists containers which appear to be pypod-build working containers, their\n"
        "  names and IDs, and the names and IDs of the images from which they were\n"
        "  initialized.",
        usage="[flags]",
    ),
    "rm": Command(
        handler=cmd_rm,
        flags=(Flag(("all", "a"), help="remove all containers"),),
        help="Remove one or more working containers",
        long="Removes one or more working containers, unmounting them if necessary.",
        usage="[flags] CONTAINER [CONTAINER...]",
    ),
    "mount": Command(
        handler=cmd_mount,
        flags=(Flag(("json",), help="output in JSON format"),),
        help="Mount a working container's root filesystem",
        long="Mounts a working container's root filesystem for manipulation.",
        usage="[flags] [CONTAINER ...]",
    ),
    "umount": Command(
        handler=cmd_umount,
        flags=(Flag(("all", "a"), help="umount all of the currently mounted containers"),),
        help="Unmount the root file system of the specified working containers",
        long="Unmounts the root file system of the specified working containers.",
        usage="[flags] CONTAINER [...]",
    ),
    "rename": Command(
        handler=cmd_rename,
        flags=(),
        help="Rename a container",
        long="Renames a local container.",
        usage="CONTAINER NEW-NAME",
    ),
    "commit": Command(
        handler=cmd_commit,
        flags=(
            *REMOTE_FLAGS,
            Flag(("disable-compression", "D"), help="don't compress layers (default true)"),
            Flag(
                ("format", "f"),
                True,
                help="format of the image manifest and metadata " '(default "oci")',
            ),
            Flag(("identity-label",), help="add default builder label (default true)"),
            Flag(("iidfile",), True, help="write the image ID to the file"),
            Flag(("manifest",), True, help="adds created image to the specified manifest list"),
            Flag(("omit-history",), help="omit build history information from the built image"),
            Flag(("quiet", "q"), help="don't output progress information when writing images"),
            Flag(("rm",), help="remove the container and its content after committing it"),
            Flag(("sign-by",), True, help="sign the image using a GPG key"),
            Flag(("squash",), help="produce an image with only one layer"),
            Flag(("timestamp",), True, help="set created timestamp to epoch seconds"),
            Flag(("unsetenv",), True, True, help="unset env from final image"),
            Flag(("encryption-key",), True, True, help="key to encrypt the image with"),
            Flag(("encrypt-layer",), True, True, help="layers to encrypt"),
        ),  # fmt: skip
        help="Create an image from a working container",
        long="Writes a new image using the specified container's read-write layer and if it\n"
        "  is based on an image, the layers of that image.  If image does not begin\n"
        '  with a registry name component, "localhost" will be added to the name.',
        usage="[flags] CONTAINER [IMAGE]",
    ),
}
