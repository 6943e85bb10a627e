"""A misbehaving Registry v2 server of the tests' own (a small threaded HTTP server on
127.0.0.1), serving one real image under repositories whose name says how it misbehaves.

``BadRegistry(image)`` serves ``/v2/``, ``/v2/_catalog``, ``/v2/<repo>/tags/list`` (tag ``1``),
``HEAD``/``GET /v2/<repo>/manifests/<ref>`` and ``GET /v2/<repo>/blobs/<digest>``. The behaviour
of a repository is its last path component:

``fine``        answers like a registry should (a control)
``err500``      every manifest request answers 500
``ratelimited`` every manifest request answers 429 with ``Retry-After: 1``
``hang``        manifest requests never answer (headers never come)
``headerdrip``  manifest answers drip their status line and headers, a byte every 0.3 s
``slowmanifest`` the manifest body drips at 16 bytes/s
``drip``        blobs drip at 16 bytes/s (headers at once)
``stall``       blobs send their headers and part of the body, then nothing
``wrongdigest`` blobs answer other bytes than their digest names
``truncated``   blobs announce their length and stop half way (the connection closes)
``malformed``   the manifest is not JSON
``huge``        the manifest announces 300 MB (and would send them)
``hugechunked`` the manifest is sent chunked without a length, without end
``badlayer``    the manifest names a layer whose bytes are not gzip/tar (its digest matches)

Every request is recorded in ``requests`` (method, path).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

BEHAVIOURS = ("fine", "err500", "ratelimited", "hang", "headerdrip", "slowmanifest", "drip", "stall", "wrongdigest",
              "truncated", "malformed", "huge", "hugechunked", "badlayer")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BadRegistry:
    """``blobs``: digest -> bytes of the image (config and layers); ``manifest``: its manifest
    bytes (OCI or Docker v2)."""

    def __init__(self, manifest: bytes, media_type: str, blobs: dict[str, bytes],
                 repositories: tuple[str, ...] = ()) -> None:
        self.manifest = manifest
        self.media_type = media_type
        self.blobs = dict(blobs)
        self.repositories = repositories or tuple(f"bad/{b}" for b in BEHAVIOURS)
        self.requests: list[tuple[str, str]] = []
        self._stop = threading.Event()
        junk = b"this is not a layer at all" * 10
        self.junk_digest = _digest(junk)
        self.blobs[self.junk_digest] = junk
        doc = json.loads(manifest)
        doc["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": self.junk_digest, "size": len(junk)}]
        doc.setdefault("mediaType", media_type)
        self.badlayer_manifest = json.dumps(doc).encode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_HEAD(self):  # noqa: N802
                outer._handle(self, head=True)

            def do_GET(self):  # noqa: N802
                outer._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ serving
    def _send(self, h, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False,
              length: int | None = None) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        if not head and body:
            h.wfile.write(body)

    @staticmethod
    def _head(h, headers: dict) -> None:
        """A 200 status line and ``headers``, nothing else (the caller sends the body its way)."""
        h.send_response(200)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()

    def _drip(self, h, body: bytes, rate: int = 16) -> None:
        try:
            for i in range(0, len(body), rate):
                if self._stop.is_set():
                    return
                h.wfile.write(body[i:i + rate])
                h.wfile.flush()
                time.sleep(1)
        except OSError:
            return

    def _handle(self, h, head: bool) -> None:
        path = h.path.split("?", 1)[0]
        self.requests.append((h.command, path))
        if path == "/v2/":
            return self._send(h, 200, b"{}", {"Content-Type": "application/json"}, head)
        if path == "/v2/_catalog":
            body = json.dumps({"repositories": list(self.repositories)}).encode()
            return self._send(h, 200, body, {"Content-Type": "application/json"}, head)
        if not path.startswith("/v2/"):
            return self._send(h, 404, b"{}", head=head)
        rest = path[4:]
        for kind in ("/tags/list", "/manifests/", "/blobs/"):
            if kind in rest:
                repo, _, ref = rest.partition(kind)
                break
        else:
            return self._send(h, 404, b'{"errors":[{"code":"UNSUPPORTED"}]}', head=head)
        behaviour = repo.rsplit("/", 1)[-1]
        if kind == "/tags/list":
            body = json.dumps({"name": repo, "tags": ["1"]}).encode()
            return self._send(h, 200, body, {"Content-Type": "application/json"}, head)
        if kind == "/manifests/":
            return self._manifest(h, behaviour, head)
        return self._blob(h, behaviour, ref, head)

    def _manifest(self, h, behaviour: str, head: bool) -> None:
        raw = self.badlayer_manifest if behaviour == "badlayer" else self.manifest
        if behaviour == "malformed":
            raw = b'{"schemaVersion": 2, "layers": [ not json'
        headers = {"Content-Type": self.media_type, "Docker-Content-Digest": _digest(raw)}
        if behaviour == "err500":
            return self._send(h, 500, b'{"errors":[{"code":"UNKNOWN","message":"internal error"}]}', head=head)
        if behaviour == "ratelimited":
            return self._send(h, 429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
                              {"Retry-After": "1"}, head)
        if behaviour == "hang":
            self._stop.wait(600)
            return
        if behaviour == "headerdrip":
            head_bytes = (f"HTTP/1.1 200 OK\r\nContent-Type: {self.media_type}\r\nContent-Length: {len(raw)}\r\n"
                          f"Docker-Content-Digest: {_digest(raw)}\r\n\r\n").encode()
            try:
                for i in range(len(head_bytes)):
                    if self._stop.wait(0.3):
                        return
                    h.wfile.write(head_bytes[i:i + 1])
                    h.wfile.flush()
                if not head:
                    h.wfile.write(raw)
            except OSError:
                pass
            h.close_connection = True
            return
        if behaviour == "huge":
            headers["Docker-Content-Digest"] = "sha256:" + "0" * 64
            if head:
                return self._send(h, 200, b"", headers, True, length=300 * 1024 * 1024)
            self._head(h, {**headers, "Content-Length": str(300 * 1024 * 1024)})
            self._stream_zeros(h, chunked=False)
            return
        if behaviour == "hugechunked":
            headers["Docker-Content-Digest"] = "sha256:" + "1" * 64
            if head:
                return self._send(h, 200, b"", headers, True, length=300 * 1024 * 1024)
            self._head(h, {**headers, "Transfer-Encoding": "chunked"})
            self._stream_zeros(h, chunked=True)
            return
        if behaviour == "slowmanifest" and not head:
            self._head(h, {**headers, "Content-Length": str(len(raw))})
            self._drip(h, raw)
            return
        return self._send(h, 200, raw, headers, head)

    def _stream_zeros(self, h, chunked: bool) -> None:
        block = b" " * 65536
        try:
            for _ in range(300 * 16):        # at most 300 MiB, stopped by the client's refusal
                if self._stop.is_set():
                    return
                if chunked:
                    h.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
                else:
                    h.wfile.write(block)
        except OSError:
            return

    def _blob(self, h, behaviour: str, digest: str, head: bool) -> None:
        data = self.blobs.get(digest)
        if data is None:
            return self._send(h, 404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', head=head)
        is_config = json.loads(self.manifest).get("config", {}).get("digest") == digest
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        if is_config or behaviour in ("fine", "badlayer", "slowmanifest", "malformed", "huge", "hugechunked",
                                      "err500", "ratelimited", "hang", "headerdrip"):
            return self._send(h, 200, data, headers, head)
        if behaviour == "drip":
            self._head(h, {**headers, "Content-Length": str(len(data))})
            self._drip(h, data)
            return
        if behaviour == "stall":
            self._head(h, {**headers, "Content-Length": str(len(data))})
            try:
                h.wfile.write(data[: len(data) // 3])
                h.wfile.flush()
            except OSError:
                return
            self._stop.wait(600)
            return
        if behaviour == "wrongdigest":
            other = bytes(reversed(data))
            return self._send(h, 200, other, headers, head)
        if behaviour == "truncated":
            self._head(h, {**headers, "Content-Length": str(len(data)), "Connection": "close"})
            try:
                h.wfile.write(data[: len(data) // 2])
                h.wfile.flush()
            except OSError:
                pass
            h.close_connection = True
            return
        return self._send(h, 200, data, headers, head)
