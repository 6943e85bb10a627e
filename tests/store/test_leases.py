"""Leases (expiry, takeover, fencing) and claims on SQLite, a real PostgreSQL and DynamoDB (moto);
digest batches and per-image delivery order on the SQL store."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from vulnwatch.model import Event, EventKind, Finding, Image, ScanResult, Severity, stable_id
from vulnwatch.store.interface import LeaseHeld, LeaseLost, Store
from vulnwatch.store import open_store

from .conftest import _sql_url, one_call_at_a_time

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


@pytest.fixture(params=["sqlite", "postgresql", "dynamodb"])
def open_stores(request, tmp_path):
    """A function opening another store on one empty database of each backend (all closed at the
    end); DynamoDB stores share one request at a time to moto (see ``one_call_at_a_time``)."""
    url = (request.getfixturevalue("dynamodb_contract_url") if request.param == "dynamodb"
           else _sql_url(request.param, request, tmp_path))
    lock = threading.Lock()
    opened = []

    def another():
        s = open_store(url)
        if request.param == "dynamodb":
            one_call_at_a_time(s, lock)
        opened.append(s)
        return s
    yield another
    for s in opened:
        s.close()


@pytest.fixture
def leasing(open_stores):
    """An empty store of each backend."""
    return open_stores()


def test_one_holder_at_a_time_and_the_error_names_the_holder(leasing):
    a = leasing.acquire_lease("cycle", "host-a:1:x", TTL)
    assert a.token >= 1 and a.holder == "host-a:1:x" and a.expires_at > datetime.now(UTC)
    with pytest.raises(LeaseHeld) as info:
        leasing.acquire_lease("cycle", "host-b:2:y", TTL)
    assert info.value.holder == "host-a:1:x" and "host-a:1:x" in str(info.value)
    assert info.value.expires_at == leasing.lease("cycle").expires_at
    again = leasing.acquire_lease("cycle", "host-a:1:x", TTL)       # the holder itself: extended
    assert again.token == a.token
    leasing.release_lease(again)
    b = leasing.acquire_lease("cycle", "host-b:2:y", TTL)             # released: free at once
    assert b.token == a.token + 1
    assert leasing.acquire_lease("other", "host-a:1:x", TTL).token == 1   # names are independent


def test_an_expired_lease_is_taken_over_and_the_stale_holder_cannot_write(leasing):
    stale = leasing.acquire_lease("cycle", "crashed:1:x", timedelta(milliseconds=300))
    time.sleep(0.4)
    fresh = leasing.acquire_lease("cycle", "new:2:y", TTL)
    assert fresh.token == stale.token + 1
    with pytest.raises(LeaseLost):
        leasing.renew_lease(stale, TTL)
    with leasing.fenced(stale):                                         # the stale holder wakes up
        with pytest.raises(LeaseLost) as info:
            leasing.commit_scan(result(), [(event(result(), 1), ["hook"])])
        assert "taken over by new:2:y" in str(info.value)
        for write in (lambda: leasing.mark_checked([result().image.key], T0),
                      lambda: leasing.record_failure(result().image, "ecr-basic", "boom", T0),
                      lambda: leasing.mark_delivered([1], T0)):
            with pytest.raises(LeaseLost):
                write()
    assert leasing.snapshot(*result().image.key) is None and leasing.deliveries() == []   # nothing written
    assert leasing.images() == []
    with leasing.fenced(fresh):                                         # the current holder can
        leasing.commit_scan(result(), [(event(result(), 1), ["hook"])])
    assert leasing.snapshot(*result().image.key) is not None
    renewed = leasing.renew_lease(fresh, TTL)
    assert renewed.token == fresh.token and renewed.expires_at >= fresh.expires_at
    leasing.release_lease(stale)                                       # a lost lease: no effect
    assert leasing.lease("cycle").holder == "new:2:y"


def test_a_takeover_waits_for_a_fenced_write_in_progress_or_refuses_it(open_stores):
    """The fence is checked inside the write's transaction: a write racing a takeover either
    commits before it or is refused; never committed under a stale token."""
    a, b = open_stores(), open_stores()
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


def test_claims_split_images_between_workers_and_done_ones_wait_for_the_next_round(open_stores):
    names = [f"image:prod/app@sha256:{i:064x}" for i in range(40)]
    round_start = datetime.now(UTC)
    stores = [open_stores() for _ in range(4)]
    got: dict[int, list[str]] = {}

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


def test_a_crashed_workers_claim_expires_and_is_taken_over(leasing):
    names = ["image:prod/app@sha256:" + "1" * 64]
    (crashed,) = leasing.claim_leases(names, "w1", timedelta(milliseconds=200), limit=5)
    assert leasing.claim_leases(names, "w2", TTL, limit=5) == []
    time.sleep(0.3)
    (taken,) = leasing.claim_leases(names, "w2", TTL, limit=5)
    assert taken.token == crashed.token + 1
    with leasing.fenced(crashed), pytest.raises(LeaseLost):
        leasing.commit_scan(result("1"), [])


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


def test_take_over_frees_only_the_named_holder(leasing):
    held = leasing.acquire_lease("cycle", "host:1:a:s", TTL)
    with pytest.raises(LeaseHeld):
        leasing.acquire_lease("cycle", "host:2:b:s", TTL, take_over="host:9:someone-else:s")
    taken = leasing.acquire_lease("cycle", "host:2:b:s", TTL, take_over="host:1:a:s")
    assert taken.token == held.token + 1 and leasing.lease("cycle").holder == "host:2:b:s"
    with leasing.fenced(held), pytest.raises(LeaseLost):
        leasing.mark_checked([result().image.key], T0)
