"""Where images come from, one module per kind of registry.  [add a registry here]

:data:`REGISTRIES` maps each ``registries[].type`` to its class; every class builds itself from
its config section with ``from_config``. :func:`resolve_image` turns what a user types after
``vulnwatch scan`` into a registry and an image. Adding a registry: a module here, its entry
below, its section in :mod:`vulnwatch.config.registries`.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..lazy import LazyMap
from ..model import Image
from .interface import Registry, RegistryError, RequestLimits

REGISTRIES: dict[str, type[Registry]] = LazyMap(__name__, {
    "ecr": ".ecr:ECRRegistry",
    "oci": ".oci:OCIRegistry",
    "archive": ".archive:ArchiveRegistry",
})
"""Registry type name (``registries[].type``) -> class, each module imported when its type is
first looked up (an ECR-only run loads no HTTP client: :mod:`vulnwatch.lazy`)."""


def registry_v2(*args, **kwargs) -> Registry:
    """ECR's Registry v2 API (the built-in scanner's pulls) is read by the OCI client:
    :attr:`ECRRegistry.v2_registry <vulnwatch.registries.ecr.ECRRegistry.v2_registry>`, loaded
    when an ECR registry is first read through it."""
    return REGISTRIES["oci"](*args, **kwargs)

ARCHIVE_PREFIXES = ("docker-archive:", "oci-archive:", "oci:")
"""How ``vulnwatch scan`` names a local image: ``docker-archive:PATH``, ``oci:PATH[:TAG]``."""


def resolve_image(text: str, *, platform: str = "linux/amd64", insecure: bool = False,
                  limits: RequestLimits | None = None) -> tuple[Registry, Image]:
    """``docker-archive:PATH``, ``oci:PATH[:TAG]`` or a registry reference ``host/repo:tag[@digest]``
    -> (the registry to read it from, the image). Raises :class:`RegistryError` naming the input
    (a missing file, a tag the archive does not have, an archive with several images and none named)."""
    from .auth import credentials_for
    from .reference import api_host, parse_reference

    for prefix in ARCHIVE_PREFIXES:
        if text.startswith(prefix):
            return _archive_image(prefix, text[len(prefix):], platform)
    _refuse_local_path(text)
    OCIRegistry = REGISTRIES["oci"]
    ref = parse_reference(text)
    host = api_host(ref.registry)
    scheme = "http" if insecure else "https"
    registry = OCIRegistry(ref.registry, f"{scheme}://{host}", credentials=credentials_for(host),
                           insecure=insecure, platform=platform, limits=limits)
    reference = ref.digest or ref.tag or "latest"
    try:
        digest, media_type, _ = registry.resolve(ref.repository, reference)
    except RegistryError as e:
        answered = re.search(r"\bHTTP [1-5]\d\d\b", e.reason)    # the registry answered over HTTPS
        if not insecure and not answered and _answers_plain_http(host):
            raise RegistryError(f"{e.reason}; {host} answers plain HTTP: add --insecure to read it over HTTP",
                                registry=e.registry, repository=e.repository, reference=e.reference) from None
        raise
    tags = (ref.tag,) if ref.tag else ()
    return registry, Image(registry=ref.registry, repository=ref.repository, digest=digest, tags=tags,
                           media_type=media_type)


_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".oci")


def _refuse_local_path(text: str) -> None:
    """A local file or folder named without ``docker-archive:`` / ``oci:``: say how to name it
    (rather than looking for it on Docker Hub)."""
    path = Path(text).expanduser()
    looks_local = text.startswith(("/", "./", "../", "~")) or text.lower().endswith(_ARCHIVE_SUFFIXES)
    if path.is_dir():
        raise RegistryError(f"that is a local folder; for an OCI layout write oci:{text}")
    if path.is_file():
        raise RegistryError(f"that is a local file; write docker-archive:{text} for a `docker save` tarball, "
                            f"or oci:{text} for an OCI layout tar")
    if looks_local:
        raise RegistryError(f"no such file: {text} (a local archive is named docker-archive:PATH or oci:PATH; "
                            "a registry image host/repository:tag)")


def _answers_plain_http(host: str) -> bool:
    """Whether ``host`` serves the registry API over plain HTTP (asked when HTTPS failed)."""
    import httpx

    try:
        resp = httpx.get(f"http://{host}/v2/", timeout=2.0, follow_redirects=False)
    except httpx.HTTPError:
        return False
    return resp.status_code in (200, 401) or "docker-distribution-api-version" in resp.headers


def _archive_image(prefix: str, rest: str, platform: str) -> tuple[Registry, Image]:
    path, tag = Path(rest), None
    if not path.exists() and ":" in rest:
        head, _, tag = rest.rpartition(":")
        path = Path(head)
    if not path.exists():
        raise RegistryError(f"no such file or folder: {path}")
    registry = REGISTRIES["archive"](path.name, path, platform=platform)
    images = [img for repo in registry.repositories() for img in registry.images(repo)]
    if not images:
        raise RegistryError(f"{path}: the archive holds no image")
    if tag:
        tagged = [i for i in images if tag in i.tags]
        if not tagged:
            have = ", ".join(sorted({t for i in images for t in i.tags})) or "no tags"
            raise RegistryError(f"{path}: the archive has no tag {tag!r} (it has {have}); name one of them as "
                                f"{prefix}{path}:TAG")
        images = tagged
    if len(images) > 1:
        names = ", ".join(f"{i.repository}:{t}" for i in images for t in i.tags)
        raise RegistryError(f"{path}: the archive holds {len(images)} images ({names}); name one as "
                            f"{prefix}{path}:TAG")
    return registry, images[0]


__all__ = ["ARCHIVE_PREFIXES", "REGISTRIES", "Registry", "RegistryError", "resolve_image"]
