"""Leases (expiry, takeover, fencing), claims, digest batches and per-image delivery order, on
SQLite and a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from vulnwatch.model import Event, EventKind, Finding, Image, ScanResult, Severity, stable_id
from vulnwatch.store.interface import LeaseHeld, LeaseLost, Store
from vulnwatch.store.sql import SQLStore

UTC = timezone.utc
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(minutes=5)


def result(digest: str = "a", at: datetime = T0, repo: str = "team/app") -> ScanResult:
    img = Image("prod", repo, "sha256:" + digest * 64, ("latest",))
    return ScanResult(img, "ecr-basic", at, findings=(Finding("CVE-2024-1", "openssl", "3", Severity.HIGH,
                                                              "Debian:12"),))


def event(res: ScanResult, n: int) -> Event:
    return Event(id=stable_id("t", res.image.key, n), kind=EventKind.FINDINGS_CHANGED, image=res.image,
                 scanner=res.scanner, occurred_at=res.scanned_at, added=res.findings)


def test_one_holder_at_a_time_and_the_error_names_the_holder(store):
    a = store.acquire_lease("cycle", "host-a:1:x", TTL)
    assert a.token >= 1 and a.holder == "host-a:1:x" and a.expires_at > datetime.now(UTC)
    with pytest.raises(LeaseHeld) as info:
        store.acquire_lease("cycle", "host-b:2:y", TTL)
    assert info.value.holder == "host-a:1:x" and "host-a:1:x" in str(info.value)
    assert info.value.expires_at == store.lease("cycle").expires_at
    again = store.acquire_lease("cycle", "host-a:1:x", TTL)       # the holder itself: extended
    assert again.token == a.token
    store.release_lease(again)
    b = store.acquire_lease("cycle", "host-b:2:y", TTL)             # released: free at once
    assert b.token == a.token + 1
    assert store.acquire_lease("other", "host-a:1:x", TTL).token == 1   # names are independent


def test_an_expired_lease_is_taken_over_and_the_stale_holder_cannot_write(store):
    stale = store.acquire_lease("cycle", "crashed:1:x", timedelta(milliseconds=300))
    time.sleep(0.4)
    fresh = store.acquire_lease("cycle", "new:2:y", TTL)
    assert fresh.token == stale.token + 1
    with pytest.raises(LeaseLost):
        store.renew_lease(stale, TTL)
    with store.fenced(stale):                                         # the stale holder wakes up
        with pytest.raises(LeaseLost) as info:
            store.commit_scan(result(), [(event(result(), 1), ["hook"])])
        assert "taken over by new:2:y" in str(info.value)
        for write in (lambda: store.mark_checked([result().image.key], T0),
                      lambda: store.record_failure(result().image, "ecr-basic", "boom", T0),
                      lambda: store.mark_delivered([1], T0)):
            with pytest.raises(LeaseLost):
                write()
    assert store.snapshot(*result().image.key) is None and store.deliveries() == []   # nothing written
    assert store.images() == []
    with store.fenced(fresh):                                         # the current holder can
        store.commit_scan(result(), [(event(result(), 1), ["hook"])])
    assert store.snapshot(*result().image.key) is not None
    renewed = store.renew_lease(fresh, TTL)
    assert renewed.token == fresh.token and renewed.expires_at >= fresh.expires_at
    store.release_lease(stale)                                       # a lost lease: no effect
    assert store.lease("cycle").holder == "new:2:y"


def test_a_takeover_waits_for_a_fenced_write_in_progress_or_refuses_it(store_url):
    """The fence is checked inside the write's transaction: a write racing a takeover either
    commits before it or is refused; never committed under a stale token."""
    a, b = SQLStore(store_url), SQLStore(store_url)
    try:
        outcomes = []
        for i in range(12):
            name = f"race{i}"
            held = a.acquire_lease(name, "a", timedelta(milliseconds=50))
            time.sleep(0.06)
            res = result(digest="%x" % (i % 16), repo=f"r{i}")

            def write():
                try:
                    with a.fenced(held):
                        a.commit_scan(res, [])
                    outcomes.append(("written", i))
                except LeaseLost:
                    outcomes.append(("refused", i))

            t = threading.Thread(target=write)
            t.start()
            took = b.acquire_lease(name, "b", TTL)
            t.join()
            written = a.snapshot(*res.image.key) is not None
            assert took.token == held.token + 1
            assert (("written", i) in outcomes) == written
    finally:
        a.close()
        b.close()


def test_claims_split_images_between_workers_and_done_ones_wait_for_the_next_round(store_url):
    names = [f"image:prod/app@sha256:{i:064x}" for i in range(40)]
    round_start = datetime.now(UTC)
    stores = [SQLStore(store_url) for _ in range(4)]
    got: dict[int, list[str]] = {}
    try:
        def worker(n: int) -> None:
            mine = got.setdefault(n, [])
            while True:
                taken = stores[n].claim_leases(names, f"w{n}", TTL, limit=3, done_before=round_start)
                if not taken:
                    return
                for lease in taken:
                    mine.append(lease.name)
                    stores[n].release_lease(lease, done=True)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [name for claimed in got.values() for name in claimed]
        assert sorted(every) == sorted(names)                      # each image once, none twice
        assert stores[0].claim_leases(names, "late", TTL, limit=100, done_before=round_start) == []
        later = stores[0].claim_leases(names, "next", TTL, limit=100, done_before=datetime.now(UTC))
        assert len(later) == 40                                    # the next round takes them all again
        assert stores[1].claim_leases(names, "other", TTL, limit=100) == []   # held: not given twice
    finally:
        for s in stores:
            s.close()


def test_a_crashed_workers_claim_expires_and_is_taken_over(store):
    names = ["image:prod/app@sha256:" + "1" * 64]
    (crashed,) = store.claim_leases(names, "w1", timedelta(milliseconds=200), limit=5)
    assert store.claim_leases(names, "w2", TTL, limit=5) == []
    time.sleep(0.3)
    (taken,) = store.claim_leases(names, "w2", TTL, limit=5)
    assert taken.token == crashed.token + 1
    with store.fenced(crashed), pytest.raises(LeaseLost):
        store.commit_scan(result("1"), [])


def test_later_deliveries_of_an_image_wait_for_its_earlier_one_per_sink(store):
    x1, x2, y1 = result("a"), result("a", at=T0 + timedelta(hours=1)), result("b")
    store.commit_scan(x1, [(event(x1, 1), ["slack", "hook"])])
    store.commit_scan(x2, [(event(x2, 2), ["slack", "hook"])])
    store.commit_scan(y1, [(event(y1, 3), ["slack"])])
    now = datetime.now(UTC) + timedelta(seconds=1)
    due = store.due_deliveries(now)
    assert [(d.sink, d.event.id) for d in due] == [
        ("slack", event(x1, 1).id), ("hook", event(x1, 1).id), ("slack", event(x2, 2).id),
        ("hook", event(x2, 2).id), ("slack", event(y1, 3).id)]
    first_slack = due[0].id
    store.mark_failed([first_slack], "HTTP 503", now, now + timedelta(minutes=10))
    due = store.due_deliveries(now)
    assert [(d.sink, d.event.id) for d in due] == [    # slack's x2 waits for x1; y1 and hook go on
        ("hook", event(x1, 1).id), ("hook", event(x2, 2).id), ("slack", event(y1, 3).id)]
    later = store.due_deliveries(now + timedelta(minutes=10))
    assert [d.event.id for d in later if d.sink == "slack"] == [event(x1, 1).id, event(x2, 2).id,
                                                                 event(y1, 3).id]
    store.mark_failed([first_slack], "HTTP 404", now, None)        # a dead letter holds nothing back
    assert [d.event.id for d in store.due_deliveries(now) if d.sink == "slack"] == [
        event(x2, 2).id, event(y1, 3).id]


def test_a_batch_is_recorded_once_and_kept(store):
    x, y = result("a"), result("b")
    store.commit_scan(x, [(event(x, 1), ["daily"])])
    store.commit_scan(y, [(event(y, 2), ["daily"])])
    now = datetime.now(UTC) + timedelta(seconds=1)
    rows = store.due_deliveries(now)
    assert [d.batch_id for d in rows] == [None, None]
    store.assign_batch([rows[0].id], "batch-1")
    store.assign_batch([d.id for d in rows], "batch-2")             # a row keeps its first batch
    assert [d.batch_id for d in store.due_deliveries(now)] == ["batch-1", "batch-2"]


def test_the_interface_says_what_a_store_without_leases_lacks():
    """Not abstract (stores written before leases still open), but a clear error when used."""
    calls = {"acquire_lease": ("cycle", "h", TTL), "renew_lease": (None, TTL), "release_lease": (None,),
             "lease": ("cycle",), "claim_leases": ([], "h", TTL), "fenced": (), "assign_batch": ([], "b")}
    for name, args in calls.items():
        method = getattr(Store, name)
        assert not getattr(method, "__isabstractmethod__", False), name
        kwargs = {"limit": 1} if name == "claim_leases" else {}
        with pytest.raises(NotImplementedError, match="does not support"):
            method(object(), *args, **kwargs)


def test_take_over_frees_only_the_named_holder(store):
    held = store.acquire_lease("cycle", "host:1:a:s", TTL)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("cycle", "host:2:b:s", TTL, take_over="host:9:someone-else:s")
    taken = store.acquire_lease("cycle", "host:2:b:s", TTL, take_over="host:1:a:s")
    assert taken.token == held.token + 1 and store.lease("cycle").holder == "host:2:b:s"
    with store.fenced(held), pytest.raises(LeaseLost):
        store.mark_checked([result().image.key], T0)
