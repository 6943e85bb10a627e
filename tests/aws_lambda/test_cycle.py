"""The serverless cycle end to end on moto_server: S3 watch list -> schedule -> SQS -> collect
(ECR scans, snapshots in DynamoDB) -> the table's stream -> notify -> a local HTTP receiver."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from tests.support.ecr import basic_result


def finding(cve: str, pkg: str = "openssl", severity: str = "HIGH") -> dict:
    return {"name": cve, "severity": severity, "uri": f"https://security-tracker.debian.org/tracker/{cve}",
            "attributes": [{"key": "package_name", "value": pkg}, {"key": "package_version", "value": "3.0.1"}]}


def events_received(receiver) -> list[dict]:
    return [r.json() for r in receiver.requests]


def test_first_run_then_no_change(deploy, pusher, proxy, receiver):
    d1 = pusher.push("team/app", "v1")
    d2 = pusher.push("team/app", "v2")
    d3 = pusher.push("team/db", "v1")
    dep = deploy(["team/app", "team/db"])

    out = dep.cycle()
    assert out["schedule"]["repositories"] == 2
    assert all(a["batchItemFailures"] == [] for a in out["collect"] + out["notify"])
    got = events_received(receiver)
    assert sorted(e["subject"].split("@")[1] for e in got) == sorted([d1, d2, d3])
    assert {e["type"] for e in got} == {"io.vulnwatch.image.new_image"}
    ids = {e["id"] for e in got}
    assert len(ids) == 3

    receiver.clear()
    dep.new_container()
    calls_before = dict(proxy.calls)
    out = dep.cycle()
    assert receiver.requests == []                       # no change -> nothing
    assert [r for r in dep.stream_records()] == []       # and nothing written
    new_calls = {k: v - calls_before.get(k, 0) for k, v in proxy.calls.items() if v != calls_before.get(k, 0)}
    assert new_calls == {"DescribeImages": 2}            # one listing page per repository, no scans
