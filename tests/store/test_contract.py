"""The Store contract: the same behaviour from every backend (SQLite, PostgreSQL, DynamoDB on moto).

Each test runs once per backend through the ``any_store`` fixture (tests/store/conftest.py); what
is particular to one backend is in test_sql.py / test_dynamodb.py.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from vulnwatch.model import EventKind, Finding, Package, ScanResult, ScanState, Severity
from vulnwatch.store.interface import DeliveryStatus, StoreConflict, StoreError

from .factories import A, B, C, T0, UTC, finding, image, make_event, result


@pytest.fixture
def store(any_store):
    return any_store


def test_snapshot_round_trip_keeps_every_field(store):
    full = Finding(
        vulnerability_id="CVE-2023-5678", package_name="libssl3", package_version="3.0.11-1~deb12u1",
        severity=Severity.CRITICAL, ecosystem="Debian:12", aliases=("DSA-5532-1", "GHSA-xxxx"),
        fixed_versions=("3.0.11-1~deb12u2",), fix_available=True, cvss_score=9.8,
        cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", title="Excessive time spent",
        links=("https://security-tracker.debian.org/tracker/CVE-2023-5678",), scanner="builtin",
        exploit_available=False, purl="pkg:deb/debian/libssl3@3.0.11-1~deb12u1?distro=debian-12")
    unknown = Finding("GHSA-aaaa-bbbb-cccc", "requests", "2.19.1", ecosystem="PyPI",
                      fix_available=None, exploit_available=None)
    pkg = Package(name="libssl3", version="3.0.11-1~deb12u1", ecosystem="Debian:12",
                  purl="pkg:deb/debian/libssl3@3.0.11-1~deb12u1", source_name="openssl",
                  source_version="3.0.11-1~deb12u1", path="var/lib/dpkg/status", layer="sha256:" + "d" * 64)
    plus2 = timezone(timedelta(hours=2))
    img = image(tags=("1.2", "latest"), pushed_at=datetime(2024, 4, 30, 14, 0, tzinfo=plus2),
                media_type="application/vnd.oci.image.manifest.v1+json", size_bytes=123_456_789)
    res = ScanResult(image=img, scanner="builtin", scanned_at=T0.astimezone(plus2), findings=(full, unknown),
                     vulnerability_source_updated_at=T0 - timedelta(days=1), state=ScanState.COMPLETE,
                     packages=(pkg,), distro="Debian:12", notes=("advisory data 1 day old",))
    store.commit_scan(res, [])
    got = store.snapshot("prod", "team/app", A)
    assert got == res
    assert got.findings[0] == full and got.findings[1] == unknown
    assert got.scanned_at.tzinfo == UTC and got.scanned_at == T0
    assert got.image.pushed_at.tzinfo == UTC and got.image.pushed_at == datetime(2024, 4, 30, 12, 0, tzinfo=UTC)
    assert store.snapshot("prod", "team/app", B) is None
    assert store.snapshot("other", "team/app", A) is None


def test_unsupported_result_round_trips(store):
    res = result(findings=(), state=ScanState.UNSUPPORTED, notes=("UnsupportedImageTypeException",))
    store.commit_scan(res, [])
    got = store.snapshot(*res.image.key)
    assert got.state is ScanState.UNSUPPORTED and got.notes == res.notes


def test_second_commit_replaces_snapshot(store):
    store.commit_scan(result(findings=(finding("CVE-1"),)), [])
    newer = result(at=T0 + timedelta(hours=1), findings=(finding("CVE-2"), finding("CVE-3", Severity.LOW)))
    store.commit_scan(newer, [])
    assert store.snapshot("prod", "team/app", A) == newer
    assert len(store.snapshots()) == 1


def test_snapshots_all_and_by_registry(store):
    store.commit_scan(result(image(A)), [])
    store.commit_scan(result(image(B, tags=("x",), repo="team/db")), [])
    store.commit_scan(result(image(C, registry="staging")), [])
    assert sorted(s.image.key for s in store.snapshots()) == sorted(
        [("prod", "team/app", A), ("prod", "team/db", B), ("staging", "team/app", C)])
    assert [s.image.digest for s in store.snapshots("staging")] == [C]
    assert store.snapshots("nope") == []


def test_history_newest_first_with_limit_and_digest_filter(store):
    for h in (0, 2, 1):  # recorded out of order: order is by scan time
        store.commit_scan(result(at=T0 + timedelta(hours=h), findings=(finding(),) * (h + 1)), [])
    store.commit_scan(result(image(B, tags=()), at=T0 + timedelta(hours=5), findings=()), [])
    hist = store.history("prod", "team/app", A)
    assert [e.scanned_at for e in hist] == [T0 + timedelta(hours=h) for h in (2, 1, 0)]
    assert [e.counts["HIGH"] for e in hist] == [3, 2, 1]
    assert all(e.recorded_at.tzinfo == UTC and e.image.digest == A for e in hist)
    everything = store.history("prod", "team/app")
    assert [e.image.digest for e in everything] == [B, A, A, A]
    assert len(store.history("prod", "team/app", limit=2)) == 2
    assert store.history("prod", "other") == []


def test_same_scan_recorded_twice_is_one_history_entry(store):
    res = result()
    store.commit_scan(res, [])
    store.commit_scan(res, [])
    assert len(store.history("prod", "team/app", A)) == 1


def test_tag_moves(store):
    assert store.tag_digest("prod", "team/app", "latest") is None
    store.commit_scan(result(image(A, tags=("latest", "1.0"))), [])
    assert store.tag_digest("prod", "team/app", "latest") == A
    store.commit_scan(result(image(B, tags=("latest",)), at=T0 + timedelta(days=1)), [])
    assert store.tag_digest("prod", "team/app", "latest") == B
    assert store.tag_digest("prod", "team/app", "1.0") == A
    # the moved tag is taken off the old image, the other tag stays
    assert store.snapshot("prod", "team/app", A).image.tags == ("1.0",)
    # seen on A again (rollback): A is current again
    store.commit_scan(result(image(A, tags=("latest",)), at=T0 + timedelta(days=2)), [])
    assert store.tag_digest("prod", "team/app", "latest") == A
    assert store.snapshot("prod", "team/app", B).image.tags == ()
    assert store.tag_digest("prod", "other", "latest") is None
    assert store.tag_digest("staging", "team/app", "latest") is None
    # many tags at once: the same answers, tags never seen left out
    assert store.tag_digests("prod", "team/app", ["latest", "1.0", "nope"]) == {"latest": A, "1.0": A}
    assert store.tag_digests("staging", "team/app", ["latest"]) == {}


def test_failing_delivery_insert_leaves_nothing(store):
    res = result()
    ev = make_event(res)
    with pytest.raises(StoreError) as info:
        store.commit_scan(res, [(ev, ["slack", None])])  # NULL sink violates NOT NULL
    assert "prod/team/app@" + A in str(info.value)
    assert store.snapshot(*res.image.key) is None
    assert store.history("prod", "team/app") == []
    assert store.tag_digest("prod", "team/app", "latest") is None
    assert store.images() == []
    assert store.deliveries() == []


def test_failed_commit_keeps_the_previous_snapshot(store):
    old = result()
    store.commit_scan(old, [])
    new = result(at=T0 + timedelta(hours=1), findings=())
    with pytest.raises(StoreError):
        store.commit_scan(new, [(make_event(new), [None])])
    assert store.snapshot(*old.image.key) == old


def test_events_go_to_each_sink_once_and_duplicate_ids_are_ignored(store):
    res = result()
    ev1, ev2 = make_event(res, 1), make_event(res, 2, kind=EventKind.NEW_IMAGE)
    store.commit_scan(res, [(ev1, ["slack", "hook", "slack"]), (ev2, ["hook"])])
    rows = store.deliveries()
    assert sorted((d.event.id, d.sink) for d in rows) == sorted(
        [(ev1.id, "slack"), (ev1.id, "hook"), (ev2.id, "hook")])
    assert [d.event for d in rows if d.event.id == ev1.id] == [ev1, ev1]
    # the same event again (a re-run) adds nothing, even with another sink
    store.commit_scan(replace(res, scanned_at=T0 + timedelta(hours=1)), [(ev1, ["slack", "email"])])
    assert len(store.deliveries()) == 3
    # but the snapshot was still written
    assert store.snapshot(*res.image.key).scanned_at == T0 + timedelta(hours=1)


def test_event_without_sinks_adds_no_delivery(store):
    res = result()
    store.commit_scan(res, [(make_event(res), [])])
    assert store.deliveries() == []


def _three_deliveries(store) -> list[int]:
    ids = []
    for n in range(3):
        res = result(image(f"sha256:{n:064x}"), at=T0 + timedelta(minutes=n))
        store.commit_scan(res, [(make_event(res, n), ["slack"])])
    ids = [d.id for d in sorted(store.deliveries(), key=lambda d: d.created_at)]
    return ids


def test_due_deliveries_oldest_first_respecting_next_attempt_at(store):
    first, second, third = _three_deliveries(store)
    now = datetime.now(UTC)
    due = store.due_deliveries(now)
    assert [d.id for d in due] == [first, second, third]
    assert all(d.status is DeliveryStatus.PENDING and d.attempts == 0 for d in due)
    assert [d.id for d in store.due_deliveries(now, limit=2)] == [first, second]

    store.mark_failed([first], "HTTP 503 from slack", now, now + timedelta(minutes=5))
    assert [d.id for d in store.due_deliveries(now)] == [second, third]
    later = store.due_deliveries(now + timedelta(minutes=5))
    assert [d.id for d in later] == [first, second, third]
    d = later[0]
    assert d.attempts == 1 and d.last_error == "HTTP 503 from slack"
    assert d.next_attempt_at == (now + timedelta(minutes=5)).astimezone(UTC)
    assert d.next_attempt_at.tzinfo == UTC


def test_due_compares_instants_across_timezones(store):
    (first, *_rest) = _three_deliveries(store)
    now = datetime.now(UTC)
    store.mark_failed([first], "429", now, now + timedelta(hours=1))
    tokyo = timezone(timedelta(hours=9))
    assert first not in [d.id for d in store.due_deliveries((now + timedelta(minutes=59)).astimezone(tokyo))]
    assert first in [d.id for d in store.due_deliveries((now + timedelta(minutes=61)).astimezone(tokyo))]


def test_mark_delivered(store):
    first, second, third = _three_deliveries(store)
    at = datetime.now(UTC)
    store.mark_delivered([first, third], at)
    assert [d.id for d in store.due_deliveries(at + timedelta(days=1))] == [second]
    done = store.deliveries(DeliveryStatus.DELIVERED)
    assert [d.id for d in done] == [third, first]  # newest first
    assert all(d.delivered_at == at and d.attempts == 1 for d in done)


def test_mark_failed_without_next_attempt_dead_letters_and_retry_dead(store):
    first, second, third = _three_deliveries(store)
    now = datetime.now(UTC)
    store.mark_failed([first, second], "HTTP 404 (check the webhook URL)", now, None)
    dead = store.deliveries(DeliveryStatus.DEAD)
    assert [d.id for d in dead] == [second, first]
    assert all(d.attempts == 1 and d.last_error.startswith("HTTP 404") for d in dead)
    assert [d.id for d in store.due_deliveries(now + timedelta(days=1))] == [third]

    assert store.retry_dead([second]) == 1
    assert store.retry_dead([second]) == 0  # no longer dead
    assert [d.id for d in store.due_deliveries(now)] == [second, third]
    assert store.retry_dead(now=now + timedelta(minutes=10)) == 1
    revived = [d for d in store.deliveries() if d.id == first][0]
    assert revived.status is DeliveryStatus.PENDING and revived.attempts == 0
    assert revived.next_attempt_at == now + timedelta(minutes=10)
    assert first not in [d.id for d in store.due_deliveries(now)]
    assert store.deliveries(DeliveryStatus.DEAD) == []


def test_mark_failed_does_not_undo_a_delivery(store):
    first, *_ = _three_deliveries(store)
    now = datetime.now(UTC)
    store.mark_delivered([first], now)
    store.mark_failed([first], "late failure report", now, None)
    (d,) = [d for d in store.deliveries() if d.id == first]
    assert d.status is DeliveryStatus.DELIVERED and d.last_error is None


def test_many_ids_at_once(store):
    # More ids than one statement or request takes: SQL parameter lists are chunked, DynamoDB's
    # transactions and batch reads hold 100 items (130 crosses that without costing moto minutes).
    n = 130 if type(store).__name__ == "DynamoDBStore" else 600
    res = result()
    events = [(make_event(res, i), ["hook"]) for i in range(n)]
    store.commit_scan(res, events)
    ids = [d.id for d in store.deliveries(limit=5000)]
    assert len(ids) == n
    store.mark_failed(ids, "down", T0, None)
    assert store.retry_dead(ids) == n


def test_failures_recorded_and_cleared(store):
    at = T0 + timedelta(hours=3)
    store.record_failure(image(C, tags=("dev",)), "ecr-basic", "ScanNotFoundException: rescan", at)
    (st,) = store.images()
    assert st.image.digest == C and st.image.tags == ("dev",)
    assert st.last_error == "ScanNotFoundException: rescan" and st.last_error_at == at
    assert st.scanner == "ecr-basic" and st.last_scanned_at is None and st.counts == {}
    assert store.snapshot(*st.image.key) is None

    ok = result(image(A), findings=(finding(), finding("CVE-2", Severity.LOW)))
    store.commit_scan(ok, [])
    store.record_failure(image(A), "ecr-basic", "ThrottlingException", at)
    rows = {s.image.digest: s for s in store.images()}
    assert rows[A].last_error == "ThrottlingException"
    assert rows[A].counts["HIGH"] == 1 and rows[A].counts["LOW"] == 1
    assert list(rows[A].counts) == [s.name for s in sorted(Severity, reverse=True)]
    assert rows[A].last_scanned_at == T0
    assert store.snapshot(*ok.image.key) == ok  # kept despite the failure

    store.commit_scan(replace(ok, scanned_at=T0 + timedelta(hours=4)), [])
    rows = {s.image.digest: s for s in store.images()}
    assert rows[A].last_error is None and rows[A].last_error_at is None
    assert rows[C].last_error is not None


def test_long_errors_are_cut(store):
    store.record_failure(image(), "builtin", "x" * 100_000, T0)
    (st,) = store.images()
    assert 0 < len(st.last_error) <= 4000


def test_commit_from_one_thread_while_another_works_the_outbox(store):
    errors: list[BaseException] = []
    n = 40

    def writer():
        try:
            for i in range(n):
                res = result(image(f"sha256:{i:064x}"), at=T0 + timedelta(seconds=i))
                store.commit_scan(res, [(make_event(res, i), ["slack", "hook"])])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def dispatcher(stop: threading.Event):
        try:
            while not stop.is_set():
                due = store.due_deliveries(datetime.now(UTC), limit=10)
                if due:
                    store.mark_delivered([d.id for d in due], datetime.now(UTC))
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    stop = threading.Event()
    t_disp = threading.Thread(target=dispatcher, args=(stop,))
    t_write = threading.Thread(target=writer)
    t_disp.start()
    t_write.start()
    t_write.join(60)
    for d in store.due_deliveries(datetime.now(UTC)):
        pass
    stop.set()
    t_disp.join(60)
    assert errors == []
    remaining = store.due_deliveries(datetime.now(UTC))
    store.mark_delivered([d.id for d in remaining], datetime.now(UTC))
    assert len(store.deliveries(DeliveryStatus.DELIVERED, limit=1000)) == 2 * n
    assert len(store.snapshots()) == n


def test_mark_checked_stamps_images_in_one_call(store):
    store.commit_scan(result(image(A)), [])
    store.commit_scan(result(image(B)), [])
    before = {s.image.digest: s.last_checked_at for s in store.images()}
    assert before[A] == result(image(A)).scanned_at              # never stamped: the scan time
    later = T0 + timedelta(days=2)
    store.mark_checked([image(A).key], later)
    store.mark_checked([], later)                                # nothing to do is fine
    after = {s.image.digest: s.last_checked_at for s in store.images()}
    assert after[A] == later and after[B] == before[B]


def test_inventories_stream_rows_and_signatures(store):
    from vulnwatch.model import findings_signature

    pkgs = (Package("libssl3", "3.0.11-1", "Debian:12", purl="pkg:deb/debian/libssl3@3.0.11-1",
                    source_name="openssl", path="var/lib/dpkg/status", layer="sha256:l1"),
            Package("jinja2", "2.10", "PyPI"))
    res = result(image(A), packages=pkgs, distro="Debian:12")
    store.commit_scan(res, [])
    store.commit_scan(result(image(B)), [])                      # no inventory: not listed
    [inv] = list(store.inventories())
    assert inv.key == image(A).key and inv.distro == "Debian:12"
    assert [tuple(r) for r in inv.rows] == [tuple(p.__dict__.values()) for p in pkgs]
    assert inv.packages[0].source_name == "openssl"
    assert inv.findings_signature == findings_signature(res.findings)
    assert store.snapshot(*image(A).key).packages == pkgs         # full objects still come back



# --- commit_scan(expected=...) ------------------------------------------------------------------

def test_expected_none_conflicts_with_a_stored_snapshot_and_writes_nothing(store):
    first = result(findings=(finding("CVE-1"),))
    store.commit_scan(first, [(make_event(first, 1), ["hook"])], expected=None)
    late = result(at=T0 + timedelta(minutes=1), findings=(finding("CVE-2"),))
    with pytest.raises(StoreConflict) as info:
        store.commit_scan(late, [(make_event(late, 2), ["hook"])], expected=None)
    assert "another writer" in str(info.value) and "team/app" in str(info.value)
    assert store.snapshot(*first.image.key) == first
    assert [e.scanned_at for e in store.history("prod", "team/app")] == [T0]
    assert [d.event.id for d in store.deliveries()] == [make_event(first, 1).id]


def test_expected_must_be_the_stored_snapshot(store):
    first = result(findings=(finding("CVE-1"),))
    store.commit_scan(first, [])
    second = result(at=T0 + timedelta(hours=1), findings=(finding("CVE-2"),))
    store.commit_scan(second, [], expected=store.snapshot(*first.image.key))      # current: fine
    third = result(at=T0 + timedelta(hours=2), findings=())
    with pytest.raises(StoreConflict, match="changed since it was read"):
        store.commit_scan(third, [(make_event(third), ["hook"])], expected=first)  # stale
    same_time_other_findings = replace(second, findings=(finding("CVE-3"),))
    with pytest.raises(StoreConflict):
        store.commit_scan(third, [], expected=same_time_other_findings)             # same time, other findings
    assert store.snapshot(*first.image.key) == second
    assert store.deliveries() == [] and len(store.history("prod", "team/app")) == 2
    # an image known only by a failure has no snapshot: expected=None is right for it
    store.record_failure(image(B), "ecr-basic", "boom", T0)
    store.commit_scan(result(image(B)), [], expected=None)
    assert store.snapshot(*image(B).key) == result(image(B))


def test_two_writers_racing_on_one_image_one_wins(store):
    """Both read the (absent) snapshot, then both commit at once: one wins, the other conflicts
    and leaves nothing behind."""
    key = image().key
    runs = {"a": result(findings=(finding("CVE-A"),)),
            "b": result(at=T0 + timedelta(seconds=1), findings=(finding("CVE-B"),))}
    barrier = threading.Barrier(2, timeout=60)
    outcome: dict[str, object] = {}

    def writer(name: str) -> None:
        res = runs[name]
        seen = store.snapshot(*key)
        barrier.wait()                       # both have read before either writes
        try:
            store.commit_scan(res, [(make_event(res, name), ["hook"])], expected=seen)
            outcome[name] = "won"
        except StoreConflict as e:
            outcome[name] = e
        except BaseException as e:  # pragma: no cover - reported below
            outcome[name] = repr(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(outcome) == ["a", "b"]
    winners = [n for n, o in outcome.items() if o == "won"]
    losers = [n for n, o in outcome.items() if isinstance(o, StoreConflict)]
    assert len(winners) == 1 and len(losers) == 1, outcome
    (won,) = winners
    assert store.snapshot(*key) == runs[won]
    assert [e.scanned_at for e in store.history("prod", "team/app")] == [runs[won].scanned_at]
    assert [d.event.id for d in store.deliveries()] == [make_event(runs[won], won).id]


# --- inventories and re-matching -------------------------------------------------------------------

def test_keep_inventory_keeps_packages_and_distro(store):
    pkgs = (Package("zlib1g", "1:1.2.13.dfsg-1", "Debian:12", source_name="zlib"),
            Package("jinja2", "2.10", "PyPI", path="app/requirements.txt"))
    scanned = result(image(A), scanner="builtin", packages=pkgs, distro="Debian:12")
    store.commit_scan(scanned, [])
    assert store.snapshot(*image(A).key, with_inventory=False) == replace(scanned, packages=())
    rematched = replace(scanned, scanned_at=T0 + timedelta(days=1), packages=(), distro=None,
                        findings=(finding("CVE-2024-9999", Severity.CRITICAL),))
    store.commit_scan(rematched, [], keep_inventory=True, expected=scanned)
    got = store.snapshot(*image(A).key)
    assert got.packages == pkgs and got.distro == "Debian:12"
    assert got.findings == rematched.findings and got.scanned_at == rematched.scanned_at
    [inv] = list(store.inventories(keys=[image(A).key]))
    assert [tuple(r) for r in inv.rows] == [tuple(p.__dict__.values()) for p in pkgs]
    from vulnwatch.model import findings_signature
    assert inv.findings_signature == findings_signature(rematched.findings)


def test_inventories_of_keys_and_of_a_registry(store):
    pkg = (Package("curl", "7.88.1-10", "Debian:12"),)
    store.commit_scan(result(image(A), packages=pkg, distro="Debian:12"), [])
    store.commit_scan(result(image(B, registry="staging"), packages=pkg, distro="Debian:12"), [])
    store.commit_scan(result(image(C), distro="Alpine:v3.19"), [])          # distro only: listed
    assert [i.key for i in store.inventories()] == sorted(
        [image(A).key, image(B, registry="staging").key, image(C).key])
    assert [i.key for i in store.inventories("staging")] == [image(B, registry="staging").key]
    wanted = [image(C).key, image(A).key, ("prod", "team/app", "sha256:" + "f" * 64), image(A).key]
    assert [i.key for i in store.inventories(keys=wanted)] == sorted([image(A).key, image(C).key])
    assert [i.rows for i in store.inventories(keys=[image(C).key])] == [[]]


def test_suppressed_findings_round_trip_and_count_nowhere(store):
    from datetime import date

    from vulnwatch.model import Suppression, result_signature

    s = Suppression(kind="vex", reason="not reachable", source="app.openvex.json#statements[0]",
                    rule="CVE-2024-9 pkg:deb/debian/openssl", status="not_affected",
                    justification="vulnerable_code_not_in_execute_path", expires=date(2027, 1, 1))
    hidden = replace(finding("CVE-2024-9", Severity.CRITICAL), suppression=s)
    res = replace(result(findings=(finding("CVE-2024-1"),)), suppressed=(hidden,))
    store.commit_scan(res, [])
    got = store.snapshot(*res.image.key)
    assert got == res and got.suppressed[0].suppression == s
    assert got.counts["CRITICAL"] == 0
    [inv] = [i for i in store.inventories() if i.key == res.image.key] or [None]
    if inv is not None:          # re-matching compares every finding the scanner made
        assert inv.findings_signature == result_signature(res)
    store.commit_scan(replace(res, suppressed=(), scanned_at=res.scanned_at + timedelta(hours=1)), [],
                      expected=got)
    assert store.snapshot(*res.image.key).suppressed == ()
