"""SQLStore against SQLite and a real PostgreSQL: the same behaviour on both."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text

from vulnwatch.model import (Event, EventKind, Finding, Image, Package, ScanResult, ScanState, Severity,
                             stable_id)
from vulnwatch.store import sql as sqlmod
from vulnwatch.store.interface import DeliveryStatus, StoreError
from vulnwatch.store.migrations import Migration
from vulnwatch.store.sql import SQLStore

UTC = timezone.utc
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def image(digest: str = A, tags=("latest",), repo="team/app", registry="prod", **kw) -> Image:
    return Image(registry, repo, digest, tags=tuple(tags), **kw)


def finding(vid: str = "CVE-2024-0001", sev: Severity = Severity.HIGH, **kw) -> Finding:
    return Finding(vulnerability_id=vid, package_name=kw.pop("package_name", "openssl"),
                   package_version=kw.pop("package_version", "3.0.11-1~deb12u2"), severity=sev,
                   ecosystem="Debian:12", scanner="ecr-basic", **kw)


def result(img: Image | None = None, at: datetime = T0, findings=(finding(),), **kw) -> ScanResult:
    return ScanResult(image=img or image(), scanner=kw.pop("scanner", "ecr-basic"), scanned_at=at,
                      findings=tuple(findings), **kw)


def make_event(res: ScanResult, n: int = 0, kind=EventKind.FINDINGS_CHANGED) -> Event:
    return Event(id=stable_id("test", res.image.digest, n), kind=kind, image=res.image,
                 scanner=res.scanner, occurred_at=res.scanned_at, added=res.findings,
                 counts=res.counts)


# --- snapshots -------------------------------------------------------------------------------

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


def test_snapshots_of_many_images_is_one_query(store):
    n = 150
    for i in range(n):
        store.commit_scan(result(image(f"sha256:{i:064x}", tags=(f"v{i}",)),
                                 findings=(finding(f"CVE-2024-{i:04d}"),)), [])
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    sa_event.listen(store._engine, "before_cursor_execute", count)
    try:
        snaps = store.snapshots()
    finally:
        sa_event.remove(store._engine, "before_cursor_execute", count)
    assert len(snaps) == n
    assert {s.findings[0].vulnerability_id for s in snaps} == {f"CVE-2024-{i:04d}" for i in range(n)}
    assert len(statements) == 1


# --- history -------------------------------------------------------------------------------

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


# --- tags ----------------------------------------------------------------------------------

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


def test_tag_seen_again_on_same_digest_keeps_one_row(store):
    store.commit_scan(result(), [])
    store.commit_scan(result(at=T0 + timedelta(hours=1)), [])
    with store._engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(sqlmod.tag_history_t)) == 1


# --- commit_scan: one transaction, outbox -----------------------------------------------------

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


# --- outbox --------------------------------------------------------------------------------

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
    res = result()
    events = [(make_event(res, n), ["hook"]) for n in range(600)]
    store.commit_scan(res, events)
    ids = [d.id for d in store.deliveries(limit=5000)]
    assert len(ids) == 600
    store.mark_failed(ids, "down", T0, None)
    assert store.retry_dead(ids) == 600


# --- failures and status -------------------------------------------------------------------

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


# --- migrations ------------------------------------------------------------------------------

def test_migrations_run_once_and_newer_db_is_refused(store_url, monkeypatch):
    SQLStore(store_url).close()
    calls = []

    def add_column(conn):
        calls.append(1)
        conn.execute(text("CREATE TABLE extra_test (id INTEGER PRIMARY KEY)"))

    extended = (*sqlmod.MIGRATIONS, Migration(len(sqlmod.MIGRATIONS) + 1, "test step", add_column))
    newest = extended[-1].version
    with monkeypatch.context() as m:
        m.setattr(sqlmod, "MIGRATIONS", extended)
        m.setattr(sqlmod, "LATEST_VERSION", newest)
        s = SQLStore(store_url)
        assert s.schema_version() == newest
        s.close()
        s = SQLStore(store_url)
        s.close()
        assert calls == [1]
        with s._engine.connect() as conn:
            versions = conn.execute(select(sqlmod.schema_migrations.c.version)).scalars().all()
        assert sorted(versions) == list(range(1, newest + 1))
    # back to the real code: the database is newer than it
    with pytest.raises(StoreError) as info:
        SQLStore(store_url)
    msg = str(info.value)
    assert f"schema version {newest}" in msg and f"up to {newest - 1}" in msg and "Upgrade" in msg


def test_failed_migration_is_rolled_back_and_retried(store_url, monkeypatch):
    SQLStore(store_url).close()
    attempts = []

    def broken(conn):
        attempts.append(1)
        conn.execute(text("CREATE TABLE half_done (id INTEGER PRIMARY KEY)"))
        if len(attempts) == 1:
            conn.execute(text("SELECT * FROM no_such_table"))

    extended = (*sqlmod.MIGRATIONS, Migration(len(sqlmod.MIGRATIONS) + 1, "flaky", broken))
    monkeypatch.setattr(sqlmod, "MIGRATIONS", extended)
    monkeypatch.setattr(sqlmod, "LATEST_VERSION", extended[-1].version)
    with pytest.raises(StoreError) as info:
        SQLStore(store_url)
    assert f"migration {extended[-1].version} (flaky)" in str(info.value)
    s = SQLStore(store_url)  # the half-made table was rolled back, so this works
    assert s.schema_version() == extended[-1].version and len(attempts) == 2
    s.close()


def test_fresh_store_is_at_latest_version(store):
    from vulnwatch.store.migrations import LATEST_VERSION
    assert store.schema_version() == LATEST_VERSION


# --- concurrency ----------------------------------------------------------------------------

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


# --- opening ---------------------------------------------------------------------------------

def test_from_path_creates_directory_and_uses_wal(tmp_path):
    path = tmp_path / "deep" / "er" / "state.db"
    s = SQLStore.from_path(path)
    try:
        assert path.exists()
        with s._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        s.close()
    s = SQLStore.from_path(path)  # reopening an existing store is fine
    assert s.schema_version() >= 1
    s.close()


def test_in_memory_sqlite_works():
    s = SQLStore("sqlite://")
    s.commit_scan(result(), [])
    assert len(s.snapshots()) == 1
    s.close()


def test_password_never_shown():
    with pytest.raises(StoreError) as info:
        SQLStore("postgresql+psycopg://vw:s3cr3t-pw@127.0.0.1:1/state?connect_timeout=2")
    assert "s3cr3t-pw" not in str(info.value)
    assert "127.0.0.1:1/state" in str(info.value)


def test_repr_hides_password(pg_cluster):
    url = pg_cluster.create_database().replace("postgres@", "postgres:hunter2@")
    s = SQLStore(url)  # trust auth: the password is ignored by the server
    try:
        assert "hunter2" not in repr(s) and "***" in repr(s)
    finally:
        s.close()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_urls_are_refused(url):
    with pytest.raises(StoreError, match="sqlite:///"):
        SQLStore(url)


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


def test_packages_written_by_schema_1_are_still_read(store):
    import json as _json

    from sqlalchemy import update

    from vulnwatch.store.sql import snapshots_t

    pkgs = (Package("curl", "7.88.1-10", "Debian:12", source_name="curl"),)
    store.commit_scan(result(image(A), packages=pkgs, distro="Debian:12"), [])
    old_format = _json.dumps([{"name": "curl", "version": "7.88.1-10", "ecosystem": "Debian:12",
                               "purl": None, "source_name": "curl", "source_version": None,
                               "path": None, "layer": None}])
    with store._engine.begin() as conn:
        conn.execute(update(snapshots_t).values(packages=old_format, findings_signature=None))
    assert store.snapshot(*image(A).key).packages == pkgs
    [inv] = list(store.inventories())
    assert inv.findings_signature is None and inv.packages[0].name == "curl"
