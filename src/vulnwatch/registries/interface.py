"""Where images come from: the ``Registry`` interface.

A registry lists repositories and the images in them (one :class:`~vulnwatch.model.Image`
per digest, tags grouped), and serves manifests and blobs for scanners that read
layers themselves. Implementations, by ``registries[].type`` in
:data:`vulnwatch.registries.REGISTRIES`: ``ecr`` (AWS API), ``oci`` (Registry HTTP API v2),
``archive`` (``docker save`` tarballs and OCI layouts). What they share about manifests is in
``_manifest``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..model import Image


class RegistryError(Exception):
    """A registry call failed. The message names the registry and repository/reference.

    ``retryable`` is True for transient failures (throttling, 5xx, timeouts).
    """

    def __init__(self, message: str, *, registry: str | None = None, repository: str | None = None,
                 reference: str | None = None, retryable: bool = False) -> None:
        where = "/".join(p for p in (registry, repository) if p)
        if reference:
            where += f"@{reference}" if reference.startswith("sha256:") else f":{reference}"
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message
        """The message without the ``registry/repository:reference`` it is about (for a caller
        that names the input itself)."""
        self.registry = registry
        self.repository = repository
        self.reference = reference
        self.retryable = retryable


class RepositoryNotFoundError(RegistryError):
    """The repository does not exist in the registry (``tags/list`` answers 404 ``NAME_UNKNOWN``;
    ECR ``RepositoryNotFoundException``; an archive without it). A repository named in the
    configuration that is gone is worth a warning, not a failed run."""


class CatalogUnavailableError(RegistryError):
    """The registry does not list its repositories (``/v2/_catalog`` answers 404, 401 or 403, as
    on GHCR, Docker Hub, GitLab and for Harbor robot accounts): only repositories named exactly
    can be watched there."""


@dataclass(frozen=True)
class RequestLimits:
    """How long and how much a registry may take (``limits`` in the configuration): per request
    (connect, the wait for the next bytes, a whole non-blob answer), per blob, and the sizes of
    manifests and blobs. A breach is a :class:`RegistryError` naming the limit."""

    connect_timeout: float = 10.0
    """Seconds to connect (TCP and TLS)."""
    read_timeout: float = 30.0
    """Seconds to wait for the next bytes of an answer."""
    request_timeout: float = 120.0
    """Seconds for the whole answer to a request other than a blob download."""
    blob_timeout: float = 1200.0
    """Seconds for one blob's whole download."""
    max_manifest_bytes: int = 4 * 1024 * 1024
    """Largest manifest or index read."""
    max_blob_bytes: int | None = None
    """Largest blob read (None: no bound)."""


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (a layer, a config, or a manifest inside an index)."""

    media_type: str
    """Media type of the referenced content."""
    digest: str
    """``sha256:<hex>`` of the referenced bytes."""
    size: int
    """Size in bytes of the referenced content."""
    platform: str | None = None
    """For manifests inside an index: ``os/arch[/variant]``."""


@dataclass(frozen=True)
class Manifest:
    """A single-platform image manifest, already resolved from any index."""

    digest: str
    """Digest of the manifest bytes as the registry serves them."""
    media_type: str
    """OCI or Docker v2 manifest media type."""
    config: Descriptor
    """The image config blob."""
    layers: tuple[Descriptor, ...]
    """Layers, bottom first."""
    raw: bytes = b""
    """The manifest bytes, exactly as served."""
    index_digest: str | None = None
    """Digest of the index/manifest list this manifest was picked from, if any."""
    platform: str | None = None
    """Platform chosen from the index, if any."""


class Registry(abc.ABC):
    """A source of images. One instance per configured registry."""

    name: str
    """The configured name (``registries[].name``); stored in every :class:`Image`."""
    default_scanner: str = "builtin"
    """The scanner (a name in :data:`vulnwatch.scanners.SCANNERS`) that scans this registry's images."""
    listing_concurrency: int = 1
    """How many repositories' :meth:`images` a cycle may list at once (from as many threads); 1
    (the default) lists them one after the other. A registry whose listing is thread-safe and
    I/O-bound says more."""

    @classmethod
    def from_config(cls, registry: Any, limits: RequestLimits | None = None) -> "Registry":
        """The registry of one ``registries[]`` entry of its type, bounded by ``limits``. Secrets
        are revealed with :func:`vulnwatch.logs.reveal` (registered for redaction)."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from the configuration")

    @abc.abstractmethod
    def repositories(self) -> Iterator[str]:
        """Every repository name the credentials can see (paginated to the end)."""

    @abc.abstractmethod
    def images(self, repository: str) -> Iterator[Image]:
        """Every image in ``repository``: one per digest, all its tags grouped, paginated to the end."""

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest for a tag or digest, resolving an index to the configured platform."""
        raise RegistryError("this registry does not serve manifests", registry=self.name,
                            repository=repository, reference=reference)

    def blob(self, repository: str, digest: str) -> BinaryIO:
        """A stream of the blob's bytes; the implementation verifies the digest at EOF."""
        raise RegistryError("this registry does not serve blobs", registry=self.name,
                            repository=repository, reference=digest)

    def close(self) -> None:
        """Release connections."""
