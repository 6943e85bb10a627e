"""The serverless cycle end to end on moto_server: S3 watch list -> schedule -> SQS -> collect
(ECR scans, snapshots in DynamoDB) -> the table's stream -> notify -> a local HTTP receiver."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta, timezone

from tests.support.ecr import basic_result
from vulnwatch.logs import redact


def finding(cve: str, pkg: str = "openssl", severity: str = "HIGH") -> dict:
    return {"name": cve, "severity": severity, "uri": f"https://security-tracker.debian.org/tracker/{cve}",
            "attributes": [{"key": "package_name", "value": pkg}, {"key": "package_version", "value": "3.0.1"}]}


def events_received(receiver) -> list[dict]:
    return [r.json() for r in receiver.requests]


def test_first_run_then_no_change(deploy, pusher, proxy, receiver, caplog):
    d1 = pusher.push("team/app", "v1")
    d2 = pusher.push("team/app", "v2")
    d3 = pusher.push("team/db", "v1")
    dep = deploy(["team/app", "team/db"])
    secret_url = receiver.url + "/hook"          # the sink's URL: a SecureString in SSM, read at run time
    assert all(secret_url not in v for v in os.environ.values())

    with caplog.at_level(logging.DEBUG):
        out = dep.cycle()
    assert secret_url not in caplog.text and redact(f"to {secret_url}") == "to ***"
    assert {r.path for r in receiver.requests} == {"/hook"}
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


def _store(dep):
    from vulnwatch.store.dynamodb import DynamoDBStore

    return DynamoDBStore(dep.table, region="us-east-1", endpoint_url=dep.moto_url, bucket="vw-spill")


def test_quota_keeps_previous_findings_and_a_swapped_cve_is_one_added_one_fixed(deploy, pusher, proxy, receiver):
    digest = pusher.push("team/app", "v1")
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    proxy.findings[digest] = basic_result("team/app", digest, [finding("CVE-2024-0001"), finding("CVE-2024-0002")],
                                          completed=t0)
    dep = deploy(["team/app"], env={"VULNWATCH_SCAN_INTERVAL": "1h"})
    dep.cycle()
    (first,) = events_received(receiver)
    assert first["data"]["kind"] == "new_image" and first["data"]["counts"]["HIGH"] == 2

    # the last scan is 3 h old, so one is due; ECR refuses it (one basic scan per image per
    # 24 h): the previous findings are kept and nothing is sent
    receiver.clear()
    dep.cycle()
    assert receiver.requests == []
    snap = _store(dep).snapshot("ecr", "team/app", digest)
    assert {f.vulnerability_id for f in snap.findings} == {"CVE-2024-0001", "CVE-2024-0002"}
    assert snap.scanned_at == t0 and any("24 h" in n for n in snap.notes)

    # a newer scan swapped one CVE for another at equal counts: one added, one fixed
    proxy.findings[digest] = basic_result("team/app", digest, [finding("CVE-2024-0001"), finding("CVE-2024-0003")],
                                          completed=t0 + timedelta(hours=2))
    dep.cycle()
    (changed,) = events_received(receiver)
    data = changed["data"]
    assert data["kind"] == "findings_changed" and data["counts"] == data["previous_counts"]
    assert data["counts"]["HIGH"] == 2
    assert [f["vulnerability_id"] for f in data["added"]] == ["CVE-2024-0003"]
    assert [f["vulnerability_id"] for f in data["fixed"]] == ["CVE-2024-0002"]


def test_a_scan_in_progress_goes_back_on_the_queue_and_is_never_read_unfinished(deploy, pusher, proxy, receiver):
    digest = pusher.push("team/app", "v1")
    other = pusher.push("team/app", "v2")
    # the first findings call says IN_PROGRESS, with findings a careless reader would take
    proxy.queue_status(digest, "IN_PROGRESS", findings={"findings": [finding("CVE-2000-0001")]})
    dep = deploy(["team/app"], env={"VULNWATCH_REQUEUE_DELAY": "5"})    # room for a loaded machine
    dep.schedule()
    (answer,) = dep.collect()
    assert answer == {"batchItemFailures": []}
    store = _store(dep)
    assert store.snapshot("ecr", "team/app", digest) is None          # not recorded unfinished
    assert store.snapshot("ecr", "team/app", other) is not None
    attrs = dep.sqs.get_queue_attributes(QueueUrl=dep.queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"       # back on the queue, with a delay
    assert dep.receive() == []                                          # not visible before its delay
    (record,) = dep.receive(wait=10)
    body = json.loads(record["body"])
    assert body["digests"] == [digest] and body["attempt"] == 1
    dep.collect_batch([record])
    snap = store.snapshot("ecr", "team/app", digest)
    assert snap is not None and "CVE-2000-0001" not in {f.vulnerability_id for f in snap.findings}
    dep.notify()
    assert sorted(e["subject"].split("@")[1] for e in events_received(receiver)) == sorted([digest, other])


def test_receiver_down_is_a_batch_item_failure_then_delivered_once_with_the_same_id(deploy, pusher, receiver):
    pusher.push("team/app", "v1")
    pusher.push("team/app", "v2")
    receiver.responses = [(200, {}, b"ok"), (503, {"Retry-After": "0"}, b"down")]
    dep = deploy(["team/app"])
    dep.schedule()
    dep.collect()
    answers = dep.notify()
    assert answers[0]["batchItemFailures"] and not answers[-1]["batchItemFailures"]
    assert len(answers) == 2
    ids = [r.json()["id"] for r in receiver.requests]
    assert len(ids) == 3 and ids[1] == ids[2] and ids[0] != ids[1]   # the failed one again, the other not
    from vulnwatch.store.interface import DeliveryStatus

    store = _store(dep)
    assert store.deliveries(DeliveryStatus.PENDING) == []
    assert len(store.deliveries(DeliveryStatus.DELIVERED)) == 2
    receiver.clear()
    dep.notify(records=dep.stream_records())      # the stream has nothing new: nothing more is sent
    assert receiver.requests == []


def test_more_than_100_images_in_a_repository_in_slices(deploy, pusher, proxy):
    digests = {f"v{i}": pusher.push("team/big", f"v{i}") for i in range(110)}
    # the watch list in the vulnwatch.yaml format, taking the tags v1* (21 of the 110 images)
    watch = """
registries:
  - name: ecr
    type: ecr
    repositories:
      - name: team/big
        tags: {include: ["v1*"]}
"""
    # no stream on this table: moto copies a streamed table once per item of each transaction,
    # which makes many first commits slow; what is tested here is listing and slicing
    dep = deploy(watch, sinks=[], hook_url=None, stream=False, env={"VULNWATCH_SLICE_SIZE": "5"})
    assert dep.schedule()["repositories"] == 1
    answers = dep.collect()
    assert all(a == {"batchItemFailures": []} for a in answers)
    store = _store(dep)
    stored = {st.image.digest for st in store.images() if st.last_scanned_at}
    assert stored == {d for tag, d in digests.items() if tag.startswith("v1")}
    # 21 images in slices of at most ~5: the first collector sent the other four slices, and
    # each listed the repository through ECR's 100-image pages (2 pages for 110 images)
    slices = -(-21 // 5)
    assert proxy.calls["DescribeImages"] == slices * 2


def test_two_collectors_racing_on_one_image_record_one_change_and_one_event(deploy, pusher, receiver):
    import threading

    from tests.support.lambdas import one_dynamodb_call_at_a_time
    from vulnwatch.aws_lambda import _runtime
    from vulnwatch.pipeline import WorkItem

    pusher.push("team/app", "v1")
    dep = deploy(["team/app"])
    first = _runtime.pipeline()
    _runtime.reset(pipelines_only=True)
    second = _runtime.pipeline()              # two containers: two pipelines, two stores
    assert first.store is not second.store
    one_dynamodb_call_at_a_time(first.store, second.store)
    item = WorkItem("ecr", "team/app")
    results = []
    threads = [threading.Thread(target=lambda p=p: results.append(p.collect(item))) for p in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.report.failures for r in results] == [(), ()]
    assert sum(len(r.report.events) for r in results) == 1       # the loser diffed again: no change
    dep.notify()
    (only,) = events_received(receiver)
    assert only["data"]["kind"] == "new_image"
    from vulnwatch.store.interface import DeliveryStatus

    assert len(_store(dep).deliveries(DeliveryStatus.DELIVERED)) == 1


def test_a_batch_in_the_dlq_is_replayed_and_delivered_once_with_the_same_id(deploy, pusher, receiver):
    """notify fails every retry (the receiver is down): Lambda's on-failure destination gets the
    batch's description (DDBStreamBatchInfo, the shape AWS sends); the documented replay reads
    those records back from the stream and delivers them under the same event id."""
    from vulnwatch.aws_lambda import replay

    pusher.push("team/app", "v1")
    receiver.responses = [(503, {"Retry-After": "0"}, b"down")] * 4
    dep = deploy(["team/app"])
    dep.schedule()
    dep.collect()
    records = dep.stream_records()
    answers = dep.notify(records=records, retries=3)
    assert all(a["batchItemFailures"] for a in answers) and len(answers) == 4
    failed_ids = {r.json()["id"] for r in receiver.requests}
    assert len(failed_ids) == 1

    dlq = dep.sqs.create_queue(QueueName="vw-notify-dlq")["QueueUrl"]
    shard = dep.streams.describe_stream(StreamArn=dep.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    dep.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({
        "requestContext": {"requestId": "c9b8fa9f-5a7f-4a3a-9b0e-3a1e2d0f4c11", "condition": "RetryAttemptsExhausted",
                           "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:vulnwatch-notify",
                           "approximateInvokeCount": 4},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": None},
        "version": "1.0", "timestamp": "2026-12-02T09:00:00.000Z",
        "DDBStreamBatchInfo": {"shardId": shard, "startSequenceNumber": seqs[0], "endSequenceNumber": seqs[-1],
                               "approximateArrivalOfFirstRecord": "2026-12-02T08:59:00Z",
                               "approximateArrivalOfLastRecord": "2026-12-02T08:59:00Z",
                               "batchSize": len(seqs), "streamArn": dep.stream_arn}}))
    receiver.clear()
    out = replay.replay(dlq)
    assert out["replayed"] == 1 and out["still_failing"] == 0 and out["records"] == len(records)
    assert [r.json()["id"] for r in receiver.requests] == list(failed_ids)       # once, the same id
    assert dep.sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages") is None
