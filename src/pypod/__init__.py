"""pypod: a daemonless container toolkit (podman, buildah, skopeo and runc compatible)."""

__version__ = "0.1.0"
#: The OCI runtime-spec version this package implements and writes into generated specs.
OCI_RUNTIME_SPEC_VERSION = "1.0.2-dev"
