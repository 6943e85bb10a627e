"""The finding lists inside events stored per distinct package (issue 12, migration 13): an
event's added / fixed / changed findings are cut per package and each list is stored once,
however many events carry it; events read back (deliveries, recent events, fixes) are the events
written; a store with events written before migration 13 is converted. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import create_engine, text

from vulnwatch.model import EventKind, FindingChange, Severity, stable_id
from vulnwatch.store import sql as sqlmod
from vulnwatch.store.sql import SQLStore

from .factories import A, B, C, T0, finding, image, make_event, result
from .test_scale import _store_at

SHARED = (finding("CVE-2024-0001", package_name="openssl", package_version="3.0.11"),
          finding("CVE-2024-0002", package_name="openssl", package_version="3.0.11"))


def _count(store, sql: str) -> int:
    with store._engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_a_package_delta_shared_by_many_events_is_stored_once(store):
    """Three images gain the same two openssl findings, each beside one of its own: the outbox
    holds three events but four lists (the shared openssl list once, three own ones); every
    event reads back as written, through deliveries and through recent events."""
    events = []
    for n, d in enumerate((A, B, C)):
        own = finding(f"CVE-2024-01{n}0", package_name=f"pkg{n}", package_version="1")
        res = result(image(d), findings=SHARED + (own,))
        ev = make_event(res)
        events.append(ev)
        store.commit_scan(res, [(ev, ["each"])])
    assert _count(store, "SELECT count(*) FROM events") == 3
    assert _count(store, "SELECT count(*) FROM event_lists") == 4
    with store._engine.connect() as conn:
        bodies = [json.loads(b) for (b,) in conn.execute(text("SELECT body FROM events"))]
    assert all("added" not in b and len(b["lists"]["added"]) == 2 for b in bodies)
    assert len({b["lists"]["added"][0] for b in bodies}) == 1                # the shared list
    by_id = {e.id: e for e in events}
    due = store.due_deliveries(T0 + timedelta(days=1))
    assert len(due) == 3 and all(d.event == by_id[d.event.id] for d in due)
    assert sorted(store.recent_events(), key=lambda e: e.id) == sorted(events, key=lambda e: e.id)
    assert store.delivery(due[0].id).event == due[0].event


def test_changed_and_fixed_lists_read_back(store):
    before = result(image(A), findings=SHARED)
    store.commit_scan(before, [(make_event(before, kind=EventKind.NEW_IMAGE), ["each"])])
    rescored = replace(SHARED[0], severity=Severity.CRITICAL, cvss_score=9.8)
    now = result(image(A), at=T0 + timedelta(hours=1), findings=(rescored,))
    ev = replace(make_event(now, 1), added=(), fixed=(SHARED[1],), changed=(FindingChange(SHARED[0], rescored),))
    store.commit_scan(now, [(ev, ["each"])])
    [got] = [e for e in store.recent_events() if e.id == ev.id]
    assert got == ev and got.changed[0].what == ("severity", "cvss_score")


def test_an_event_whose_list_is_missing_is_reported_not_read_as_empty(store):
    res = result(image(A), findings=SHARED)
    store.commit_scan(res, [(make_event(res), ["each"])])
    with store._engine.begin() as conn:
        conn.execute(text("DELETE FROM event_lists"))
    store._list_cache.clear()
    import pytest
    with pytest.raises(sqlmod.StoreError, match="cannot read event"):
        store.due_deliveries(T0 + timedelta(days=1))


def test_events_written_before_migration_13_are_converted(store_url, monkeypatch):
    _store_at(store_url, 11, monkeypatch)
    old = result(image(A), findings=SHARED)
    events = [make_event(old, kind=EventKind.NEW_IMAGE),
              replace(make_event(result(image(B), findings=SHARED)), id=stable_id("test", "b")),
              replace(make_event(old, 2), added=(), fixed=(SHARED[1],),
                      changed=(FindingChange(SHARED[0], replace(SHARED[0], severity=Severity.HIGH)),))]
    engine = create_engine(store_url)      # raw SQL as the code of schema 11 wrote events: lists inline
    with engine.begin() as conn:
        for n, ev in enumerate(events):
            conn.execute(text("INSERT INTO events (id, kind, registry, repository, digest, body, created_at) "
                              "VALUES (:i, :k, 'prod', 'team/app', :d, :b, :t)"),
                         {"i": ev.id, "k": ev.kind.value, "d": ev.image.digest, "b": json.dumps(ev.to_dict()),
                          "t": T0 + timedelta(seconds=n)})
            conn.execute(text("INSERT INTO deliveries (event_id, sink, status, attempts, created_at) "
                              "VALUES (:i, 'each', 'pending', 0, :t)"), {"i": ev.id, "t": T0 + timedelta(seconds=n)})
        conn.execute(text("INSERT INTO events (id, kind, registry, repository, digest, body, created_at) "
                          "VALUES ('broken', 'new_image', 'prod', 'team/app', :d, 'not json', :t)"),
                     {"d": A, "t": T0})
    engine.dispose()
    s = SQLStore(store_url)                # migration 13 runs
    try:
        assert s.schema_version() == sqlmod.LATEST_VERSION
        assert [d.event for d in s.due_deliveries(T0 + timedelta(days=1))] == events
        with s._engine.connect() as conn:
            bodies = dict(conn.execute(text("SELECT id, body FROM events")).all())
            lists = conn.execute(text("SELECT count(*) FROM event_lists")).scalar()
        assert bodies.pop("broken") == "not json"          # left as it was
        assert all("lists" in json.loads(b) and "added" not in json.loads(b) for b in bodies.values())
        assert lists == 3        # openssl's two findings (A and B share it), its fixed one, its change
    finally:
        s.close()
