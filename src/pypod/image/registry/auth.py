"""Registry authentication: `WWW-Authenticate` challenges, token answers, and auth.json.

Credentials are looked up the way podman (containers/image `pkg/docker/config`) does:

1. `authfile` (`--authfile`) or `$REGISTRY_AUTH_FILE` — and then only that file;
2. otherwise `$XDG_RUNTIME_DIR/containers/auth.json` (or `/run/containers/<uid>/auth.json`
   without `XDG_RUNTIME_DIR`), then `$XDG_CONFIG_HOME/containers/auth.json`
   (`~/.config/...`), then docker's `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`,
   then the legacy `~/.dockercfg` (a bare `{host: {auth: ...}}` map).

In each file `auths` is keyed by `host[:port]` or `host[:port]/namespace/...`; the longest key
that prefixes the repository wins, and the first file with a match wins.  `login`/`logout`
write only the first file of the list, atomically (temp file + rename, mode 0600), keeping every
other entry and top-level key.  `credHelpers`/`credsStore` are not supported (yet).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from pypod.atomic import write_atomic
from pypod.errors import ConfigError, InvalidArgument
from pypod.log import get_logger
from pypod.record import field, record

log = get_logger(__name__)

#: docker's historic names for Docker Hub, as they appear as auth.json keys
_DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")


@record
class Credentials:
    """Basic credentials, or an OAuth2 refresh token (`identitytoken`) for the token server."""

    username: str = ""
    password: str = field(default="", metadata={"secret": True})
    identity_token: str = field(default="", metadata={"secret": True})


def _credentials_repr(self: Credentials) -> str:
    return f"Credentials(username={self.username!r}, password=***, identity_token=***)"


# `record` writes its own __repr__; secrets must never reach a log or a traceback
Credentials.__repr__ = _credentials_repr  # type: ignore[method-assign,assignment]


@record
class Challenge:
    """One `WWW-Authenticate` challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")


@record
class Token:
    """A bearer token and when it stops being usable (monotonic clock)."""

    value: str
    expires: float


@record
class AuthFile:
    """A file that may hold credentials; `legacy` is the `~/.dockercfg` format."""

    path: str
    legacy: bool = False


# ---------------------------------------------------------------------------------------------
# WWW-Authenticate


def _skip_spaces(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t":
        i += 1
    return i


def _token(s: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(s) and s[i] not in ' \t,="':
        i += 1
    return s[start:i], i


def _quoted(s: str, i: int) -> tuple[str, int]:
    """A quoted-string starting at s[i] == '"'; returns the unescaped value and the next index."""
    out = []
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one `WWW-Authenticate` value (RFC 7235: quoted commas are kept)."""
    challenges: list[Challenge] = []
    scheme = ""
    params: dict[str, str] = {}
    i = 0
    while i < len(header):
        i = _skip_spaces(header, i)
        if i < len(header) and header[i] == ",":
            i += 1
            continue
        word, j = _token(header, i)
        if not word:
            i = j + 1  # stray character: skip it
            continue
        k = _skip_spaces(header, j)
        if k < len(header) and header[k] == "=":
            k = _skip_spaces(header, k + 1)
            if k < len(header) and header[k] == '"':
                value, i = _quoted(header, k)
            else:
                value, i = _token(header, k)
            if scheme:
                params[word.lower()] = value
            continue
        if scheme:
            challenges.append(Challenge(scheme=scheme, params=params))
        scheme, params, i = word.lower(), {}, j
    if scheme:
        challenges.append(Challenge(scheme=scheme, params=params))
    return challenges


def choose_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Bearer if offered (with a realm), else Basic, else None."""
    for c in challenges:
        if c.scheme == "bearer" and c.realm:
            return c
    for c in challenges:
        if c.scheme == "basic":
            return c
    return None


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_token_answer(body: bytes, *, now: float, source: str) -> Token:
    """The token server's JSON answer (`token` or `access_token`, `expires_in` seconds)."""
    from pypod.errors import AuthenticationRequired

    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise AuthenticationRequired(f"token server {source}: answer is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise AuthenticationRequired(f"token server {source}: answer is not a JSON object")
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        raise AuthenticationRequired(f"token server {source}: answer holds no token")
    expires_in = doc.get("expires_in")
    # the distribution spec: "if not specified ... assume 60 seconds"
    lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60
    # renew a little early so a token does not expire between check and use
    return Token(value=value, expires=now + max(lifetime - 5, lifetime / 2))


def token_query(challenge: Challenge, scopes: tuple[str, ...]) -> list[tuple[str, str]]:
    """Query parameters of a token GET: service, one `scope` per scope, as docker sends them."""
    query = []
    if challenge.service:
        query.append(("service", challenge.service))
    query += [("scope", s) for s in scopes]
    return query


def merge_scopes(scopes: tuple[str, ...], challenge: Challenge) -> tuple[str, ...]:
    """Our scopes plus those a 401 challenge names (`scope` may hold several, space-separated)."""
    extra = tuple(s for s in challenge.scope.split() if s not in scopes)
    return tuple(sorted(set(scopes + extra)))


# ---------------------------------------------------------------------------------------------
# auth.json


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def auth_files(
    authfile: str | None = None, *, environ: Mapping[str, str] | None = None
) -> list[AuthFile]:
    """The files searched for credentials, in order; the first is the one `login` writes."""
    env = _env(environ)
    chosen = authfile or env.get("REGISTRY_AUTH_FILE")
    if chosen:
        return [AuthFile(path=chosen)]
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        primary = os.path.join(runtime_dir, "containers", "auth.json")
    else:
        primary = f"/run/containers/{os.getuid()}/auth.json"
    home = _home(env)
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    docker_dir = env.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    return [
        AuthFile(path=primary),
        AuthFile(path=os.path.join(config_home, "containers", "auth.json")),
        AuthFile(path=os.path.join(docker_dir, "config.json")),
        AuthFile(path=os.path.join(home, ".dockercfg"), legacy=True),
    ]


def normalize_key(key: str) -> str:
    """An auth.json key as compared: no scheme, no trailing `/`, docker's `/v1/` paths dropped,
    Docker Hub's old host names mapped to `docker.io`."""
    if "://" in key:
        parts = urlsplit(key)
        key = parts.netloc  # a URL key (docker's "https://index.docker.io/v1/"): host only
    key = key.rstrip("/")
    host, sep, rest = key.partition("/")
    if host in _DOCKER_HUB_ALIASES:
        host = "docker.io"
    return host + sep + rest


def _load(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        log.warning("cannot read auth file %s: %s", path, e)
        return {}
    if not data.strip():
        return {}
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"invalid JSON: {e}; fix or remove the file", path=path) from None
    if not isinstance(doc, dict):
        raise ConfigError("not a JSON object; fix or remove the file", path=path)
    return doc


def _entries(doc: Mapping[str, object], legacy: bool) -> dict[str, Mapping[str, object]]:
    auths = doc if legacy else doc.get("auths", {})
    if not isinstance(auths, dict):
        return {}
    return {normalize_key(k): v for k, v in auths.items() if isinstance(v, dict)}


def _decode_entry(entry: Mapping[str, object], path: str, key: str) -> Credentials | None:
    auth = entry.get("auth")
    identity = entry.get("identitytoken")
    identity = identity if isinstance(identity, str) else ""
    username = password = ""
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, ValueError):
            raise ConfigError("`auth` is not base64", path=path, key=f"auths.{key}") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError("`auth` is not user:password", path=path, key=f"auths.{key}")
    if not (username or password or identity):
        return None
    return Credentials(username=username, password=password, identity_token=identity)


def _candidates(registry: str, repository: str | None) -> list[str]:
    """Keys from the most specific (`host/a/b`) down to the host."""
    host = normalize_key(registry)
    keys = [host]
    if repository:
        parts = repository.strip("/").split("/")
        keys += [host + "/" + "/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return keys[::-1]


def lookup_credentials(
    registry: str,
    repository: str | None = None,
    *,
    authfile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """Stored credentials for `registry` (`host[:port]`) and a repository in it, or None."""
    keys = _candidates(registry, repository)
    for f in auth_files(authfile, environ=environ):
        entries = _entries(_load(f.path), f.legacy)
        for key in keys:
            if key in entries:
                creds = _decode_entry(entries[key], f.path, key)
                if creds is not None:
                    log.debug("credentials for %s from %s (%s)", registry, f.path, key)
                    return creds
    return None


def _check_key(key: str) -> str:
    norm = normalize_key(key)
    if not norm or norm.startswith("/") or " " in norm:
        raise InvalidArgument(f"invalid registry for credentials: {key!r}")
    return norm


def _write_atomic(path: str, doc: Mapping[str, object]) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    write_atomic(path, (json.dumps(doc, indent="\t") + "\n").encode(), mode=0o600)


def store_credentials(
    key: str,
    credentials: Credentials,
    *,
    authfile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Save credentials for `key` (`host[:port]` or `host/namespace`) as `pypod login` does;
    returns the file written."""
    norm = _check_key(key)
    target = auth_files(authfile, environ=environ)[0]
    doc = _load(target.path)
    auths = doc if target.legacy else doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise ConfigError("`auths` is not an object", path=target.path, key="auths")
    # replace any spelling of the same key (a URL key, a Docker Hub alias)
    for k in [k for k in auths if normalize_key(k) == norm]:
        del auths[k]
    entry: dict[str, str] = {}
    if credentials.username or credentials.password:
        raw = f"{credentials.username}:{credentials.password}".encode()
        entry["auth"] = base64.b64encode(raw).decode("ascii")
    if credentials.identity_token:
        entry["identitytoken"] = credentials.identity_token
    auths[norm] = entry
    _write_atomic(target.path, doc)
    return target.path


def remove_credentials(
    key: str | None,
    *,
    authfile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Forget `key`'s credentials (None: all of them, `logout --all`) in the file `login`
    writes; False when there was nothing to remove."""
    target = auth_files(authfile, environ=environ)[0]
    doc = _load(target.path)
    auths = doc if target.legacy else doc.get("auths")
    if not isinstance(auths, dict) or not auths:
        return False
    if key is None:
        auths.clear()
    else:
        norm = _check_key(key)
        doomed = [k for k in auths if normalize_key(k) == norm]
        if not doomed:
            return False
        for k in doomed:
            del auths[k]
    _write_atomic(target.path, doc)
    return True
