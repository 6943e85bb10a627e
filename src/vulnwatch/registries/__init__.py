"""Where images come from, one module per kind of registry.  [add a registry here]

:data:`REGISTRIES` maps each ``registries[].type`` to its class; every class builds itself from
its config section with ``from_config``. :func:`resolve_image` turns what a user types after
``vulnwatch scan`` into a registry and an image. Adding a registry: a module here, its entry
below, its section in :mod:`vulnwatch.config.registries`.
"""

from __future__ import annotations

from pathlib import Path

from ..model import Image
from .archive import ArchiveRegistry
from .auth import credentials_for
from .ecr import ECRRegistry
from .interface import Registry, RegistryError
from .oci import OCIRegistry
from .reference import api_host, parse_reference

REGISTRIES: dict[str, type[Registry]] = {
    "ecr": ECRRegistry,
    "oci": OCIRegistry,
    "archive": ArchiveRegistry,
}
"""Registry type name (``registries[].type``) -> class."""

ARCHIVE_PREFIXES = ("docker-archive:", "oci-archive:", "oci:")
"""How ``vulnwatch scan`` names a local image: ``docker-archive:PATH``, ``oci:PATH[:TAG]``."""


def resolve_image(text: str, *, platform: str = "linux/amd64", insecure: bool = False) -> tuple[Registry, Image]:
    """``docker-archive:PATH``, ``oci:PATH[:TAG]`` or a registry reference ``host/repo:tag[@digest]``
    -> (the registry to read it from, the image). Raises :class:`RegistryError` naming the input
    (a missing file, a tag the archive does not have, an archive with several images and none named)."""
    for prefix in ARCHIVE_PREFIXES:
        if text.startswith(prefix):
            return _archive_image(prefix, text[len(prefix):], platform)
    ref = parse_reference(text)
    host = api_host(ref.registry)
    scheme = "http" if insecure else "https"
    registry = OCIRegistry(ref.registry, f"{scheme}://{host}", credentials=credentials_for(host),
                           insecure=insecure, platform=platform)
    reference = ref.digest or ref.tag or "latest"
    digest, media_type, _ = registry.resolve(ref.repository, reference)
    tags = (ref.tag,) if ref.tag else ()
    return registry, Image(registry=ref.registry, repository=ref.repository, digest=digest, tags=tags,
                           media_type=media_type)


def _archive_image(prefix: str, rest: str, platform: str) -> tuple[Registry, Image]:
    path, tag = Path(rest), None
    if not path.exists() and ":" in rest:
        head, _, tag = rest.rpartition(":")
        path = Path(head)
    if not path.exists():
        raise RegistryError(f"no such file or folder: {path}")
    registry = ArchiveRegistry(path.name, path, platform=platform)
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
