"""DynamoDBStore on moto (real HTTP): what is particular to DynamoDB. The behaviour every store
shares is in test_contract.py (which runs it here too).

Covers: opening from a URL, the table layout (Query, never Scan), the 400 KB item limit
(compression, then S3), the transaction limits (100 items / 4 MB: the journal), conditional
writes racing, and stream records decoded back into ScanResults.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from vulnwatch import aws
from vulnwatch.model import Finding, Package, ScanResult, Severity
from vulnwatch.store import open_store
from vulnwatch.store import dynamodb as ddbmod
from vulnwatch.store.dynamodb import DynamoDBStore, snapshot_change, snapshot_from_image
from vulnwatch.store.interface import DeliveryStatus, StoreConflict, StoreError

from .factories import A, B, T0, UTC, finding, image, make_event, result


@pytest.fixture
def store(dynamodb_contract_url):
    """A store on a table made as infrastructure code would (no stream: see conftest)."""
    s = DynamoDBStore.from_url(dynamodb_contract_url)
    yield s
    s.close()


@pytest.fixture
def streamed_store(dynamodb_url):
    """A store on a table it created itself (``create=true``: streams on, NEW_AND_OLD_IMAGES)."""
    s = DynamoDBStore.from_url(dynamodb_url)
    yield s
    s.close()


def clients(moto):
    return (aws.client("dynamodb", region="us-east-1", endpoint_url=moto.url),
            aws.client("s3", region="us-east-1", endpoint_url=moto.url))


def table_items(moto, table="vw-contract") -> list[dict]:
    """Every item of the table, plain (a Scan: only the test looks at the table this way)."""
    ddb, _ = clients(moto)
    items, start = [], None
    while True:
        page = ddb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
        items += [ddbmod._item(i) for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def spilled(moto, bucket="vw-spill") -> list[str]:
    _, s3 = clients(moto)
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", ()))


def calls_of(store) -> aws.CallCounter:
    """A counter of the DynamoDB calls ``store`` makes from now on, per operation."""
    counter = aws.CallCounter()
    counter.attach(store._ddb)
    return counter


def big_result(n_findings: int, n_packages: int, *, noise: bool, digest: str = A, at=T0) -> ScanResult:
    """A built-in scan of a large image. ``noise``: titles and paths that do not compress (as if
    each advisory had its own long text), so the blobs outgrow an item even compressed."""
    rnd = random.Random(n_findings * 7 + n_packages)

    def text(n: int) -> str:
        return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(n)) if noise else ""

    pkgs = tuple(Package(f"pkg{i}", f"1.{i % 37}.{i % 11}-{i % 5}", "Debian:12" if i % 3 else "PyPI",
                         purl=f"pkg:deb/debian/pkg{i}@1.{i % 37}", source_name=f"src{i // 4}",
                         source_version=f"1.{i % 37}", path=f"var/lib/dpkg/status{text(100)}",
                         layer="sha256:" + f"{i % 9:x}" * 64) for i in range(n_packages))
    sev = list(Severity)
    found = tuple(Finding(
        f"CVE-20{10 + i % 15}-{10000 + i}", f"pkg{i % max(n_packages, 1)}", f"1.{i % 37}.{i % 11}-{i % 5}",
        sev[i % len(sev)], "Debian:12", aliases=(f"DSA-{i}-1",), fixed_versions=(f"1.{i % 37}.{i % 11}-9",),
        fix_available=bool(i % 2), cvss_score=round((i % 100) / 10, 1),
        cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        title=f"Issue {i} allows remote attackers to cause a denial of service {text(90)}",
        links=(f"https://security-tracker.debian.org/tracker/CVE-{i}",), scanner="builtin",
        exploit_available=None if i % 3 == 0 else bool(i % 3 - 1), purl=f"pkg:deb/debian/pkg{i}")
        for i in range(n_findings))
    return ScanResult(image=image(digest, tags=("1.0", "latest")), scanner="builtin", scanned_at=at,
                      findings=found, packages=pkgs, distro="Debian:12", notes=("large",))


# --- opening ---------------------------------------------------------------------------------------

def test_open_store_picks_dynamodb_and_the_state_config_accepts_the_url(dynamodb_url):
    from vulnwatch.config.state import StateConfig

    cfg = StateConfig(url=dynamodb_url)
    assert cfg.sqlalchemy_url() == dynamodb_url and cfg.display_url().startswith("dynamodb://vw-state?")
    s = open_store(cfg.sqlalchemy_url())
    try:
        assert isinstance(s, DynamoDBStore)
        assert s.table == "vw-state" and s.bucket == "vw-spill" and s.prefix == "state/"
        assert repr(s) == "DynamoDBStore('dynamodb://vw-state (us-east-1)')"
    finally:
        s.close()


@pytest.mark.parametrize("url, message", [
    ("dynamodb://vw-state?regoin=us-east-1", "unknown parameter 'regoin'"),
    ("dynamodb://vw-state?create=maybe", "create='maybe'"),
    ("dynamodb://a?region=us-east-1", "not a DynamoDB table name"),
    ("dynamodb://has space", "not a DynamoDB table name"),
    ("dynamodb:///path", "not a DynamoDB URL"),
])
def test_bad_urls_are_refused_naming_the_input(url, message):
    with pytest.raises(StoreError, match=message):
        DynamoDBStore.from_url(url)


def test_missing_table_is_named_and_nothing_secret_is_shown(moto, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-key-value")
    with pytest.raises(StoreError) as info:
        DynamoDBStore.from_url(f"dynamodb://no-such-table?region=us-east-1&endpoint_url={moto.url}")
    msg = str(info.value)
    assert "'no-such-table' not found in us-east-1" in msg and "create=true" in msg
    assert "s3cr3t" not in msg
    with pytest.raises(StoreError) as info:   # nothing listening there (one attempt: no retry wait)
        DynamoDBStore("vw-state", region="us-east-1", client=aws.client(
            "dynamodb", region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1))
    assert "dynamodb://vw-state" in str(info.value) and "s3cr3t" not in str(info.value)


def test_importing_the_store_does_not_load_boto3():
    code = ("import sys, vulnwatch.store, vulnwatch.store.dynamodb; "
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_a_table_of_a_newer_layout_is_refused(store, moto):
    ddb, _ = clients(moto)
    ddb.put_item(TableName=store.table, Item={"pk": {"S": "META"}, "sk": {"S": "layout"}, "version": {"N": "99"}})
    with pytest.raises(StoreError, match="layout version 99.*up to 1.*Upgrade vulnwatch"):
        DynamoDBStore(store.table, region="us-east-1", endpoint_url=moto.url)


# --- the layout --------------------------------------------------------------------------------------

def test_reads_are_queries_and_batch_gets_never_scans(store):
    n = 110                                      # more than one BatchGetItem's 100 keys
    for i in range(n):
        res = result(image(f"sha256:{i:064x}", tags=(f"v{i}",)), findings=(finding(f"CVE-2024-{i:04d}"),))
        store.commit_scan(res, [(make_event(res, i), ["hook"])] if i < 3 else [])
    calls = calls_of(store)
    snaps = store.snapshots()
    assert len(snaps) == n
    assert {s.findings[0].vulnerability_id for s in snaps} == {f"CVE-2024-{i:04d}" for i in range(n)}
    assert dict(calls) == {"Query": 1, "BatchGetItem": 2}      # the index, then 100 + 10 snapshot items
    calls.clear()
    assert len(store.snapshots("prod")) == n and store.snapshots("nope") == []
    assert len(store.images()) == n and len(list(store.inventories())) == 0
    store.snapshot("prod", "team/app", f"sha256:{7:064x}", with_inventory=False)
    store.history("prod", "team/app", limit=5)
    store.history("prod", "team/app", f"sha256:{7:064x}")
    store.tag_digest("prod", "team/app", "v7")
    store.deliveries()
    store.deliveries(DeliveryStatus.PENDING)
    due = store.due_deliveries(datetime.now(UTC))
    assert len(due) == 3
    store.mark_delivered([due[0].id], datetime.now(UTC))
    store.mark_checked([image(f"sha256:{1:064x}").key], datetime.now(UTC))
    assert "Scan" not in calls and set(calls) <= {"Query", "BatchGetItem", "GetItem", "UpdateItem"}


def test_a_tag_seen_again_writes_nothing_and_a_move_keeps_the_period(store, moto):
    store.commit_scan(result(), [])
    store.commit_scan(result(at=T0 + timedelta(hours=1)), [])
    kinds = [i["sk"] for i in table_items(moto) if i["sk"].startswith(("T#", "P#"))]
    assert kinds == ["T#latest"]
    store.commit_scan(result(image(B), at=T0 + timedelta(hours=2)), [])
    items = {i["sk"]: i for i in table_items(moto) if i["sk"].startswith(("T#", "P#"))}
    (period,) = [v for k, v in items.items() if k.startswith("P#latest#")]
    assert period["digest"] == A and period["last_seen"] >= period["first_seen"]
    assert items["T#latest"]["digest"] == B


def test_mark_checked_and_failures_leave_the_snapshot_item_alone(store, moto):
    """The large snapshot item is written by commits only: stamping and failures touch the small
    status item (DynamoDB bills a write by the whole item's size)."""
    store.commit_scan(big_result(3000, 1000, noise=False), [])
    before = {i["sk"]: i for i in table_items(moto) if i["sk"].startswith("D#")}
    calls = calls_of(store)
    store.mark_checked([image(A).key], T0 + timedelta(days=1))
    store.record_failure(image(A), "builtin", "pull failed", T0 + timedelta(days=1))
    after = {i["sk"]: i for i in table_items(moto) if i["sk"].startswith("D#")}
    snap_sk = [k for k in before if k.endswith("#V")][0]
    assert after[snap_sk] == before[snap_sk] and after[snap_sk]["version"] == 1
    assert dict(calls) == {"UpdateItem": 2}
    status = [v for k, v in after.items() if k.endswith("#S")][0]
    assert status["last_error"] == "pull failed" and ddbmod._item_size(
        {k: ddbmod._S(str(v)) for k, v in status.items()}) < 2000


# --- the 400 KB item limit ---------------------------------------------------------------------------

def test_thousands_of_findings_and_packages_fit_one_item_compressed(store, moto):
    big = big_result(5000, 4000, noise=False)
    store.commit_scan(big, [])
    assert spilled(moto) == []
    (snap,) = [i for i in table_items(moto) if i["sk"].endswith("#V")]
    assert "findings" in snap and "packages" in snap and "findings_ref" not in snap
    assert len(snap["findings"]) > 100_000                      # really a large blob...
    raw = ddbmod._item({k: v for k, v in clients(moto)[0].get_item(
        TableName="vw-contract", Key={"pk": {"S": snap["pk"]}, "sk": {"S": snap["sk"]}})["Item"].items()})
    assert sum(len(k) + (len(v) if isinstance(v, (bytes, str)) else 8) for k, v in raw.items()) < 400 * 1024
    assert store.snapshot(*big.image.key) == big                # ...that reads back identical
    [inv] = list(store.inventories())
    assert [tuple(r) for r in inv.rows] == [tuple(p.__dict__.values()) for p in big.packages]


def test_what_does_not_fit_goes_to_s3_and_reads_back_identical(store, moto):
    big = big_result(6000, 5000, noise=True)
    store.commit_scan(big, [])
    keys = spilled(moto)
    assert keys and all(k.startswith("vulnwatch/vw-contract/") and k.endswith(".zst") for k in keys)  # default prefix
    (snap,) = [i for i in table_items(moto) if i["sk"].endswith("#V")]
    ref = snap["findings_ref"]
    assert "findings" not in snap and ref["bucket"] == "vw-spill" and ref["key"] in keys
    assert "packages" not in snap and snap["packages_ref"]["key"] in keys
    assert store.snapshot(*big.image.key) == big
    assert store.snapshot(*big.image.key, with_inventory=False) == replace(big, packages=())
    [inv] = list(store.inventories())
    assert len(inv.rows) == 5000 and inv.packages[17] == tuple(big.packages[17].__dict__.values())
    # a re-match keeps the inventory where it is (in S3 or inline) and writes the new findings
    rematched = replace(big, scanned_at=T0 + timedelta(days=1), packages=(), distro=None,
                        findings=big.findings[:10])
    store.commit_scan(rematched, [], keep_inventory=True, expected=big)
    assert store.snapshot(*big.image.key) == replace(rematched, packages=big.packages, distro=big.distro)
    # a changed object is noticed, not silently read
    _, s3 = clients(moto)
    s3.put_object(Bucket="vw-spill", Key=[i for i in table_items(moto) if i["sk"].endswith("#V")][0]
                  ["packages_ref"]["key"], Body=b"tampered")
    with pytest.raises(StoreError, match="does not match its checksum"):
        store.snapshot(*big.image.key)


def test_without_a_bucket_a_scan_too_large_is_refused_naming_the_image(moto):
    s = DynamoDBStore.from_url(f"dynamodb://vw-nobucket?region=us-east-1&endpoint_url={moto.url}&create=true")
    try:
        big = big_result(6000, 10, noise=True)
        with pytest.raises(StoreError) as info:
            s.commit_scan(big, [(make_event(big), ["hook"])])
        msg = str(info.value)
        assert f"prod/team/app@{A}" in msg and "bucket=" in msg and "its findings take" in msg
        assert s.snapshot(*big.image.key) is None and s.images() == [] and s.deliveries() == []
    finally:
        s.close()


def test_a_large_event_body_is_spilled_too(store, moto):
    big = big_result(6000, 10, noise=True)
    ev = make_event(big)
    store.commit_scan(big, [(ev, ["hook"])])
    assert any("/events/" in k for k in spilled(moto))
    (d,) = store.due_deliveries(datetime.now(UTC))
    assert d.event == ev and len(d.event.added) == 6000


# --- transactions: limits, journal -----------------------------------------------------------------

def test_a_commit_beyond_one_transaction_goes_through_the_journal(store, moto):
    sent: list[int] = []
    store._ddb.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems",
                                    lambda params, **kw: sent.append(len(params["TransactItems"])))
    tags = tuple(f"v{i:03d}" for i in range(120))
    res = result(image(A, tags=tags))
    ev = make_event(res)
    sinks = [f"sink-{i:03d}" for i in range(150)]
    store.commit_scan(res, [(ev, sinks)])
    assert sent and max(sent) <= 100
    assert store.snapshot(*res.image.key) == res
    assert all(store.tag_digest("prod", "team/app", t) == A for t in tags)
    assert sorted(d.sink for d in store.due_deliveries(datetime.now(UTC))) == sinks
    assert not [i for i in table_items(moto) if i["pk"] == "JOURNAL"]          # finished, deleted
    assert [i for i in table_items(moto) if i["pk"].startswith("E#")][0].get("staging") is None
    # all 120 tags move to B: each is taken off A
    moved = result(image(B, tags=tags), at=T0 + timedelta(hours=1))
    store.commit_scan(moved, [])
    assert all(store.tag_digest("prod", "team/app", t) == B for t in tags)
    assert store.snapshot(*res.image.key).image.tags == ()


def test_a_journal_left_by_a_dead_writer_is_finished_once(store, moto, monkeypatch):
    res = result()
    events = [(make_event(res, n), ["hook", "slack"]) for n in range(60)]      # 120 deliveries
    real = DynamoDBStore._publish

    def die(self, *a, **kw):
        raise KeyboardInterrupt("writer killed after its journal was written")

    monkeypatch.setattr(DynamoDBStore, "_publish", die)
    with pytest.raises(KeyboardInterrupt):
        store.commit_scan(res, events)
    monkeypatch.setattr(DynamoDBStore, "_publish", real)
    assert store.snapshot(*res.image.key) == res                 # the journal's transaction happened
    assert store.deliveries() == []                               # its deliveries are not out yet
    assert store.recover() == 0                                   # too young: still its writer's
    assert store.recover(min_age=0) == 1
    assert len(store.deliveries(limit=500)) == 120
    assert store.recover(min_age=0) == 0                          # done once
    # the same events again (a re-run): nothing is added
    store.commit_scan(replace(res, scanned_at=T0 + timedelta(hours=1)), events)
    assert len(store.deliveries(limit=500)) == 120


def test_staged_events_of_a_conflicting_commit_do_not_count(store):
    first = result()
    store.commit_scan(first, [])
    late = result(at=T0 + timedelta(hours=1))
    events = [(make_event(late, n), ["hook"]) for n in range(120)]
    with pytest.raises(StoreConflict):
        store.commit_scan(late, events, expected=None)           # staged its events, then lost
    assert store.deliveries() == [] and store.snapshot(*first.image.key) == first
    store.commit_scan(late, events, expected=first)               # the same events, now for real
    assert len(store.deliveries(limit=500)) == 120


# --- conditional writes: racing --------------------------------------------------------------------

def test_two_writers_racing_the_loser_is_refused_by_the_table(dynamodb_contract_url):
    """Two stores (two processes' worth) read the same absent snapshot; the loser's transaction is
    built and on its way when the winner commits: the table's condition refuses it."""
    a, b = DynamoDBStore.from_url(dynamodb_contract_url), DynamoDBStore.from_url(dynamodb_contract_url)
    key = image().key
    ra = result(findings=(finding("CVE-A"),))
    rb = result(at=T0 + timedelta(seconds=1), findings=(finding("CVE-B"),))
    seen_a, seen_b = a.snapshot(*key), b.snapshot(*key)
    assert seen_a is None and seen_b is None
    sending, winner_done = threading.Event(), threading.Event()

    def hold(**_kw):
        sending.set()
        assert winner_done.wait(60)

    b._ddb.meta.events.register("before-call.dynamodb.TransactWriteItems", hold)
    outcome: list[BaseException | str] = []

    def loser():
        try:
            b.commit_scan(rb, [(make_event(rb), ["hook"])], expected=seen_b)
            outcome.append("won")
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=loser)
    t.start()
    try:
        assert sending.wait(60)
        a.commit_scan(ra, [(make_event(ra), ["hook"])], expected=seen_a)
    finally:
        winner_done.set()
        t.join(60)
    b._ddb.meta.events.unregister("before-call.dynamodb.TransactWriteItems", hold)
    (got,) = outcome
    assert isinstance(got, StoreConflict) and "another writer recorded this image first" in str(got)
    assert a.snapshot(*key) == ra and b.snapshot(*key) == ra
    assert [d.event.id for d in a.deliveries()] == [make_event(ra).id]
    assert [h.scanned_at for h in a.history("prod", "team/app")] == [ra.scanned_at]
    b.commit_scan(rb, [], expected=b.snapshot(*key))     # read again: now it goes through
    assert a.snapshot(*key) == rb
    a.close()
    b.close()


# --- streams -----------------------------------------------------------------------------------------

def stream_records(moto, table="vw-state") -> list[dict]:
    ddb = aws.client("dynamodb", region="us-east-1", endpoint_url=moto.url)
    streams = aws.client("dynamodbstreams", region="us-east-1", endpoint_url=moto.url)
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = streams.get_records(ShardIterator=it, Limit=1000)
            out += page["Records"]
            it = page.get("NextShardIterator") if page["Records"] else None
    return out


def as_lambda_event(record: dict) -> dict:
    """The record as a Lambda handler receives it: JSON, binary values base64."""
    def default(v):
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(v).decode()
        if isinstance(v, datetime):
            return v.timestamp()
        raise TypeError(type(v))
    return json.loads(json.dumps(record, default=default))


def test_stream_records_turn_back_into_scan_results(streamed_store, moto):
    store = streamed_store
    r1 = result(findings=(finding("CVE-1"),))
    r2 = result(at=T0 + timedelta(hours=1), findings=(finding("CVE-1"), finding("CVE-2", Severity.CRITICAL)))
    r3 = replace(big_result(6000, 3000, noise=True, at=T0 + timedelta(hours=2)), image=r1.image)
    store.commit_scan(r1, [(make_event(r1), ["hook"])], expected=None)
    store.record_failure(image(), "ecr-basic", "throttled", T0)          # status item only
    store.mark_checked([image().key], T0)                                 # status item only
    store.commit_scan(r2, [], expected=r1)
    store.commit_scan(r3, [], expected=r2)                                 # findings spilled to S3
    records = stream_records(moto)
    assert len(records) > 3                                               # status, history, outbox...
    changes = [c for c in (store.snapshot_change(r) for r in records) if c is not None]
    assert [(c.event_name, c.old, c.new) for c in changes] == [
        ("INSERT", None, r1), ("MODIFY", r1, r2), ("MODIFY", r2, r3)]
    assert [(c.old_version, c.new_version) for c in changes] == [(None, 1), (1, 2), (2, 3)]
    assert changes[2].image == r1.image
    _, s3 = clients(moto)
    snapshot_records = [r for r in records if snapshot_change(r, s3=s3) is not None]
    assert len(snapshot_records) == 3
    last = snapshot_records[-1]
    assert "findings_ref" in last["dynamodb"]["NewImage"]                # a pointer, not the blob
    # what the notify Lambda gets: JSON with base64 binary, and its own S3 client
    lambda_change = snapshot_change(as_lambda_event(last), s3=s3)
    assert lambda_change.old == r2 and lambda_change.new == r3
    assert snapshot_from_image(as_lambda_event(last)["dynamodb"]["OldImage"]) == r2   # inline: no S3
    assert snapshot_change(as_lambda_event(snapshot_records[0])).new == r1


def test_stream_helper_refuses_what_is_not_a_snapshot(streamed_store, moto):
    store = streamed_store
    store.commit_scan(result(), [(make_event(result()), ["hook"])])
    records = stream_records(moto)
    others = [r for r in records if not r["dynamodb"]["Keys"]["sk"]["S"].endswith("#V")]
    assert {r["dynamodb"]["Keys"]["sk"]["S"][:2] for r in others} >= {"D#", "H#", "T#", "E", "L"}
    assert all(snapshot_change(r) is None for r in others)
    with pytest.raises(StoreError, match="not a vulnwatch snapshot"):
        snapshot_from_image(others[0]["dynamodb"]["NewImage"])
    snap_keys = [r for r in records if r["dynamodb"]["Keys"]["sk"]["S"].endswith("#V")][0]["dynamodb"]["Keys"]
    keys_only = {"eventName": "MODIFY", "dynamodb": {"Keys": snap_keys}}     # a KEYS_ONLY stream
    with pytest.raises(StoreError, match="NEW_AND_OLD_IMAGES"):
        snapshot_change(keys_only)


# --- with the pipeline -------------------------------------------------------------------------------

def test_overlapping_pipelines_record_one_change_once(store):
    """tests/test_pipeline.py's overlapping writers, on DynamoDB: the second cycle's commit is
    refused by the table's condition, it diffs again against the first's snapshot and records
    no second new_image."""
    import io

    from vulnwatch.model import EventKind
    from vulnwatch.notify.console import ConsoleNotifier
    from vulnwatch.pipeline import Pipeline, Sink

    img = image(tags=("1.0",))
    found = (finding("CVE-2024-1"),)
    first = ScanResult(img, "builtin", T0, findings=found)
    second = ScanResult(img, "builtin", T0 + timedelta(seconds=5), findings=found)
    sinks = [Sink(ConsoleNotifier("c", stream=io.StringIO()))]
    a, b = Pipeline(store, [], sinks), Pipeline(store, [], sinks)
    assert a.record(first, None).kind is EventKind.NEW_IMAGE
    assert b.record(second, None) is None
    assert [d.event.kind for d in store.deliveries()] == [EventKind.NEW_IMAGE]
    assert len(store.history("prod", "team/app")) == 2
    assert store.snapshot(*img.key) == second
