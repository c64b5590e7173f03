"""Layer tar layouts (containers/storage's tar-split): a layer's tar rebuilt byte for byte.

A store keeps a layer's files, not the tar they came from.  To serve the same tar again (so
that a pushed or saved image keeps its diff ids, config and image id), the layout of the tar is
recorded while the layer is applied (`archive.stream.LayoutRecorder`, in the same pass): the
bytes that are not file content (headers, padding, the end blocks) and, in between, which
file's content follows.  Rebuilt from the layer's directory, the tar has the layer's diff id
again; when it does not (a file changed, the record is missing), the caller exports the layer
anew.

On disk: `<graphroot>/tar-split/<layer-id>.gz`, gzip of one JSON line
`{"version": 1, "entries": [[raw bytes, file or null, content bytes], ...]}` then the raw bytes.
The record of a layer image is named by its chain id, which fixes the diff id and so the tar:
a record left by a removed layer is still right if the layer returns.
"""

from __future__ import annotations

import os

from pypod import jsoncodec
from pypod.atomic import replacing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from pypod.storage.archive.stream import LayoutRecorder

DIRECTORY = "tar-split"
_CHUNK = 1 << 20


def layout_path(graphroot: str, layer_id: str) -> str:
    return os.path.join(graphroot, DIRECTORY, f"{layer_id}.gz")


def write_layout(path: str, layout: LayoutRecorder) -> None:
    """Write a recorded layout (atomically; not synced: a lost record only costs a re-export)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    import gzip  # here, as in rebuild_tar: removing a layer's layout needs neither

    header = jsoncodec.dumps({"version": 1, "entries": layout.finish()}, separators=(",", ":"))
    with replacing(path, sync=False) as tmp, gzip.open(tmp, "wb", compresslevel=1) as out:
        out.write(header.encode() + b"\n")
        out.write(layout.raw)


def remove_layout(graphroot: str, layer_id: str) -> None:
    try:
        os.unlink(layout_path(graphroot, layer_id))
    except OSError:
        pass


def rename_layout(graphroot: str, old_id: str, new_id: str) -> None:
    try:
        os.replace(layout_path(graphroot, old_id), layout_path(graphroot, new_id))
    except FileNotFoundError:
        pass


def sweep_layouts(graphroot: str, known: set[str]) -> None:
    """Remove the records of layers that are not in `known` (every layer row, incomplete ones
    included: a layer being staged writes its record after its row)."""
    directory = os.path.join(graphroot, DIRECTORY)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(".tmp-"):  # a record being written, or left by a crash
            pid = name.split("-")[1]
            stale = pid.isdigit() and not os.path.exists(f"/proc/{pid}")
        else:
            stale = name.endswith(".gz") and name.removesuffix(".gz") not in known
        if stale:
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _open_below(root: str, rel: str) -> int:
    """A file below `root` opened without following any symlink (layer content is untrusted)."""
    parts = [p for p in rel.split("/") if p]
    if not parts:
        raise IsADirectoryError(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def rebuild_tar(path: str, root: str, out: BinaryIO) -> str | None:
    """Write the tar recorded at `path` from its layout and the files below `root`; the
    digest of what was written, None when there is no usable record or a file is missing."""
    import gzip
    import hashlib

    from pypod.storage.archive import clean_path  # here: removing a layout needs none of it

    try:
        with gzip.open(path, "rb") as f:
            index = jsoncodec.loads(f.readline())
            raw = f.read()
    except (OSError, ValueError, EOFError):
        return None
    digest = hashlib.sha256()
    pos = 0
    try:
        for raw_len, name, size in index["entries"]:
            chunk = raw[pos : pos + raw_len]
            pos += raw_len
            out.write(chunk)
            digest.update(chunk)
            if name is None:
                continue
            rel = clean_path(name)
            if rel is None:
                return None
            fd = _open_below(root, rel)
            with os.fdopen(fd, "rb") as content:
                left = size
                while left > 0:
                    data = content.read(min(left, _CHUNK))
                    if not data:
                        return None
                    out.write(data)
                    digest.update(data)
                    left -= len(data)
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return "sha256:" + digest.hexdigest()
