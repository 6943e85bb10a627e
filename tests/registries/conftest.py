"""Real registries for the registry tests: started once per session, images pushed once.

* ``plain_registry``: no auth; repos ``app`` (v1, v2, six extra tags on v1), ``multi``
  (linux/amd64 + linux/arm64 index), ``dock`` (Docker v2 schema2), ``corrupt``, ``r0``..``r4``.
* ``basic_registry``: htpasswd user ``alice`` / :data:`BASIC_PASSWORD`; repo ``app:v1``.
* ``token_registry``: token auth; ``alice`` may pull ``repo-a`` only, ``admin`` everything.
* :class:`Proxy`: a real HTTP front for a registry that can paginate tags per the spec
  (Distribution 2.8 ignores ``n`` on tags/list), answer 503 first, or redirect blob
  GETs to a second server (:class:`BlobStore`) that records the headers it receives.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.registries.synthetic import WrittenImage, write_image, write_index
from tests.support.registry import RunningRegistry, start_registry
from tests.support.token_server import TokenServer, User

BASIC_PASSWORD = "s3cret-Basic-pw!"
TOKEN_PASSWORD = "s3cret-Token-pw!"
REFRESH_TOKEN = "alice-refresh-token-s3cret"
EXTRA_TAGS = [f"t{i}" for i in range(6)]
MANY_REPOS = [f"r{i}" for i in range(5)]


@dataclass
class Images:
    layout: Path
    v1: WrittenImage
    v2: WrittenImage
    corrupt: WrittenImage
    index_digest: str
    per_platform: dict[str, WrittenImage]


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Images:
    layout = tmp_path_factory.mktemp("oci") / "layout"
    v1 = write_image(layout, "v1", {"etc/os-release": b"ID=test\nVERSION_ID=1\n", "usr/bin/hello": b"#!/bin/sh\n"})
    v2 = write_image(layout, "v2", {"etc/os-release": b"ID=test\nVERSION_ID=2\n", "usr/bin/hello": b"v2\n"})
    corrupt = write_image(layout, "corrupt", {"only-in-corrupt": b"unique content for the corruption test"})
    index_digest, per = write_index(layout, "multi", {"linux/amd64": {"arch": b"amd64"},
                                                      "linux/arm64": {"arch": b"arm64"}})
    return Images(layout, v1, v2, corrupt, index_digest, per)


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory, images) -> RunningRegistry:
    reg = start_registry(tmp_path_factory.mktemp("plain-registry"))
    lay = images.layout
    reg.push(f"oci:{lay}:v1", "app", "v1")
    reg.push(f"oci:{lay}:v2", "app", "v2")
    for tag in EXTRA_TAGS:
        reg.push(f"oci:{lay}:v1", "app", tag)
    reg.push(f"oci:{lay}:multi", "multi", "latest", all_platforms=True)
    reg.push(f"oci:{lay}:v1", "dock", "v1", fmt="v2s2")
    reg.push(f"oci:{lay}:corrupt", "corrupt", "v1")
    for repo in MANY_REPOS:
        reg.push(f"oci:{lay}:v2", repo, "latest")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory, images) -> RunningRegistry:
    reg = start_registry(tmp_path_factory.mktemp("basic-registry"), users={"alice": BASIC_PASSWORD},
                         push_creds=f"alice:{BASIC_PASSWORD}")
    reg.push(f"oci:{images.layout}:v1", "app", "v1")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_server():
    server = TokenServer({
        "admin": User("admin-pw", {"*": "pull,push"}, catalog=True),
        "alice": User(TOKEN_PASSWORD, {"repo-a": "pull"}, catalog=False),
    }, refresh_tokens={REFRESH_TOKEN: "alice"})
    yield server
    server.close()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory, images, token_server) -> RunningRegistry:
    reg = start_registry(tmp_path_factory.mktemp("token-registry"), token_server=token_server,
                         push_creds="admin:admin-pw")
    reg.push(f"oci:{images.layout}:v1", "repo-a", "v1")
    reg.push(f"oci:{images.layout}:v2", "repo-a", "v2")
    reg.push(f"oci:{images.layout}:v1", "repo-a", "also-v1")
    reg.push(f"oci:{images.layout}:v2", "repo-b", "v1")
    yield reg
    reg.stop()


# ---------------------------------------------------------------------------- HTTP fronts

_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class BlobStore:
    """A second server that serves blobs it is redirected to, recording each request's headers."""

    upstream: str
    upstream_auth: tuple[str, str] | None
    requests: list[dict[str, str]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.httpd.server_address[1]}"


@dataclass
class Proxy:
    """A real HTTP front for a registry (see module docstring)."""

    upstream: str
    paginate_tags: bool = False
    fail_first: int = 0
    """Answer 503 to this many requests before forwarding."""
    blob_store: BlobStore | None = None
    tamper_manifests: bool = False
    """Append a space to every manifest body (still JSON, other digest)."""
    refuse_catalog: int | None = None
    """Answer ``/v2/_catalog`` with this status (404 as GHCR and GitLab, 401 with a bearer
    challenge as Docker Hub), as registries that do not list their repositories do."""
    hold_heads: float = 0.0
    """Seconds to hold each ``HEAD`` of a manifest before forwarding it (a slow registry)."""
    hold_tags: float = 0.0
    """Seconds to hold each ``tags/list`` request before forwarding it."""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    """The most held requests (``hold_*``) it was holding at once."""
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


def _serve(handler_cls) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def start_blob_store(upstream: str, auth: tuple[str, str] | None = None) -> BlobStore:
    store = BlobStore(upstream, auth)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802  path: /<repo>/<digest>
            store.requests.append({k.lower(): v for k, v in self.headers.items()})
            repo, digest = self.path.lstrip("/").rsplit("/", 1)
            r = httpx.get(f"{store.upstream}/v2/{repo}/blobs/{digest}", auth=store.upstream_auth,
                          follow_redirects=True)
            self.send_response(r.status_code)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

    store.httpd = _serve(Handler)
    return store


def start_proxy(upstream: str, **options) -> Proxy:
    proxy = Proxy(upstream, **options)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in _HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self):
            hold = (proxy.hold_heads if self.command == "HEAD" and "/manifests/" in self.path else
                    proxy.hold_tags if "/tags/list" in self.path else 0)
            if hold:       # counted while held: not answered yet, so surely in flight for the client
                with lock:
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    time.sleep(hold)
                finally:
                    with lock:
                        proxy.in_flight -= 1
            self._forward_now()

        def _forward_now(self):
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            with lock:
                proxy.requests.append((self.command, self.path, {k.lower(): v for k, v in headers.items()}))
                fail = proxy.fail_first > 0
                if fail:
                    proxy.fail_first -= 1
            if fail:
                return self._answer(503, {"Content-Type": "application/json"},
                                    b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}')
            path = urlsplit(self.path).path
            if proxy.refuse_catalog and path == "/v2/_catalog":
                return self._refuse_catalog(headers)
            if proxy.blob_store and self.command == "GET" and "/blobs/sha256:" in path:
                if "authorization" not in {k.lower() for k in headers}:
                    r = httpx.request(self.command, proxy.upstream + self.path, headers=headers)
                    return self._answer(r.status_code, dict(r.headers), r.content)
                repo, digest = path[len("/v2/"):].split("/blobs/")
                return self._answer(307, {"Location": f"{proxy.blob_store.url}/{repo}/{digest}"}, b"")
            if proxy.paginate_tags and path.endswith("/tags/list"):
                return self._tags(path, headers)
            r = httpx.request(self.command, proxy.upstream + self.path, headers=headers)
            body = r.content
            if proxy.tamper_manifests and "/manifests/" in path and r.status_code == 200:
                body += b" "
            self._answer(r.status_code, dict(r.headers), body)

        def _refuse_catalog(self, headers: dict[str, str]) -> None:
            status = proxy.refuse_catalog
            extra = {"Content-Type": "application/json"}
            if status == 401:
                # as Docker Hub: a challenge for the catalog scope, which no token ever grants
                upstream = httpx.get(proxy.upstream + "/v2/")
                challenge = upstream.headers.get("www-authenticate", 'Bearer realm="http://127.0.0.1:1/token"')
                extra["WWW-Authenticate"] = challenge.split(",scope=")[0] + ',scope="registry:catalog:*"'
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            else:
                body = b'{"errors":[{"code":"NOT_FOUND","message":"404 page not found"}]}'
            self._answer(status, extra, body)

        def _tags(self, path: str, headers: dict[str, str]) -> None:
            r = httpx.get(proxy.upstream + path, headers=headers)
            if r.status_code != 200:
                return self._answer(r.status_code, dict(r.headers), r.content)
            q = parse_qs(urlsplit(self.path).query)
            n = int(q.get("n", ["1000"])[0])
            last = q.get("last", [""])[0]
            doc = r.json()
            tags = sorted(t for t in doc["tags"] if t > last)
            page, more = tags[:n], len(tags) > n
            extra = {"Content-Type": "application/json"}
            if more:
                extra["Link"] = f'<{path}?{urlencode({"n": n, "last": page[-1]})}>; rel="next"'
            self._answer(200, extra, json.dumps({"name": doc["name"], "tags": page}).encode())

        do_GET = do_HEAD = _forward

    proxy.httpd = _serve(Handler)
    return proxy


@pytest.fixture
def make_proxy():
    started: list = []

    def make(upstream: str, **options) -> Proxy:
        p = start_proxy(upstream, **options)
        started.append(p.httpd)
        return p

    yield make
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def make_blob_store():
    started: list = []

    def make(upstream: str, auth=None) -> BlobStore:
        s = start_blob_store(upstream, auth)
        started.append(s.httpd)
        return s

    yield make
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()
