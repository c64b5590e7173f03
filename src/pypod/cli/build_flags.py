"""The Containerfile build flags `pypod build` (podman 4.3) and `pypod-build bud` (buildah 1.28)
share, and how their values are read.

Upstream both commands take their flags from one table (buildah's `pkg/cli` BudFlags); here
too: `SHARED_FLAGS` are the flags whose meaning is the same in both programs.  The flags whose
default or meaning differs stay in each command: `--layers` (podman: on; buildah: off, or
BUILDAH_LAYERS), `--squash` (podman: the new layers as one; buildah: everything as one),
`--pull` (podman: a bare `--pull` is always; buildah: true/false/always/never), `--rm` and
`--force-rm`, `--network`, the platform and registry flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from pypod.cli.flags import Flag, Parsed
from pypod.cli.registry import bool_flag
from pypod.errors import InvalidArgument, NotSupported

__all__ = ["SHARED_FLAGS", "build_args", "env_bool", "flag_bool", "secrets"]

SHARED_FLAGS = (
    Flag(("annotation",), True, True, help="set metadata for an image (default [])"),
    Flag(("build-arg",), True, True, help="argument=value to supply to the builder"),
    Flag(("disable-compression", "D"), help="don't compress layers (layers are kept as tar)"),
    Flag(("file", "f"), True, True, help="pathname or URL of a Containerfile"),
    Flag(("format",), True, help="format of the built image's manifest and metadata (oci, "
         "docker)"),
    Flag(("ignorefile",), True, help="path to an alternate .containerignore file"),
    Flag(("iidfile",), True, help="file to write the image ID to"),
    Flag(("isolation",), True, help="type of process isolation to use (oci, chroot)"),
    Flag(("label",), True, True, help="set metadata for an image (default [])"),
    Flag(("no-cache",), help="do not use existing cached images for the container build"),
    Flag(("pull-always",), help="pull the image even if the named image is present in store"),
    Flag(("pull-never",), help="do not pull the image, use the image present in store"),
    Flag(("quiet", "q"), help="refrain from announcing build instructions and image read/write "
         "progress"),
    Flag(("secret",), True, True, help="secret file to expose to the build (id=ID,src=PATH)"),
    Flag(("tag", "t"), True, True, help="tagged name to apply to the built image"),
    Flag(("target",), True, help="set the target build stage to build"),
    Flag(("timestamp",), True, help="set created timestamp to the specified epoch seconds"),
    Flag(("volume", "v"), True, True, help="bind mount a volume into RUN containers"),
)  # fmt: skip


def flag_bool(opts: Parsed, name: str, default: bool) -> bool:
    """A boolean flag that may also be given a value (`--layers=false`); `default` when absent.
    A bare flag, "true", "1" (and "" from `--rm=`) mean true."""
    value = bool_flag(opts, name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    """BUILDAH_LAYERS and the like: "1" or "true" (any case) is true; `default` when unset."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true")


def build_args(
    values: Sequence[str],
    files: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`--build-arg NAME=VALUE` (`--build-arg NAME`: the value comes from the environment, and
    the argument is left out when the environment has none) after the `--build-arg-file`s
    (`NAME=VALUE` lines, `#` comments)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for path in files:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    out[key] = value
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"--build-arg {item!r}: the name is empty: use NAME=VALUE")
        if sep:
            out[key] = value
        elif key in env:
            out[key] = env[key]
    return out


def secrets(values: Sequence[str]) -> dict[str, str]:
    """`--secret id=ID,src=PATH` (or `source=`; `type=file`, the only kind there is yet):
    id -> host file."""
    out: dict[str, str] = {}
    for item in values:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        sid, src = fields.get("id"), fields.get("src") or fields.get("source")
        if fields.get("type", "file") != "file":
            raise NotSupported(f"--secret {item!r}: only file secrets are supported yet")
        if not sid or not src:
            raise InvalidArgument(f"--secret {item!r}: use id=ID,src=PATH")
        out[sid] = src
    return out
