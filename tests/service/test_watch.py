"""``vulnwatch watch`` in a subprocess: cycles, /healthz and /readyz, SIGTERM ends it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from tests.support.servers import free_port
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR
from vulnwatch.store.sql import SQLStore

SRC = Path(__file__).resolve().parents[2] / "src"


def start_watch(tmp_path: Path, extra: str = "", *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {{path: {tmp_path / 'osv.db'}, imports: [{OSV_DIR}]}}
layer_cache: {{path: {tmp_path / 'layers'}}}
registries:
  - {{name: local, type: archive, path: {IMAGE_ARCHIVE}}}
service:
  lease_ttl: 30s
  health_host: 127.0.0.1
  health_port: {port}
{extra or "  interval: 1h"}
""")
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "vulnwatch.cli.main", "--config", str(cfg), "watch", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return proc, port


def get(port: int, path: str):
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_watch_cycles_answers_health_and_stops_on_sigterm(tmp_path):
    proc, port = start_watch(tmp_path)
    try:
        ready = wait_for(lambda: (r := get(port, "/readyz")).status_code == 200 and r.json()["last_cycle"]
                         and r.json())
        assert ready["store"] == "ok" and ready["last_cycle"]["outcome"] == "ok"
        assert ready["last_cycle"]["events"] == 1 and ready["overdue"] is False
        live = get(port, "/healthz")
        assert live.status_code == 200 and live.json()["ok"] is True
        assert get(port, "/nope").status_code == 404
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing the current image, then stopping" in err
    assert "cycle ok: 1 change events, 0 failures" in out
    store = SQLStore.from_path(tmp_path / "state.db")
    try:
        assert store.lease("cycle").expires_at <= datetime.now(timezone.utc)    # released
        assert len(store.images()) == 1
    finally:
        store.close()


def test_a_store_busy_elsewhere_makes_busy_ticks_and_the_daemon_stays_ready(tmp_path):
    from datetime import timedelta

    store = SQLStore.from_path(tmp_path / "state.db")
    store.acquire_lease("cycle", "elsewhere:1:x", timedelta(hours=1))
    store.close()
    proc, port = start_watch(tmp_path, "  interval: 1s")
    try:
        r = wait_for(lambda: (r := get(port, "/readyz")).json().get("last_cycle") and r)
        assert r.status_code == 200 and r.json()["last_cycle"]["outcome"] == "busy"
        assert "elsewhere:1:x" in r.json()["last_cycle"]["detail"]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "cycle busy" in out


def test_readiness_fails_after_a_failed_cycle_or_when_overdue(tmp_path):
    from datetime import timedelta

    from tests.service.test_cycle_leases import Listed, Scripted, images
    from vulnwatch.pipeline import Pipeline, Schedule, Watch
    from vulnwatch.service.interface import Daemon

    class Broken(Listed):
        def repositories(self):
            raise RuntimeError("listing blew up")

    now = [datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)]
    store = SQLStore.from_path(tmp_path / "state.db")
    try:
        good = Daemon(Pipeline(store, [Watch(Listed(images(1)), Scripted())]), Schedule(timedelta(minutes=10)),
                      lease_ttl=timedelta(minutes=1), clock=lambda: now[0])
        assert good.ready()[0] and good.ready()[1]["overdue"] is False          # not due yet
        now[0] += timedelta(minutes=21, seconds=1)                              # 2 x 10m + 1m, and more
        ok, details = good.ready()
        assert not ok and details["overdue"] is True
        assert good.run_one(now[0]).outcome == "ok" and good.ready()[0]
        bad = Daemon(Pipeline(store, [Watch(Broken(images(1)), Scripted())]), Schedule(timedelta(minutes=10)),
                     clock=lambda: now[0])
        status = bad.run_one(now[0])
        assert status.outcome == "error" and "listing blew up" in status.detail
        ok, details = bad.ready()
        assert not ok and details["last_cycle"]["outcome"] == "error" and details["store"] == "ok"
        assert store.lease("cycle").expires_at <= datetime.now(timezone.utc)  # released despite the error
    finally:
        store.close()
