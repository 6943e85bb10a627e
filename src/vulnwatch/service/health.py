"""``/healthz`` (liveness) and ``/readyz`` (readiness) over plain HTTP, from a thread.

Each answer is JSON: ``{"ok": true|false, ...details}`` with status 200 or 503. The checks are
callables handed in by the daemon; a check that raises answers 503 with the error's type only
(never a message that could carry a database URL).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, dict[str, Any]]]
"""``() -> (ok, details)``."""


class HealthServer:
    """Serves ``/healthz`` with ``live`` and ``/readyz`` with ``ready`` on ``host:port`` (0: a
    free port, see :attr:`port`)."""

    def __init__(self, host: str, port: int, *, live: Check, ready: Check) -> None:
        checks = {"/healthz": live, "/livez": live, "/readyz": ready}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # probes every few seconds: not worth a line
                pass

            def do_GET(self) -> None:  # noqa: N802
                check = checks.get(self.path.split("?", 1)[0])
                if check is None:
                    self._answer(404, {"ok": False, "error": "not found; try /healthz or /readyz"})
                    return
                try:
                    ok, details = check()
                except Exception as e:  # a broken check is a failed check
                    ok, details = False, {"error": type(e).__name__}
                self._answer(200 if ok else 503, {"ok": ok, **details})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="vulnwatch-health", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "HealthServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
