"""The registry of transports: `transport:reference` names, as skopeo and podman write them.

Adding a transport is one new module (which defines ``TRANSPORT``) and one line in
:data:`_REGISTERED`.  Modules are imported on first use, so naming ``dir:`` never imports the
registry client.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

from pypod.errors import InvalidArgument
from pypod.image.types import ImageReference, Transport

__all__ = ["InvalidImageName", "get_transport", "parse_image_name", "transport_names"]

# name -> module defining TRANSPORT; one line per transport
_REGISTERED: Mapping[str, str] = MappingProxyType({
    "dir": "pypod.image.transports.dir",
    "docker": "pypod.image.transports.docker",
    "docker-archive": "pypod.image.transports.docker_archive",
    "oci": "pypod.image.transports.oci_layout",
    "oci-archive": "pypod.image.transports.oci_archive",
    "containers-storage": "pypod.image.transports.containers_storage",
})  # fmt: skip


class InvalidImageName(InvalidArgument):
    """A `transport:reference` name that does not parse (skopeo's wording)."""


def transport_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTERED))


def get_transport(name: str) -> Transport:
    """The transport called `name`; InvalidArgument when there is none."""
    module = _REGISTERED.get(name)
    if module is None:
        raise InvalidImageName(f'unknown transport "{name}"')
    transport: Transport = importlib.import_module(module).TRANSPORT
    return transport


def parse_image_name(name: str) -> ImageReference:
    """`transport:reference` (``docker://busybox``, ``oci:/tmp/layout:tag``) as a reference.

    Errors say what skopeo says: ``Invalid image name "x", expected colon-separated
    transport:reference`` / ``... unknown transport "x"``, or the transport's own reason."""
    transport_name, sep, rest = name.partition(":")
    if not sep:
        raise InvalidImageName(
            f'Invalid image name "{name}", expected colon-separated transport:reference'
        )
    if transport_name not in _REGISTERED:
        raise InvalidImageName(f'Invalid image name "{name}", unknown transport "{transport_name}"')
    return get_transport(transport_name).parse_reference(rest)


def image_name(ref: ImageReference) -> str:
    """The full `transport:reference` name of `ref`."""
    return f"{ref.transport_name}:{ref.string_within_transport()}"
