"""The pods' infra image, `localhost/pypod-pause:<version>`, built locally on first use.

As podman 4.3 builds `localhost/podman-pause:<version>-<timestamp>` when no infra image is
configured: one layer holding the host's catatonit as `/catatonit`, entrypoint
`/catatonit -P` (catatonit's pause mode: it sleeps until a signal ends it).  No registry is
needed.  The image is found by name afterwards, so it is built once per store.
"""

from __future__ import annotations

import os
import time

import pypod
from pypod.errors import ImageNotFound, NotSupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pypod.engine.containers import Engine

#: where catatonit is looked for (Debian's package installs /usr/bin/catatonit)
CATATONIT = ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit", "/usr/local/bin/catatonit")
ENTRYPOINT = ("/catatonit", "-P")


def pause_image_name() -> str:
    return f"localhost/pypod-pause:{pypod.__version__}"


def find_catatonit() -> str:
    for path in CATATONIT:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.realpath(path)
    raise NotSupported(
        "building the pod infra image is not supported on this host: catatonit was not found ("
        + ", ".join(CATATONIT)
        + "): install it (apt-get install catatonit) or use `pod create --infra=false`"
    )


def ensure_pause_image(eng: Engine) -> tuple[str, str]:
    """(name, image ID) of the infra image, built now when the store has none."""
    from pypod.image.local import find_image

    name = pause_image_name()
    try:
        return name, find_image(eng.store, name).id
    except ImageNotFound:
        pass
    return name, _build(eng, name)


def _build(eng: Engine, name: str) -> str:
    import hashlib  # here: once per store; finding the image is on every `pod create`'s path
    import json
    import tarfile
    import tempfile

    from pypod.image.commit import store_image
    from pypod.image.transports.containers_storage import StoreLocation

    source = find_catatonit()
    with tempfile.TemporaryFile(prefix="pypod-pause-") as layer:
        with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("catatonit")
            st = os.stat(source)
            info.size = st.st_size
            info.mode = 0o755
            info.mtime = int(st.st_mtime)
            with open(source, "rb") as f:
                tar.addfile(info, f)
        size = layer.tell()
        layer.seek(0)
        digest = hashlib.sha256()
        while chunk := layer.read(1 << 20):
            digest.update(chunk)
        layer.seek(0)
        diff_id = "sha256:" + digest.hexdigest()
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000000Z"
        config = {
            "created": now,
            "architecture": _arch(),
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Entrypoint": list(ENTRYPOINT),
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [
                {"created": now, "created_by": f"/bin/sh -c #(nop) COPY {source} in /catatonit"},
                {
                    "created": now,
                    "created_by": '/bin/sh -c #(nop) ENTRYPOINT ["/catatonit", "-P"]',
                    "empty_layer": True,
                },
            ],
        }
        blob = json.dumps(config, separators=(",", ":")).encode()
        location = StoreLocation(
            graphroot=eng.paths.graphroot, runroot=eng.paths.runroot, driver=eng.driver
        )
        store_image(location, name, blob, [(diff_id, size)], layer)
    from pypod.image.local import find_image

    return find_image(eng.store, name).id


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
