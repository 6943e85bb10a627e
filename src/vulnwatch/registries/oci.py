"""Any Registry HTTP API v2 / OCI distribution registry, over httpx.

Lists with ``/v2/_catalog`` and ``/v2/<repo>/tags/list`` (following ``Link`` pages),
resolves tags to digests with ``HEAD`` on manifests, fetches manifests accepting both OCI
and Docker v2 media types (resolving an index to one platform), and streams blobs
verified against their digest. Plain HTTP only with ``insecure=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO
from urllib.parse import quote

import httpx

from ..model import Image
from .auth import CATALOG_SCOPE, Credentials, RegistryAuth, parse_challenge, repository_scope
from .interface import Descriptor, Manifest, Registry, RegistryError

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

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_RETRY_STATUS = {429, 500, 502, 503, 504}


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _hasher(digest: str, where: dict) -> "hashlib._Hash":
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
    if not p or not p.get("os") or not p.get("architecture"):
        return None
    s = f"{p['os']}/{p['architecture']}"
    return f"{s}/{p['variant']}" if p.get("variant") else s


def _descriptor(d: dict, where: dict) -> Descriptor:
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
    if not mt:
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    doc["mediaType"] = mt
    return doc


def manifest_from_doc(doc: dict, raw: bytes, digest: str, where: dict, *, index_digest: str | None = None,
                      platform: str | None = None) -> Manifest:
    """Build a :class:`Manifest` from a decoded single-platform manifest."""
    if "config" not in doc or "layers" not in doc:
        raise RegistryError(f"manifest of type {doc.get('mediaType')} has no config/layers", **where)
    return Manifest(digest=digest, media_type=doc["mediaType"], config=_descriptor(doc["config"], where),
                    layers=tuple(_descriptor(d, where) for d in doc.get("layers") or ()), raw=raw,
                    index_digest=index_digest, platform=platform)


def choose_platform(doc: dict, wanted: str, where: dict) -> Descriptor:
    """Pick the manifest for ``wanted`` (``os/arch[/variant]``) from an index; error lists what exists."""
    os_, arch, variant = parse_platform(wanted)
    entries = [_descriptor(d, where) for d in doc.get("manifests") or ()]
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


class _ReadAhead:
    """Pulls chunks from ``source`` in a thread, at most ``depth`` ahead, feeding ``hasher``:
    socket reads and hashing (both release the GIL) overlap with the consumer's decompression
    and parsing. Errors are raised in the consumer's thread; ``close`` stops the thread."""

    _END = object()

    def __init__(self, source: Iterator[bytes], hasher, depth: int = 4) -> None:
        self._hasher = hasher
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True, name="vulnwatch-blob")
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[bytes]) -> None:
        try:
            for chunk in source:
                self._hasher.update(chunk)
                if not self._put(chunk):
                    return
            self._put(self._END)
        except BaseException as e:  # raised again in the consumer
            self._put(e)

    def __iter__(self) -> "_ReadAhead":
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is self._END:
            self._done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._done = True
        self._thread.join(timeout=10)


class VerifyingReader(io.RawIOBase):
    """A read-only stream over chunks that checks size and digest when it reaches EOF."""

    def __init__(self, chunks: Iterator[bytes], digest: str, *, expected_size: int | None = None,
                 max_size: int | None = None, where: dict | None = None, on_close=None,
                 hashed_by=None) -> None:
        super().__init__()
        self._where = where or {}
        self._prehashed = hashed_by is not None
        """``hashed_by``: a hash object the chunk source already feeds (in its own thread)."""
        self._hash = hashed_by if hashed_by is not None else _hasher(digest, self._where)
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
            except httpx.HTTPError as e:
                raise RegistryError(f"blob download broke off after {self._seen} bytes: {type(e).__name__}",
                                    retryable=True, **self._where) from None
            if not chunk:
                continue
            self._seen += len(chunk)
            if self._max_size is not None and self._seen > self._max_size:
                raise RegistryError(f"blob is larger than the limit of {self._max_size} bytes "
                                    "(max_blob_size)", **self._where)
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


class OCIRegistry(Registry):
    """A Registry HTTP API v2 server (Distribution, Harbor, GHCR, Docker Hub, Quay, ...).

    ``url`` is ``https://host[:port]`` or bare ``host[:port]`` (https, or http when insecure).
    ``insecure=True`` allows plain HTTP and skips TLS verification. ``platform`` picks the
    manifest from an index (``os/arch[/variant]``); with ``all_platforms`` every manifest
    of an index is returned by :meth:`platform_manifests`. ``max_blob_size`` bounds a blob
    stream. ``client`` is an httpx.Client to reuse (its TLS settings then apply).
    ``page_size`` is the ``n`` for catalog/tag pages; ``retries`` and ``backoff`` bound the
    retries on 429/5xx/connection errors; ``concurrency`` is how many tags :meth:`images`
    resolves at once.
    """

    def __init__(self, name: str, url: str, *, credentials: Credentials | None = None, insecure: bool = False,
                 platform: str = "linux/amd64", all_platforms: bool = False, timeout: float = 30.0,
                 max_blob_size: int | None = None, client: httpx.Client | None = None,
                 page_size: int = 100, retries: int = 3, backoff: float = 0.5, concurrency: int = 8) -> None:
        self.name = name
        url = url.strip().rstrip("/")
        if "://" not in url:
            url = ("http://" if insecure else "https://") + url
        parsed = httpx.URL(url)
        if parsed.userinfo:
            raise RegistryError("the registry url holds credentials; remove them from the url and configure "
                                "username/password instead", registry=name)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise RegistryError(f"registry url {url!r} is not http(s)://host[:port]", registry=name)
        if parsed.scheme == "http" and not insecure:
            raise RegistryError(f"refusing plain HTTP to {url}: credentials and content would travel "
                                "unprotected; use https, or set insecure: true for a test registry",
                                registry=name)
        try:
            parse_platform(platform)
        except ValueError as e:
            raise RegistryError(str(e), registry=name) from None
        self.base_url = url
        self.host = parsed.netloc.decode().lower()
        self.insecure = insecure
        self.platform = platform
        self.all_platforms = all_platforms
        self.max_blob_size = max_blob_size
        self.page_size = page_size
        self.retries = retries
        self.backoff = backoff
        self.concurrency = concurrency
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout, verify=not insecure, follow_redirects=False,
                                              headers={"User-Agent": "vulnwatch"})
        self.auth = RegistryAuth(name, self.host, credentials, self._client, allow_http_realm=insecure)

    def __repr__(self) -> str:
        return f"OCIRegistry(name={self.name!r}, url={self.base_url!r}, insecure={self.insecure})"

    # ------------------------------------------------------------------ HTTP core

    def _send(self, method: str, url: str | httpx.URL, *, scope: str | None, where: dict,
              headers: dict | None = None, stream: bool = False) -> httpx.Response:
        """One request with auth, retries and redirects (no ``Authorization`` off this host)."""
        attempt = 0
        retried_auth = False
        redirects = 0
        url = httpx.URL(str(url))
        while True:
            req_headers = dict(headers or {})
            req_headers.update(self.auth.headers_for(url, scope))
            try:
                request = self._client.build_request(method, url, headers=req_headers)
                resp = self._client.send(request, stream=stream, follow_redirects=False)
            except httpx.TransportError as e:
                if attempt < self.retries:
                    attempt += 1
                    self._sleep(attempt, None)
                    continue
                raise RegistryError(f"cannot reach {self.base_url} ({type(e).__name__}) after "
                                    f"{attempt + 1} attempts", retryable=True, **where) from None
            if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
                resp.close()
                redirects += 1
                if redirects > 5:
                    raise RegistryError("too many redirects", **where)
                nxt = url.join(resp.headers["location"])
                if nxt.scheme == "http" and not self.insecure:
                    raise RegistryError(f"registry redirected to plain HTTP ({nxt.host}); refusing",
                                        **where)
                url = nxt
                if resp.status_code == 303:
                    method = "GET"
                continue
            if resp.status_code == 401 and not retried_auth:
                retried_auth = True
                if stream:
                    resp.read()
                if self.auth.answer_challenge(resp, scope):
                    resp.close()
                    continue
            if resp.status_code in _RETRY_STATUS and attempt < self.retries:
                attempt += 1
                retry_after = resp.headers.get("retry-after")
                resp.close()
                self._sleep(attempt, retry_after)
                continue
            return resp

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        if retry_after and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        time.sleep(min(delay, 30.0))

    def _error(self, resp: httpx.Response, what: str, where: dict, scope: str | None = None) -> RegistryError:
        """A :class:`RegistryError` for a failed response, with the registry's error codes."""
        if not resp.is_closed:
            try:
                resp.read()
            except httpx.HTTPError:
                pass
        codes = []
        try:
            for err in resp.json().get("errors") or ():
                code = err.get("code")
                msg = err.get("message")
                codes.append(f"{code}: {msg}" if msg else str(code))
        except (ValueError, AttributeError, TypeError, httpx.ResponseNotRead):
            pass
        status = resp.status_code
        detail = f"; registry says {', '.join(codes)}" if codes else ""
        hint = ""
        if status == 401:
            challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
            if challenge and challenge.scheme == "bearer" and (
                    challenge.params.get("error") == "insufficient_scope" or self.auth.has_token(scope)):
                hint = (f" unauthorized: access denied, the token server did not grant {scope or 'this scope'} "
                        f"to {self.auth._creds_desc()}; ask for access or check the repository name")
            else:
                hint = f" unauthorized: check the credentials ({self.auth._creds_desc()})"
        elif status == 403:
            hint = " forbidden: the credentials lack permission"
        elif status == 404:
            hint = " not found"
        return RegistryError(f"{what} failed: HTTP {status}{hint}{detail}",
                             retryable=status in _RETRY_STATUS, **where)

    def _get_json(self, url: str, scope: str, where: dict, what: str) -> tuple[dict, httpx.Response]:
        resp = self._send("GET", url, scope=scope, where=where, headers={"Accept": "application/json"})
        if resp.status_code != 200:
            raise self._error(resp, what, where, scope)
        try:
            return resp.json(), resp
        except ValueError:
            raise RegistryError(f"{what}: the registry answered something that is not JSON", **where) from None

    def _paginate(self, path: str, key: str, scope: str, where: dict, what: str) -> Iterator[str]:
        url: str | None = f"{self.base_url}{path}?n={self.page_size}"
        seen: set[str] = set()
        while url:
            if url in seen:
                raise RegistryError(f"{what}: pagination loops on {url}", **where)
            seen.add(url)
            doc, resp = self._get_json(url, scope, where, what)
            yield from doc.get(key) or ()
            m = _LINK_NEXT.search(resp.headers.get("link", ""))
            url = str(httpx.URL(self.base_url).join(m.group(1))) if m else None

    # ------------------------------------------------------------------ Registry API

    def check(self) -> None:
        """``GET /v2/``: raises :class:`RegistryError` unless the registry answers and accepts us."""
        where = {"registry": self.name}
        resp = self._send("GET", f"{self.base_url}/v2/", scope=None, where=where)
        if resp.status_code != 200:
            raise self._error(resp, "GET /v2/", where)

    def repositories(self) -> Iterator[str]:
        return self._paginate("/v2/_catalog", "repositories", CATALOG_SCOPE, {"registry": self.name},
                              "listing repositories (/v2/_catalog)")

    def tags(self, repository: str) -> Iterator[str]:
        """Every tag of ``repository`` (paginated to the end)."""
        where = {"registry": self.name, "repository": repository}
        return self._paginate(f"/v2/{repository}/tags/list", "tags", repository_scope(repository), where,
                              "listing tags")

    def resolve(self, repository: str, reference: str) -> tuple[str, str | None, int | None]:
        """(digest, media type, size) of a manifest by tag or digest, with ``HEAD`` (``GET`` as fallback)."""
        where = {"registry": self.name, "repository": repository, "reference": reference}
        url = f"{self.base_url}/v2/{repository}/manifests/{quote(reference, safe=':')}"
        resp = self._send("HEAD", url, scope=repository_scope(repository), where=where,
                          headers={"Accept": ACCEPT_MANIFESTS})
        if resp.status_code == 200 and resp.headers.get("docker-content-digest"):
            size = resp.headers.get("content-length")
            return (resp.headers["docker-content-digest"], resp.headers.get("content-type"),
                    int(size) if size and size.isdigit() else None)
        if resp.status_code not in (200, 405):
            raise self._error(resp, "HEAD manifest", where, repository_scope(repository))
        raw, mt, digest = self._fetch_manifest(repository, reference)
        return digest, mt, len(raw)

    def images(self, repository: str) -> Iterator[Image]:
        by_digest: dict[str, dict] = {}
        tags = list(self.tags(repository))
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(tags) or 1))) as pool:
            resolved = pool.map(lambda t: (t, self.resolve(repository, t)), tags)
            for tag, (digest, media_type, _size) in resolved:
                entry = by_digest.setdefault(digest, {"tags": [], "media_type": media_type})
                entry["tags"].append(tag)
        for digest, entry in by_digest.items():
            tags = tuple(sorted(entry["tags"]))
            if self.all_platforms and entry["media_type"] in INDEX_TYPES:
                yield from self._platform_images(repository, digest, tags)
                continue
            yield Image(registry=self.name, repository=repository, digest=digest,
                        tags=tags, media_type=entry["media_type"])

    def _platform_images(self, repository: str, index_digest: str, tags: tuple[str, ...]) -> Iterator[Image]:
        """With ``all_platforms``: one image per platform manifest of an index. Each is its own
        digest; its tags carry the platform (``1.0 [linux/arm64]``), so that a tag's history
        follows one platform and a rebuild is compared platform by platform."""
        where = {"registry": self.name, "repository": repository, "reference": index_digest}
        raw, media_type, digest = self._fetch_manifest(repository, index_digest)
        doc = parse_manifest(raw, media_type, digest, where)
        for d in (_descriptor(x, where) for x in doc.get("manifests") or ()):
            if not d.platform or d.platform.startswith("unknown/"):
                continue  # attestations and other non-image entries
            yield Image(registry=self.name, repository=repository, digest=d.digest,
                        tags=tuple(f"{t} [{d.platform}]" for t in tags), media_type=d.media_type)

    def _fetch_manifest(self, repository: str, reference: str) -> tuple[bytes, str | None, str]:
        """GET a manifest: (bytes, media type, verified digest)."""
        where = {"registry": self.name, "repository": repository, "reference": reference}
        url = f"{self.base_url}/v2/{repository}/manifests/{quote(reference, safe=':')}"
        resp = self._send("GET", url, scope=repository_scope(repository), where=where,
                          headers={"Accept": ACCEPT_MANIFESTS})
        if resp.status_code != 200:
            raise self._error(resp, "GET manifest", where, repository_scope(repository))
        raw = resp.content
        if self.max_blob_size is not None and len(raw) > max(self.max_blob_size, 4 << 20):
            raise RegistryError("manifest is implausibly large", **where)
        if ":" in reference:  # by digest: the bytes must hash to it
            h = _hasher(reference, where)
            h.update(raw)
            got = f"{reference.split(':', 1)[0]}:{h.hexdigest()}"
            if got != reference:
                raise RegistryError(f"manifest content does not match the requested digest (got {got})", **where)
            digest = reference
        else:
            digest = digest_of(raw)
            header = resp.headers.get("docker-content-digest")
            if header and header.startswith("sha256:") and header != digest:
                raise RegistryError(f"manifest bytes hash to {digest} but the registry says {header}", **where)
        media_type = (resp.headers.get("content-type") or "").split(";")[0].strip() or None
        return raw, media_type, digest

    def _manifests(self, repository: str, reference: str, every: bool) -> list[Manifest]:
        where = {"registry": self.name, "repository": repository, "reference": reference}
        raw, media_type, digest = self._fetch_manifest(repository, reference)
        doc = parse_manifest(raw, media_type, digest, where)
        if doc["mediaType"] not in INDEX_TYPES and "manifests" not in doc:
            return [manifest_from_doc(doc, raw, digest, where)]
        if every:
            chosen = [d for d in (_descriptor(x, where) for x in doc.get("manifests") or ())
                      if d.platform and not d.platform.startswith("unknown/")]
        else:
            chosen = [choose_platform(doc, self.platform, where)]
        out = []
        for desc in chosen:
            sub_where = {**where, "reference": desc.digest}
            sub_raw, sub_mt, sub_digest = self._fetch_manifest(repository, desc.digest)
            sub_doc = parse_manifest(sub_raw, sub_mt or desc.media_type, sub_digest, sub_where)
            if sub_doc["mediaType"] in INDEX_TYPES:
                raise RegistryError("nested image indexes are not supported", **sub_where)
            out.append(manifest_from_doc(sub_doc, sub_raw, sub_digest, sub_where, index_digest=digest,
                                         platform=desc.platform))
        return out

    def manifest(self, repository: str, reference: str) -> Manifest:
        return self._manifests(repository, reference, every=False)[0]

    def platform_manifests(self, repository: str, reference: str) -> tuple[Manifest, ...]:
        """All platform manifests of an index when ``all_platforms``, else ``(manifest(...),)``."""
        return tuple(self._manifests(repository, reference, every=self.all_platforms))

    def blob(self, repository: str, digest: str, *, size: int | None = None) -> BinaryIO:
        """Stream a blob; a :class:`RegistryError` is raised by ``read`` if the bytes do not match."""
        where = {"registry": self.name, "repository": repository, "reference": digest}
        _hasher(digest, where)
        if size is not None and self.max_blob_size is not None and size > self.max_blob_size:
            raise RegistryError(f"blob is {size} bytes, over the limit of {self.max_blob_size} (max_blob_size)",
                                **where)
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        resp = self._send("GET", url, scope=repository_scope(repository), where=where, stream=True)
        if resp.status_code != 200:
            err = self._error(resp, "GET blob", where, repository_scope(repository))
            resp.close()
            raise err
        length = resp.headers.get("content-length")
        expected = size if size is not None else (int(length) if length and length.isdigit()
                                                  and not resp.headers.get("content-encoding") else None)
        hasher = _hasher(digest, where)
        chunks = _ReadAhead(resp.iter_bytes(1 << 18), hasher)
        raw = VerifyingReader(chunks, digest, expected_size=expected, max_size=self.max_blob_size, where=where,
                              on_close=lambda: (chunks.close(), resp.close()), hashed_by=hasher)
        return io.BufferedReader(raw, buffer_size=1 << 16)

    def close(self) -> None:
        if self._own_client:
            self._client.close()
