"""Registry errors that retrying cannot fix are not retried and say what they are: a TLS
certificate that does not verify (the word TLS and certificate), 4xx other than 408/429; 429 is
retried honouring Retry-After, within the request deadline."""

from __future__ import annotations

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from vulnwatch.registries.interface import RegistryError, RequestLimits
from vulnwatch.registries.oci import OCIRegistry


class Server:
    """``/v2/`` answers the status of ``self.status`` (with ``Retry-After: 1`` for 429); counts
    requests and TCP connections."""

    def __init__(self, tls: bool = False) -> None:
        outer = self
        self.status = 200
        self.requests = 0
        self.connections = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def setup(self):
                outer.connections += 1
                super().setup()

            def do_GET(self):  # noqa: N802
                outer.requests += 1
                body = b'{"errors":[{"code":"DENIED","message":"no"}]}'
                self.send_response(outer.status)
                if outer.status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)    # a CA this machine does not trust
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_an_untrusted_certificate_is_a_tls_error_at_once():
    s = Server(tls=True)
    try:
        reg = OCIRegistry("tls", f"https://{s.host}", retries=3, backoff=1.0)
        started = time.monotonic()
        with pytest.raises(RegistryError) as e:
            reg.check()
        assert time.monotonic() - started < 2.0           # no backoff, no retries
        text = str(e.value)
        assert "TLS certificate verification failed" in text and "not retried" in text, text
        assert "cannot reach" not in text and not e.value.retryable
        assert s.connections == 1
    finally:
        s.close()


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_4xx_is_not_retried(server, status):
    server.status = status
    reg = OCIRegistry("r", f"http://{server.host}", insecure=True, retries=3, backoff=0.2)
    with pytest.raises(RegistryError) as e:
        reg.check()
    assert f"HTTP {status}" in str(e.value) and not e.value.retryable
    assert server.requests <= 2          # a 401 may be answered once (a challenge), never backed off


def test_429_is_retried_with_retry_after_within_the_request_deadline(server):
    server.status = 429
    reg = OCIRegistry("r", f"http://{server.host}", insecure=True, retries=5, backoff=0.01,
                      limits=RequestLimits(request_timeout=2.5))
    started = time.monotonic()
    with pytest.raises(RegistryError) as e:
        reg.check()
    took = time.monotonic() - started
    assert "HTTP 429" in str(e.value) and e.value.retryable
    assert 2 <= server.requests <= 3 and 1.0 <= took < 3.0, (server.requests, took)
