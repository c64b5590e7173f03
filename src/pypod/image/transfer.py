"""Images in and out of local storage as podman moves them: pull, push, save, load, import.

Every move but `import` is one `copy_image` between a transport and containers-storage; the
names follow podman: a pulled image is named by the reference it came from (short names
resolved through registries.conf), a pushed image goes to `docker://NAME` unless a destination
is given, `save` writes a docker-archive (or oci-archive, oci-dir, docker-dir) named by what the
user typed, `load` names images by the archive's tags.  `import` makes a one-layer image from a
root filesystem tarball with podman's `--change` instructions.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from pypod.errors import InvalidArgument, NotSupported, RegistryError
from pypod.image.copy import CopyOptions, ProgressEvent, copy_image
from pypod.image.local import find_image, go_time, matching_name, normalize_tag_name
from pypod.image.reference import Reference, parse_normalized
from pypod.image.transports import parse_image_name, transport_names
from pypod.image.transports.containers_storage import (
    StorageReference,
    StoreLocation,
    open_store,
)
from pypod.image.types import BlobInfo, ImageReference, SystemContext
from pypod.oci import image_spec as spec
from pypod.oci.digest import Digest, Digester
from pypod.record import field, record

Progress = Callable[[str], None]

__all__ = [
    "TransferOptions",
    "import_tarball",
    "load_images",
    "pull_all_tags",
    "pull_image",
    "push_image",
    "save_images",
]


@record
class TransferOptions:
    store: StoreLocation
    #: the other side (registry settings, --tls-verify, --creds, --authfile)
    ctx: SystemContext = field(default_factory=SystemContext)
    #: podman's progress lines ("Copying blob ..."), None: silent
    progress: Progress | None = None
    #: "oci" or "v2s2" (push, save)
    manifest_format: str | None = None
    #: "gzip" or "zstd" (push)
    compression: str | None = None
    digest_file: str | None = None
    all_images: bool = False


def _has_transport(name: str) -> bool:
    prefix, sep, _ = name.partition(":")
    return bool(sep) and prefix in transport_names()


def _storage_ctx(opts: TransferOptions) -> SystemContext:
    loc = opts.store
    return SystemContext(graphroot=loc.graphroot, runroot=loc.runroot,
                         storage_driver=loc.driver, tmpdir=opts.ctx.tmpdir)  # fmt: skip


def _copy(src: ImageReference, dst: ImageReference, opts: TransferOptions, *, pulling: bool
          ) -> bytes:  # fmt: skip
    def progress(event: ProgressEvent) -> None:
        if opts.progress is not None:
            opts.progress(event.message)

    local_ctx = _storage_ctx(opts)
    copy_opts = CopyOptions(
        src_ctx=opts.ctx if pulling else local_ctx,
        dst_ctx=local_ctx if pulling else opts.ctx,
        all_images=opts.all_images,
        manifest_format=opts.manifest_format,
        dest_compression=opts.compression,
        progress=progress if opts.progress is not None else None,
        digest_file=opts.digest_file,
    )
    return copy_image(src, dst, copy_opts)


def _image_id(manifest: bytes) -> str:
    doc = json.loads(manifest)
    digest = doc.get("config", {}).get("digest", "") if isinstance(doc, dict) else ""
    return str(digest).partition(":")[2]


def _candidates(name: str, ctx: SystemContext) -> list[Reference]:
    from pypod.config.registries import load_registries_conf
    from pypod.image.shortnames import resolve

    config = load_registries_conf(ctx.registries_conf, environ=dict(ctx.environ) or None)
    return [c.reference for c in resolve(name, config).candidates]


def pull_image(name: str, opts: TransferOptions) -> str:
    """Pull `name` (a registry reference, short or not, or `transport:reference`) into local
    storage; the image id."""
    if _has_transport(name):
        src = parse_image_name(name)
        stored: Reference | None = None
        if src.transport_name == "docker":
            stored = parse_normalized(src.string_within_transport().lstrip("/"))
            stored = stored.with_default_tag()
        return _image_id(_copy(src, StorageReference(name=stored, location=opts.store), opts,
                               pulling=True))  # fmt: skip
    errors: list[str] = []
    candidates = _candidates(name, opts.ctx)
    for ref in candidates:
        if opts.progress is not None:
            opts.progress(f"Trying to pull {ref}...")
        src = parse_image_name(f"docker://{ref}")
        try:
            out = _copy(src, StorageReference(name=ref, location=opts.store), opts, pulling=True)
        except RegistryError as e:
            if len(candidates) == 1:
                raise
            errors.append(f"{ref}: {e}")
            continue
        return _image_id(out)
    raise RegistryError(
        f"{name}: unable to pull from any of the registries tried:\n  " + "\n  ".join(errors)
    )


def pull_all_tags(name: str, opts: TransferOptions) -> list[str]:
    """`podman pull --all-tags`: every tag of the repository `name` names (its own tag or
    digest is ignored), in the order the registry lists them; the image id of each tag.  As
    podman, a short name is not resolved through registries.conf: it means docker.io."""
    if _has_transport(name):
        src = parse_image_name(name)
        if src.transport_name != "docker":
            raise NotSupported(
                f"pulling all tags is not supported for {src.transport_name} transport"
            )
        name = src.string_within_transport().lstrip("/")
    ref = parse_normalized(name)
    from pypod.image.transports.docker import DockerReference

    repo = Reference(domain=ref.domain, path=ref.path)
    tags = DockerReference(repo).list_tags(opts.ctx)
    ids: list[str] = []
    for tag in tags:
        tagged = Reference(domain=ref.domain, path=ref.path, tag=tag)
        if opts.progress is not None:
            opts.progress(f"Trying to pull {tagged}...")
        dest = StorageReference(name=tagged, location=opts.store)
        ids.append(_image_id(_copy(DockerReference(tagged), dest, opts, pulling=True)))
    return ids


def _local_ref(name: str, opts: TransferOptions) -> tuple[StorageReference, str]:
    with open_store(opts.store) as store:
        image = find_image(store, name)
    shown = matching_name(name, image) or (image.names[0] if image.names else name)
    return StorageReference(image_id=image.id, location=opts.store), shown


def push_image(name: str, destination: str | None, opts: TransferOptions) -> bytes:
    """Push local image `name` to `destination` (`transport:ref`, or a registry reference;
    default `docker://NAME`); the manifest written."""
    src, shown = _local_ref(name, opts)
    dest = destination or shown
    if not _has_transport(dest):
        dest = f"docker://{dest}"
    return _copy(src, parse_image_name(dest), opts, pulling=False)


_SAVE_FORMATS = {
    "docker-archive": "docker-archive:{path}{ref}",
    "oci-archive": "oci-archive:{path}{ref}",
    "oci-dir": "oci:{path}{ref}",
    "docker-dir": "dir:{path}",
}


def save_images(
    names: Sequence[str],
    output: str,
    fmt: str,
    opts: TransferOptions,
    *,
    multi_image: bool = False,
) -> None:
    """`podman save`: an image to an archive or directory, as podman 4 does it.

    Without `multi_image` the names after the first are more tags for the first image (only a
    docker-archive records them); with it they are more images, which only a docker-archive
    can hold: each image once, with every name it was given, in the order given."""
    if fmt not in _SAVE_FORMATS:
        raise InvalidArgument(f'unknown format "{fmt}": use {", ".join(_SAVE_FORMATS)}')
    if not names:
        raise InvalidArgument("no image specified for saving images")
    images = list(names) if multi_image else [names[0]]
    if len(images) > 1 and fmt != "docker-archive":
        raise InvalidArgument(
            f'unsupported format "{fmt}" for saving multiple images (only docker-archive)'
        )
    if fmt == "docker-archive":
        extra = [] if multi_image else list(names[1:])
        _save_docker_archive(images, extra, output, opts)
        return
    src, shown = _local_ref(images[0], opts)
    ref = ""
    if not src.image_id or not src.image_id.startswith(images[0]):
        ref = ":" + shown
    dest = _SAVE_FORMATS[fmt].format(path=output, ref=ref)
    manifest_format = opts.manifest_format
    if manifest_format is None and fmt == "docker-dir":
        manifest_format = "v2s2"
    _copy(src, parse_image_name(dest), _with_format(opts, manifest_format), pulling=False)


def _save_docker_archive(
    names: Sequence[str], extra_tags: Sequence[str], output: str, opts: TransferOptions
) -> None:
    """One docker-archive with the images `names` name (libimage's saveDockerArchive)."""
    from pypod.image.transports.docker_archive import ArchiveWriter

    extra = [parse_normalized(normalize_tag_name(t)) for t in extra_tags]
    order: list[str] = []  # image ids, first named first
    tags: dict[str, list[Reference]] = {}
    seen: set[str] = set()
    with open_store(opts.store) as store:
        for name in names:
            image = find_image(store, name)
            shown = matching_name(name, image)
            key = shown or image.id
            if key in seen:
                continue
            seen.add(key)
            if image.id not in tags:
                order.append(image.id)
                tags[image.id] = list(extra)
            if shown is not None:
                ref = parse_normalized(shown)
                if ref.tag is not None:
                    tags[image.id].append(ref)
    v2s2 = _with_format(opts, "v2s2")
    with ArchiveWriter(output, opts.ctx.tmpdir) as writer:
        for image_id in order:
            src = StorageReference(image_id=image_id, location=opts.store)
            _copy(src, writer.reference(None, tags[image_id]), v2s2, pulling=False)
        writer.finish()


def _with_format(opts: TransferOptions, manifest_format: str | None) -> TransferOptions:
    from pypod.record import replace

    return replace(opts, manifest_format=manifest_format)


def _archive_names(path: str) -> tuple[str, list[list[str]]]:
    """("docker-archive"|"oci-archive", [names of each image])."""
    try:
        with tarfile.open(path) as tar:
            members = {m.name.lstrip("./"): m for m in tar.getmembers()}
            if "manifest.json" in members:
                f = tar.extractfile(members["manifest.json"])
                doc = json.load(f) if f is not None else []
                return "docker-archive", [list(e.get("RepoTags") or []) for e in doc]
            if "index.json" in members:
                f = tar.extractfile(members["index.json"])
                index = json.load(f) if f is not None else {}
                out = []
                for desc in index.get("manifests", []):
                    ann = desc.get("annotations") or {}
                    ref = ann.get(spec.ANNOTATION_REF_NAME)
                    out.append([ref] if ref else [])
                return "oci-archive", out
    except (OSError, tarfile.TarError, ValueError) as e:
        raise InvalidArgument(f"{path}: not an image archive: {e}") from None
    raise InvalidArgument(f"{path}: neither a docker-archive nor an oci-archive")


def load_images(path: str, opts: TransferOptions) -> list[str]:
    """`podman load -i`: every image of the archive; the names (or `sha256:ID`) loaded."""
    kind, images = _archive_names(path)
    loaded: list[str] = []
    for i, names in enumerate(images):
        stored: Reference | None = None
        extra: list[str] = []
        if names:
            name = names[0]
            if kind == "oci-archive" and "/" not in name and ":" not in name:
                name = f"localhost/{name}"
            try:
                stored = parse_normalized(name).with_default_tag()
            except InvalidArgument:
                stored = None
            extra = [str(parse_normalized(n).with_default_tag()) for n in names[1:]]
        src_name = f"{kind}:{path}:@{i}" if kind == "docker-archive" else f"{kind}:{path}"
        if kind == "oci-archive" and names:
            src_name = f"{kind}:{path}:{names[0]}"
        out = _copy(parse_image_name(src_name), StorageReference(name=stored, location=opts.store),
                    opts, pulling=True)  # fmt: skip
        image_id = _image_id(out)
        if extra:
            with open_store(opts.store) as store:
                store.add_names(image_id, extra)
        loaded += [str(stored), *extra] if stored is not None else [f"sha256:{image_id}"]
    return loaded


# --- import -------------------------------------------------------------------------------
def _json_or_shell(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
            return parsed
    return ["/bin/sh", "-c", value]


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> None:
    """podman's `--change` instructions (CMD, ENTRYPOINT, ENV, LABEL, EXPOSE, USER, WORKDIR,
    VOLUME, STOPSIGNAL, ONBUILD) on an image config's `config` object."""
    for change in changes:
        text = change.strip()
        i = min((p for p in (text.find("="), text.find(" ")) if p > 0), default=-1)
        if i < 0:
            raise InvalidArgument(f"invalid change {change!r}: use INSTRUCTION=VALUE")
        key, value = text[:i].upper(), text[i + 1 :].strip()
        if key == "CMD":
            config["Cmd"] = _json_or_shell(value)
        elif key == "ENTRYPOINT":
            config["Entrypoint"] = _json_or_shell(value)
        elif key in ("ENV", "LABEL"):
            k, eq, v = value.partition("=")
            if not eq:
                k, _, v = value.partition(" ")
            if key == "ENV":
                env = [e for e in config.get("Env", []) if not e.startswith(k + "=")]
                config["Env"] = [*env, f"{k}={v}"]
            else:
                config.setdefault("Labels", {})[k] = v.strip('"')
        elif key == "EXPOSE":
            for port in value.split():
                config.setdefault("ExposedPorts", {})[port if "/" in port else port + "/tcp"] = {}
        elif key == "VOLUME":
            for vol in _json_or_shell(value) if value.startswith("[") else value.split():
                config.setdefault("Volumes", {})[vol] = {}
        elif key == "USER":
            config["User"] = value
        elif key == "WORKDIR":
            config["WorkingDir"] = value
        elif key == "STOPSIGNAL":
            config["StopSignal"] = value
        elif key == "ONBUILD":
            config.setdefault("OnBuild", []).append(value)
        else:
            raise InvalidArgument(f"invalid change {change!r}: {key} is not a valid instruction")


def import_tarball(path: str, name: str | None, opts: TransferOptions, *,
                   changes: Sequence[str] = (), message: str = "") -> str:  # fmt: skip
    """`podman import`: a root filesystem tarball (plain, gzip or zstd; "-" for stdin) as a
    one-layer image named `name`; the image id."""
    import shutil
    import sys
    import tempfile

    tmpdir = opts.ctx.tmpdir or "/var/tmp"
    os.makedirs(tmpdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pypod-import-", dir=tmpdir) as work:
        blob_path = os.path.join(work, "layer")
        if path == "-":
            with open(blob_path, "wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out)
        else:
            shutil.copyfile(path, blob_path)
        digester = Digester()
        with open(blob_path, "rb") as f:
            while chunk := f.read(1 << 20):
                digester.update(chunk)
        blob_digest, blob_size = digester.digest(), digester.size
        from pypod.storage.archive.stream import TarStream

        with open(blob_path, "rb") as f:  # the diff id: digest of the uncompressed tar
            unpacked = TarStream(f)
            unpacked.drain()
        diff_id = unpacked.digest
        compressed = diff_id != blob_digest
        now = go_time(time.time())
        from pypod.oci.image_spec import host_platform

        platform = host_platform()
        inner: dict[str, Any] = {}
        apply_changes(inner, changes)
        history: dict[str, Any] = {
            "created": now,
            "created_by": f"/bin/sh -c #(nop) ADD file:{diff_id.partition(':')[2]} in /",
        }
        history["comment"] = message or "imported from tarball"
        config_doc: dict[str, Any] = {
            "created": now,
            "architecture": platform.architecture,
            "os": platform.os,
            "config": inner,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [history],
        }
        config = json.dumps(config_doc, separators=(",", ":")).encode()
        config_digest = Digester()
        config_digest.update(config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": spec.OCI_MANIFEST,
            "config": {"mediaType": spec.OCI_CONFIG, "digest": config_digest.digest(),
                       "size": len(config)},
            "layers": [{"mediaType": spec.OCI_LAYER_GZIP if compressed else spec.OCI_LAYER,
                        "digest": blob_digest, "size": blob_size}],
        }).encode()  # fmt: skip
        stored = parse_normalized(normalize_tag_name(name)) if name else None
        ref = StorageReference(name=stored, location=opts.store)
        progress = opts.progress or (lambda _m: None)
        with ref.new_destination(_storage_ctx(opts)) as dst:
            progress("Getting image source signatures")
            progress(f"Copying blob {blob_digest}")
            with open(blob_path, "rb") as f:
                dst.put_blob(f, BlobInfo(digest=blob_digest, size=blob_size), is_config=False)
            progress(f"Copying config {config_digest.digest()}")
            import io

            info = BlobInfo(digest=Digest(config_digest.digest()), size=len(config))
            dst.put_blob(io.BytesIO(config), info, is_config=True)
            progress("Writing manifest to image destination")
            dst.put_manifest(manifest, spec.OCI_MANIFEST)
            dst.commit()
            progress("Storing signatures")
    return config_digest.digest().partition(":")[2]


def login(registry: str, username: str, password: str, ctx: SystemContext) -> str:
    """Check the credentials against the registry, then store them; the file written."""
    from pypod.config.registries import find_registry, load_registries_conf
    from pypod.image.registry import Credentials, RegistryClient, store_credentials

    host = registry.removeprefix("https://").removeprefix("http://").split("/")[0]
    config = load_registries_conf(ctx.registries_conf, environ=dict(ctx.environ) or None)
    found = find_registry(config, host)
    insecure = bool(found is not None and found.insecure)
    tls = ctx.tls_verify if ctx.tls_verify is not None else not insecure
    creds = Credentials(username=username, password=password)
    client = RegistryClient(host, tls_verify=tls, credentials=creds, certs_dir=ctx.certs_dir,
                            retries=ctx.retries)  # fmt: skip
    try:
        client.ping()
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    return store_credentials(registry.removeprefix("https://").removeprefix("http://"), creds,
                             authfile=ctx.authfile, environ=dict(ctx.environ) or None)  # fmt: skip


def logout(registry: str | None, ctx: SystemContext) -> bool:
    from pypod.image.registry import remove_credentials

    key = registry.removeprefix("https://").removeprefix("http://") if registry else None
    return remove_credentials(key, authfile=ctx.authfile, environ=dict(ctx.environ) or None)
