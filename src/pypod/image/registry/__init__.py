"""The registry client (OCI distribution spec) and registry authentication (auth.json)."""

from pypod.image.registry.auth import (
    Credentials,
    lookup_credentials,
    remove_credentials,
    store_credentials,
)
from pypod.image.registry.blob import BlobReader
from pypod.image.registry.client import ManifestHead, RegistryClient

__all__ = [
    "BlobReader",
    "Credentials",
    "ManifestHead",
    "RegistryClient",
    "lookup_credentials",
    "remove_credentials",
    "store_credentials",
]
