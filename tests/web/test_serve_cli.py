"""``vulnwatch serve`` itself: with no config file it serves the embedded-default store that
``vulnwatch run`` writes; --host/--port; a real process, stopped by its pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
from typer.testing import CliRunner

from tests.support.servers import free_port
from vulnwatch.cli.main import app


def test_serve_with_no_config_shows_what_run_wrote(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "VULNWATCH_CONFIG"}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("VULNWATCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)                                      # no ./vulnwatch.yaml here
    r = CliRunner().invoke(app, ["run", "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    status = json.loads(CliRunner().invoke(app, ["status", "--format", "json"]).stdout)
    assert [s["repository"] for s in status] == ["example/webapp"]
    assert (tmp_path / "home" / ".local/state/vulnwatch/vulnwatch.db").exists()

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from vulnwatch.cli.main import main; main()",
                             "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
        doc = httpx.get(f"http://127.0.0.1:{port}/api/v1/images", timeout=10).json()
        [row] = doc["items"]
        assert row["image"]["repository"] == "example/webapp" and row["image"]["digest"] == status[0]["digest"]
        assert row["counts"] == status[0]["counts"]
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json() == {"status": "ready"}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert "vulnwatch dashboard on http://127.0.0.1:" in err and "read-only" in err


def test_serve_refuses_a_store_it_cannot_open_with_a_clear_error(tmp_path):
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text("state: {url: 'postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/db'}\n")
    r = CliRunner().invoke(app, ["--config", str(cfg), "serve", "--port", str(free_port())])
    assert r.exit_code == 3 and "state store" in r.output and "s3cret-pw" not in r.output    # 3: could not run


def test_check_config_shows_the_web_section_without_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("WEB_TOKEN", "env-read-token-1")
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text("web:\n  port: 9000\n  token: ${WEB_TOKEN}\n  write_token: write-token-1\n")
    r = CliRunner().invoke(app, ["--config", str(cfg), "check-config"])
    assert r.exit_code == 0, r.output
    assert "web: 127.0.0.1:9000, auth required, writes enabled" in r.output
    assert "env-read-token-1" not in r.output and "write-token-1" not in r.output
    from vulnwatch.config import load_config
    assert load_config(cfg).web.token.get_secret_value() == "env-read-token-1"
    cfg.write_text("web: {username: ops}\n")
    r = CliRunner().invoke(app, ["--config", str(cfg), "check-config"])
    assert r.exit_code == 2 and "web.password" in r.output
