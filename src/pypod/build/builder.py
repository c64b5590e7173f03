"""Working containers: what `buildah from` makes, `buildah config/copy/run` change and
`buildah commit` turns into an image.

A working container is a storage container (`storage.containers`) whose metadata is this
module's JSON (`"Type": "pypod-build 1"`): the image it came from, the image config being
built (`config`, Docker's field names, a superset of OCI's), the author, the history so far
and the history comment (`FROM <image>`).  Names are buildah's: `<image>-working-container`,
then `-1`, `-2` ... when taken (`working-container` for scratch).

`commit` writes the base image's layers plus one layer with the container's changes (none with
`empty_layer`, one layer with the whole root with `squash`), a config as buildah 1.28 writes it
(OCI or Docker format; Docker-only fields dropped from an OCI config with buildah's warnings)
and the history with one more entry, through the containers-storage destination, so that a
failure stores nothing.  With `timestamp`, the config's and history's dates and every file's
mtime in the new layer are that time, so committing the same content twice gives the same
image ID.  The manifest's annotations are the builder's `annotations`: those of the base
image's manifest, buildah's `org.opencontainers.image.base.digest`/`.name` (the base image;
"" for scratch) and whatever `config --annotation` or `build --annotation` set; a Docker
manifest has none.

A scratch working container is a storage container of no image (no parent layer).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from pypod.errors import ContainerNotFound, ImageNotFound, InvalidArgument, PypodError
from pypod.log import get_logger
from pypod.record import record

if TYPE_CHECKING:
    from pypod.build.ignore import Ignore
    from pypod.image.transfer import TransferOptions
    from pypod.image.transports.containers_storage import StoreLocation
    from pypod.storage.records import Container, Image
    from pypod.storage.store import Store

__all__ = ["BUILDER_TYPE", "Builder", "CommitOptions", "FromOptions", "list_builders"]

log = get_logger(__name__)

BUILDER_TYPE = "pypod-build 1"
#: buildah's name for a container from no image, and the suffix of the others
WORKING_CONTAINER = "working-container"
#: the annotations buildah 1.28 writes on every OCI image it commits: the base image's
#: manifest digest and name ("" for scratch)
BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"
_PULL_POLICIES = ("always", "missing", "never", "newer", "ifmissing", "ifnewer")
_FORMATS = ("oci", "docker")


@record
class FromOptions:
    #: default: buildah's "<basename>-working-container" (+ "-1", "-2"...); "working-container"
    #: for scratch
    name: str | None = None
    #: "always" | "missing" | "never" | "newer" (as missing)
    pull: str = "missing"
    #: registry options for a pull (None: the store's location, default registries)
    transfer: TransferOptions | None = None
    #: pull progress lines (None: silent)
    progress: Callable[[str], None] | None = None


@record
class CommitOptions:
    #: "oci" | "docker"
    format: str = "oci"
    #: one layer holding base + changes (the base history is dropped, as buildah does)
    squash: bool = False
    #: no new layer: only the config/history change (ENV, CMD ... steps)
    empty_layer: bool = False
    #: the history entry of this commit ("": the SHELL joined, else "/bin/sh", as buildah)
    created_by: str = ""
    #: the comment of that entry ("": the builder's `FROM <image>`)
    history_comment: str = ""
    #: seconds: config "created", history "created", every file's mtime in the new layer
    timestamp: int | None = None
    #: remove the working container after committing
    rm: bool = False
    #: "Getting image source signatures"... (None: silent)
    progress: Callable[[str], None] | None = None
    #: no history entry for this commit
    omit_history: bool = False
    #: where the layer tar is spooled ("/var/tmp" when None)
    tmpdir: str | None = None


def _host_platform() -> dict[str, str]:
    from pypod.oci.image_spec import host_platform

    host = host_platform()
    out = {"architecture": host.architecture, "os": host.os}
    if host.variant:
        out["variant"] = host.variant
    return out


class Builder:
    """One working container.  Edit `config`, `author`, `history` and call `save()`."""

    store: Store
    container_id: str
    name: str
    from_image: str
    from_image_id: str
    config: dict[str, Any]
    author: str
    history: list[dict[str, Any]]
    #: the manifest annotations the next commit writes (OCI format only, as buildah)
    annotations: dict[str, str]
    mount_point: str | None

    def __init__(self, store: Store, container: Container, data: dict[str, Any]) -> None:
        self.store = store
        self.container_id = container.id
        self.name = container.names[0] if container.names else str(data.get("Name") or "")
        self.from_image = str(data.get("FromImage") or "")
        self.from_image_id = str(data.get("FromImageID") or "")
        cfg = data.get("Config")
        self.config = cfg if isinstance(cfg, dict) else {}
        self.author = str(data.get("Author") or "")
        history = data.get("History")
        self.history = (
            [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
        )
        self.history_comment = str(data.get("HistoryComment") or "")
        platform = data.get("Platform")
        self.platform: dict[str, str] = (
            {str(k): str(v) for k, v in platform.items()} if isinstance(platform, dict) else {}
        ) or _host_platform()
        self.created = float(data.get("Created") or container.created)
        annotations = data.get("Annotations")
        self.annotations: dict[str, str] = (
            {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict)
            else {}
        )  # fmt: skip
        mp = data.get("MountPoint")
        self.mount_point = str(mp) if mp else None

    # --- creating and finding ------------------------------------------------------------
    @classmethod
    def new(cls, store: Store, image: str, opts: FromOptions) -> Builder:
        """A working container from `image` ("scratch": an empty root), pulled per `opts.pull`."""
        if opts.pull not in _PULL_POLICIES:
            raise InvalidArgument(
                f'unsupported pull policy "{opts.pull}": use always, missing, never or newer'
            )
        if not image:
            raise InvalidArgument("an image name (or scratch) is needed")
        data: dict[str, Any] = {"Type": BUILDER_TYPE, "Created": time.time()}
        storage_image: str | None
        if image == "scratch":
            storage_image = None  # a storage container of no image: an empty root
            prefix = ""
            data.update(FromImage="", FromImageID="", Config={}, History=[], Author="",
                        HistoryComment="", Platform=_host_platform(),
                        Annotations={BASE_DIGEST: "", BASE_NAME: ""})  # fmt: skip
        else:
            from pypod.image.local import image_config, matching_name

            img = _resolve_image(store, image, opts)
            storage_image = img.id
            base = image_config(store, img)
            if img.id.startswith(image) or image.startswith("sha256:"):
                from_name = image  # named by id: buildah's history comment keeps it as given
            else:
                from_name = matching_name(image, img) or (img.names[0] if img.names else image)
            cfg = base.get("config")
            history = base.get("history")
            platform = {k: str(base[k]) for k in ("architecture", "os", "variant") if base.get(k)}
            data.update(
                FromImage=from_name,
                FromImageID=img.id,
                Config=copy.deepcopy(cfg) if isinstance(cfg, dict) else {},
                History=[h for h in history if isinstance(h, dict)]
                if isinstance(history, list)
                else [],
                Author=str(base.get("author") or ""),
                HistoryComment=f"FROM {from_name}",
                Platform=platform or _host_platform(),
                Annotations={
                    **_manifest_annotations(store, img),
                    BASE_DIGEST: img.digest,
                    BASE_NAME: from_name,
                },  # fmt: skip
            )
            prefix = _name_prefix(from_name)
        name = opts.name
        if name is not None and not name:
            raise InvalidArgument("a container name cannot be empty")
        for attempt in range(1000):
            chosen = name or _free_name(store, prefix)
            data["Name"] = chosen
            try:
                container = store.create_container(
                    storage_image, [chosen], metadata=json.dumps(data)
                )
            except PypodError as e:
                from pypod.errors import AlreadyExists

                if isinstance(e, AlreadyExists) and name is None and attempt < 999:
                    continue  # another process took the name meanwhile
                raise
            return cls(store, container, data)
        raise AssertionError("unreachable")

    @classmethod
    def open(cls, store: Store, name_or_id: str) -> Builder:
        """The working container `name_or_id` (a name, an ID or an ID prefix)."""
        try:
            container = store.container(name_or_id)
        except ContainerNotFound:
            container = None
        data = _builder_data(container) if container is not None else None
        if container is None or data is None:
            # buildah's words exactly (scripts match them)
            raise ContainerNotFound(f'reading build container "{name_or_id}": container not known')
        return _checked(cls(store, container, data))

    def _data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "Type": BUILDER_TYPE,
            "Name": self.name,
            "FromImage": self.from_image,
            "FromImageID": self.from_image_id,
            "Config": self.config,
            "Author": self.author,
            "History": self.history,
            "HistoryComment": self.history_comment,
            "Platform": self.platform,
            "Annotations": self.annotations,
            "Created": self.created,
            "MountPoint": self.mount_point or "",
        }
        return data

    def save(self) -> None:
        """Write the metadata (one database transaction: all or nothing)."""
        self.store.set_container_metadata(self.container_id, json.dumps(self._data()))

    # --- mounting --------------------------------------------------------------------------
    def mount(self) -> str:
        """Mount the container's root (counted: each mount needs its unmount); its path."""
        path = self.store.mount_container(self.container_id)
        if path != self.mount_point:
            self.mount_point = path
            self.save()
        return path

    def unmount(self) -> None:
        """Drop one mount reference; the root is unmounted with the last one."""
        if self.store.container_mount_count(self.container_id) == 0:
            if self.mount_point is not None:
                self.mount_point = None
                self.save()
            return
        if self.store.unmount_container(self.container_id):
            self.mount_point = None
            self.save()

    def remove(self) -> None:
        """Unmount and delete the working container (and its layer)."""
        self.store.delete_container(self.container_id)
        self.mount_point = None

    # --- history and files -----------------------------------------------------------------
    def add_history(self, created_by: str, *, empty_layer: bool = True, comment: str = "") -> None:
        """Record a step (ENV, CMD ...) in the history the next commit writes."""
        from pypod.image.local import go_time

        entry: dict[str, Any] = {"created": go_time(time.time()), "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if empty_layer:
            entry["empty_layer"] = True
        self.history.append(entry)

    def copy(
        self,
        sources: Sequence[str],
        dest: str,
        *,
        context_dir: str,
        add: bool = False,
        chown: str | None = None,
        chmod: str | None = None,
        ignore: Ignore | None = None,
        from_root: str | None = None,
    ) -> str:
        """COPY/ADD `sources` (from `context_dir`, or `from_root` for --from) to `dest`; the
        content digest buildah records in history ("file:<hex>", "dir:<hex>", "multi:<hex>")."""
        from pypod.build.copier import copy_into

        rootfs = self.mount()
        try:
            return copy_into(
                rootfs,
                sources,
                dest,
                context_dir=from_root or context_dir,
                workdir=str(self.config.get("WorkingDir") or "/"),
                add=add,
                chown=chown,
                chmod=chmod,
                ignore=None if from_root else ignore,
            )
        finally:
            self.unmount()

    # --- committing ------------------------------------------------------------------------
    def commit(self, name: str | None, opts: CommitOptions) -> str:
        """Commit to a new image named `name` (short names go under localhost/; None: no
        name); the image ID.  Nothing is stored when it fails."""
        from pypod.image.commit import store_image

        if opts.format not in _FORMATS:
            raise InvalidArgument(f'unrecognized image type "{opts.format}": use oci or docker')
        stored_name = None
        if name:
            from pypod.image.local import normalize_tag_name

            stored_name = normalize_tag_name(name)
        when = float(opts.timestamp) if opts.timestamp is not None else time.time()
        tmpdir = opts.tmpdir or "/var/tmp"
        os.makedirs(tmpdir, exist_ok=True)
        base_layers = self._base_layers()
        with tempfile.TemporaryFile(dir=tmpdir, prefix="pypod-build-commit-") as layer:
            new_layer: tuple[str, int] | None = None
            if opts.squash:
                new_layer = self._squashed_layer(layer, opts.timestamp, tmpdir)
            elif not opts.empty_layer:
                new_layer = self._diff_layer(layer, opts.timestamp, tmpdir)
            layer.seek(0)
            if opts.squash:
                layers = [new_layer] if new_layer else []
            else:
                layers = list(base_layers) + ([new_layer] if new_layer else [])
            config = self._image_config(opts, when, [d for d, _ in layers])
            blob = json.dumps(config, separators=(",", ":")).encode()
            image_id = store_image(self._location(), stored_name, blob, layers,
                                   layer if new_layer else None, format=opts.format,
                                   progress=opts.progress, tmpdir=tmpdir,
                                   annotations=self.annotations)  # fmt: skip
        if opts.rm:
            self.remove()
        return image_id

    def _location(self) -> StoreLocation:
        from pypod.image.transports.containers_storage import StoreLocation

        paths = self.store.storage_paths()
        return StoreLocation(graphroot=paths.graphroot, runroot=paths.runroot, driver=paths.driver)

    def _base_layers(self) -> list[tuple[str, int]]:
        container = self.store.container(self.container_id)
        top = self.store.layer(container.layer_id).parent
        chain = list(reversed(self.store.chain(top))) if top else []
        return [(lay.diff_id or "", lay.uncompressed_size or 0) for lay in chain]

    def _diff_layer(self, out: BinaryIO, timestamp: int | None, tmpdir: str) -> tuple[str, int]:
        if timestamp is None:
            result = self.store.export_container_diff(self.container_id, out)
            return result.diff_id, out.tell()
        with tempfile.TemporaryFile(dir=tmpdir, prefix="pypod-build-diff-") as raw:
            self.store.export_container_diff(self.container_id, raw)
            raw.seek(0)
            return _retime_tar(raw, out, timestamp)

    def _squashed_layer(self, out: BinaryIO, timestamp: int | None, tmpdir: str
                        ) -> tuple[str, int]:  # fmt: skip
        from pypod.storage.archive.changes import Change, ChangeKind
        from pypod.storage.archive.export import export_changes

        root = self.mount()
        try:
            changes = [Change(path=p, kind=ChangeKind.ADD) for p in _walk_paths(root)]
            if timestamp is None:
                result = export_changes(root, changes, out)
                return result.diff_id, out.tell()
            with tempfile.TemporaryFile(dir=tmpdir, prefix="pypod-build-squash-") as raw:
                export_changes(root, changes, raw)
                raw.seek(0)
                return _retime_tar(raw, out, timestamp)
        finally:
            self.unmount()

    def _image_config(self, opts: CommitOptions, when: float, diff_ids: list[str]
                      ) -> dict[str, Any]:  # fmt: skip
        from pypod.image.local import go_time

        created = go_time(when)
        cfg = copy.deepcopy(self.config)
        history: list[dict[str, Any]] = [] if opts.squash else copy.deepcopy(self.history)
        if not opts.omit_history:
            history.append(self._history_entry(opts, created))
        rootfs = {"type": "layers", "diff_ids": diff_ids}
        if opts.format == "oci":
            _warn_docker_only(cfg)
            doc: dict[str, Any] = {"created": created}
            if self.author:
                doc["author"] = self.author
            doc.update(self.platform)
            doc["config"] = _oci_config(cfg)
            doc["rootfs"] = rootfs
            doc["history"] = [_oci_history(h) for h in history]
            return doc
        docker_cfg = _docker_config(cfg)
        doc = {"created": created, "container": self.container_id,
               "container_config": docker_cfg}  # fmt: skip
        if self.author:
            doc["author"] = self.author
        doc["config"] = docker_cfg
        doc.update(self.platform)
        if self.from_image_id and not opts.squash:
            doc["parent"] = f"sha256:{self.from_image_id}"
        doc["rootfs"] = rootfs
        doc["history"] = [_docker_history(h) for h in history]
        return doc

    def _history_entry(self, opts: CommitOptions, created: str) -> dict[str, Any]:
        created_by = opts.created_by
        if not created_by:
            shell = self.config.get("Shell")
            created_by = " ".join(str(s) for s in shell) if isinstance(shell, list) else ""
            created_by = created_by or "/bin/sh"
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if self.author:
            entry["author"] = self.author
        comment = opts.history_comment or self.history_comment
        if comment:
            entry["comment"] = comment
        if opts.empty_layer and not opts.squash:
            entry["empty_layer"] = True
        return entry


def list_builders(store: Store) -> list[Builder]:
    """The working containers of the store (containers of other programs are left out)."""
    out = []
    for container in store.containers():
        data = _builder_data(container)
        if data is not None:
            out.append(_checked(Builder(store, container, data)))
    return out


# --- helpers ------------------------------------------------------------------------------
def _checked(builder: Builder) -> Builder:
    """A recorded mount point nobody counts any more (a reboot emptied the runroot) is gone."""
    if builder.mount_point and not builder.store.container_mount_count(builder.container_id):
        builder.mount_point = None
    return builder


def _builder_data(container: Container) -> dict[str, Any] | None:
    try:
        data = json.loads(container.metadata) if container.metadata else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("Type") != BUILDER_TYPE:
        return None
    return data


def _resolve_image(store: Store, image: str, opts: FromOptions) -> Image:
    from pypod.image.local import find_image

    if opts.pull != "always":
        try:
            return find_image(store, image)
        except ImageNotFound:
            if opts.pull == "never":
                raise ImageNotFound(
                    f"{image}: image not known: the pull policy is never; pull it first "
                    "(pypod-build pull) or use --pull missing"
                ) from None
    from pypod.image.transfer import TransferOptions, pull_image
    from pypod.record import replace

    transfer = opts.transfer
    if transfer is None:
        from pypod.image.transports.containers_storage import StoreLocation

        paths = store.storage_paths()
        transfer = TransferOptions(store=StoreLocation(graphroot=paths.graphroot,
                                                       runroot=paths.runroot,
                                                       driver=paths.driver))  # fmt: skip
    if opts.progress is not None and transfer.progress is None:
        transfer = replace(transfer, progress=opts.progress)
    image_id = pull_image(image, transfer)
    return store.image(image_id)


def _manifest_annotations(store: Store, image: Image) -> dict[str, str]:
    """The annotations of the image's manifest (a working container inherits them)."""
    manifest, _media_type = store.image_manifest(image.id)
    try:
        found = json.loads(manifest).get("annotations")
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _name_prefix(image: str) -> str:
    """buildah's imageNamePrefix: the last path element of the name, without tag or digest."""
    prefix = image
    if len(prefix) == 64 and all(c in "0123456789abcdef" for c in prefix):
        prefix = prefix[:12]
    prefix = prefix.removeprefix("sha256:")[:12] if prefix.startswith("sha256:") else prefix
    prefix = prefix.split(":")[0]
    prefix = prefix.split("/")[-1]
    prefix = prefix.split("@")[0]
    return prefix


def _free_name(store: Store, prefix: str) -> str:
    base = f"{prefix}-{WORKING_CONTAINER}" if prefix else WORKING_CONTAINER
    taken = {n for c in store.containers() for n in c.names}
    if base not in taken:
        return base
    n = 1
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _walk_paths(root: str) -> list[str]:
    """Every path under `root` (absolute inside it), not crossing into other mounts."""
    out: list[str] = []
    dev = os.lstat(root).st_dev
    for current, dirs, files in os.walk(root):
        rel = current[len(root) :] or "/"
        keep = []
        for d in dirs:
            full = os.path.join(current, d)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            out.append(os.path.join(rel, d))
            if st.st_dev == dev and not os.path.islink(full):
                keep.append(d)
        dirs[:] = keep
        out.extend(os.path.join(rel, f) for f in files)
    return out


def _retime_tar(src: BinaryIO, out: BinaryIO, timestamp: int) -> tuple[str, int]:
    """Copy a layer tar setting every entry's mtime to `timestamp` (no atime/ctime); the new
    diff id and size."""
    import hashlib
    import tarfile

    class _Hashing:
        def __init__(self) -> None:
            self.hash = hashlib.sha256()
            self.size = 0

        def write(self, data: bytes) -> int:
            self.hash.update(data)
            self.size += len(data)
            out.write(data)
            return len(data)

    sink = _Hashing()
    with (
        tarfile.open(fileobj=src, mode="r|") as tin,
        tarfile.open(fileobj=cast(IO[bytes], sink), mode="w|", format=tarfile.PAX_FORMAT) as tout,
    ):
        for member in tin:
            member.mtime = timestamp
            pax = dict(member.pax_headers)
            for key in ("mtime", "atime", "ctime"):
                pax.pop(key, None)
            member.pax_headers = pax
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
    return "sha256:" + sink.hash.hexdigest(), sink.size


def _warn_docker_only(cfg: dict[str, Any]) -> None:
    """buildah's warnings for what an OCI config cannot hold (the fields are then dropped)."""
    shell = cfg.get("Shell")
    if shell:
        log.warning(
            "SHELL is not supported for OCI image format, [%s] will be ignored. Must use "
            "`docker` format",
            " ".join(str(s) for s in shell),
        )
    if cfg.get("Healthcheck"):
        log.warning(
            "HEALTHCHECK is not supported for OCI image format and will be ignored. Must use "
            "`docker` format"
        )
    for instruction in cfg.get("OnBuild") or []:
        log.warning(
            "ONBUILD is not supported for OCI image format, %s will be ignored. Must use "
            "`docker` format",
            instruction,
        )


#: the OCI image config's `config` fields, in the order Go writes them
_OCI_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
               "Labels", "StopSignal", "ArgsEscaped")  # fmt: skip


def _oci_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg[k] for k in _OCI_FIELDS if cfg.get(k)}


def _docker_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Docker's container config, every field as buildah writes it (Go's struct order)."""
    out: dict[str, Any] = {
        "Hostname": cfg.get("Hostname") or "",
        "Domainname": cfg.get("Domainname") or "",
        "User": cfg.get("User") or "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
    }
    if cfg.get("ExposedPorts"):
        out["ExposedPorts"] = cfg["ExposedPorts"]
    out.update(Tty=False, OpenStdin=False, StdinOnce=False, Env=cfg.get("Env") or None,
               Cmd=cfg.get("Cmd") or None)  # fmt: skip
    if cfg.get("Healthcheck"):
        out["Healthcheck"] = cfg["Healthcheck"]
    if cfg.get("ArgsEscaped"):
        out["ArgsEscaped"] = True
    out.update(
        Image="",
        Volumes=cfg.get("Volumes") or None,
        WorkingDir=cfg.get("WorkingDir") or "",
        Entrypoint=cfg.get("Entrypoint") or None,
        OnBuild=cfg.get("OnBuild") or [],
        Labels=cfg.get("Labels") or None,
    )
    if cfg.get("StopSignal"):
        out["StopSignal"] = cfg["StopSignal"]
    if cfg.get("Shell"):
        out["Shell"] = cfg["Shell"]
    return out


def _oci_history(h: dict[str, Any]) -> dict[str, Any]:
    keys = ("created", "created_by", "author", "comment", "empty_layer")
    return {k: h[k] for k in keys if h.get(k)}


def _docker_history(h: dict[str, Any]) -> dict[str, Any]:
    keys = ("created", "author", "created_by", "comment", "empty_layer")
    return {k: h[k] for k in keys if h.get(k)}
