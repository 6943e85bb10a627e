"""The store's dashboard reads: SQLStore's SQL against the interface's default implementations
(what a store without overrides gets), on the same real fleet, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.web.conftest import load
from vulnwatch.build import open_store
from vulnwatch.model import Severity, utcnow
from vulnwatch.store.interface import FLEET_SORTS, FleetQuery, Store


def defaults_over(store: Store) -> Store:
    """A Store that has only the abstract methods (delegated to ``store``): every read method is
    the interface's default."""
    abstract = {n for n in dir(Store) if getattr(getattr(Store, n), "__isabstractmethod__", False)}
    cls = type("DefaultsOnly", (Store,), {n: (lambda n: lambda self, *a, **k: getattr(store, n)(*a, **k))(n)
                                           for n in abstract})
    return cls()


@pytest.fixture
def stores(fleet):
    sql = open_store(load(fleet))
    yield sql, defaults_over(sql)
    sql.close()


def rows(page):
    return [(r.status.image.key, r.status.counts, r.notes, r.superseded, r.status.last_error) for r in page.images]


@pytest.mark.parametrize("query", [
    FleetQuery(),
    FleetQuery(include_superseded=True),
    FleetQuery(text="app"), FleetQuery(registry="local", min_severity=Severity.MEDIUM),
    FleetQuery(with_notes=True), FleetQuery(with_errors=True),
    FleetQuery(include_superseded=True, offset=2, limit=3),
    *[FleetQuery(sort=s, descending=d, include_superseded=True) for s in FLEET_SORTS
      if s not in ("last_scanned", "last_checked") for d in (True, False)],
])
def test_fleet_sql_matches_the_default(stores, query):
    sql, default = stores
    a, b = sql.fleet(query), default.fleet(query)
    assert a.total == b.total and rows(a) == rows(b)


def test_other_reads_match_the_defaults(stores):
    sql, default = stores
    keys = [s.image.key for s in sql.images()]
    assert sql.histories(keys, limit=5) == default.histories(keys, limit=5)
    for key in keys + [None]:
        args = {} if key is None else dict(registry=key[0], repository=key[1], digest=key[2])
        assert [e.id for e in sql.recent_events(**args)] == [e.id for e in default.recent_events(**args)]
    for vid in ("CVE-2023-23916", "DSA-5365-1", "CVE-2019-10906", "CVE-1999-0001"):
        assert sorted((a.image.key, a.finding.key) for a in sql.affected(vid)) == \
            sorted((a.image.key, a.finding.key) for a in default.affected(vid))
    fa, fb = sql.fixable_summary(), default.fixable_summary()
    assert sorted(fa.groups, key=repr) == sorted(fb.groups, key=repr) and fa.images_by_package == fb.images_by_package
    since = utcnow() - timedelta(days=90)
    assert sql.fixes(since) == default.fixes(since) and len(sql.fixes(since)) == 2
    assert sql.fixes(utcnow() + timedelta(seconds=1)) == []
    assert sql.stats() == default.stats()
    for d in sql.deliveries(limit=1000):
        assert sql.delivery(d.id) == default.delivery(d.id) == d
    assert sql.delivery(10**9) is None
    # the trend: the same end; the SQL one also counts the old webapp digest until its tag moved
    ta, tb = sql.fleet_trend(), default.fleet_trend()
    assert ta[-1].counts == tb[-1].counts
    assert max(sum(p.counts.values()) for p in ta) == 206
    late = sql.fleet_trend(since=ta[-1].at - timedelta(microseconds=1))
    assert late[0].counts == ta[-2].counts and late[-1].counts == ta[-1].counts


def test_data_version_moves_with_a_write(tmp_path):
    from vulnwatch.model import Image
    from vulnwatch.store.sql import SQLStore

    store = SQLStore.from_path(tmp_path / "s.db")
    try:
        before = store.data_version()
        assert before == store.data_version() and defaults_over(store).data_version() is None
        store.record_failure(Image("r", "repo", "sha256:" + "0" * 64, ("1",)), "builtin", "boom", utcnow())
        assert store.data_version() != before
    finally:
        store.close()


def test_read_only_open_refuses_what_it_cannot_read(tmp_path):
    from vulnwatch.store.interface import StoreError
    from vulnwatch.store.sql import SQLStore

    with pytest.raises(StoreError, match="no database file"):
        SQLStore.open_read_only(f"sqlite:///{tmp_path / 'missing.db'}")
    import sqlite3
    sqlite3.connect(tmp_path / "other.db").execute("create table t (x)").connection.close()
    with pytest.raises(StoreError, match="is this a vulnwatch state store"):
        SQLStore.open_read_only(f"sqlite:///{tmp_path / 'other.db'}")
