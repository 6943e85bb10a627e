"""A real HTTP proxy in front of moto_server that makes its ECR answers look like real ECR's.

moto ignores ``maxResults`` (everything comes in one page), never reports a scan as
unfinished, and leaves ``imageScanFindingsSummary`` out of ``DescribeImages``. The proxy
forwards every request to moto and then:

* re-pages ``DescribeImages``, ``ListImages``, ``DescribeRepositories`` and the finding
  lists of ``DescribeImageScanFindings`` (``page_size`` per page unless the client asks
  for fewer; ``nextToken`` is an offset it understands);
* answers ``DescribeImageScanFindings`` itself with a queued scan status for a digest
  (``queue_status(digest, "IN_PROGRESS", times=3)``) before forwarding again;
* serves a canned ``DescribeImageScanFindings`` response for a digest (``findings[digest]``);
* adds ``imageScanFindingsSummary`` / ``imageScanStatus`` to ``DescribeImages`` entries
  (``summaries[digest] = {...}``).

``calls`` counts requests per operation (``DescribeImages``: 3).
"""

from __future__ import annotations

import collections
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

#: operation -> path of the list it pages (a key, or two keys for a nested list).
PAGED: dict[str, tuple[tuple[str, ...], ...]] = {
    "DescribeImages": (("imageDetails",),),
    "ListImages": (("imageIds",),),
    "DescribeRepositories": (("repositories",),),
    "DescribeImageScanFindings": (("imageScanFindings", "findings"), ("imageScanFindings", "enhancedFindings")),
}


class ECRProxy:
    def __init__(self, upstream: str, page_size: int = 100) -> None:
        self.upstream = upstream.rstrip("/")
        self.page_size = page_size
        self.calls: collections.Counter[str] = collections.Counter()
        self.statuses: dict[str, list[dict[str, str]]] = {}
        self.findings: dict[str, dict[str, Any]] = {}
        self.summaries: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.http = httpx.Client(timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else every serial call waits ~40 ms (delayed ACK)

            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, out = proxy.handle(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def queue_status(self, digest: str, status: str, *, times: int = 1, description: str | None = None,
                     findings: dict[str, Any] | None = None) -> None:
        """Answer the next ``times`` findings calls for ``digest`` with this scan status (and,
        to catch clients that read findings of unfinished scans, optional ``imageScanFindings``)."""
        entry: dict[str, Any] = {"status": status, **({"description": description} if description else {})}
        if findings is not None:
            entry["_findings"] = findings
        with self.lock:
            self.statuses.setdefault(digest, []).extend([entry] * times)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()

    # -- request handling -------------------------------------------------------------------
    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
        op = target.rsplit(".", 1)[-1]
        with self.lock:
            self.calls[op] += 1
        req = json.loads(body) if body else {}
        json_headers = {"Content-Type": "application/x-amz-json-1.1"}

        if op == "DescribeImageScanFindings":
            digest = (req.get("imageId") or {}).get("imageDigest")
            with self.lock:
                queued = self.statuses.get(digest) or []
                status = queued.pop(0) if queued else None
                canned = self.findings.get(digest)
            if status is not None:
                status = dict(status)
                out = {"repositoryName": req.get("repositoryName"), "imageId": req.get("imageId")}
                if "_findings" in status:
                    out["imageScanFindings"] = status.pop("_findings")
                out["imageScanStatus"] = status
                return 200, json_headers, json.dumps(out).encode()
            if canned is not None:
                return 200, json_headers, json.dumps(self._page(op, req, canned)).encode()

        token = req.pop("nextToken", None)
        max_results = req.pop("maxResults", None)
        if op in PAGED:
            body = json.dumps(req).encode()
        fwd_headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        resp = self.http.post(self.upstream + path, content=body, headers=fwd_headers)
        out_headers = {"Content-Type": resp.headers.get("content-type", "application/x-amz-json-1.1")}
        if resp.status_code != 200 or op not in PAGED:
            return resp.status_code, out_headers, resp.content
        data = resp.json()
        if op == "DescribeImages" and self.summaries:
            for detail in data.get("imageDetails", []):
                extra = self.summaries.get(detail.get("imageDigest"))
                if extra:
                    detail.update(extra)
        req["nextToken"], req["maxResults"] = token, max_results
        return 200, out_headers, json.dumps(self._page(op, req, data)).encode()

    def _page(self, op: str, req: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        data = json.loads(json.dumps(data))  # private copy
        start = int(str(req.get("nextToken") or "proxy-0").removeprefix("proxy-"))
        size = min(int(req.get("maxResults") or self.page_size), self.page_size)
        more = False
        for keys in PAGED.get(op, ()):
            holder = data
            for k in keys[:-1]:
                holder = holder.get(k) or {}
            items = holder.get(keys[-1])
            if isinstance(items, list):
                holder[keys[-1]] = items[start:start + size]
                more = more or len(items) > start + size
        data.pop("nextToken", None)
        if more:
            data["nextToken"] = f"proxy-{start + size}"
        return data
