"""Secrets never leave: a full ``run`` with a webhook URL token (path and query), a registry
password (a real docker-registry with basic auth, and a registry of the tests' own that echoes
the request it was sent in its error), an HMAC secret, a custom header, and receivers that echo
the whole request (URL, Authorization, every header) in their error bodies. None of the secrets
appears in the logs (DEBUG, text and JSON), the state database (``last_error`` of images and
deliveries), ``events --format json`` or ``status --format json``."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from tests.support.registry import start_registry
from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR

REG_PASSWORD = "Reg-pw-9f8e7d6c5b"
URL_TOKEN = "T0KEN-in-the-path-4b3a2918"
QUERY_TOKEN = "qs-t0ken-77aa66bb55"
HMAC_SECRET = "hmac-s3cret-0c1d2e3f"
HEADER_VALUE = "Bearer hdr-t0ken-a1b2c3d4e5"
SLACK_TOKEN = "XXslackTOKENxx12345678"


class Echo:
    """Answers every request with an error whose body is the request itself: POSTs with the
    status their path asks for (``/s400/...``, ``/s500/...``); registry GETs ask for basic
    credentials first, then refuse them (403) quoting the request."""

    def __init__(self) -> None:
        outer = self
        self.seen: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _echo(self, status: int, extra: dict | None = None) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
                req = {"method": self.command, "url": f"http://{self.headers.get('Host')}{self.path}",
                       "headers": dict(self.headers.items()), "body": body[:500]}
                outer.seen.append(req)
                text = json.dumps(req)
                out = (json.dumps({"errors": [{"code": "DENIED", "message": f"you sent {text}"}]})
                       if self.command in ("GET", "HEAD") else f"bad request, you sent: {text}").encode()
                self.send_response(status)
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            def do_POST(self):  # noqa: N802
                self._echo(500 if self.path.startswith("/s500") else 400)

            def do_GET(self):  # noqa: N802
                if "Authorization" not in self.headers:
                    return self._echo(401, {"WWW-Authenticate": 'Basic realm="echo"'})
                self._echo(403)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("basic"), users={"ci": REG_PASSWORD},
                         push_creds=f"ci:{REG_PASSWORD}")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "team/app", "1.0")
    yield reg
    reg.stop()


def test_no_secret_reaches_logs_database_or_events(tmp_path, monkeypatch, basic):
    echo = Echo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REG_PASSWORD", REG_PASSWORD)
    monkeypatch.setenv("HOOK_URL", f"{echo.url}/s400/hooks/{URL_TOKEN}?token={QUERY_TOKEN}")
    monkeypatch.setenv("RETRY_URL", f"{echo.url}/s500/{URL_TOKEN}")
    monkeypatch.setenv("SLACK_URL", f"{echo.url}/s400/services/T0/B0/{SLACK_TOKEN}")
    monkeypatch.setenv("HOOK_SECRET", HMAC_SECRET)
    monkeypatch.setenv("HOOK_HEADER", HEADER_VALUE)
    db = tmp_path / "state.db"
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {db}}}
vulndb: {{path: {tmp_path / 'osv.db'}, imports: [{OSV_DIR / 'Debian'}, {OSV_DIR / 'PyPI'}]}}
registries:
  - {{name: real, type: oci, url: '{basic.url}', insecure: true, username: ci, password: '${{REG_PASSWORD}}'}}
  - name: echoing
    type: oci
    url: '{echo.url}'
    insecure: true
    username: ci
    password: '${{REG_PASSWORD}}'
    repositories: [{{name: team/app}}]
notifications:
  - {{name: hook, type: webhook, url: '${{HOOK_URL}}', secret: '${{HOOK_SECRET}}',
     headers: {{X-Api-Token: '${{HOOK_HEADER}}'}}}}
  - {{name: retry, type: webhook, url: '${{RETRY_URL}}', headers: {{Authorization: '${{HOOK_HEADER}}'}}}}
  - {{name: chat, type: slack, url: '${{SLACK_URL}}'}}
delivery: {{max_attempts: 2, backoff_base: 1s}}
""")
    secrets = [REG_PASSWORD, URL_TOKEN, QUERY_TOKEN, HMAC_SECRET, HEADER_VALUE, HEADER_VALUE.split()[1],
               SLACK_TOKEN, base64.b64encode(f"ci:{REG_PASSWORD}".encode()).decode()]
    runner = CliRunner()
    outputs = []
    try:
        for args in (["--log-level", "DEBUG", "run"], ["--log-format", "json", "--log-level", "DEBUG", "run"],
                     ["events", "--format", "json"], ["events", "--dead", "--format", "json"],
                     ["status", "--format", "json"], ["run", "--format", "json"]):
            result = runner.invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)
            outputs.append((args, result.stdout + result.stderr))
    finally:
        echo.close()

    # the receivers and the echoing registry really did get the secrets, and echoed them back
    sent = json.dumps(echo.seen)
    assert URL_TOKEN in sent and QUERY_TOKEN in sent and HEADER_VALUE in sent and SLACK_TOKEN in sent
    assert any(r["headers"].get("Authorization", "").startswith("Basic ") for r in echo.seen)
    run_out = outputs[0][1]
    assert "echoing" in run_out and "403" in run_out, run_out           # the registry failure is shown
    assert "hook" in run_out and "400" in run_out, run_out               # and the refused delivery

    for args, text in outputs:
        for s in secrets:
            assert s not in text, f"{s!r} in the output of {args}:\n{text}"

    con = sqlite3.connect(db)
    dump = "\n".join(con.iterdump())
    con.close()
    assert "last_error" in dump and "you sent" in dump      # echoed errors were stored (redacted)
    for s in secrets:
        assert s not in dump, f"{s!r} stored in the state database"
