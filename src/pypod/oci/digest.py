"""Content digests (``algorithm:hex``) as the OCI image-spec and go-digest define them.

A :data:`Digest` is a plain ``str`` (a ``NewType``) that has been checked by
:func:`parse_digest`.  The error texts are go-digest's ("invalid checksum digest format",
"invalid checksum digest length", "unsupported digest algorithm"), prefixed with the value at
fault.  Computing a digest is :func:`digest_bytes` for bytes at hand and :class:`Digester` for a
stream (a blob being downloaded), which wraps ``hashlib``.
"""

from __future__ import annotations

from types import MappingProxyType

from pypod.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    import hashlib
    from collections.abc import Mapping
    from typing import NewType

__all__ = [
    "ALGORITHMS",
    "CANONICAL",
    "Digest",
    "DigestMismatch",
    "Digester",
    "InvalidDigest",
    "algorithm_of",
    "digest_bytes",
    "digest_problem",
    "encoded_of",
    "is_digest",
    "parse_digest",
    "verify_digest",
]

#: An ``algorithm:hex`` string that :func:`parse_digest` accepted.
if TYPE_CHECKING:
    Digest = NewType("Digest", str)
else:

    def Digest(value):
        """What `typing.NewType` makes at run time: the value itself (`typing` is not
        imported at run time)."""
        return value


#: Supported algorithms and the length of their hex encoding (go-digest's set).
ALGORITHMS: Mapping[str, int] = MappingProxyType({"sha256": 64, "sha384": 96, "sha512": 128})
#: The algorithm used when none is named (as go-digest's Canonical).
CANONICAL = "sha256"

# The image-spec grammar: algorithm-component (separator algorithm-component)* ":" encoded.
# (hashlib and re are imported on first use: this module is on every command's import path.)
_GRAMMAR = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
_LOWER_HEX = frozenset("0123456789abcdef")

FORMAT_ERROR = "invalid checksum digest format"
LENGTH_ERROR = "invalid checksum digest length"
UNSUPPORTED_ERROR = "unsupported digest algorithm"


class DigestMismatch(InvalidArgument):
    """Content does not have the digest it was announced with."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class InvalidDigest(InvalidArgument):
    """A malformed digest; ``reason`` is go-digest's error text, ``value`` the digest."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid digest {_show(value)}: {reason}")


def _show(value: str) -> str:
    from pypod import jsoncodec

    text = jsoncodec.dumps(value)
    return text if len(text) <= 150 else text[:140] + '..."'


def digest_problem(value: str) -> str | None:
    """The go-digest error text for `value`, or None when it is a valid digest."""
    i = value.find(":")
    if i <= 0 or i + 1 == len(value):
        return FORMAT_ERROR
    algorithm, encoded = value[:i], value[i + 1 :]
    size = ALGORITHMS.get(algorithm)
    if size is None:
        import re

        return UNSUPPORTED_ERROR if re.fullmatch(_GRAMMAR, value, re.ASCII) else FORMAT_ERROR
    if len(encoded) != size:
        return LENGTH_ERROR
    if not _LOWER_HEX.issuperset(encoded):
        return FORMAT_ERROR
    return None


def parse_digest(value: str) -> Digest:
    """`value` as a :data:`Digest`; InvalidArgument naming the value and go-digest's reason."""
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid digest {value!r}: must be a string")
    problem = digest_problem(value)
    if problem is not None:
        raise InvalidDigest(value, problem)
    return Digest(value)


def is_digest(value: str) -> bool:
    """Whether `value` is a valid digest of a supported algorithm."""
    return isinstance(value, str) and digest_problem(value) is None


def algorithm_of(digest: Digest) -> str:
    """``sha256`` of ``sha256:abc...``."""
    return digest.partition(":")[0]


def encoded_of(digest: Digest) -> str:
    """The hex part of a digest (``abc...`` of ``sha256:abc...``)."""
    return digest.partition(":")[2]


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise InvalidArgument(
            f"unsupported digest algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}"
        )


def digest_bytes(data: bytes | bytearray | memoryview, algorithm: str = CANONICAL) -> Digest:
    """The digest of `data` with `algorithm` (sha256 unless told)."""
    import hashlib

    _check_algorithm(algorithm)
    return Digest(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")


class Digester:
    """Digest of a stream fed piece by piece; counts the bytes as well.

    >>> d = Digester(); d.update(b"a"); d.update(b"bc"); d.digest() == digest_bytes(b"abc")
    True
    """

    __slots__ = ("_hash", "algorithm", "size")

    _hash: hashlib._Hash

    def __init__(self, algorithm: str = CANONICAL) -> None:
        import hashlib

        _check_algorithm(algorithm)
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    @classmethod
    def for_digest(cls, expected: Digest | str) -> Digester:
        """A digester using the algorithm of `expected`, to verify content against it."""
        return cls(algorithm_of(parse_digest(expected)))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(f"{self.algorithm}:{self._hash.hexdigest()}")


def verify_digest(expected: Digest | str, actual: Digest | str, *, what: str = "content") -> None:
    """Raise :class:`DigestMismatch` unless `actual` is `expected` (named in the message)."""
    if expected != actual:
        raise DigestMismatch(
            f"digest mismatch for {what}: expected {expected}, got {actual}; "
            "the content is corrupt or was changed, it was not stored",
            expected=str(expected),
            actual=str(actual),
        )
