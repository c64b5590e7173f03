"""The exception hierarchy of pypod, and the only place exit codes are defined.

Pick the class from structured data (errno, HTTP status, OCI error code), never from
message text.  Messages say what failed, on what, and what to do.
"""

from __future__ import annotations

import errno as _errno
import os

#: podman's exit codes for the engine (`pypod`).
EXIT_ENGINE_ERROR = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127
#: runc and skopeo exit 1 on any error of their own (buildah 1.28 exits 125, as podman).
EXIT_TOOL_ERROR = 1
#: runc's exit code when `exec` itself fails (not the exec'd program)
EXIT_RUNTIME_EXEC_FAILED = 255


class PypodError(Exception):
    """Root of every error pypod raises on purpose."""

    #: exit code of `pypod` (the engine) for this error
    engine_exit_code = EXIT_ENGINE_ERROR
    #: the errno of the OS-level failure behind this error, when there was one
    errno: int | None = None

    def is_permission_error(self) -> bool:
        """The OS refused (EPERM, EACCES, EROFS): e.g. rootless without delegation."""
        return self.errno in (_errno.EPERM, _errno.EACCES, _errno.EROFS)


class InvalidArgument(PypodError):
    """A value given by the user (flag, argument, file content) is not acceptable."""


class ConfigError(InvalidArgument):
    """A configuration file or document is invalid; names the file and the key."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = ""
        if path and key:
            where = f"{path}: {key}: "
        elif path:
            where = f"{path}: "
        elif key:
            where = f"{key}: "
        super().__init__(f"{where}{message}")


class NotFound(PypodError):
    """Something named by the user does not exist."""


class ContainerNotFound(NotFound):
    pass


class ImageNotFound(NotFound):
    pass


class LayerNotFound(NotFound):
    pass


class AlreadyExists(PypodError):
    pass


class InUse(PypodError):
    pass


class InvalidState(PypodError):
    """The operation does not fit the current state (start a running container, ...)."""


class NotSupported(PypodError):
    """A feature that is not implemented (yet) or cannot work on this host."""


class PermissionDenied(PypodError):
    pass


class StorageError(PypodError):
    pass


class RuntimeError_(PypodError):
    """The OCI runtime failed to do what was asked."""


class OSLevelError(PypodError):
    """An operating-system call failed; keeps errno so callers can decide on it."""

    errno: int

    def __init__(self, message: str, *, errno: int) -> None:
        self.errno = errno
        super().__init__(f"{message}: {os.strerror(errno)}")


class CannotInvoke(PypodError):
    """The command inside the container exists but cannot be run (permission, format)."""

    engine_exit_code = EXIT_CANNOT_INVOKE


class CommandNotFound(PypodError):
    """The command inside the container does not exist."""

    engine_exit_code = EXIT_NOT_FOUND


class RegistryError(PypodError):
    """A registry request failed; `status` is the HTTP status (0: no response, e.g. the
    connection failed) and `codes` the distribution-spec error codes of the body
    (`MANIFEST_UNKNOWN`, `DENIED`, ...), in order."""

    def __init__(self, message: str, *, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        self.status = status
        self.codes = codes
        super().__init__(message)


class AuthenticationRequired(RegistryError):
    """The registry wants credentials (HTTP 401), or refused the ones given."""


class RegistryNotFound(RegistryError, NotFound):
    """HTTP 404 from a registry (repository, manifest, blob or upload unknown)."""


class RepositoryUnknown(RegistryNotFound):
    """`NAME_UNKNOWN`: the repository is not known to the registry."""


class ManifestUnknown(RegistryNotFound):
    """`MANIFEST_UNKNOWN`: no manifest for this tag or digest."""


class BlobUnknown(RegistryNotFound):
    """`BLOB_UNKNOWN` / `BLOB_UPLOAD_UNKNOWN`: no such blob (or upload session)."""


def from_oserror(message: str, err: OSError) -> PypodError:
    """Map an OSError to the closest class, by errno, keeping errno."""
    code = err.errno or 0
    if code == _errno.ENOENT:
        e: PypodError = NotFound(f"{message}: {err.strerror or os.strerror(code)}")
    elif code in (_errno.EACCES, _errno.EPERM):
        e = PermissionDenied(f"{message}: {err.strerror or os.strerror(code)}")
    elif code == _errno.EEXIST:
        e = AlreadyExists(f"{message}: {err.strerror or os.strerror(code)}")
    elif code == _errno.EBUSY:
        e = InUse(f"{message}: {err.strerror or os.strerror(code)}")
    else:
        return OSLevelError(message, errno=code)
    e.errno = code
    return e
