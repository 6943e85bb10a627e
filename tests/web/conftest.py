"""Fixtures of the dashboard tests: real stores filled by real pipeline runs (SQLite and
PostgreSQL), the app served by uvicorn on a free port in a thread, and Debian's Chromium
driven by Playwright."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.support.servers import free_port
from tests.web.fleet import Fleet, fill

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("VULNWATCH_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WRITE_TOKEN = "write-token-for-tests"


@pytest.fixture(scope="session")
def sqlite_fleet(tmp_path_factory) -> Fleet:
    d = tmp_path_factory.mktemp("fleet-sqlite")
    return fill(d, f"{{path: {d / 'state.db'}}}")


@pytest.fixture(scope="session")
def pg_fleet(tmp_path_factory, pg_cluster) -> Fleet:
    d = tmp_path_factory.mktemp("fleet-pg")
    return fill(d, f"{{url: '{pg_cluster.create_database()}'}}")


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet(request) -> Fleet:
    """The filled fleet, once on each database (read-only tests only: it is shared)."""
    return request.getfixturevalue("sqlite_fleet" if request.param == "sqlite" else "pg_fleet")


def load(fleet: Fleet, hook_url: str = "http://127.0.0.1:9/hook", web: str = ""):
    from vulnwatch.config import load_config

    cfg = fleet.dir / f"web-{abs(hash((hook_url, web)))}.yaml"
    cfg.write_text(fleet.config_text(hook_url, web))
    return load_config(cfg)


class Served:
    """The app of ``cfg`` under uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, cfg) -> None:
        import uvicorn

        from vulnwatch.web.app import create_app

        self.app = create_app(cfg)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.app.state.store.close()


@pytest.fixture
def serve():
    started: list[Served] = []

    def start(cfg) -> Served:
        s = Served(cfg)
        started.append(s)
        return s
    yield start
    for s in started:
        s.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context; its console errors fail the test; ``shot(name)`` saves a screenshot
    under tests/web/artifacts/ (ignored by git)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    ARTIFACTS.mkdir(exist_ok=True)

    def shot(name: str) -> Path:
        path = ARTIFACTS / f"{request.node.name.replace('/', '_')}-{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path
    pg.shot = shot
    pg.console_errors = errors
    yield pg
    ctx.close()
    assert not errors, f"browser console errors: {errors}"
