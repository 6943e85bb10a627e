"""Any Registry HTTP API v2 / OCI distribution registry, over httpx.

Lists with ``/v2/_catalog`` and ``/v2/<repo>/tags/list`` (following ``Link`` pages); a
registry that does not list its repositories (``_catalog`` answers 404, 401 or 403: GHCR,
Docker Hub, GitLab, Harbor robot accounts) raises :class:`CatalogUnavailableError`, and a
repository whose ``tags/list`` answers 404 raises :class:`RepositoryNotFoundError`. Docker Hub
(``docker.io``, ``index.docker.io``) is served by ``registry-1.docker.io``, and its official
images live under ``library/`` (``debian`` is ``library/debian``). Resolves tags to digests with ``HEAD`` on manifests, fetches manifests accepting both OCI
and Docker v2 media types (resolving an index to one platform), and streams blobs
verified against their digest. Plain HTTP only with ``insecure=True``.
"""

from __future__ import annotations

import contextvars
import io
import json
import queue
import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO
from urllib.parse import quote

import httpcore
import httpx

from ..logs import httpx_event_hooks, redact, reveal
from ..model import Deadline, Image, current_deadline, deadline_scope
from ..net import tls_verify_error
from .auth import CATALOG_SCOPE, Credentials, RegistryAuth, credentials_for, parse_challenge, repository_scope
from ._manifest import (ACCEPT_MANIFESTS, INDEX_TYPES, VerifyingReader, descriptor, digest_of, hasher_for,
                        parse_manifest, parse_platform, resolve_manifests)
from .interface import (CatalogUnavailableError, Manifest, Registry, RegistryError, RepositoryNotFoundError,
                        RequestLimits)
from .reference import DOCKER_HUB, DOCKER_HUB_API, api_host, normalize_registry

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_RETRY_STATUS = {429, 500, 502, 503, 504}
_MAX_JSON_BYTES = 16 << 20
"""Largest answer to a listing request (a page of tags or repositories)."""


def _earliest(*deadlines: Deadline | None) -> Deadline | None:
    found = [d for d in deadlines if d is not None]
    return min(found, key=lambda d: d.at) if found else None


def _timed_out(deadline: Deadline, what: str, where: dict) -> RegistryError:
    return RegistryError(f"{what} timed out: {deadline.what} reached; the registry is too slow or does not "
                         "answer (the other images go on)", retryable=True, **where)


def _codes(err: RegistryError) -> str:
    """``; registry says NAME_UNKNOWN: ...`` from an error made by ``_error``, or nothing."""
    text = str(err)
    at = text.find("; registry says ")
    return text[at:] if at >= 0 else ""


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write waits no longer than the deadline in force
    (:func:`~vulnwatch.model.current_deadline`), and fails once it is reached: a server that
    drips its status line and headers a byte at a time is cut off too (a per-read timeout alone
    never fires while bytes keep coming)."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    @staticmethod
    def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
        d = current_deadline()
        if d is None:
            return timeout
        left = d.remaining()
        if left <= 0:
            raise error(f"{d.what} reached")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> "_DeadlineStream":
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     self._bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with :class:`_DeadlineStream` sockets."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        timeout = _DeadlineStream._bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline_transport(verify: bool) -> httpx.HTTPTransport:
    """An httpx transport whose sockets honour the deadline in force (see :class:`_DeadlineStream`)."""
    transport = httpx.HTTPTransport(verify=verify)
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):   # httpcore 1.x; else per-read timeouts only
        pool._network_backend = _DeadlineBackend()
    return transport


class _ReadAhead:
    """Pulls chunks from ``source`` in a thread, at most ``depth`` ahead, feeding ``hasher``:
    socket reads and hashing (both release the GIL) overlap with the consumer's decompression
    and parsing. Errors are raised in the consumer's thread; ``close`` stops the thread."""

    _END = object()

    def __init__(self, source: Iterator[bytes], hasher, depth: int = 4, deadline: Deadline | None = None) -> None:
        self._hasher = hasher
        self.deadline = deadline
        """Past it, the consumer's next read raises ``TimeoutError`` (the thread is stopped)."""
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        # in a copy of this context: its socket reads end at the deadline in force here too
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run, source), daemon=True,
                                        name="vulnwatch-blob")
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
        if self.deadline is None:
            item = self._queue.get()
        else:
            try:
                item = self._queue.get(timeout=self.deadline.remaining())
            except queue.Empty:
                self.close()
                raise TimeoutError(self.deadline.what) from None
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
        self._thread.join(timeout=2)    # a read in progress ends within limits.read_timeout


class OCIRegistry(Registry):
    """A Registry HTTP API v2 server (Distribution, Harbor, GHCR, Docker Hub, Quay, ...).

    ``url`` is ``https://host[:port]`` or bare ``host[:port]`` (https, or http when insecure).
    ``insecure=True`` allows plain HTTP and skips TLS verification. ``platform`` picks the
    manifest from an index (``os/arch[/variant]``); with ``all_platforms`` every manifest
    of an index is returned by :meth:`platform_manifests`. ``max_blob_size`` bounds a blob
    stream. ``client`` is an httpx.Client to reuse (its TLS settings then apply).
    ``page_size`` is the ``n`` for catalog/tag pages; ``retries`` and ``backoff`` bound the
    retries on 429/5xx/connection errors; ``concurrency`` (``max_concurrency`` in the
    configuration) bounds the requests in flight at once, whichever thread sends them: a cycle
    lists that many repositories at once (:attr:`listing_concurrency`), and the tags of all of
    them are resolved by one pool of that many threads, each request on a keep-alive connection
    of one client, under the deadline of the thread that asked. ``docker_hub`` applies Docker Hub's convention that a one-component
    repository name is an official image under ``library/`` (default: when the host is Docker
    Hub's).
    """

    @classmethod
    def from_config(cls, registry: Any, limits: RequestLimits | None = None) -> "OCIRegistry":
        url = str(registry.url).rstrip("/")
        scheme, _, rest = url.rpartition("://")
        host = api_host(rest)
        if host == DOCKER_HUB_API:          # docker.io, index.docker.io: the API is elsewhere
            url = f"{scheme or 'https'}://{DOCKER_HUB_API}"
        creds = credentials_for(host, registry.username, reveal(registry.password))
        every = registry.platform == "all"
        return cls(registry.name, url, credentials=creds, insecure=registry.insecure,
                   platform="linux/amd64" if every else registry.platform, all_platforms=every,
                   concurrency=getattr(registry, "max_concurrency", 4), limits=limits or RequestLimits())

    def __init__(self, name: str, url: str, *, credentials: Credentials | None = None, insecure: bool = False,
                 platform: str = "linux/amd64", all_platforms: bool = False, timeout: float = 30.0,
                 max_blob_size: int | None = None, client: httpx.Client | None = None,
                 page_size: int = 100, retries: int = 3, backoff: float = 0.5, concurrency: int = 8,
                 docker_hub: bool | None = None, limits: RequestLimits | None = None) -> None:
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
        self.docker_hub = normalize_registry(self.host) == DOCKER_HUB if docker_hub is None else docker_hub
        self.insecure = insecure
        self.platform = platform
        self.all_platforms = all_platforms
        if limits is None:
            limits = RequestLimits(connect_timeout=timeout, read_timeout=timeout, max_blob_bytes=max_blob_size)
        self.limits = limits
        self.max_blob_size = max_blob_size if max_blob_size is not None else limits.max_blob_bytes
        self.page_size = page_size
        self.retries = retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self.listing_concurrency = self.concurrency
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._resolver: ThreadPoolExecutor | None = None
        self._resolver_lock = threading.Lock()
        self._own_client = client is None
        http_timeout = httpx.Timeout(connect=limits.connect_timeout, read=limits.read_timeout,
                                     write=limits.read_timeout, pool=limits.connect_timeout)
        self._client = client or httpx.Client(timeout=http_timeout, verify=not insecure, follow_redirects=False,
                                              transport=_deadline_transport(not insecure),
                                              headers={"User-Agent": "vulnwatch"},
                                              event_hooks=httpx_event_hooks())
        self.auth = RegistryAuth(name, self.host, credentials, self._client, allow_http_realm=insecure)

    def __repr__(self) -> str:
        return f"OCIRegistry(name={self.name!r}, url={self.base_url!r}, insecure={self.insecure})"

    # ------------------------------------------------------------------ HTTP core

    def _send(self, method: str, url: str | httpx.URL, *, scope: str | None, where: dict,
              headers: dict | None = None, stream: bool = False,
              deadline: Deadline | None = None) -> httpx.Response:
        """One request with auth, retries and redirects (no ``Authorization`` off this host),
        within ``deadline`` and the one in force (:func:`~vulnwatch.model.current_deadline`).
        A TLS failure is permanent: not retried, and said as such."""
        attempt = 0
        retried_auth = False
        redirects = 0
        url = httpx.URL(str(url))
        deadline = _earliest(deadline, current_deadline())
        what = f"{method} {url.path}"
        while True:
            if deadline is not None and deadline.expired:
                raise _timed_out(deadline, what, where)
            req_headers = dict(headers or {})
            req_headers.update(self.auth.headers_for(url, scope))
            try:
                request = self._client.build_request(method, url, headers=req_headers)
                if deadline is not None:   # no single wait longer than the time left
                    left = max(0.05, deadline.remaining())
                    request.extensions["timeout"] = httpx.Timeout(
                        connect=min(self.limits.connect_timeout, left), read=min(self.limits.read_timeout, left),
                        write=min(self.limits.read_timeout, left), pool=min(self.limits.connect_timeout, left)
                    ).as_dict()
                with deadline_scope(deadline), self._slots:
                    resp = self._client.send(request, stream=stream, follow_redirects=False)
            except httpx.TransportError as e:
                tls = tls_verify_error(e)
                if tls is not None:
                    detail = redact(str(getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or tls))
                    raise RegistryError(f"TLS certificate verification failed for {self.base_url} ({detail}); "
                                        "not retried (a permanent error): give the registry a certificate this "
                                        "machine trusts (or set insecure: true for a test registry)",
                                        **where) from None
                if deadline is not None and deadline.expired:
                    raise _timed_out(deadline, what, where) from None
                if attempt < self.retries:
                    attempt += 1
                    self._sleep(attempt, None, deadline)
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
                # a request sent at once with another may have gone out before that one learnt the
                # challenge (its answer then says "tried"): it is retried with what is known now
                if self.auth.answer_challenge(resp, scope) or (
                        self.auth.headers_for(url, scope).get("Authorization") != req_headers.get("Authorization")):
                    resp.close()
                    continue
            if resp.status_code in _RETRY_STATUS and attempt < self.retries:
                delay = self._delay(attempt + 1, resp.headers.get("retry-after"))
                if deadline is not None and delay >= deadline.remaining():
                    return resp      # no time for another attempt: the caller reports this answer
                attempt += 1
                resp.close()
                time.sleep(delay)
                continue
            return resp

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before attempt ``attempt + 1``: exponential with jitter, at least ``Retry-After``."""
        delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, float(retry_after))
        return min(delay, 30.0)

    def _sleep(self, attempt: int, retry_after: str | None, deadline: Deadline | None = None) -> None:
        delay = self._delay(attempt, retry_after)
        if deadline is not None:
            delay = min(delay, deadline.remaining())
        time.sleep(delay)

    def _read_body(self, resp: httpx.Response, limit: int, deadline: Deadline | None, what: str,
                   where: dict, key: str) -> bytes:
        """The body of a streamed response, at most ``limit`` bytes (``key`` names the limit)
        and within ``deadline``: a server that drips is cut off, a huge answer refused early."""
        try:
            length = resp.headers.get("content-length")
            if length and length.isdigit() and int(length) > limit:
                raise RegistryError(f"{what}: the answer is {int(length)} bytes, over the limit of {limit} ({key}); "
                                    "refused without reading it", **where)
            parts: list[bytes] = []
            total = 0
            with deadline_scope(deadline):
                for chunk in resp.iter_bytes():      # as they arrive: a drip is seen, not buffered
                    total += len(chunk)
                    if total > limit:
                        raise RegistryError(f"{what}: the answer is larger than {limit} bytes ({key}); refused",
                                            **where)
                    parts.append(chunk)
                    if deadline is not None and deadline.expired:
                        raise _timed_out(deadline, what, where)
            return b"".join(parts)
        except httpx.TimeoutException as e:
            if deadline is not None and deadline.expired:
                raise _timed_out(deadline, what, where) from None
            raise RegistryError(f"{what}: no answer within limits.read_timeout ({type(e).__name__})",
                                retryable=True, **where) from None
        except httpx.HTTPError as e:
            raise RegistryError(f"{what}: the answer broke off ({type(e).__name__})", retryable=True,
                                **where) from None
        finally:
            resp.close()

    def _request_deadline(self) -> Deadline:
        return _earliest(Deadline.after(self.limits.request_timeout, "limits.request_timeout"),
                         current_deadline())

    def _error(self, resp: httpx.Response, what: str, where: dict, scope: str | None = None) -> RegistryError:
        """A :class:`RegistryError` for a failed response, with the registry's error codes."""
        if not resp.is_closed:
            try:
                body = self._read_body(resp, 64 << 10, self._request_deadline(), "error answer", where,
                                       "error body")
                resp._content = body
            except RegistryError:
                resp._content = b""
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

    def _catalog_error(self, resp: httpx.Response, what: str, where: dict, scope: str | None) -> RegistryError:
        """``_catalog`` refused: 404/405 (not offered), 403, or a 401 to a bearer token (the token
        server did not grant ``registry:catalog:*``) mean the registry does not list its
        repositories; a 401 to basic credentials is a wrong password, said as such."""
        err = self._error(resp, what, where, scope)
        challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
        status = resp.status_code
        if status in (403, 404, 405) or (status == 401 and challenge is not None and challenge.scheme == "bearer"):
            why = (f": the token server did not grant {scope} to {self.auth._creds_desc()}" if status == 401
                   else "")
            return CatalogUnavailableError(
                f"the registry does not list its repositories (GET /v2/_catalog answered {status}{why}); "
                "GHCR, Docker Hub, GitLab and Harbor robot accounts never do", **where)
        return err

    def _tags_error(self, resp: httpx.Response, what: str, where: dict, scope: str | None) -> RegistryError:
        err = self._error(resp, what, where, scope)
        if resp.status_code == 404:
            return RepositoryNotFoundError(f"repository not found (tags/list answered 404{_codes(err)})",
                                           **where)
        challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
        if (resp.status_code == 401 and challenge is not None and challenge.scheme == "bearer"
                and self.auth.has_token(scope)):
            # Docker Hub (and GHCR) answer a repository that does not exist with 401 to a token
            # that was issued without pull on it, never 404: from outside, "missing" and "not
            # yours" look the same, so say both and treat it like a 404 (a warning, not a failure).
            return RepositoryNotFoundError(
                f"repository not found, or not pullable with {self.auth._creds_desc()} (tags/list answered 401 "
                f"to a token the token server issued without {scope}; Docker Hub and GHCR answer so for a "
                "repository that does not exist)", **where)
        return err

    def _get_json(self, url: str, scope: str, where: dict, what: str,
                  errors=None) -> tuple[dict, httpx.Response]:
        deadline = self._request_deadline()
        resp = self._send("GET", url, scope=scope, where=where, headers={"Accept": "application/json"},
                          stream=True, deadline=deadline)
        if resp.status_code != 200:
            raise (errors or self._error)(resp, what, where, scope)
        body = self._read_body(resp, _MAX_JSON_BYTES, deadline, what, where, "a listing page")
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise RegistryError(f"{what}: the registry answered something that is not JSON", **where) from None
        if not isinstance(doc, dict):
            raise RegistryError(f"{what}: the registry answered JSON that is not an object", **where)
        return doc, resp

    def _paginate(self, path: str, key: str, scope: str, where: dict, what: str, errors=None) -> Iterator[str]:
        url: str | None = f"{self.base_url}{path}?n={self.page_size}"
        seen: set[str] = set()
        while url:
            if url in seen:
                raise RegistryError(f"{what}: pagination loops on {url}", **where)
            seen.add(url)
            doc, resp = self._get_json(url, scope, where, what, errors)
            yield from doc.get(key) or ()
            m = _LINK_NEXT.search(resp.headers.get("link", ""))
            url = str(httpx.URL(self.base_url).join(m.group(1))) if m else None

    # ------------------------------------------------------------------ Registry API

    def check(self) -> None:
        """``GET /v2/``: raises :class:`RegistryError` unless the registry answers and accepts us."""
        where = {"registry": self.name}
        resp = self._send("GET", f"{self.base_url}/v2/", scope=None, where=where, deadline=self._request_deadline())
        if resp.status_code != 200:
            raise self._error(resp, "GET /v2/", where)

    def repositories(self) -> Iterator[str]:
        """Every repository in ``/v2/_catalog``; :class:`CatalogUnavailableError` when the registry
        does not offer it (name repositories exactly there: they need no catalog)."""
        return self._paginate("/v2/_catalog", "repositories", CATALOG_SCOPE, {"registry": self.name},
                              "listing repositories (/v2/_catalog)", self._catalog_error)

    def canonical_repository(self, repository: str) -> str:
        """``repository`` as the registry names it: on Docker Hub a one-component name is an
        official image, ``debian`` -> ``library/debian``."""
        if self.docker_hub and "/" not in repository:
            return f"library/{repository}"
        return repository

    def tags(self, repository: str) -> Iterator[str]:
        """Every tag of ``repository`` (paginated to the end); :class:`RepositoryNotFoundError`
        when the registry does not have it."""
        repository = self.canonical_repository(repository)
        where = {"registry": self.name, "repository": repository}
        return self._paginate(f"/v2/{repository}/tags/list", "tags", repository_scope(repository), where,
                              "listing tags", self._tags_error)

    def resolve(self, repository: str, reference: str) -> tuple[str, str | None, int | None]:
        """(digest, media type, size) of a manifest by tag or digest, with ``HEAD`` (``GET`` as fallback)."""
        repository = self.canonical_repository(repository)
        where = {"registry": self.name, "repository": repository, "reference": reference}
        url = f"{self.base_url}/v2/{repository}/manifests/{quote(reference, safe=':')}"
        resp = self._send("HEAD", url, scope=repository_scope(repository), where=where,
                          headers={"Accept": ACCEPT_MANIFESTS}, deadline=self._request_deadline())
        if resp.status_code == 200 and resp.headers.get("docker-content-digest"):
            size = resp.headers.get("content-length")
            return (resp.headers["docker-content-digest"], resp.headers.get("content-type"),
                    int(size) if size and size.isdigit() else None)
        if resp.status_code not in (200, 405):
            raise self._error(resp, "HEAD manifest", where, repository_scope(repository))
        raw, mt, digest = self._fetch_manifest(repository, reference)
        return digest, mt, len(raw)

    def _resolve_all(self, repository: str, tags: list[str]) -> list[tuple[str, str | None, int | None]]:
        """:meth:`resolve` of every tag, in order, by the registry's one pool of resolving threads
        (shared by the repositories listed at once), each in a copy of the caller's context (its
        deadline holds there). The first error is raised once all have ended."""
        if len(tags) <= 1 or self.concurrency <= 1:
            return [self.resolve(repository, t) for t in tags]
        with self._resolver_lock:
            if self._resolver is None:
                self._resolver = ThreadPoolExecutor(self.concurrency, thread_name_prefix="vulnwatch-resolve")
            pool = self._resolver
        futures = [pool.submit(contextvars.copy_context().run, self.resolve, repository, t) for t in tags]
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()

    def images(self, repository: str) -> Iterator[Image]:
        repository = self.canonical_repository(repository)
        by_digest: dict[str, dict] = {}
        tags = list(self.tags(repository))
        for tag, (digest, media_type, _size) in zip(tags, self._resolve_all(repository, tags)):
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
        for d in (descriptor(x, where) for x in doc.get("manifests") or ()):
            if not d.platform or d.platform.startswith("unknown/"):
                continue  # attestations and other non-image entries
            yield Image(registry=self.name, repository=repository, digest=d.digest,
                        tags=tuple(f"{t} [{d.platform}]" for t in tags), media_type=d.media_type)

    def _fetch_manifest(self, repository: str, reference: str) -> tuple[bytes, str | None, str]:
        """GET a manifest: (bytes, media type, verified digest)."""
        repository = self.canonical_repository(repository)
        where = {"registry": self.name, "repository": repository, "reference": reference}
        url = f"{self.base_url}/v2/{repository}/manifests/{quote(reference, safe=':')}"
        deadline = self._request_deadline()
        resp = self._send("GET", url, scope=repository_scope(repository), where=where,
                          headers={"Accept": ACCEPT_MANIFESTS}, stream=True, deadline=deadline)
        if resp.status_code != 200:
            raise self._error(resp, "GET manifest", where, repository_scope(repository))
        headers = resp.headers
        raw = self._read_body(resp, self.limits.max_manifest_bytes, deadline, "GET manifest", where,
                              "limits.max_manifest_bytes")
        if ":" in reference:  # by digest: the bytes must hash to it
            h = hasher_for(reference, where)
            h.update(raw)
            got = f"{reference.split(':', 1)[0]}:{h.hexdigest()}"
            if got != reference:
                raise RegistryError(f"manifest content does not match the requested digest (got {got})", **where)
            digest = reference
        else:
            digest = digest_of(raw)
            header = headers.get("docker-content-digest")
            if header and header.startswith("sha256:") and header != digest:
                raise RegistryError(f"manifest bytes hash to {digest} but the registry says {header}", **where)
        media_type = (headers.get("content-type") or "").split(";")[0].strip() or None
        return raw, media_type, digest

    def _manifests(self, repository: str, reference: str, every: bool) -> list[Manifest]:
        where = {"registry": self.name, "repository": repository, "reference": reference}
        return resolve_manifests(lambda ref: self._fetch_manifest(repository, ref), reference, self.platform,
                                 where, every=every)

    def manifest(self, repository: str, reference: str) -> Manifest:
        return self._manifests(repository, reference, every=False)[0]

    def platform_manifests(self, repository: str, reference: str) -> tuple[Manifest, ...]:
        """All platform manifests of an index when ``all_platforms``, else ``(manifest(...),)``."""
        return tuple(self._manifests(repository, reference, every=self.all_platforms))

    def blob(self, repository: str, digest: str, *, size: int | None = None) -> BinaryIO:
        """Stream a blob; a :class:`RegistryError` is raised by ``read`` if the bytes do not match."""
        repository = self.canonical_repository(repository)
        where = {"registry": self.name, "repository": repository, "reference": digest}
        hasher_for(digest, where)
        if size is not None and self.max_blob_size is not None and size > self.max_blob_size:
            raise RegistryError(f"blob is {size} bytes, over the limit of {self.max_blob_size} (limits.max_blob_bytes)",
                                **where)
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        deadline = _earliest(Deadline.after(self.limits.blob_timeout, "limits.blob_timeout"), current_deadline())
        resp = self._send("GET", url, scope=repository_scope(repository), where=where, stream=True,
                          deadline=deadline)
        if resp.status_code != 200:
            err = self._error(resp, "GET blob", where, repository_scope(repository))
            resp.close()
            raise err
        length = resp.headers.get("content-length")
        expected = size if size is not None else (int(length) if length and length.isdigit()
                                                  and not resp.headers.get("content-encoding") else None)
        hasher = hasher_for(digest, where)
        with deadline_scope(deadline):
            chunks = _ReadAhead(resp.iter_bytes(), hasher, deadline=deadline)   # chunks as they arrive
        raw = VerifyingReader(chunks, digest, expected_size=expected, max_size=self.max_blob_size, where=where,
                              on_close=lambda: (chunks.close(), resp.close()), hashed_by=hasher, deadline=deadline)
        return io.BufferedReader(raw, buffer_size=1 << 16)

    def close(self) -> None:
        if self._resolver is not None:
            self._resolver.shutdown(wait=True, cancel_futures=True)
            self._resolver = None
        if self._own_client:
            self._client.close()
