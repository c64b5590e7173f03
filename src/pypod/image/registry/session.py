"""The HTTP side of the registry client: TLS, pooled connections, auth, retries, errors.

As containers/image does it:
- https with the system CAs plus `/etc/containers/certs.d/<host[:port]>/` (`*.crt` CAs,
  `*.cert` + `*.key` client pairs); with `tls_verify=False`, https without verification first,
  then plain http when https does not answer.
- The first request pings `/v2/` to learn the scheme and the auth challenge (Bearer or Basic);
  bearer tokens are fetched per scope set and cached for the session's life (until they expire).
- Idempotent requests are retried on 429/500/502/503/504 and connection errors, `retries` times
  with exponential backoff (`Retry-After` honoured), then fail with a `RegistryError` that says
  how often it tried.  Redirects are followed, without `Authorization` to another host.
- Errors are chosen from the HTTP status and the distribution-spec error codes of the body,
  never from message text.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import select
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Self
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from pypod import __version__
from pypod.errors import (
    AuthenticationRequired,
    BlobUnknown,
    ConfigError,
    InvalidArgument,
    ManifestUnknown,
    RegistryError,
    RegistryNotFound,
    RepositoryUnknown,
)
from pypod.image.registry.auth import (
    Challenge,
    Credentials,
    Token,
    basic_header,
    choose_challenge,
    merge_scopes,
    parse_challenges,
    parse_token_answer,
    token_query,
)
from pypod.log import get_logger

log = get_logger(__name__)

#: statuses worth another try
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
MAX_RETRY_DELAY = 60.0
#: bytes per send/receive call
BLOCK_SIZE = 1 << 20
#: idle keep-alive connections kept per origin
MAX_IDLE = 8
SYSTEM_CERTS_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
_NOT_FOUND_CODES: Mapping[str, type[RegistryNotFound]] = {
    "MANIFEST_UNKNOWN": ManifestUnknown,
    "BLOB_UNKNOWN": BlobUnknown,
    "BLOB_UPLOAD_UNKNOWN": BlobUnknown,
    "NAME_UNKNOWN": RepositoryUnknown,
}
_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]*)*)")

Origin = tuple[str, str]  # (scheme, host[:port])


class ConnectionFailed(Exception):
    """A request got no (complete) answer; `retriable` when another try may help."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        self.retriable = retriable
        super().__init__(message)


def _error_codes(body: bytes) -> tuple[tuple[str, ...], str]:
    """The codes of a distribution-spec error body and a readable summary of its messages."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return (), ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return (), ""
    codes, parts = [], []
    for e in errors:
        if not isinstance(e, dict):
            continue
        code = str(e.get("code", "")).upper()
        message = str(e.get("message", "")) or code.lower().replace("_", " ")
        if code:
            codes.append(code)
        parts.append(message)
    return tuple(codes), "; ".join(parts)


def with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def next_link(header: str | None) -> str | None:
    if not header:
        return None
    for m in _LINK_RE.finditer(header):
        params = m.group(2).replace(" ", "")
        if 'rel="next"' in params or "rel=next" in params:
            return m.group(1)
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _alive(conn: http.client.HTTPConnection) -> bool:
    """False when an idle keep-alive connection was closed by the server (it reads as ready:
    EOF), so a request is never sent on it, urllib3's check."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class Reply:
    """One response and the connection it came on; `release()` gives the connection back."""

    __slots__ = ("client", "conn", "data", "origin", "resp", "url")

    def __init__(
        self,
        client: Session,
        origin: Origin,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        url: str,
    ) -> None:
        self.client = client
        self.origin = origin
        self.conn = conn
        self.resp = resp
        self.url = url
        self.data = b""

    @property
    def status(self) -> int:
        return self.resp.status

    def header(self, name: str) -> str | None:
        return self.resp.getheader(name)

    def read_limited(self, limit: int) -> bytes:
        """The body, or its first `limit + 1` bytes when larger (and the connection closed);
        IncompleteRead when the connection ends before the announced length."""
        chunks = []
        total = 0
        while total <= limit:
            chunk = self.resp.read(min(BLOCK_SIZE, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        data = b"".join(chunks)
        if total > limit:
            self.close()
        elif self.resp.length:  # http.client reports a premature end as an end
            self.close()
            raise http.client.IncompleteRead(data, self.resp.length)
        return data

    def release(self) -> None:
        """Done with this reply: the connection goes back to the pool if it can be reused."""
        if not self.resp.isclosed():
            try:
                self.resp.read(65536)
            except (OSError, http.client.HTTPException):
                pass
        if self.resp.isclosed() and not self.resp.will_close:
            self.client._give_back(self.origin, self.conn)
        else:
            self.conn.close()

    def close(self) -> None:
        self.conn.close()


class SendReader:
    """The body of an upload: reads exactly `size` bytes of `stream`, hashing them."""

    def __init__(self, stream: IO[bytes], size: int, algorithm: str) -> None:
        self.stream = stream
        self.left = size
        self.hash = hashlib.new(algorithm)

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if n < 0 else min(n, self.left)
        data = self.stream.read(want)
        if not data:
            raise ShortStream(f"the blob stream ended {self.left} bytes before its size")
        self.left -= len(data)
        self.hash.update(data)
        return data


class ShortStream(InvalidArgument):
    """The stream given for an upload ended before the size given with it."""


class Session:
    """Requests to one registry (`host[:port]`): TLS, connections, auth, retries, errors."""

    def __init__(
        self,
        registry: str,
        *,
        tls_verify: bool = True,
        credentials: Credentials | None = None,
        certs_dir: str | None = None,
        user_agent: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float = 60.0,
    ) -> None:
        if not registry or "/" in registry:
            raise InvalidArgument(f"invalid registry {registry!r}: want host[:port]")
        self.registry = registry
        #: docker.io is served from registry-1.docker.io (credentials stay keyed by docker.io)
        self.endpoint = "registry-1.docker.io" if registry == "docker.io" else registry
        self.tls_verify = tls_verify
        self.credentials = credentials
        self.certs_dir = certs_dir
        self.user_agent = user_agent or f"pypod/{__version__}"
        self.retries = max(0, retries)
        self.backoff = backoff
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._scheme: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._contexts: dict[bool, ssl.SSLContext] = {}

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for c in conns:
                c.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- TLS and connections -----------------------------------------------------------------

    def _certs_dir(self) -> str | None:
        if self.certs_dir is not None:
            return self.certs_dir
        roots = list(SYSTEM_CERTS_DIRS)
        if os.getuid() != 0:
            home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
            roots.insert(0, os.path.join(home, "containers", "certs.d"))
        for root in roots:
            d = os.path.join(root, self.registry)
            if os.path.isdir(d):
                return d
        return None

    def _context(self, for_registry: bool) -> ssl.SSLContext:
        with self._lock:
            ctx = self._contexts.get(for_registry)
        if ctx is not None:
            return ctx
        if self.tls_verify:
            ctx = ssl.create_default_context()
        else:  # nothing is verified: the system's CAs are not loaded (~25 ms)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        directory = self._certs_dir() if for_registry else None
        if directory:
            self._load_certs(ctx, directory)
        with self._lock:
            self._contexts[for_registry] = ctx
        return ctx

    @staticmethod
    def _load_certs(ctx: ssl.SSLContext, directory: str) -> None:
        try:
            names = sorted(os.listdir(directory))
        except OSError as e:
            raise ConfigError(f"cannot read certificates: {e}", path=directory) from None
        for name in names:
            path = os.path.join(directory, name)
            try:
                if name.endswith(".crt"):
                    ctx.load_verify_locations(cafile=path)
                elif name.endswith(".cert"):
                    key = path[: -len(".cert")] + ".key"
                    if not os.path.exists(key):
                        raise ConfigError(f"client certificate without its key {key}", path=path)
                    ctx.load_cert_chain(path, key)
                elif name.endswith(".key") and not os.path.exists(path[:-4] + ".cert"):
                    raise ConfigError("client key without its certificate (.cert)", path=path)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"cannot load certificate: {e}", path=path) from None

    def _registry_origin(self) -> Origin:
        return (self._scheme or "https", self.endpoint)

    def _connection(self, origin: Origin) -> tuple[http.client.HTTPConnection, bool]:
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                conn = idle.pop() if idle else None
            if conn is None:
                break
            if _alive(conn):
                return conn, True
            conn.close()
        scheme, netloc = origin
        if scheme == "https":
            ctx = self._context(origin == self._registry_origin())
            return (
                http.client.HTTPSConnection(
                    netloc, timeout=self.timeout, context=ctx, blocksize=BLOCK_SIZE
                ),
                False,
            )
        return http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=BLOCK_SIZE), False

    def _give_back(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    # -- one exchange: send, follow redirects ------------------------------------------------

    def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | SendReader | None,
        auth: str | None,
        follow: bool,
    ) -> Reply:
        """Send one request (and its redirects); raises ConnectionFailed when no answer."""
        registry = self._registry_origin()
        first = urlsplit(url)
        # a streamed body cannot be sent twice: its redirects are errors for the caller
        follow = follow and not isinstance(body, SendReader)
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            origin = (parts.scheme, parts.netloc)
            target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            h = {"User-Agent": self.user_agent, **headers}
            if origin != (first.scheme, first.netloc):
                h.pop("Authorization", None)  # credentials never go to another host
            if auth and origin == registry:
                h["Authorization"] = auth
            if body is None and method in ("POST", "PUT", "PATCH"):
                h.setdefault("Content-Length", "0")
            for fresh_try in (False, True):
                conn, reused = self._connection(origin)
                try:
                    conn.request(method, target, body=body, headers=h)
                    resp = conn.getresponse()
                    break
                except ssl.SSLCertVerificationError as e:
                    conn.close()
                    raise ConnectionFailed(
                        f"TLS certificate of {parts.netloc} not trusted: {e.verify_message}; add "
                        f"its CA to /etc/containers/certs.d/{parts.netloc}/ca.crt or use "
                        "--tls-verify=false",
                        retriable=False,
                    ) from None
                except ShortStream:
                    conn.close()
                    raise
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    # a pooled keep-alive connection the server closed: once more, on a new one
                    if reused and not fresh_try and not isinstance(body, SendReader):
                        continue
                    message = f"{method} {url}: {e or type(e).__name__}"
                    if isinstance(e, ssl.SSLError):  # the server speaks no (or bad) TLS
                        message += (
                            f"; if {parts.netloc} serves plain HTTP, use --tls-verify=false or "
                            "mark it insecure in registries.conf"
                        )
                    retriable = not isinstance(e, ssl.SSLError)
                    raise ConnectionFailed(message, retriable=retriable) from None
            reply = Reply(self, origin, conn, resp, url)
            log.debug("%s %s -> %d", method, url, resp.status)
            location = resp.getheader("Location")
            if not (follow and resp.status in REDIRECT_STATUSES and location):
                return reply
            reply.release()
            url = urljoin(url, location)
            if resp.status == 303:
                method, body = "GET", None
        raise ConnectionFailed(
            f"{method} {url}: more than {MAX_REDIRECTS} redirects", retriable=False
        )

    # -- requests with auth, retries and error mapping ---------------------------------------

    def _delay(self, attempt: int, reply: Reply | None) -> float:
        after = _retry_after(reply.header("Retry-After")) if reply is not None else None
        if after is not None:
            return min(after, MAX_RETRY_DELAY)
        return min(self.backoff * float(2**attempt), 30.0)

    def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        scopes: tuple[str, ...] | None,
        ok: tuple[int, ...] = (200,),
        headers: Mapping[str, str] | None = None,
        body: bytes | SendReader | None = None,
        read_limit: int | None = 1 << 20,
        not_found: type[RegistryNotFound] = RegistryNotFound,
        retry: bool = True,
        follow: bool = True,
    ) -> Reply:
        """A request to the registry (`scopes` None: no registry auth) whose status is in `ok`.

        With `read_limit`, the body is read (at most that many bytes, or an error) into
        `reply.data` and the connection released; with None the caller reads and releases.
        """
        if not url.startswith(("http://", "https://")):
            url = self._base() + url
        retry = retry and not isinstance(body, SendReader)
        attempt = 0
        authenticated = False
        while True:
            auth = self._auth_header(scopes) if scopes is not None else None
            reply: Reply | None = None
            try:
                reply = self._exchange(method, url, headers or {}, body, auth, follow)
                status = reply.status
                if status == 401 and scopes is not None and not authenticated:
                    authenticated = True
                    new_scopes = self._learn_challenge(reply, scopes)
                    if new_scopes is not None:
                        reply.release()
                        scopes = new_scopes
                        continue
                if status in ok:
                    if read_limit is not None:
                        reply.data = reply.read_limited(read_limit)
                        if len(reply.data) > read_limit:
                            raise RegistryError(
                                f"{what}: answer larger than {read_limit} bytes", status=status
                            )
                        reply.release()
                    return reply
                if not (retry and status in RETRY_STATUSES and attempt < self.retries):
                    raise self._error(reply, what, not_found, attempt + 1)
            except ConnectionFailed as e:
                if not (retry and e.retriable and attempt < self.retries):
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise RegistryError(f"{what}: {e}{tries}") from None
            except (OSError, http.client.HTTPException) as e:  # while reading the body
                if reply is not None:
                    reply.close()
                if not (retry and attempt < self.retries):
                    raise RegistryError(
                        f"{what}: reading the answer failed: {e} (after {attempt + 1} attempts)"
                    ) from None
            delay = self._delay(attempt, reply)
            if reply is not None:
                reply.release()
            log.info("%s: retrying in %.1fs (attempt %d of %d)", what, delay, attempt + 2,
                     self.retries + 1)  # fmt: skip
            time.sleep(delay)
            attempt += 1

    def _error(
        self, reply: Reply, what: str, not_found: type[RegistryNotFound], attempts: int
    ) -> RegistryError:
        status = reply.status
        try:
            body = reply.read_limited(1 << 16)
        except (OSError, http.client.HTTPException):
            body = b""
        reply.release()
        codes, detail = _error_codes(body)
        detail = detail or f"{status} {reply.resp.reason}".strip()
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        message = f"{what}: {detail}{tries}"
        if status == 401:
            return AuthenticationRequired(
                f"{message}; log in with `pypod login {self.registry}` or give credentials",
                status=status,
                codes=codes,
            )
        if status == 404:
            cls = next((_NOT_FOUND_CODES[c] for c in codes if c in _NOT_FOUND_CODES), not_found)
            return cls(message, status=status, codes=codes)
        if status == 405:
            message += "; the registry does not allow this operation (deletes disabled?)"
        return RegistryError(message, status=status, codes=codes)

    # -- scheme and auth -------------------------------------------------------------------

    def _base(self) -> str:
        if self._scheme is None:
            self._probe()
        return f"{self._scheme}://{self.endpoint}"

    def _probe(self) -> None:
        """GET /v2/ without credentials: which scheme answers, and which challenge."""
        schemes = ("https",) if self.tls_verify else ("https", "http")
        last: RegistryError | None = None
        for scheme in schemes:
            try:
                reply = self._call(
                    "GET",
                    f"{scheme}://{self.endpoint}/v2/",
                    what=f"pinging container registry {self.registry}",
                    scopes=None,
                    ok=(200, 401),
                    retry=scheme == schemes[-1],
                )
            except RegistryError as e:
                last = e
                continue
            challenge = self._challenge_of(reply) if reply.status == 401 else None
            with self._lock:
                self._scheme = scheme
                self._challenge = challenge
            return
        assert last is not None
        raise last

    @staticmethod
    def _challenge_of(reply: Reply) -> Challenge | None:
        values = reply.resp.headers.get_all("WWW-Authenticate") or []
        return choose_challenge([c for v in values for c in parse_challenges(v)])

    def _learn_challenge(self, reply: Reply, scopes: tuple[str, ...]) -> tuple[str, ...] | None:
        """After a 401: the scopes to retry with, or None when another try cannot help."""
        challenge = self._challenge_of(reply)
        if challenge is None:
            return None
        with self._lock:
            self._challenge = challenge
            self._tokens.pop(tuple(sorted(scopes)), None)
        if challenge.scheme == "basic":
            creds = self.credentials
            return scopes if creds is not None and (creds.username or creds.password) else None
        merged = merge_scopes(scopes, challenge)
        with self._lock:
            self._tokens.pop(merged, None)
        return merged

    def _auth_header(self, scopes: tuple[str, ...]) -> str | None:
        challenge = self._challenge
        creds = self.credentials
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if creds is None or not (creds.username or creds.password):
                return None
            return basic_header(creds)
        return "Bearer " + self._bearer(challenge, scopes)

    def _bearer(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        key = tuple(sorted(scopes))
        with self._lock:
            token = self._tokens.get(key)
        if token is not None and token.expires > time.monotonic():
            return token.value
        creds = self.credentials
        what = f"authenticating to {self.registry} at {challenge.realm}"
        try:
            if creds is not None and creds.identity_token:
                # an OAuth2 refresh token (`identitytoken` in auth.json), as docker sends it
                form = [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                        ("client_id", "pypod"), ("scope", " ".join(key))]  # fmt: skip
                if challenge.service:
                    form.append(("service", challenge.service))
                reply = self._call(
                    "POST", challenge.realm, what=what, scopes=None,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    body=urlencode(form).encode(),
                )  # fmt: skip
            else:
                headers = {}
                if creds is not None and (creds.username or creds.password):
                    headers["Authorization"] = basic_header(creds)
                url = with_query(challenge.realm, token_query(challenge, key))
                reply = self._call("GET", url, what=what, scopes=None, headers=headers)
        except RegistryError as e:
            if e.status not in (400, 401, 403):
                raise
            raise AuthenticationRequired(
                f"{what}: credentials refused (HTTP {e.status}): invalid username or password, "
                f"or expired token; log in again with `pypod login {self.registry}`",
                status=e.status,
                codes=e.codes,
            ) from None
        token = parse_token_answer(reply.data, now=time.monotonic(), source=challenge.realm)
        with self._lock:
            self._tokens[key] = token
        return token.value
