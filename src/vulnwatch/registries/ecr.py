"""AWS ECR as a :class:`~vulnwatch.registries.interface.Registry`, through the ECR API.

Listing uses boto3 paginators (real ECR pages at 100 results). ECR's ``DescribeImages``
may report one digest several times (one entry per tag, as moto does) or once with
several tags (as real ECR does); either way :meth:`ECRRegistry.images` yields one
:class:`~vulnwatch.model.Image` per digest with every tag, sorted.

With ``scan.mode: builtin`` the images are read by vulnwatch's own scanner: manifests and blobs
come from the registry's Registry v2 API (``https://<account>.dkr.ecr.<region>.amazonaws.com``,
or ``registry_url``) through an :class:`~vulnwatch.registries.oci.OCIRegistry` that
authenticates with basic auth ``AWS:<password>`` from ``GetAuthorizationToken``, fetched again
before it expires (ECR tokens last 12 h); the password is registered with
:func:`vulnwatch.logs.register_secret`. Digests are verified by the v2 client.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from .. import aws
from ..logs import register_secret
from ..model import Image
from ._manifest import INDEX_TYPES, MANIFEST_TYPES, resolve_manifests
from .interface import Manifest, Registry, RegistryError, RepositoryNotFoundError, RequestLimits

ACCEPTED_MEDIA_TYPES = [*MANIFEST_TYPES, *INDEX_TYPES]
"""Manifest media types asked for with ``BatchGetImage`` (single-platform and index)."""

#: Error codes after which the same call may succeed later.
RETRYABLE_CODES = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
    "ServerException", "ServiceUnavailable", "InternalError", "RequestTimeout",
})

#: What to tell the user for the usual failures.
ADVICE = {
    "RepositoryNotFoundException": "repository does not exist (check the name and the registry id/region)",
    "ImageNotFoundException": "image not found (deleted or never pushed?)",
    "AccessDeniedException": "access denied (grant ecr:DescribeRepositories, ecr:DescribeImages and "
                             "ecr:BatchGetImage to these credentials)",
    "UnrecognizedClientException": "credentials rejected (check AWS_PROFILE / access keys)",
    "ExpiredTokenException": "credentials expired (refresh the session)",
}

TOKEN_REFRESH_MARGIN = 15 * 60.0
"""Seconds before an ECR authorization token expires that a new one is fetched."""
TOKEN_MIN_REUSE = 60.0
"""A token is reused at least this long, even when it says it expires sooner (clock skew)."""


def registry_error(exc: Exception, *, registry: str, repository: str | None = None,
                   reference: str | None = None) -> RegistryError:
    """Translate a botocore exception into a :class:`RegistryError` naming the input."""
    code = aws.error_code(exc)
    if code is not None:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)  # type: ignore[attr-defined]
        message = (exc.response.get("Error") or {}).get("Message") or ""  # type: ignore[attr-defined]
        advice = ADVICE.get(code)
        text = f"{code}: {advice}" if advice else f"{code}: {message}".rstrip(": ")
        kind = RepositoryNotFoundError if code == "RepositoryNotFoundException" else RegistryError
        return kind(text, registry=registry, repository=repository, reference=reference,
                    retryable=code in RETRYABLE_CODES or status >= 500)
    if isinstance(exc, aws.exceptions.NoCredentialsError):
        return RegistryError("no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                             "AWS_SECRET_ACCESS_KEY, or run with an instance role)",
                             registry=registry, repository=repository, reference=reference)
    if isinstance(exc, (aws.exceptions.EndpointConnectionError,
                        aws.exceptions.ConnectionClosedError,
                        aws.exceptions.ReadTimeoutError,
                        aws.exceptions.ConnectTimeoutError)):
        return RegistryError(f"cannot reach the ECR endpoint ({type(exc).__name__}); check the region, "
                             f"endpoint_url and network", registry=registry, repository=repository,
                             reference=reference, retryable=True)
    return RegistryError(f"{type(exc).__name__}: {exc}", registry=registry, repository=repository,
                         reference=reference)


@dataclass(frozen=True)
class ScanInfo:
    """What ``DescribeImages`` says of an image's ECR scan."""

    status: str | None
    """``imageScanStatus.status`` (``COMPLETE``, ``IN_PROGRESS``, ...); None: never scanned."""
    completed_at: datetime | None
    """``imageScanFindingsSummary.imageScanCompletedAt``, when given."""


class ECRRegistry(Registry):
    """Images in one AWS account's ECR registry in one region.

    ``name`` is the configured registry name (stored in every :class:`Image`);
    ``registry_id`` the AWS account id when it is not the caller's own; ``endpoint_url``
    overrides the API endpoint (moto, VPC endpoints). ``client`` is a ready boto3 ECR
    client to use instead of building one. ``platform`` is the ``os/arch[/variant]`` that
    :meth:`manifest` picks from a multi-platform index. ``calls`` counts API calls per
    operation. ``scanner`` is the scanner of its images: ``ecr`` (ECR's findings) or
    ``builtin`` (ours: manifests and blobs through the Registry v2 API at ``registry_url``,
    default the ``proxyEndpoint`` ``GetAuthorizationToken`` names; ``insecure`` allows plain
    HTTP there; ``limits`` bound those requests).
    """

    default_scanner = "ecr"
    @staticmethod
    def v2_registry(*args: Any, **kwargs: Any) -> Any:
        """The Registry v2 client (an :class:`~vulnwatch.registries.oci.OCIRegistry`, made by
        :func:`vulnwatch.registries.registry_v2`: implementations do not import each other, and
        the OCI client is imported only when the built-in scanner reads ECR)."""
        from . import registry_v2

        return registry_v2(*args, **kwargs)

    @classmethod
    def from_config(cls, registry: Any, limits: RequestLimits | None = None) -> "ECRRegistry":
        endpoint = str(registry.endpoint_url).rstrip("/") if registry.endpoint_url else None
        builtin = registry.scan.mode == "builtin"
        return cls(registry.name, region=registry.region, registry_id=registry.registry_id, endpoint_url=endpoint,
                   max_concurrency=registry.max_concurrency, scanner="builtin" if builtin else "ecr",
                   registry_url=str(registry.registry_url).rstrip("/") if registry.registry_url else None,
                   insecure=registry.insecure, limits=limits)

    def __init__(self, name: str, *, region: str | None = None, registry_id: str | None = None,
                 endpoint_url: str | None = None, max_concurrency: int = 4, client: Any = None,
                 platform: str = "linux/amd64", scanner: str = "ecr", registry_url: str | None = None,
                 insecure: bool = False, limits: RequestLimits | None = None,
                 clock=time.time) -> None:
        self.name = name
        self.registry_id = registry_id
        self.max_concurrency = max_concurrency
        self.listing_concurrency = max(1, max_concurrency)
        """Repositories a cycle lists at once (boto3 clients are thread-safe)."""
        self.platform = platform
        if scanner not in ("ecr", "builtin"):
            raise ValueError(f"ECR registry scanner must be ecr or builtin, not {scanner!r}")
        self.default_scanner = scanner
        self.registry_url = registry_url
        self.insecure = insecure
        self.limits = limits
        self._clock = clock
        self._v2: Any = None
        self._v2_lock = threading.Lock()
        self._token_refresh_at = 0.0
        self.token_fetches = 0
        """How many times ``GetAuthorizationToken`` was called."""
        self.client = client if client is not None else aws.client(
            "ecr", region=region, endpoint_url=endpoint_url, max_pool_connections=max(10, max_concurrency * 2))
        self.calls = aws.CallCounter()
        self.calls.attach(self.client)
        self._scan_info: dict[tuple[str, str], ScanInfo] = {}
        self._scan_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ECRRegistry(name={self.name!r}, registry_id={self.registry_id!r})"

    def _ids(self) -> dict[str, str]:
        return {"registryId": self.registry_id} if self.registry_id else {}

    def repositories(self) -> Iterator[str]:
        """Every repository name, across all pages."""
        try:
            for page in self.client.get_paginator("describe_repositories").paginate(**self._ids()):
                for repo in page.get("repositories", []):
                    yield repo["repositoryName"]
        except (aws.exceptions.BotoCoreError, aws.exceptions.ClientError) as e:
            raise registry_error(e, registry=self.name) from None

    def images(self, repository: str) -> Iterator[Image]:
        """One :class:`Image` per digest in ``repository`` (tags of all entries merged, sorted),
        in the order ECR first lists each digest. Reads every page before yielding, since
        entries of one digest may sit on different pages."""
        by_digest: dict[str, dict[str, Any]] = {}
        try:
            paginator = self.client.get_paginator("describe_images")
            for page in paginator.paginate(repositoryName=repository, **self._ids()):
                for detail in page.get("imageDetails", []):
                    digest = detail["imageDigest"]
                    seen = by_digest.get(digest)
                    if seen is None:
                        by_digest[digest] = {**detail, "imageTags": set(detail.get("imageTags") or ())}
                    else:
                        seen["imageTags"].update(detail.get("imageTags") or ())
                        pushed = detail.get("imagePushedAt")
                        if pushed and (not seen.get("imagePushedAt") or pushed > seen["imagePushedAt"]):
                            seen["imagePushedAt"] = pushed
        except (aws.exceptions.BotoCoreError, aws.exceptions.ClientError) as e:
            raise registry_error(e, registry=self.name, repository=repository) from None
        with self._scan_lock:
            for digest, detail in by_digest.items():
                summary = detail.get("imageScanFindingsSummary") or {}
                self._scan_info[(repository, digest)] = ScanInfo(
                    status=(detail.get("imageScanStatus") or {}).get("status"),
                    completed_at=summary.get("imageScanCompletedAt"))
        for digest, detail in by_digest.items():
            pushed_at: datetime | None = detail.get("imagePushedAt")
            yield Image(
                registry=self.name,
                repository=repository,
                digest=digest,
                tags=tuple(sorted(detail["imageTags"])),
                pushed_at=pushed_at,
                media_type=detail.get("imageManifestMediaType"),
                size_bytes=detail.get("imageSizeInBytes"),
            )

    def scan_info(self, repository: str, digest: str) -> "ScanInfo | None":
        """What the last listing of ``repository`` said of the digest's ECR scan (None if the
        digest was not listed): lets the scanner skip asking ``DescribeImages`` again."""
        with self._scan_lock:
            return self._scan_info.get((repository, digest))

    def _get_manifest(self, repository: str, reference: str) -> tuple[str, str, bytes]:
        image_id = {"imageDigest": reference} if reference.startswith("sha256:") else {"imageTag": reference}
        try:
            resp = self.client.batch_get_image(repositoryName=repository, imageIds=[image_id],
                                               acceptedMediaTypes=ACCEPTED_MEDIA_TYPES, **self._ids())
        except (aws.exceptions.BotoCoreError, aws.exceptions.ClientError) as e:
            raise registry_error(e, registry=self.name, repository=repository, reference=reference) from None
        if not resp.get("images"):
            failure = (resp.get("failures") or [{}])[0]
            code = failure.get("failureCode") or "ImageNotFound"
            reason = failure.get("failureReason") or "image not found"
            raise RegistryError(f"{code}: {reason}", registry=self.name, repository=repository,
                                reference=reference)
        img = resp["images"][0]
        raw = img["imageManifest"].encode()
        media_type = img.get("imageManifestMediaType") or json.loads(raw).get("mediaType") or ""
        return img["imageId"]["imageDigest"], media_type, raw

    # -- Registry v2 (the built-in scanner) ---------------------------------------------------
    def _authorization(self) -> tuple[Any, float | None, str | None]:
        """``GetAuthorizationToken``: (:class:`~vulnwatch.registries.auth.Credentials`, expiry as a
        timestamp, the proxy endpoint)."""
        from .auth import Credentials    # the built-in scanner's; not loaded for ECR's own findings

        try:
            resp = self.client.get_authorization_token(
                **({"registryIds": [self.registry_id]} if self.registry_id else {}))
            data = resp["authorizationData"][0]
            user, sep, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        except (aws.exceptions.BotoCoreError, aws.exceptions.ClientError) as e:
            err = registry_error(e, registry=self.name)
            raise RegistryError(f"GetAuthorizationToken failed ({err.reason}); the built-in scanner needs "
                                "ecr:GetAuthorizationToken and ecr:BatchGetImage/GetDownloadUrlForLayer",
                                registry=self.name, retryable=err.retryable) from None
        except (KeyError, IndexError, TypeError, ValueError):
            raise RegistryError("GetAuthorizationToken answered without a usable token", registry=self.name) from None
        if not sep or not password:
            raise RegistryError("GetAuthorizationToken answered without a usable token", registry=self.name)
        register_secret(password)
        register_secret(data["authorizationToken"])
        expires = data.get("expiresAt")
        return (Credentials(username=user, password=password, source="ecr"),
                expires.timestamp() if isinstance(expires, datetime) else None, data.get("proxyEndpoint"))

    def registry_v2(self) -> Any:
        """The :class:`~vulnwatch.registries.oci.OCIRegistry` of this registry's v2 API, with a
        current ECR token (fetched again :data:`TOKEN_REFRESH_MARGIN` before it expires)."""
        with self._v2_lock:
            now = self._clock()
            if self._v2 is not None and now < self._token_refresh_at:
                return self._v2
            creds, expires, endpoint = self._authorization()
            self.token_fetches += 1
            if self._v2 is None:
                url = self.registry_url or endpoint
                if not url:
                    raise RegistryError("GetAuthorizationToken named no registry endpoint; set registry_url",
                                        registry=self.name)
                self._v2 = self.v2_registry(self.name, url, credentials=creds, insecure=self.insecure,
                                       platform=self.platform, limits=self.limits or RequestLimits(),
                                       concurrency=self.max_concurrency)
            else:
                self._v2.auth.credentials = creds      # requests from now on send the new token
            refresh = (expires - TOKEN_REFRESH_MARGIN) if expires is not None else now + 6 * 3600.0
            self._token_refresh_at = max(refresh, now + TOKEN_MIN_REUSE)
            return self._v2

    def blob(self, repository: str, digest: str) -> BinaryIO:
        """A blob through the Registry v2 API (verified against ``digest`` at EOF); only for
        ``scanner="builtin"`` (the ECR scanner reads no blobs)."""
        if self.default_scanner != "builtin":
            return super().blob(repository, digest)
        return self.registry_v2().blob(repository, digest)

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest of a tag or digest via ``BatchGetImage`` (with ``scanner="builtin"``:
        through the Registry v2 API, verified against the digest); an index is resolved to
        :attr:`platform`."""
        if self.default_scanner == "builtin":
            return self.registry_v2().manifest(repository, reference)
        where = {"registry": self.name, "repository": repository, "reference": reference}

        def fetch(ref: str) -> tuple[bytes, str | None, str]:
            digest, media_type, raw = self._get_manifest(repository, ref)
            return raw, media_type or None, digest

        return resolve_manifests(fetch, reference, self.platform, where)[0]

    def close(self) -> None:
        if self._v2 is not None:
            self._v2.close()
        self.client.close()
