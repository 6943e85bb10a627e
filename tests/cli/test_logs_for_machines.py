"""`--log-format json`: every failure, warning and summary one JSON object per line on stderr;
`--log-level DEBUG`: each registry and AWS request logged (method, host, path, status, time),
secrets never."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import vw
from tests.support.registry import start_registry
from tests.support.servers import free_port
from vulnwatch.examples import IMAGE_ARCHIVE

PASSWORD = "Basic-pw-for-logs-s3cret"


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    out = []
    for line in lines:
        out.append(json.loads(line))                    # every line is one JSON object
    return out


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("logs-basic"), users={"ci": PASSWORD}, push_creds=f"ci:{PASSWORD}")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "team/webapp", "1.0")
    yield reg
    reg.stop()


def test_failures_warnings_and_the_summary_are_json_objects(home, basic, monkeypatch):
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    cfg = home.config(registries=f"""  - {{name: gone, type: oci, url: http://127.0.0.1:{free_port()}, insecure: true}}
  - name: lab
    type: oci
    url: {basic.url}
    insecure: true
    username: ci
    password: ${{REG_PASSWORD}}
    repositories: [{{name: team/webapp}}, {{name: team/deleted}}]""", notifications="  []")
    r = vw("--log-format", "json", "-c", cfg, "run")
    assert r.exit_code == 1
    records = json_lines(r.stderr)                       # "failed gone: ..." was plain text before
    by_event = {}
    for rec in records:
        by_event.setdefault(rec.get("event"), []).append(rec)
    [failure] = by_event["failure"]
    assert failure["level"] == "error" and failure["target"] == "gone" and "cannot reach" in failure["error"]
    [warning] = by_event["warning"]
    assert warning["level"] == "warning" and warning["target"] == "lab/team/deleted"
    assert warning["code"] == "RepositoryNotFound"
    [summary] = by_event["cycle_summary"]
    assert (summary["images"], summary["scanned"], summary["failures"], summary["warnings"]) == (1, 1, 1, 1)
    assert summary["delivery"]["delivered"] == 0


def test_config_errors_are_json_objects_too(home):
    cfg = home.config(registries="  - {name: prod, type: ecr, scan: {interval: soon}}",
                      notifications="  - {name: chat, type: slack, url: '${SLACK_URL}'}")
    r = vw("--log-format", "json", "-c", cfg, "check-config")
    assert r.exit_code == 2
    records = json_lines(r.stderr)
    assert [(x["event"], x["key"]) for x in records] == [("config_error", "registries[0].scan.interval"),
                                                         ("config_error", "notifications[0].url")]
    assert [(x["file"], x["line"]) for x in records] == [(str(cfg), 6), (str(cfg), 8)]


def test_debug_logs_every_registry_request_without_secrets(home, basic, monkeypatch):
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    cfg = home.config(registries=f"""  - name: lab
    type: oci
    url: {basic.url}
    insecure: true
    username: ci
    password: ${{REG_PASSWORD}}
    repositories: [{{name: team/webapp}}]""", notifications="  []")
    r = vw("--log-format", "json", "--log-level", "DEBUG", "-c", cfg, "run")
    assert r.exit_code == 0, r.stderr[-2000:]
    requests = [x for x in json_lines(r.stderr) if x.get("event") == "http_request"]
    assert {(x["method"], x["path"].split("?")[0], x["status"]) for x in requests} >= {
        ("GET", "/v2/team/webapp/tags/list", 401), ("GET", "/v2/team/webapp/tags/list", 200),
        ("HEAD", "/v2/team/webapp/manifests/1.0", 200)}
    assert all(x["host"] == basic.host and isinstance(x["duration_ms"], float) for x in requests)
    assert any(x["path"].startswith("/v2/team/webapp/blobs/sha256:") for x in requests)
    assert PASSWORD not in r.stderr + r.stdout


def test_debug_logs_every_aws_call(home, moto):
    cfg = home.config(registries=f"""  - name: prod
    type: ecr
    region: us-east-1
    endpoint_url: {moto.url}
    repositories: [{{name: team/app}}]""")
    r = vw("--log-format", "json", "--log-level", "DEBUG", "-c", cfg, "run", "--no-deliver")
    records = json_lines(r.stderr)
    calls = [x for x in records if x.get("event") == "aws_request"]
    assert ("DescribeImages", "POST", 400) in {(x["operation"], x["method"], x["status"]) for x in calls}
    assert all(x["host"] == moto.url.split("://")[1] and x["duration_ms"] is not None for x in calls)
    assert "testing" not in json.dumps(calls)                           # no credentials, no parameters
    assert any(x.get("event") == "warning" and x["target"] == "prod/team/app" for x in records)
    assert r.exit_code == 0
