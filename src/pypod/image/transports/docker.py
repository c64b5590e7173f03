"""`docker://[registry/]repo[:tag|@digest]`: images in a registry (the distribution API).

Short names are normalised as docker does (``busybox`` -> ``docker.io/library/busybox:latest``).
Where to connect comes from registries.conf (mirrors tried first when pulling, `insecure`
registries reached without TLS verification); credentials from ``--creds`` or auth.json.
Blobs are streamed both ways: a download is checked as it is read, an upload of known digest
and size goes straight from the source to the registry (the registry checks it again), one
whose digest is not known yet (compressed on the way) is spooled to a temporary file first.
"""

from __future__ import annotations

import tempfile
from typing import BinaryIO, cast

from pypod.config.registries import (
    PullSource,
    RegistriesConfig,
    find_registry,
    load_registries_conf,
    pull_sources,
)
from pypod.errors import InvalidArgument, ManifestUnknown, RegistryError
from pypod.image.reference import (
    NAME_UPPERCASE,
    REFERENCE_FORMAT,
    InvalidReference,
    Reference,
    parse,
    parse_normalized,
)
from pypod.image.registry import Credentials, RegistryClient, lookup_credentials
from pypod.image.transports._common import DestinationBase, SourceBase
from pypod.image.types import BlobInfo, ImageDestination, ImageSource, SystemContext
from pypod.log import get_logger
from pypod.oci.digest import Digest, Digester

log = get_logger(__name__)


def _registries(ctx: SystemContext) -> RegistriesConfig:
    return load_registries_conf(ctx.registries_conf, environ=dict(ctx.environ) or None)


def _credentials(ctx: SystemContext, registry: str, repo: str) -> Credentials | None:
    if ctx.credentials is not None:
        user, _, password = ctx.credentials.partition(":")
        return Credentials(username=user, password=password)
    return lookup_credentials(registry, repo, authfile=ctx.authfile,
                              environ=dict(ctx.environ) or None)  # fmt: skip


def open_client(ctx: SystemContext, registry: str, repo: str, insecure: bool) -> RegistryClient:
    """A client for `registry` with the context's TLS choice, credentials and retries."""
    tls = ctx.tls_verify if ctx.tls_verify is not None else not insecure
    return RegistryClient(
        registry,
        tls_verify=tls,
        credentials=_credentials(ctx, registry, repo),
        certs_dir=ctx.certs_dir,
        retries=ctx.retries,
    )


class DockerReference:
    __slots__ = ("docker_reference",)

    def __init__(self, ref: Reference) -> None:
        self.docker_reference = ref

    @property
    def transport_name(self) -> str:
        return "docker"

    def string_within_transport(self) -> str:
        return "//" + str(self.docker_reference)

    def __repr__(self) -> str:
        return f"docker:{self.string_within_transport()}"

    @property
    def manifest_ref(self) -> str:
        ref = self.docker_reference
        return ref.digest or ref.tag or "latest"

    def _insecure(self, ctx: SystemContext) -> bool:
        reg = find_registry(_registries(ctx), str(self.docker_reference))
        return reg.insecure if reg is not None else False

    def client(self, ctx: SystemContext) -> RegistryClient:
        ref = self.docker_reference
        return open_client(ctx, ref.domain, ref.path, self._insecure(ctx))

    def new_source(self, ctx: SystemContext) -> ImageSource:
        return DockerSource(self, ctx)

    def new_destination(self, ctx: SystemContext) -> ImageDestination:
        return DockerDestination(self, ctx)

    def delete(self, ctx: SystemContext) -> None:
        ref = self.docker_reference
        with self.client(ctx) as client:
            head = client.head_manifest(ref.path, self.manifest_ref)
            if head is None:
                raise ManifestUnknown(
                    f"Unable to delete {ref}. Image may not exist or is not stored with a v2 "
                    "Schema in a v2 registry",
                    status=404,
                )
            client.delete_manifest(ref.path, head.digest)

    def list_tags(self, ctx: SystemContext) -> list[str]:
        ref = self.docker_reference
        with self.client(ctx) as client:
            return client.list_tags(ref.path)


class DockerSource(SourceBase):
    def __init__(self, ref: DockerReference, ctx: SystemContext) -> None:
        self._ref = ref
        sources = pull_sources(_registries(ctx), str(ref.docker_reference))
        last: Exception | None = None
        for i, source in enumerate(sources):
            try:
                self._open(ctx, source)
                return
            except RegistryError as e:
                if i == len(sources) - 1:
                    raise
                log.info("pulling from mirror %s failed: %s", source.endpoint.location, e)
                last = e
        raise last or InvalidArgument(f"no source for {ref.docker_reference}")

    def _open(self, ctx: SystemContext, source: PullSource) -> None:
        rewritten = parse(source.reference)
        self._repo = rewritten.path
        self._client = open_client(ctx, rewritten.domain, rewritten.path,
                                   source.endpoint.insecure)  # fmt: skip
        wanted = rewritten.digest or rewritten.tag or "latest"
        try:
            data, media_type, _ = self._client.get_manifest(self._repo, wanted)
        except BaseException:
            self._client.close()
            raise
        self._top = (data, media_type)

    @property
    def reference(self) -> DockerReference:
        return self._ref

    @property
    def blob_origin(self) -> tuple[str, str]:
        """(registry, repository) the blobs come from: a destination on the same registry
        mounts them instead of uploading (see `DockerDestination.note_blob_origin`)."""
        return self._client.registry, self._repo

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        if instance_digest is None:
            return self._top
        data, media_type, _ = self._client.get_manifest(self._repo, instance_digest)
        return data, media_type

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        reader = self._client.get_blob(self._repo, info.digest, info.size)
        return cast(BinaryIO, reader), reader.size

    def close(self) -> None:
        self._client.close()


class DockerDestination(DestinationBase):
    def __init__(self, ref: DockerReference, ctx: SystemContext) -> None:
        self._ref = ref
        self._ctx = ctx
        self._repo = ref.docker_reference.path
        self._client = ref.client(ctx)
        self._origin: tuple[str, str] | None = None

    @property
    def reference(self) -> DockerReference:
        return self._ref

    def note_blob_origin(self, origin: tuple[str, str]) -> None:
        """Where the source's blobs are: on this registry, they are mounted, not uploaded."""
        self._origin = origin

    def desired_layer_compression(self) -> str:
        return "compress"

    def try_reusing_blob(self, info: BlobInfo) -> BlobInfo | None:
        if not info.digest:
            return None
        size = self._client.blob_exists(self._repo, info.digest)
        if size is None and self._origin is not None:
            registry, repo = self._origin
            same_registry = registry == self._client.registry and repo != self._repo
            if same_registry and self._client.mount_blob(self._repo, info.digest, repo):
                log.debug("mounted %s from %s", info.digest, repo)
                size = info.size
        if size is None or (info.size >= 0 and size >= 0 and size != info.size):
            return None
        return BlobInfo(digest=info.digest, size=size if size >= 0 else info.size,
                        media_type=info.media_type)  # fmt: skip

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool) -> BlobInfo:
        if info.digest and info.size >= 0:
            self._client.upload_blob(self._repo, stream, info.digest, info.size)
            return BlobInfo(digest=info.digest, size=info.size, media_type=info.media_type)
        with tempfile.TemporaryFile(dir=self._ctx.tmpdir) as spool:
            digester = Digester()
            while chunk := stream.read(1 << 20):
                digester.update(chunk)
                spool.write(chunk)
            spool.seek(0)
            digest = digester.digest()
            if info.digest and info.digest != digest:
                from pypod.oci.digest import verify_digest

                verify_digest(info.digest, digest, what=f"blob {info.digest}")
            if self._client.blob_exists(self._repo, digest) is None:
                self._client.upload_blob(self._repo, spool, digest, digester.size)
        return BlobInfo(digest=digest, size=digester.size, media_type=info.media_type)

    def put_manifest(
        self, manifest: bytes, media_type: str, instance_digest: Digest | None = None
    ) -> None:
        ref = self._ref.docker_reference
        target = instance_digest or ref.tag or ref.digest or "latest"
        self._client.put_manifest(self._repo, target, manifest, media_type)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        self._client.close()


class DockerTransport:
    @property
    def name(self) -> str:
        return "docker"

    def parse_reference(self, reference: str) -> DockerReference:
        if not reference.startswith("//"):
            raise InvalidArgument(f"docker: image reference {reference} does not start with //")
        try:
            ref = parse_normalized(reference[2:])
        except InvalidReference as e:
            # skopeo's (distribution's) wording: the reason, no value
            if e.reason == NAME_UPPERCASE:
                raise InvalidArgument(f"{REFERENCE_FORMAT}: {NAME_UPPERCASE}") from None
            raise InvalidArgument(e.reason) from None
        if ref.tag is not None and ref.digest is not None:
            raise InvalidArgument(
                "Docker references with both a tag and digest are currently not supported"
            )
        return DockerReference(ref.with_default_tag())


TRANSPORT = DockerTransport()
