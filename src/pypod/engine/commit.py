"""`pypod commit`: a new image from a container, as podman (buildah's import builder) makes it.

The image is the container's image with one more layer: the container's changes (the same
layer tar `Store.export_container_diff` writes for every driver).  With `squash`, it is one
layer holding the container's whole root filesystem instead.  The config starts from the
image's and takes the container's settings (entrypoint, command, environment, labels, user,
working directory, anonymous volumes), then the `--change` instructions, then a history entry
("/bin/sh", "FROM <image>").  The layers are stored uncompressed, so the manifest names each
by its diff id, as buildah does.

Podman's formats: `oci` (the default; a commit message and ONBUILD instructions have no place
in an OCI config: the first is refused, the second dropped with a warning) or `docker`
(Docker's schema 2 config with `container_config`, `parent`, `comment`).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from pypod.errors import InvalidArgument, PypodError
from pypod.log import get_logger
from pypod.record import record

if TYPE_CHECKING:
    from pypod.engine.containers import Engine
    from pypod.engine.state import Container
    from pypod.storage.records import Image

log = get_logger(__name__)

#: the environment podman's spec always holds: PATH when the image has none
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: the history entry of a commit, as buildah writes it for a container it did not build
CREATED_BY = "/bin/sh"
_FORMATS = ("oci", "docker")


@record
class CommitOptions:
    #: `--change` instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER,
    #: VOLUME, WORKDIR)
    changes: tuple[str, ...] = ()
    #: `--message` (docker format only)
    message: str = ""
    #: `--author`
    author: str = ""
    #: `--pause`: freeze a running container while its layer is read (podman: off by default)
    pause: bool = False
    #: "oci" or "docker"
    format: str = "oci"
    #: one layer with the whole root instead of the image's layers and one more
    squash: bool = False
    #: all the container's volume destinations become image VOLUMEs (not only anonymous ones)
    include_volumes: bool = False
    #: progress lines as podman prints them ("Copying blob ...")
    progress: Callable[[str], None] | None = None
    tmpdir: str | None = None


def commit(eng: Engine, id_or_name: str, name: str | None, opts: CommitOptions) -> str:
    """Commit container `id_or_name` to a new image named `name` (a short name becomes
    `localhost/NAME:latest`; None: no name); the new image's id."""
    if opts.format not in _FORMATS:
        raise InvalidArgument(f'unrecognized image type "{opts.format}": use oci or docker')
    if opts.message and opts.format == "oci":
        raise InvalidArgument(
            "messages are only compatible with the docker image format (-f docker)"
        )
    stored_name: str | None = None
    if name:
        from pypod.image.local import normalize_tag_name

        stored_name = normalize_tag_name(name)
    c = eng.lookup(id_or_name)
    with eng.locked(c.id):  # no start, stop or rm meanwhile
        c = eng.lookup(c.id)
        paused = False
        if opts.pause and c.status == "running":
            eng.pause(c.id)
            paused = True
        try:
            image_id = _commit(eng, c, stored_name, opts)
        finally:
            if paused:
                try:
                    eng.unpause(c.id)
                except PypodError as e:
                    log.error("Unpausing container %s: %s", c.id, e)
    with eng.db.transaction():
        eng.event("container", "commit", c.id, c.name, {"image": c.config.image})
    return image_id


def _commit(eng: Engine, c: Container, stored_name: str | None, opts: CommitOptions) -> str:
    from pypod.image.local import image_config, matching_name

    store = eng.store
    image = store.image(c.config.image_id)
    base = image_config(store, image)
    from_name = matching_name(c.config.image, image) or (
        image.names[0] if image.names else c.config.image
    )
    tmpdir = opts.tmpdir or "/var/tmp"
    os.makedirs(tmpdir, exist_ok=True)
    with tempfile.TemporaryFile(dir=tmpdir, prefix="pypod-commit-") as layer:
        if opts.squash:
            diff_id = _squashed_layer(eng, c, layer)
        else:
            diff_id = store.export_container_diff(c.id, layer).diff_id
        size = layer.tell()
        layer.seek(0)
        now = time.time()
        config = _config(eng, c, image, base, from_name, diff_id, now, opts)
        if opts.squash:
            layers: list[tuple[str, int]] = []
        else:
            chain = list(reversed(store.chain(image.top_layer))) if image.top_layer else []
            layers = [(lay.diff_id or "", lay.uncompressed_size or 0) for lay in chain]
        layers.append((diff_id, size))
        config_blob = json.dumps(config, separators=(",", ":")).encode()
        return _store(eng, stored_name, config_blob, layers, layer, opts)


def _squashed_layer(eng: Engine, c: Container, out: BinaryIO) -> str:
    """The container's whole root as one layer tar; its diff id."""
    import hashlib

    from pypod.engine.tarcopy import TarWriter

    class _Hashing:
        def __init__(self) -> None:
            self.hash = hashlib.sha256()

        def write(self, data: bytes) -> int:
            self.hash.update(data)
            return out.write(data)

    sink = _Hashing()
    path = eng.store.mount_container(c.id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            writer = TarWriter(sink)  # type: ignore[arg-type]
            writer.add_contents(fd)
            writer.close()
        finally:
            os.close(fd)
    finally:
        eng.store.unmount_container(c.id)
    return "sha256:" + sink.hash.hexdigest()


# --- the config -----------------------------------------------------------------------------
def _set_env(env: list[str], key: str, value: str) -> None:
    """buildah's SetEnv: replace the variable in place, or append it."""
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            return
    env.append(f"{key}={value}")


def container_env(c: Container, image_cfg: dict[str, Any]) -> list[str]:
    """The image's Env with the variables of the container's spec set in it (buildah's SetEnv
    of each, as podman commits them): PATH, TERM with a terminal, `container=pypod`, the
    image's, the container's own.  HOME and HOSTNAME are the container's run-time values and
    not part of the image."""
    image_env = [str(e) for e in image_cfg.get("Env") or [] if isinstance(e, str)]
    spec: dict[str, str] = {"PATH": DEFAULT_PATH}
    if c.config.tty:
        spec["TERM"] = "xterm"
    spec["container"] = "pypod"
    for item in image_env:
        key, _, value = item.partition("=")
        if key:
            spec[key] = value
    spec.update(c.config.env)
    env = list(image_env)
    for key, value in spec.items():
        _set_env(env, key, value)
    return env


def _stop_signal(value: str) -> str:
    """STOPSIGNAL as podman stores it: the signal's number."""
    text = value.strip().upper()
    if text.isdigit() and 0 < int(text) < 65:
        return text
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return str(int(signal.Signals[name]))
    except KeyError:
        raise InvalidArgument(f'invalid signal "{value}" in --change STOPSIGNAL') from None


def _container_config(c: Container, base_cfg: dict[str, Any], opts: CommitOptions
                      ) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """The image config's `config` object; and the ONBUILD instructions the changes added."""
    from pypod.image.transfer import apply_changes

    cfg = json.loads(json.dumps(base_cfg))  # a deep copy
    entrypoint = c.config.entrypoint
    if entrypoint is not None:
        if entrypoint:
            cfg["Entrypoint"] = list(entrypoint)
        else:
            cfg.pop("Entrypoint", None)
    if c.config.command:
        cfg["Cmd"] = list(c.config.command)
    cfg["Env"] = container_env(c, base_cfg)
    if c.config.labels:
        cfg.setdefault("Labels", {}).update(c.config.labels)
    if c.config.user:
        cfg["User"] = c.config.user
    for m in c.config.mounts:
        anonymous = m.volume is not None and len(m.volume) == 64
        if m.type == "bind" and (anonymous or opts.include_volumes):
            cfg.setdefault("Volumes", {})[m.destination] = {}
    cfg["WorkingDir"] = c.config.workdir or cfg.get("WorkingDir") or "/"
    before = list(cfg.get("OnBuild") or [])
    apply_changes(cfg, opts.changes)
    if cfg.get("StopSignal") and cfg.get("StopSignal") != base_cfg.get("StopSignal"):
        cfg["StopSignal"] = _stop_signal(str(cfg["StopSignal"]))
    added = list(cfg.get("OnBuild") or [])[len(before) :]
    return cfg, added


def _config(eng: Engine, c: Container, image: Image, base: dict[str, Any], from_name: str,
            diff_id: str, now: float, opts: CommitOptions) -> dict[str, Any]:  # fmt: skip
    from pypod.image.local import go_time

    base_cfg = base.get("config") if isinstance(base.get("config"), dict) else {}
    cfg, onbuild = _container_config(c, base_cfg or {}, opts)
    created = go_time(now)
    author = opts.author or str(base.get("author") or "")
    entry: dict[str, Any] = {"created": created, "created_by": CREATED_BY}
    if opts.author:
        entry["author"] = opts.author
    entry["comment"] = f"FROM {from_name}"
    history = [] if opts.squash else [h for h in base.get("history") or [] if isinstance(h, dict)]
    history.append(entry)
    diff_ids = [] if opts.squash else list((base.get("rootfs") or {}).get("diff_ids") or [])
    diff_ids.append(diff_id)
    platform = {k: base[k] for k in ("architecture", "os", "variant") if base.get(k)}
    if not platform:
        from pypod.oci.image_spec import host_platform

        host = host_platform()
        platform = {"architecture": host.architecture, "os": host.os}
    rootfs = {"type": "layers", "diff_ids": diff_ids}
    if opts.format == "oci":
        for instruction in onbuild:
            log.warning(
                "ONBUILD is not supported for OCI image format, %s will be ignored. Must use "
                "`docker` format",
                instruction,
            )
        if onbuild:
            kept = cfg["OnBuild"][: len(cfg["OnBuild"]) - len(onbuild)]
            if kept:
                cfg["OnBuild"] = kept
            else:
                del cfg["OnBuild"]
        doc: dict[str, Any] = {"created": created}
        if author:
            doc["author"] = author
        doc.update(platform)
        doc["config"] = cfg
        doc["rootfs"] = rootfs
        doc["history"] = history
        return doc
    docker_cfg = _docker_config(cfg, from_name)
    doc = {}
    if opts.message:
        doc["comment"] = opts.message
    doc["created"] = created
    doc["container"] = c.id
    doc["container_config"] = docker_cfg
    doc["config"] = docker_cfg
    if author:
        doc["author"] = author
    doc.update(platform)
    if not opts.squash:
        doc["parent"] = f"sha256:{image.id}"
    doc["rootfs"] = rootfs
    doc["history"] = history
    return doc


def _docker_config(cfg: dict[str, Any], from_name: str) -> dict[str, Any]:
    """Docker's container config object, every field present as Docker writes it."""
    out: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": cfg.get("User", ""),
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
    }
    if cfg.get("ExposedPorts"):
        out["ExposedPorts"] = cfg["ExposedPorts"]
    out.update(
        {
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "Env": cfg.get("Env") or None,
            "Cmd": cfg.get("Cmd") or None,
            "Image": from_name,
            "Volumes": cfg.get("Volumes") or None,
            "WorkingDir": cfg.get("WorkingDir", ""),
            "Entrypoint": cfg.get("Entrypoint") or [],
            "OnBuild": cfg.get("OnBuild") or None,
            "Labels": cfg.get("Labels") or None,
        }
    )
    if cfg.get("StopSignal"):
        out["StopSignal"] = cfg["StopSignal"]
    return out


# --- storing the image ----------------------------------------------------------------------
def _store(eng: Engine, stored_name: str | None, config: bytes, layers: Sequence[tuple[str, int]],
           new_layer: BinaryIO, opts: CommitOptions) -> str:  # fmt: skip
    """Store the image (pypod.image.commit): the image's layers are found by chain id, only
    the new one is written."""
    from pypod.image.commit import store_image
    from pypod.image.transports.containers_storage import StoreLocation

    location = StoreLocation(graphroot=eng.paths.graphroot, runroot=eng.paths.runroot,
                             driver=eng.driver)  # fmt: skip
    return store_image(location, stored_name, config, layers, new_layer, format=opts.format,
                       progress=opts.progress, tmpdir=opts.tmpdir)  # fmt: skip
