"""The registry client against Debian's real docker-registry on loopback.

A test-side proxy (http.server) between client and registry breaks things on purpose: cuts a
blob mid-body, answers 500, truncates or corrupts bodies, paginates tag lists (registry 2.8
does not), redirects blobs to another host, and demands Bearer tokens from a token server that
is also part of the test.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from pypod.errors import (
    AuthenticationRequired,
    BlobUnknown,
    ConfigError,
    InvalidArgument,
    ManifestUnknown,
    NotFound,
    RegistryError,
    RepositoryUnknown,
)
from pypod.image.registry.auth import (
    Credentials,
    auth_files,
    lookup_credentials,
    parse_challenges,
    remove_credentials,
    store_credentials,
)
from pypod.image.registry.client import RegistryClient
from pypod.oci.digest import DigestMismatch
from pypod.oci.image_spec import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.image_support import Registry, need_registry, sha, start_registry

REGISTRY_BIN = "/usr/bin/docker-registry"
USER, PASSWORD = "pypod", "s3cret pass"


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("auth-registry"), users={USER: PASSWORD})
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Path]]:
    """A registry on https with a certificate from a test CA; yields it and a certs.d-style
    directory holding the CA (ca.crt)."""
    need_registry()
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    root = tmp_path_factory.mktemp("tls-registry")
    certs = root / "certs.d"
    certs.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=root, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        str(certs / "ca.crt"), "-days", "2", "-subj", "/CN=pypod test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (root / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", str(certs / "ca.crt"), "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext")  # fmt: skip
    extra = f"  tls:\n    certificate: {root / 'server.crt'}\n    key: {root / 'server.key'}\n"
    reg = Registry(root, extra)
    yield reg, certs
    reg.stop()


class TokenServer:
    """A token endpoint: GET ?service&scope (Basic credentials optional) or POST refresh_token."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = users or {}
        self.refresh_tokens = {"refresh-me": "pypod"}
        self.granted: dict[str, set[str]] = {}
        self.requests: list[tuple[str, list[str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _grant(self, scopes: list[str], key: str) -> None:
                token = secrets.token_hex(8)
                server.granted[token] = set(scopes)
                self._answer(200, {key: token, "expires_in": 300})

            def do_GET(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                scopes = q.get("scope", [])
                server.requests.append(("GET", scopes))
                if server.users:
                    auth = self.headers.get("Authorization", "")
                    raw = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
                    user, _, pw = raw.partition(":")
                    if server.users.get(user) != pw or not user:
                        self._answer(401, {"details": "bad credentials"})
                        return
                self._grant(scopes, "token")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                scopes = form.get("scope", [""])[0].split()
                server.requests.append(("POST", scopes))
                if (
                    form.get("grant_type") != ["refresh_token"]
                    or form.get("refresh_token", [""])[0] not in server.refresh_tokens
                ):
                    self._answer(401, {"error": "invalid_grant"})
                    return
                self._grant(scopes, "access_token")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Proxy:
    """HTTP/1.1 proxy to a registry, with faults to inject; `host` is what the client uses.

    Each fault list is consumed one item per matching request, so `statuses = [500, 500]`
    answers 500 twice and then passes requests through.
    """

    def __init__(self, upstream: str, listen: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.statuses: list[int] = []  # answer these (with Retry-After: 0) before forwarding
        self.statuses_for: str = ""  # ... only to requests whose "METHOD path" contains this
        self.always_status: int | None = None
        self.retry_after = "0"  # the Retry-After of injected failures
        self.cut_blob_at: list[int] = []  # send this many body bytes of a blob, then close
        self.truncate_blob_to: int | None = None  # announce and send fewer bytes (clean end)
        self.corrupt = False  # flip a byte of blob and manifest bodies
        self.paginate_tags = False
        self.redirect_blobs_to: str | None = None  # base URL of another proxy
        self.bearer: TokenServer | None = None
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

        self.httpd = ThreadingHTTPServer((listen, 0), Handler)
        self.host = f"{listen}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests(self, method: str, contains: str) -> list[dict[str, str]]:
        return [h for m, p, h in self.seen if m == method and contains in p]

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _scope_needed(self, method: str, path: str) -> str:
        if path.startswith("/v2/_catalog"):
            return "registry:catalog:*"
        parts = path.split("?")[0][4:].split("/")
        for i, p in enumerate(parts):
            if p in ("manifests", "blobs", "tags"):
                name = "/".join(parts[:i])
                action = "pull" if method in ("GET", "HEAD") else "push"
                if method == "DELETE":
                    action = "*"
                return f"repository:{name}:{action}"
        return ""

    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        assert self.bearer is not None
        auth = h.headers.get("Authorization", "")
        granted = self.bearer.granted.get(auth[7:]) if auth.startswith("Bearer ") else None
        needed = self._scope_needed(h.command, h.path)
        if granted is not None:
            if not needed:
                return True
            resource, action = needed.rsplit(":", 1)
            for g in granted:
                g_resource, _, g_actions = g.rpartition(":")
                if g_resource == resource and (action in g_actions.split(",") or g_actions == "*"):
                    return True
        challenge = f'Bearer realm="{self.bearer.url}",service="pypod-test"'
        if needed:
            challenge += f',scope="{needed}"'
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send(h, 401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"}, body)
        return False

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        self.seen.append((h.command, h.path, dict(h.headers.items())))
        is_blob_get = h.command == "GET" and "/blobs/sha256:" in h.path
        if self.bearer is not None and not self._authorized(h):
            return
        matches = self.statuses_for in f"{h.command} {h.path}"
        if self.always_status is not None or (self.statuses and matches):
            status = self.always_status or self.statuses.pop(0)
            self.send(h, status, {"Retry-After": self.retry_after}, b"injected failure")
            return
        if is_blob_get and self.redirect_blobs_to:
            self.send(h, 307, {"Location": self.redirect_blobs_to + h.path}, b"")
            return
        if self.paginate_tags and h.command == "GET" and "/tags/list" in h.path:
            self._paginated_tags(h)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("authorization",)}
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        conn.request(h.command, h.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        out = {
            k: v
            for k, v in resp.getheaders()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        }
        if h.command == "HEAD":
            out["Content-Length"] = resp.getheader("Content-Length") or "0"
        if self.corrupt and h.command == "GET" and data and resp.status in (200, 206):
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if is_blob_get and self.truncate_blob_to is not None and resp.status == 200:
            data = data[: self.truncate_blob_to]
        if is_blob_get and self.cut_blob_at and resp.status in (200, 206):
            cut = self.cut_blob_at.pop(0)
            h.send_response(resp.status)
            for k, v in out.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[:cut])
            h.wfile.flush()
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send(h, resp.status, out, data)

    def _paginated_tags(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        q = parse_qs(parts.query)
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        conn.request("GET", parts.path)
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        conn.close()
        tags = sorted(doc.get("tags") or [])
        n = int(q.get("n", ["1000"])[0])
        last = q.get("last", [""])[0]
        rest = [t for t in tags if t > last]
        page, more = rest[:n], rest[n:]
        headers = {"Content-Type": "application/json"}
        if more:
            query = urlencode({"n": n, "last": page[-1]})
            headers["Link"] = f'<{parts.path}?{query}>; rel="next"'
        self.send(h, 200, headers, json.dumps({"name": doc["name"], "tags": page}).encode())


@pytest.fixture
def proxy(registry: Registry) -> Iterator[Proxy]:
    p = Proxy(registry.host)
    yield p
    p.close()


def client(host: str, **kw: Any) -> RegistryClient:
    kw.setdefault("tls_verify", False)
    kw.setdefault("backoff", 0.01)
    return RegistryClient(host, **kw)


def repo_name(prefix: str = "t") -> str:
    return f"{prefix}/{secrets.token_hex(4)}"


def push_image(c: RegistryClient, repo: str, tag: str, media_type: str = OCI_MANIFEST) -> str:
    """A config and one layer blob and a manifest; returns the manifest digest."""
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layer = os.urandom(3000)
    for blob in (config, layer):
        c.upload_blob(repo, io.BytesIO(blob), sha(blob), len(blob))
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json"
            if docker
            else "application/vnd.oci.image.config.v1+json",
            "digest": sha(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                if docker
                else "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha(layer),
                "size": len(layer),
            }
        ],
    }
    return c.put_manifest(repo, tag, json.dumps(manifest).encode(), media_type)


# --- the plain registry -----------------------------------------------------------------------

registry_test = pytest.mark.registry


@registry_test
def test_ping_plain_http_fallback_and_catalog_pages(registry: Registry) -> None:
    c = client(registry.host)
    c.ping()
    repos = [repo_name("cat") for _ in range(3)]
    for r in repos:
        push_image(c, r, "v1")
    listed = c.catalog(page_size=1)
    assert set(repos) <= set(listed)
    assert len(listed) == len(set(listed))
    # with verification on, plain http is not an option
    with pytest.raises(RegistryError, match="pinging container registry"):
        client(registry.host, tls_verify=True, retries=0).ping()


@registry_test
@pytest.mark.parametrize("chunk_size", [None, 1000, 4096])
def test_blob_upload_head_and_get(registry: Registry, chunk_size: int | None) -> None:
    c = client(registry.host)
    repo = repo_name()
    data = os.urandom(10_000)
    assert c.blob_exists(repo, sha(data)) is None
    assert c.upload_blob(repo, io.BytesIO(data), sha(data), len(data), chunk_size=chunk_size)
    assert c.blob_exists(repo, sha(data)) == len(data)
    with c.get_blob(repo, sha(data), len(data)) as stream:
        assert stream.read() == data
    empty = b""
    c.upload_blob(repo, io.BytesIO(empty), sha(empty), 0, chunk_size=chunk_size)
    assert c.blob_exists(repo, sha(empty)) == 0
    with pytest.raises(BlobUnknown) as e:
        c.get_blob(repo, sha(b"never pushed"))
    assert e.value.status == 404 and "BLOB_UNKNOWN" in e.value.codes
    assert isinstance(e.value, NotFound)


@registry_test
def test_upload_digest_mismatch_refused(registry: Registry) -> None:
    c = client(registry.host)
    repo = repo_name()
    data, wrong = b"actual bytes", sha(b"other bytes")
    for chunk in (None, 5):
        with pytest.raises(DigestMismatch):
            c.upload_blob(repo, io.BytesIO(data), wrong, len(data), chunk_size=chunk)
    assert c.blob_exists(repo, wrong) is None
    with pytest.raises(InvalidArgument, match="ended"):  # stream shorter than its size
        c.upload_blob(repo, io.BytesIO(data), sha(data), len(data) + 10)


@registry_test
def test_mount_across_repositories(registry: Registry) -> None:
    c = client(registry.host)
    src, dst = repo_name("src"), repo_name("dst")
    data = os.urandom(2048)
    c.upload_blob(src, io.BytesIO(data), sha(data), len(data))
    assert c.mount_blob(dst, sha(data), src) is True
    assert c.blob_exists(dst, sha(data)) == len(data)
    missing = sha(b"not anywhere")
    assert c.mount_blob(dst, missing, src) is False
    assert c.blob_exists(dst, missing) is None


@registry_test
@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_manifest_put_get_head_delete(registry: Registry, media_type: str) -> None:
    c = client(registry.host)
    repo = repo_name()
    digest = push_image(c, repo, "v1", media_type)
    data, mt, d = c.get_manifest(repo, "v1")
    assert (mt, d) == (media_type, digest) and sha(data) == digest
    assert c.get_manifest(repo, digest) == (data, media_type, digest)
    head = c.head_manifest(repo, "v1")
    assert head is not None and (head.digest, head.media_type, head.size) == (
        digest,
        media_type,
        len(data),
    )
    assert c.head_manifest(repo, "nope") is None
    # an index pointing at it, stored by digest
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": media_type, "digest": digest, "size": len(data),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()  # fmt: skip
    assert c.put_manifest(repo, sha(index), index, OCI_INDEX) == sha(index)
    assert c.get_manifest(repo, sha(index))[1] == OCI_INDEX
    with pytest.raises(DigestMismatch):
        c.put_manifest(repo, sha(b"x"), index, OCI_INDEX)
    c.delete_manifest(repo, digest)
    with pytest.raises(ManifestUnknown) as e:
        c.get_manifest(repo, "v1")
    assert e.value.status == 404 and e.value.codes == ("MANIFEST_UNKNOWN",)
    with pytest.raises(ManifestUnknown):
        c.delete_manifest(repo, digest)


@registry_test
def test_tags_list_and_pagination(registry: Registry, proxy: Proxy) -> None:
    c = client(registry.host)
    repo = repo_name()
    tags = [f"v{i}" for i in range(7)]
    for t in tags:
        push_image(c, repo, t)
    assert sorted(c.list_tags(repo)) == tags
    with pytest.raises(RepositoryUnknown) as e:
        c.list_tags(repo_name("unknown"))
    assert e.value.codes == ("NAME_UNKNOWN",)
    # registry 2.8 ignores n= for tags: the proxy paginates as newer registries do
    proxy.paginate_tags = True
    assert client(proxy.host).list_tags(repo, page_size=2) == tags
    pages = [p for m, p, _ in proxy.seen if "/tags/list" in p]
    assert len(pages) == 4 and "last=v5" in pages[-1]


@registry_test
def test_tls_with_certs_dir(tls_registry: tuple[Registry, Path]) -> None:
    reg, certs = tls_registry
    c = client(reg.host, tls_verify=True, certs_dir=str(certs))
    repo = repo_name()
    digest = push_image(c, repo, "v1")
    assert c.get_manifest(repo, "v1")[2] == digest
    with pytest.raises(RegistryError, match=r"not trusted.*certs\.d"):
        client(reg.host, tls_verify=True).ping()
    # without verification, https is used as it is (no fallback to http needed)
    assert client(reg.host, tls_verify=False).get_manifest(repo, digest)[2] == digest


@registry_test
def test_parallel_downloads_share_one_client(registry: Registry) -> None:
    from concurrent.futures import ThreadPoolExecutor

    c = client(registry.host)
    repo = repo_name()
    blobs = [os.urandom(50_000 + i) for i in range(8)]
    for b in blobs:
        c.upload_blob(repo, io.BytesIO(b), sha(b), len(b))

    def fetch(b: bytes) -> bool:
        with c.get_blob(repo, sha(b), len(b)) as stream:
            return stream.read() == b

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(fetch, blobs * 3))
    c.close()


class _NonSeekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self.inner.readinto(b)


@registry_test
def test_upload_starts_again_after_a_failed_put(registry: Registry, proxy: Proxy) -> None:
    c = client(proxy.host)
    c.ping()
    repo = repo_name()
    data = os.urandom(20_000)
    proxy.statuses, proxy.statuses_for = [503], "PUT "
    c.upload_blob(repo, io.BytesIO(data), sha(data), len(data))
    assert len(proxy.requests("POST", "/blobs/uploads/")) == 2
    assert c.blob_exists(repo, sha(data)) == len(data)
    # a stream that cannot be rewound cannot be sent again: a clear error
    other = os.urandom(100)
    proxy.statuses = [503]
    with pytest.raises(RegistryError) as e:
        c.upload_blob(repo, _NonSeekable(other), sha(other), len(other))  # type: ignore[arg-type]
    assert e.value.status == 503


# --- faults -----------------------------------------------------------------------------------


def _pushed_blob(registry: Registry, size: int = 300_000) -> tuple[str, bytes]:
    repo = repo_name("fault")
    data = os.urandom(size)
    client(registry.host).upload_blob(repo, io.BytesIO(data), sha(data), len(data))
    return repo, data


@registry_test
def test_get_blob_resumes_after_a_cut_connection(registry: Registry, proxy: Proxy) -> None:
    repo, data = _pushed_blob(registry)
    proxy.cut_blob_at = [100_000, 50_000]
    with client(proxy.host).get_blob(repo, sha(data)) as stream:
        assert stream.read() == data
    ranges = [h.get("Range") for h in proxy.requests("GET", "/blobs/")]
    assert ranges == [None, "bytes=100000-", "bytes=150000-"]


@registry_test
def test_get_blob_follows_redirect(registry: Registry, proxy: Proxy) -> None:
    repo, data = _pushed_blob(registry, 5000)
    other = Proxy(registry.host, listen="127.0.0.2")
    try:
        proxy.redirect_blobs_to = f"http://{other.host}"
        with client(proxy.host).get_blob(repo, sha(data)) as stream:
            assert stream.read() == data
        assert len(other.requests("GET", "/blobs/")) == 1
    finally:
        other.close()


@registry_test
def test_retry_on_500_then_success(registry: Registry, proxy: Proxy) -> None:
    repo, data = _pushed_blob(registry, 1000)
    c = client(proxy.host)
    c.ping()
    proxy.statuses = [500, 503]
    assert c.blob_exists(repo, sha(data)) == 1000
    proxy.statuses = [429, 502]
    with c.get_blob(repo, sha(data)) as stream:
        assert stream.read() == data
    # Retry-After is honoured (the backoff alone would be 10 ms)
    proxy.statuses, proxy.retry_after = [429], "1"
    start = time.monotonic()
    assert c.blob_exists(repo, sha(data)) == 1000
    assert time.monotonic() - start >= 1


@registry_test
def test_always_500_gives_a_clear_error(registry: Registry, proxy: Proxy) -> None:
    repo, data = _pushed_blob(registry, 1000)
    c = client(proxy.host, retries=2)
    c.ping()
    proxy.always_status = 500
    with pytest.raises(RegistryError) as e:
        c.get_blob(repo, sha(data))
    assert e.value.status == 500
    assert "after 3 attempts" in str(e.value) and sha(data) in str(e.value)
    assert len(proxy.requests("GET", "/blobs/")) == 3


@registry_test
def test_connection_always_cut_gives_a_clear_error(registry: Registry, proxy: Proxy) -> None:
    repo, data = _pushed_blob(registry)
    proxy.cut_blob_at = [0] * 10
    stream = client(proxy.host, retries=2).get_blob(repo, sha(data))
    with pytest.raises(RegistryError, match="connection broken at byte 0"):
        stream.read()
    with pytest.raises(RegistryError):  # a failed stream never reports EOF
        stream.read()


@registry_test
def test_truncated_body_is_refused(registry: Registry, proxy: Proxy) -> None:
    repo, data = _pushed_blob(registry, 10_000)
    proxy.truncate_blob_to = 6000
    c = client(proxy.host)
    stream = c.get_blob(repo, sha(data))  # the registry "announces" 6000 bytes
    got = b""
    with pytest.raises(DigestMismatch):
        while chunk := stream.read(4096):
            got += chunk
    assert len(got) < len(data)
    with pytest.raises(DigestMismatch, match="announces 6000 bytes, expected 10000"):
        c.get_blob(repo, sha(data), len(data))


@registry_test
def test_corrupted_content_is_refused(registry: Registry, proxy: Proxy) -> None:
    c = client(registry.host)
    repo = repo_name()
    digest = push_image(c, repo, "v1")
    data = os.urandom(5000)
    c.upload_blob(repo, io.BytesIO(data), sha(data), len(data))
    proxy.corrupt = True
    pc = client(proxy.host)
    with pytest.raises(DigestMismatch):
        pc.get_manifest(repo, digest)
    pc.get_manifest(repo, "v1")  # by tag there is nothing to check against: accepted
    with pytest.raises(DigestMismatch) as e, pc.get_blob(repo, sha(data), len(data)) as stream:
        stream.read()
    assert e.value.expected == sha(data)


# --- authentication -------------------------------------------------------------------------


@registry_test
def test_basic_auth(auth_registry: Registry) -> None:
    with pytest.raises(AuthenticationRequired) as e:
        client(auth_registry.host).ping()
    assert e.value.status == 401
    with pytest.raises(AuthenticationRequired):
        client(auth_registry.host, credentials=Credentials(username=USER, password="x")).ping()
    c = client(auth_registry.host, credentials=Credentials(username=USER, password=PASSWORD))
    c.ping()
    repo = repo_name()
    digest = push_image(c, repo, "v1")
    assert c.get_manifest(repo, "v1")[2] == digest
    assert c.list_tags(repo) == ["v1"]


@registry_test
def test_bearer_token_flow(registry: Registry, proxy: Proxy) -> None:
    tokens = TokenServer(users={USER: PASSWORD})
    try:
        proxy.bearer = tokens
        with pytest.raises(AuthenticationRequired, match="invalid username or password"):
            client(proxy.host, credentials=Credentials(username=USER, password="no")).ping()
        c = client(proxy.host, credentials=Credentials(username=USER, password=PASSWORD))
        c.ping()
        repo = repo_name()
        digest = push_image(c, repo, "v1")
        assert c.get_manifest(repo, digest)[2] == digest
        assert c.get_manifest(repo, "v1")[2] == digest
        scopes = [s for _, s in tokens.requests]
        assert [f"repository:{repo}:pull,push"] in scopes
        assert [f"repository:{repo}:pull"] in scopes
        # tokens are cached per scope: pulling again asks for no new token
        before = len(tokens.requests)
        c.get_manifest(repo, "v1")
        assert len(tokens.requests) == before
        # a redirect to another host does not take the token along
        other = Proxy(registry.host, listen="127.0.0.2")
        try:
            data = os.urandom(1000)
            c.upload_blob(repo, io.BytesIO(data), sha(data), len(data))
            proxy.redirect_blobs_to = f"http://{other.host}"
            with c.get_blob(repo, sha(data)) as stream:
                assert stream.read() == data
            (seen,) = other.requests("GET", "/blobs/")
            assert "Authorization" not in seen
            assert proxy.requests("GET", "/blobs/")[-1]["Authorization"].startswith("Bearer ")
        finally:
            other.close()
        # an identity token (OAuth2 refresh token) is exchanged by POST
        ic = client(proxy.host, credentials=Credentials(identity_token="refresh-me"))
        assert ic.get_manifest(repo, "v1")[2] == digest
        assert tokens.requests[-1] == ("POST", [f"repository:{repo}:pull"])
    finally:
        tokens.close()


# --- the reference tool -------------------------------------------------------------------


@registry_test
@pytest.mark.compat
def test_skopeo_reads_what_we_push(registry: Registry) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    c = client(registry.host)
    repo = repo_name("skopeo")
    digest = push_image(c, repo, "v1")
    out = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", f"docker://{registry.host}/{repo}:v1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["Digest"] == digest and doc["Architecture"] == "amd64"
    assert doc["RepoTags"] == ["v1"]


@registry_test
@pytest.mark.compat
def test_we_read_what_skopeo_pushes(registry: Registry, tmp_path: Path) -> None:
    import gzip
    import tarfile

    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    layer = gzip.compress(raw.getvalue())
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [sha(raw.getvalue())]}}).encode()  # fmt: skip
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(layer), "size": len(layer)}]}).encode()  # fmt: skip
    src = tmp_path / "dir"
    src.mkdir()
    (src / "version").write_text("Directory Transport Version: 1.1\n")
    (src / "manifest.json").write_bytes(manifest)
    for blob in (config, layer):
        (src / sha(blob).split(":")[1]).write_bytes(blob)
    repo = repo_name("from-skopeo")
    out = subprocess.run(
        [skopeo, "copy", "--dest-tls-verify=false", f"dir:{src}",
         f"docker://{registry.host}/{repo}:v1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    c = client(registry.host)
    data, media_type, digest = c.get_manifest(repo, "v1")
    assert media_type == OCI_MANIFEST
    doc = json.loads(data)
    for desc, blob in zip([doc["config"], *doc["layers"]], (config, layer), strict=True):
        with c.get_blob(repo, desc["digest"], desc["size"]) as stream:
            assert stream.read() == blob
    assert c.list_tags(repo) == ["v1"]


# --- WWW-Authenticate and auth.json (no registry needed) ------------------------------------


def test_parse_challenges() -> None:
    (c,) = parse_challenges(
        'Bearer realm="https://auth.example/token",service="reg",'
        'scope="repository:a/b:pull,push"'
    )
    assert (c.scheme, c.realm, c.service, c.scope) == (
        "bearer",
        "https://auth.example/token",
        "reg",
        "repository:a/b:pull,push",
    )
    basic, bearer = parse_challenges('Basic realm="x", Bearer realm="r",service=s')
    assert basic.scheme == "basic" and bearer.params == {"realm": "r", "service": "s"}


def _auth(user: str, pw: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_auth_file_search_order_and_longest_match(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    paths = [f.path for f in auth_files(environ=env)]
    assert paths == [
        f"{tmp_path}/run/containers/auth.json",
        f"{tmp_path}/home/.config/containers/auth.json",
        f"{tmp_path}/home/.docker/config.json",
        f"{tmp_path}/home/.dockercfg",
    ]
    assert [f.path for f in auth_files(environ={**env, "REGISTRY_AUTH_FILE": "/x"})] == ["/x"]
    assert [f.path for f in auth_files("/y", environ=env)] == ["/y"]
    no_runtime = {"HOME": env["HOME"]}
    assert auth_files(environ=no_runtime)[0].path == f"/run/containers/{os.getuid()}/auth.json"

    (tmp_path / "home/.docker").mkdir(parents=True)
    (tmp_path / "home/.docker/config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": _auth("hub", "h"),
                    "reg.example": _auth("docker", "d"),
                }
            }
        )  # fmt: skip
    )
    (tmp_path / "home/.dockercfg").write_text(json.dumps({"old.example": _auth("old", "o")}))
    (tmp_path / "run/containers").mkdir(parents=True)
    (tmp_path / "run/containers/auth.json").write_text(
        json.dumps(
            {
                "auths": {
                    "reg.example/team": _auth("team", "t"),
                    "reg.example/team/app": {"identitytoken": "idt"},
                }
            }
        )  # fmt: skip
    )
    find = lookup_credentials
    assert find("reg.example", "team/app/x", environ=env) == Credentials(identity_token="idt")
    assert find("reg.example", "team/other", environ=env) == Credentials(
        username="team", password="t"
    )
    # not in the first file: the next files are searched
    assert find("reg.example", "elsewhere", environ=env) == Credentials(
        username="docker", password="d"
    )
    assert find("docker.io", "library/busybox", environ=env) == Credentials(
        username="hub", password="h"
    )
    assert find("old.example", environ=env) == Credentials(username="old", password="o")
    assert find("none.example", environ=env) is None
    # an explicit file is the only one searched
    assert find("reg.example", environ=env, authfile=str(tmp_path / "missing.json")) is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"auths": {"r": {"auth": "!!!"}}}))
    with pytest.raises(ConfigError, match="bad.json"):
        find("r", authfile=str(bad))


def test_login_logout_write_atomically(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "auth.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {"keep.example": _auth("k", "k")}, "other": 1}))
    env = {"REGISTRY_AUTH_FILE": str(path)}
    creds = Credentials(username="me", password="p:w")
    assert store_credentials("https://reg.example:5000", creds, environ=env) == str(path)
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["other"] == 1 and set(doc["auths"]) == {"keep.example", "reg.example:5000"}
    assert lookup_credentials("reg.example:5000", "a/b", environ=env) == creds
    assert "p:w" not in repr(creds) and "p:w" not in str(creds)
    assert os.listdir(path.parent) == ["auth.json"]  # no temp file left
    assert remove_credentials("reg.example:5000", environ=env) is True
    assert remove_credentials("reg.example:5000", environ=env) is False
    assert set(json.loads(path.read_text())["auths"]) == {"keep.example"}
    assert remove_credentials(None, environ=env) is True
    assert json.loads(path.read_text()) == {"auths": {}, "other": 1}
