"""End to end: `vulnwatch run` against moto_server (real HTTP), a real SQLite file, and a real
HTTP receiver standing in for Slack and a webhook endpoint. The scenarios of issue 2."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer

import boto3
import pytest
from typer.testing import CliRunner

from tests.support.ecr import Pusher, basic_result
from tests.support.ecr_proxy import ECRProxy
from tests.support.servers import free_port, start_receiver

from vulnwatch.cli.main import app

SECRET = "hmac-s3cr3t-value"
NOW = datetime.now(timezone.utc)


def finding(cve: str, severity: str = "HIGH", package: str = "openssl", version: str = "3.0.11-1") -> dict:
    return {"name": cve, "severity": severity, "uri": f"https://security-tracker.debian.org/tracker/{cve}",
            "description": f"{cve} in {package}",
            "attributes": [{"key": "package_name", "value": package}, {"key": "package_version", "value": version}]}


class World:
    """moto + receiver + a config file, and a way to run the CLI."""

    def __init__(self, moto, receiver, tmp_path, *, endpoint: str | None = None, interval: str = "24h",
                 extra_registry: str = "", delivery: str = "", sink_url: str | None = None) -> None:
        self.moto = moto
        self.receiver = receiver
        self.tmp = tmp_path
        self.ecr = boto3.client("ecr", region_name="us-east-1", endpoint_url=moto.url)
        self.pusher = Pusher(self.ecr)
        self.db = tmp_path / "state.db"
        self.config = tmp_path / "vulnwatch.yaml"
        base = sink_url or receiver.url
        self.config.write_text(f"""
state:
  path: {self.db}
registries:
  - name: prod
    type: ecr
    region: us-east-1
    endpoint_url: {endpoint or moto.url}
    scan:
      interval: {interval}
      wait_timeout: 30s
{extra_registry}
notifications:
  - name: slack-sec
    type: slack
    url: {base}/slack/T000/B000/XXXXSECRETPATH
  - name: siem
    type: webhook
    url: {base}/hook
    secret: ${{HOOK_SECRET}}
delivery:
  max_attempts: 3
  backoff_base: 1s
  backoff_max: 2s
{delivery}
""")

    def run(self, *args: str, env: dict | None = None):
        runner = CliRunner()
        result = runner.invoke(app, ["--config", str(self.config), *args],
                               env={"HOOK_SECRET": SECRET, **(env or {})}, catch_exceptions=False)
        return result

    def slack(self) -> list[dict]:
        return [r.json() for r in self.receiver.requests if r.path.startswith("/slack")]

    def hooks(self) -> list[dict]:
        return [r.json() for r in self.receiver.requests if r.path == "/hook"]


@pytest.fixture
def world(moto, receiver, tmp_path):
    return World(moto, receiver, tmp_path)


def test_first_run_new_image_per_vulnerable_image_then_silence(world):
    app_v1 = world.pusher.push("app", "v1")
    app_v2 = world.pusher.push("app", "v2")
    world.pusher.push("app", "latest", seed="app:v2")       # second tag on the same digest
    web = world.pusher.push("web", "1.0")
    world.moto.inject_findings([
        basic_result("app", app_v1, [finding("CVE-2023-0001"), finding("CVE-2023-0002", "CRITICAL")], completed=NOW),
        basic_result("app", app_v2, [finding("CVE-2023-0001")], completed=NOW),
        basic_result("web", web, [], completed=NOW),
    ])
    r = world.run("run")
    assert r.exit_code == 0, r.output + r.stderr
    assert "3 images selected, 3 scanned, 2 change events" in r.stdout
    hooks = world.hooks()
    assert len(hooks) == 2 and len(world.slack()) == 2
    by_digest = {h["data"]["digest"]: h for h in hooks}
    assert set(by_digest) == {app_v1, app_v2}
    assert all(h["type"] == "io.vulnwatch.image.new_image" for h in hooks)
    assert by_digest[app_v2]["data"]["tags"] == ["latest", "v2"]           # two tags, one image
    assert [f["vulnerability_id"] for f in by_digest[app_v1]["data"]["added"]] == ["CVE-2023-0002", "CVE-2023-0001"]

    world.receiver.clear()
    r = world.run("run")
    assert r.exit_code == 0
    assert "0 change events" in r.stdout
    assert world.receiver.requests == []

    status = json.loads(world.run("status", "--format", "json").stdout)
    assert {(s["repository"], tuple(s["tags"])) for s in status} == {
        ("app", ("v1",)), ("app", ("latest", "v2")), ("web", ("1.0",))}


def _recreate(world, findings_by_tag: dict[str, list[dict]], completed: datetime = NOW) -> dict[str, str]:
    """moto keeps the first injected result forever: reset, push the same manifests again (same
    digests) and inject new findings (see shared/FACTS.md)."""
    world.moto.reset()
    world.pusher = Pusher(world.ecr)
    digests = {tag: world.pusher.push("app", tag) for tag in findings_by_tag}
    world.moto.inject_findings([basic_result("app", digests[t], f, completed=completed) for t, f in findings_by_tag.items()])
    return digests


def test_cve_swapped_at_equal_counts_is_one_added_one_fixed(moto, receiver, tmp_path):
    world = World(moto, receiver, tmp_path, interval="1s")
    d1 = _recreate(world, {"v1": [finding("CVE-2023-1111"), finding("CVE-2023-2222", "LOW")]})
    assert world.run("run").exit_code == 0
    world.receiver.clear()
    time.sleep(1.1)  # the last scan is now older than the 1 s interval: a new scan is due
    d2 = _recreate(world, {"v1": [finding("CVE-2023-3333"), finding("CVE-2023-2222", "LOW")]},
                   completed=NOW + timedelta(minutes=1))      # the new scan finishes after the old one
    assert d1 == d2
    r = world.run("run")
    assert r.exit_code == 0, r.stdout + r.stderr
    [hook] = world.hooks()
    assert hook["type"] == "io.vulnwatch.image.findings_changed"
    assert [f["vulnerability_id"] for f in hook["data"]["added"]] == ["CVE-2023-3333"]
    assert [f["vulnerability_id"] for f in hook["data"]["fixed"]] == ["CVE-2023-1111"]
    assert hook["data"]["counts"] == hook["data"]["previous_counts"]          # equal counts
    [slack] = world.slack()
    text = json.dumps(slack)
    assert "CVE-2023-3333" in text and "CVE-2023-1111" in text


def test_rebuild_compares_with_the_tags_previous_digest(world):
    old = world.pusher.push("app", "prod", seed="build-1")
    world.moto.inject_findings([basic_result("app", old, [finding(f"CVE-2023-{i:04d}") for i in range(10)],
                                             completed=NOW)])
    assert world.run("run").exit_code == 0
    world.receiver.clear()
    new = world.pusher.push("app", "prod", seed="build-2")                  # the tag moves
    world.moto.inject_findings([basic_result("app", new, [finding("CVE-2023-0000"), finding("CVE-2024-0001"),
                                                          finding("CVE-2024-0002")], completed=NOW)])
    r = world.run("run")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "rebuild" in r.stdout and "+2 new" in r.stdout and "9 fixed" in r.stdout
    rebuilds = [h for h in world.hooks() if h["data"]["digest"] == new]
    assert len(rebuilds) == 1
    data = rebuilds[0]["data"]
    assert data["kind"] == "rebuild" and data["previous_digest"] == old
    assert len(data["added"]) == 2 and len(data["fixed"]) == 9


def test_receiver_down_is_retried_next_run_and_delivered_once(moto, tmp_path):
    port = free_port()
    world = World(moto, None, tmp_path, sink_url=f"http://127.0.0.1:{port}")
    digest = world.pusher.push("app", "v1")
    world.moto.inject_findings([basic_result("app", digest, [finding("CVE-2023-0001")], completed=NOW)])
    r = world.run("run")
    assert r.exit_code == 1                                 # delivery failed: visible in the exit code
    assert "2 to retry" in r.stdout
    pending = json.loads(world.run("events", "--format", "json").stdout)
    assert {p["status"] for p in pending} == {"pending"} and len(pending) == 2
    assert all("XXXXSECRETPATH" not in (p["last_error"] or "") for p in pending)

    rec = start_receiver_on(port)
    try:
        time.sleep(2.1)                                     # past the backoff
        r = world.run("run")
        assert r.exit_code == 0, r.stdout + r.stderr
        assert "0 change events" in r.stdout
        assert len(rec.requests) == 2                       # one Slack, one webhook: delivered once
        r = world.run("run")
        assert len(rec.requests) == 2                       # and not again
        ids = {r2.json()["id"] for r2 in rec.requests if r2.path == "/hook"}
        assert ids == {pending[0]["event"]}
    finally:
        rec.close()


def start_receiver_on(port: int):
    rec = start_receiver()
    rec.close()
    # re-bind the same handler class on the wanted port
    handler = rec.server.RequestHandlerClass
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    rec.server = server
    import threading
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return rec


def test_dead_letters_and_retry_dead(world):
    digest = world.pusher.push("app", "v1")
    world.moto.inject_findings([basic_result("app", digest, [finding("CVE-2023-0001")], completed=NOW)])
    world.receiver.responses.extend([(404, {}, b"no_service")] * 2)        # both sinks: permanent error
    r = world.run("run")
    assert r.exit_code == 1 and "2 dead-lettered" in r.stdout
    dead = json.loads(world.run("events", "--dead", "--format", "json").stdout)
    assert len(dead) == 2 and all(d["status"] == "dead" for d in dead)
    r = world.run("events", "--retry-dead")
    assert r.exit_code == 0 and "2 dead letters re-queued; 2 delivered" in r.stdout
    assert json.loads(world.run("events", "--dead", "--format", "json").stdout) == []


def test_quota_exceeded_keeps_previous_findings(moto, receiver, tmp_path):
    world = World(moto, receiver, tmp_path, interval="1s")
    digest = world.pusher.push("app", "v1")
    world.moto.inject_findings([basic_result("app", digest, [finding("CVE-2023-0001")], completed=NOW)])
    assert world.run("run").exit_code == 0
    time.sleep(1.1)
    r = world.run("run", "--format", "json")       # a scan is due, but moto allows one per day
    assert r.exit_code == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["failures"] == [] and out["events"] == []
    assert any("quota" in n.lower() or "limit" in n.lower() for n in out["notes"])
    [status] = json.loads(world.run("status", "--format", "json").stdout)
    assert status["counts"]["HIGH"] == 1 and status["last_error"] is None


def test_250_images_in_one_repository_are_all_watched_through_real_paging(moto, receiver, tmp_path):
    proxy = ECRProxy(moto.url, page_size=100)
    try:
        world = World(moto, receiver, tmp_path, endpoint=proxy.url)
        for i in range(250):
            world.pusher.push("big", f"t{i}")
        r = world.run("run", "--no-deliver")
        assert r.exit_code == 0, r.stdout + r.stderr
        assert "250 images selected, 250 scanned" in r.stdout
        assert proxy.calls["DescribeImages"] >= 3            # really paged
    finally:
        proxy.close()


def test_s3_watch_list_limits_the_repositories(moto, receiver, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto.url)
    s3.create_bucket(Bucket="cfg")
    s3.put_object(Bucket="cfg", Key="watch.json", Body=json.dumps(["app", "gone"]).encode())
    world = World(moto, receiver, tmp_path, extra_registry="    watch_list: s3://cfg/watch.json")
    world.pusher.push("app", "v1")
    world.pusher.push("other", "v1")
    r = world.run("run", "--no-deliver", "--format", "json")
    out = json.loads(r.stdout)
    assert out["images"] == 1 and out["scanned"] == 1
    assert out["failures"] == []                                          # a deleted repository ...
    assert [(w["target"], w["code"]) for w in out["warnings"]] == [("prod/gone", "RepositoryNotFound")]
    assert r.exit_code == 0                                               # ... is a warning, not a failed run


def test_bad_config_exits_2_naming_file_key_and_line(tmp_path):
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text("registries:\n  - name: prod\n    type: ecr\n    scan:\n      interval: soon\n")
    r = CliRunner().invoke(app, ["--config", str(cfg), "run"])
    assert r.exit_code == 2
    assert f"{cfg}:5: registries[0].scan.interval" in r.stderr
    r = CliRunner().invoke(app, ["--config", str(cfg), "check-config"])
    assert r.exit_code == 2


def test_secrets_never_reach_the_db_or_the_logs(moto, tmp_path):
    port = free_port()                                      # nothing listens: deliveries fail and log
    world = World(moto, None, tmp_path, sink_url=f"http://127.0.0.1:{port}")
    digest = world.pusher.push("app", "v1")
    world.moto.inject_findings([basic_result("app", digest, [finding("CVE-2023-0001")], completed=NOW)])
    r = world.run("--log-format", "json", "--log-level", "DEBUG", "run")
    assert r.exit_code == 1
    everything = r.stdout + r.stderr
    data = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    for secret in ("XXXXSECRETPATH", SECRET):
        assert secret not in everything
        assert secret.encode() not in data
    with sqlite3.connect(world.db) as db:
        assert db.execute("select count(*) from deliveries").fetchone()[0] == 2
