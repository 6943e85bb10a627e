"""Parse the image references users type: ``host[:port]/repository[:tag][@digest]``.

Follows Docker's rules: the first path component is a registry host only when it
contains a ``.`` or a ``:`` or is ``localhost``; otherwise the image is on Docker Hub
(``docker.io``) and a single-component name gets the ``library/`` prefix
(``debian:12`` -> ``docker.io/library/debian:12``).
"""

from __future__ import annotations

import re

from ..model import ImageRef
from .interface import RegistryError

DOCKER_HUB = "docker.io"
"""The registry name Docker uses for Docker Hub in references."""
DOCKER_HUB_API = "registry-1.docker.io"
"""The host that actually serves Docker Hub's Registry v2 API."""
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
"""A valid repository path (lowercase components separated by ``/``)."""
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
"""A valid tag."""
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
"""A valid digest (``algorithm:encoded``)."""
_HOST_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                      r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")


class InvalidReferenceError(RegistryError, ValueError):
    """A reference string that cannot be parsed; the message quotes it and says what is wrong."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"invalid image reference {text!r}: {problem} "
                         "(expected host[:port]/repository[:tag][@sha256:digest])")
        self.text = text


def is_registry_host(component: str) -> bool:
    """True when the first path component of a reference names a registry rather than a namespace."""
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def normalize_registry(host: str) -> str:
    """Canonical registry name: Docker Hub aliases become ``docker.io``; a host recognisable in
    lower case (a dot, a port, ``localhost``) is lowercased; one recognised only by its upper case
    (Docker's rule) keeps it, so that it prints back as a host and not as a Docker Hub namespace."""
    host = host.strip()
    lower = host.lower()
    if lower in _DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    return lower if is_registry_host(lower) else host


def api_host(registry: str) -> str:
    """The ``host[:port]`` that serves the Registry v2 API for ``registry`` (Docker Hub differs)."""
    registry = normalize_registry(registry)
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def parse_reference(text: str, *, default_registry: str = DOCKER_HUB) -> ImageRef:
    """Parse ``host[:port]/repository[:tag][@digest]`` into an :class:`ImageRef`.

    A reference without tag or digest gets neither (callers decide whether ``latest``
    is meant). Raises :class:`InvalidReferenceError` naming the text and the problem.
    """
    original = text
    text = text.strip()
    if not text:
        raise InvalidReferenceError(original, "it is empty")
    if "://" in text:
        raise InvalidReferenceError(original, "drop the URL scheme")
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReferenceError(original, f"bad digest {digest!r}")
        algo, encoded = digest.split(":", 1)
        if algo == "sha256" and not re.fullmatch(r"[0-9a-f]{64}", encoded):
            raise InvalidReferenceError(original, "a sha256 digest has 64 lowercase hex characters")
    parts = text.split("/")
    if len(parts) > 1 and is_registry_host(parts[0]):
        registry = parts[0]
        if not _HOST_RE.match(registry):
            raise InvalidReferenceError(original, f"bad registry host {registry!r}")
        rest = parts[1:]
    else:
        registry = default_registry
        rest = parts
    tag: str | None = None
    last = rest[-1]
    if ":" in last:
        last, tag = last.rsplit(":", 1)
        if not TAG_RE.match(tag):
            raise InvalidReferenceError(original, f"bad tag {tag!r}")
        rest = rest[:-1] + [last]
    repository = "/".join(rest)
    registry = normalize_registry(registry)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not REPOSITORY_RE.match(repository):
        if repository != repository.lower() or (registry != registry.lower() and not is_registry_host(registry.lower())):
            whole = "/".join(p.lower() for p in parts[:-1] + [last]) + (f":{tag}" if tag else "")
            raise InvalidReferenceError(
                original, f"bad repository {repository!r}: repository names must be lowercase, write {whole!r}"
                          + (f" (an upper-case first component such as {parts[0]!r} is read as a registry host, "
                             "as Docker does)" if parts[0] != parts[0].lower() and len(parts) > 1 else ""))
        raise InvalidReferenceError(
            original, f"bad repository {repository!r} (lowercase letters, digits and . _ - / only)")
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)
