"""`spec`: write runc's default config.json (or the rootless one) into a bundle."""

from __future__ import annotations

import os

from pypod.errors import AlreadyExists, from_oserror
from pypod.oci.runtime_defaults import default_spec, dump_spec_json


def write_default_spec(bundle: str, *, rootless: bool) -> str:
    """Create `<bundle>/config.json` as `runc spec [--rootless]` does; refuse to overwrite."""
    path = os.path.join(bundle, "config.json")
    spec = default_spec(rootless=rootless, uid=os.geteuid(), gid=os.getegid())
    try:
        with open(path, "x") as f:
            f.write(dump_spec_json(spec))
    except FileExistsError:
        raise AlreadyExists("File config.json exists. Remove it first") from None
    except OSError as e:
        raise from_oserror(f"write {path}", e) from e
    return path
