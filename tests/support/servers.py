"""Real servers the tests talk to over HTTP on 127.0.0.1: moto and a webhook receiver."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError as e:  # not up yet
            last = e
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout}s: {last}")


class MotoServer:
    """``moto_server`` in its own process (boto3 talks real HTTP to it)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/moto-api/")

    def reset(self) -> None:
        httpx.post(self.url + "/moto-api/reset", timeout=10).raise_for_status()

    def inject_findings(self, results: list[dict], region: str = "us-east-1") -> None:
        """Inject whole ``describe_image_scan_findings`` responses (see shared/FACTS.md)."""
        r = httpx.post(self.url + "/moto-api/static/ecr/scan-finding-results",
                       json={"results": results, "region": region}, timeout=10)
        assert r.status_code == 201, r.text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server recording every request. ``responses`` is a queue of
    ``(status, headers, body)`` to answer with; when empty it answers 200 ``ok``."""

    server: ThreadingHTTPServer
    requests: list[ReceivedRequest] = field(default_factory=list)
    responses: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self, path: str | None = None) -> list:
        return [r.json() for r in self.requests if path is None or r.path == path]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.responses.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_receiver() -> Receiver:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def do_POST(self):  # noqa: N802
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            rec = holder["r"]
            with rec.lock:
                rec.requests.append(ReceivedRequest("POST", self.path, dict(self.headers.items()), body))
                status, headers, out = rec.responses.pop(0) if rec.responses else (200, {}, b"ok")
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_PUT = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec = Receiver(server)
    holder["r"] = rec
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return rec


@dataclass
class FileServer:
    """A real HTTP server for downloads: ``files`` maps a path to its bytes; answers with an
    ETag (the content's sha256) and 304 to a matching ``If-None-Match``; records each GET."""

    server: ThreadingHTTPServer
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[ReceivedRequest] = field(default_factory=list)
    etags: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def statuses(self) -> list[int]:
        return [int(r.headers.get("x-status", 0)) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_file_server(files: dict[str, bytes] | None = None, *, etags: bool = True) -> FileServer:
    import hashlib

    holder: dict[str, FileServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def do_GET(self):  # noqa: N802
            fs = holder["s"]
            body = fs.files.get(self.path.split("?", 1)[0])
            headers = dict(self.headers.items())
            if body is None:
                status, out, extra = 404, b"not found", {}
            else:
                tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                extra = {"ETag": tag} if fs.etags else {}
                if fs.etags and self.headers.get("If-None-Match") == tag:
                    status, out = 304, b""
                else:
                    status, out = 200, body
            headers["x-status"] = str(status)
            fs.requests.append(ReceivedRequest("GET", self.path, headers, b""))
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fs = FileServer(server, dict(files or {}), etags=etags)
    holder["s"] = fs
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fs
