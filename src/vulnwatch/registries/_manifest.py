"""What the registries share about images: media types, manifest and index parsing, platform
choice, and a blob stream verified against its digest.

Used by every registry that serves manifests itself (``oci``, ``archive``, ``ecr``): an
implementation never imports a sibling, it imports this.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator

from .interface import Descriptor, Manifest, RegistryError

__all__ = ["ACCEPT_MANIFESTS", "DOCKER_MANIFEST", "DOCKER_MANIFEST_LIST", "DOCKER_SCHEMA1", "INDEX_TYPES",
           "MANIFEST_TYPES", "OCI_INDEX", "OCI_MANIFEST", "ManifestFetch", "VerifyingReader", "choose_platform",
           "descriptor", "digest_of", "hasher_for", "manifest_from_doc", "parse_manifest", "parse_platform",
           "platform_string", "resolve_manifests"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
"""Single-platform manifest media types."""
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
"""Multi-platform index media types."""
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
"""``Accept`` header for manifests: all four, so a registry never converts or hides one."""

def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def hasher_for(digest: str, where: dict) -> "hashlib._Hash":
    algo, _, encoded = digest.partition(":")
    if algo not in ("sha256", "sha512") or not re.fullmatch(r"[0-9a-f]+", encoded or ""):
        raise RegistryError(f"unsupported or malformed digest {digest!r}", **where)
    return hashlib.new(algo)


def parse_platform(text: str) -> tuple[str, str, str | None]:
    """``os/arch[/variant]`` -> parts."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform {text!r} is not os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def platform_string(p: dict | None) -> str | None:
    """``{"os":..,"architecture":..,"variant":..}`` -> ``os/arch[/variant]``."""
    if not isinstance(p, dict) or not p.get("os") or not p.get("architecture"):
        return None
    if not all(isinstance(p.get(k), (str, type(None))) for k in ("os", "architecture", "variant")):
        return None
    s = f"{p['os']}/{p['architecture']}"
    return f"{s}/{p['variant']}" if p.get("variant") else s


def descriptor(d: dict, where: dict) -> Descriptor:
    try:
        return Descriptor(media_type=d.get("mediaType", ""), digest=d["digest"], size=int(d.get("size", -1)),
                          platform=platform_string(d.get("platform")))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RegistryError("manifest has a malformed descriptor (no digest)", **where) from None


def parse_manifest(raw: bytes, media_type: str | None, digest: str, where: dict) -> dict:
    """Decode a manifest or index; raises :class:`RegistryError` on junk or schema 1."""
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError
    except ValueError:
        raise RegistryError("manifest is not a JSON object", **where) from None
    mt = doc.get("mediaType") or media_type or ""
    if mt in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise RegistryError("Docker schema 1 manifests are not supported; re-push the image with a "
                            "current client", **where)
    if not isinstance(mt, str):
        raise RegistryError("manifest has a mediaType that is not a string", **where)
    for key in ("manifests", "layers"):
        value = doc.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(d, dict) for d in value)):
            raise RegistryError(f"manifest's {key!r} is not a list of descriptors", **where)
    if "config" in doc and not isinstance(doc["config"], dict):
        raise RegistryError("manifest's 'config' is not a descriptor", **where)
    if not mt:
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    doc["mediaType"] = mt
    return doc


def manifest_from_doc(doc: dict, raw: bytes, digest: str, where: dict, *, index_digest: str | None = None,
                      platform: str | None = None) -> Manifest:
    """Build a :class:`Manifest` from a decoded single-platform manifest."""
    if "config" not in doc or "layers" not in doc:
        raise RegistryError(f"manifest of type {doc.get('mediaType')} has no config/layers", **where)
    return Manifest(digest=digest, media_type=doc["mediaType"], config=descriptor(doc["config"], where),
                    layers=tuple(descriptor(d, where) for d in doc.get("layers") or ()), raw=raw,
                    index_digest=index_digest, platform=platform)


def choose_platform(doc: dict, wanted: str, where: dict) -> Descriptor:
    """Pick the manifest for ``wanted`` (``os/arch[/variant]``) from an index; error lists what exists."""
    os_, arch, variant = parse_platform(wanted)
    entries = [descriptor(d, where) for d in doc.get("manifests") or ()]
    candidates = []
    for e in entries:
        if not e.platform:
            continue
        p_os, p_arch, p_var = parse_platform(e.platform)
        if p_os == os_ and p_arch == arch and (variant is None or p_var == variant):
            candidates.append(e)
    if not candidates:
        available = sorted({e.platform for e in entries if e.platform and not e.platform.startswith("unknown/")})
        raise RegistryError(f"no manifest for platform {wanted} in the index; available platforms: "
                            f"{', '.join(available) or '(none)'}; set platform to one of them", **where)
    # prefer the entry without a variant (or arm64's v8) when none was asked for
    candidates.sort(key=lambda e: 0 if parse_platform(e.platform)[2] in (None, "v8") else 1)
    return candidates[0]


ManifestFetch = Callable[[str], tuple[bytes, "str | None", str]]
"""``fetch(reference) -> (bytes, media type or None, digest)`` of one manifest or index."""


def resolve_manifests(fetch: ManifestFetch, reference: str, platform: str, where: dict, *,
                      every: bool = False) -> list[Manifest]:
    """The single-platform manifest(s) ``reference`` names: itself when it is a manifest; for an
    index, the one for ``platform`` (or, with ``every``, one per platform it lists). Nested
    indexes are refused. Raises :class:`RegistryError` naming ``where``."""
    raw, media_type, digest = fetch(reference)
    doc = parse_manifest(raw, media_type, digest, where)
    if doc["mediaType"] not in INDEX_TYPES and "manifests" not in doc:
        return [manifest_from_doc(doc, raw, digest, where)]
    if every:
        chosen = [d for d in (descriptor(x, where) for x in doc.get("manifests") or ())
                  if d.platform and not d.platform.startswith("unknown/")]
    else:
        chosen = [choose_platform(doc, platform, where)]
    out = []
    for desc in chosen:
        sub_where = {**where, "reference": desc.digest}
        sub_raw, sub_mt, sub_digest = fetch(desc.digest)
        sub_doc = parse_manifest(sub_raw, sub_mt or desc.media_type, sub_digest, sub_where)
        if sub_doc["mediaType"] in INDEX_TYPES or "manifests" in sub_doc:
            raise RegistryError("nested image indexes are not supported", **sub_where)
        out.append(manifest_from_doc(sub_doc, sub_raw, sub_digest, sub_where, index_digest=digest,
                                     platform=desc.platform))
    return out


class VerifyingReader(io.RawIOBase):
    """A read-only stream over chunks that checks size and digest when it reaches EOF."""

    def __init__(self, chunks: Iterator[bytes], digest: str, *, expected_size: int | None = None,
                 max_size: int | None = None, where: dict | None = None, on_close=None,
                 hashed_by=None, deadline=None) -> None:
        super().__init__()
        self._deadline = deadline
        """A :class:`~vulnwatch.model.Deadline` for the whole blob (None: none)."""
        self._where = where or {}
        self._prehashed = hashed_by is not None
        """``hashed_by``: a hash object the chunk source already feeds (in its own thread)."""
        self._hash = hashed_by if hashed_by is not None else hasher_for(digest, self._where)
        self._chunks = chunks
        self._digest = digest
        self._expected_size = expected_size
        self._max_size = max_size
        self._buf = b""
        self._seen = 0
        self._done = False
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf and not self._done:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._finish()
                break
            except TimeoutError as e:
                raise RegistryError(f"blob download timed out after {self._seen} bytes: {e or 'deadline'} reached; "
                                    "the registry is too slow or stopped sending", retryable=True,
                                    **self._where) from None
            except Exception as e:
                import httpx    # an HTTP chunk source's errors (httpx is loaded by then; an archive's are not)

                if isinstance(e, httpx.TimeoutException):
                    if self._deadline is not None and self._deadline.expired:   # the deadline cut the read
                        raise RegistryError(f"blob download timed out after {self._seen} bytes: "
                                            f"{self._deadline.what} reached; the registry is too slow or stopped "
                                            "sending", retryable=True, **self._where) from None
                    raise RegistryError(f"blob download stalled after {self._seen} bytes: nothing arrived within "
                                        f"limits.read_timeout ({type(e).__name__})", retryable=True,
                                        **self._where) from None
                if isinstance(e, httpx.HTTPError):
                    raise RegistryError(f"blob download broke off after {self._seen} bytes: {type(e).__name__}",
                                        retryable=True, **self._where) from None
                raise
            if self._deadline is not None and self._deadline.expired:
                raise RegistryError(f"blob download timed out after {self._seen + len(chunk)} bytes: "
                                    f"{self._deadline.what} reached; the registry is too slow", retryable=True,
                                    **self._where)
            if not chunk:
                continue
            self._seen += len(chunk)
            if self._max_size is not None and self._seen > self._max_size:
                raise RegistryError(f"blob is larger than the limit of {self._max_size} bytes "
                                    "(limits.max_blob_bytes)", **self._where)
            if not self._prehashed:
                self._hash.update(chunk)
            self._buf = chunk
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:] if n < len(self._buf) else b""
        return n

    def _finish(self) -> None:
        self._done = True
        if self._expected_size is not None and self._expected_size >= 0 and self._seen != self._expected_size:
            raise RegistryError(f"blob is {self._seen} bytes, expected {self._expected_size}: truncated or "
                                "corrupt", **self._where)
        got = f"{self._digest.split(':', 1)[0]}:{self._hash.hexdigest()}"
        if got != self._digest:
            raise RegistryError(f"blob content does not match its digest (got {got}): corrupt in the "
                                "registry or in transit", **self._where)

    def close(self) -> None:
        if not self.closed and self._on_close:
            self._on_close()
        super().close()
