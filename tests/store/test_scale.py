"""Fleet-scale behaviour of the SQL store and the re-match (issue 12): the advisory index's
change log, a re-match reading nothing when nothing changed and only the images holding a
moved package otherwise (the package index, migration 9), batched writes with a conflict in the
batch, and the upgrades of stores made before migrations 7 and 9. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text

from vulnwatch.model import Package, ScanResult
from vulnwatch.pipeline import Pipeline
from vulnwatch.scanners import ScanResources
from vulnwatch.store import sql as sqlmod
from vulnwatch.store.interface import ScanCommit, StoreConflict
from vulnwatch.store.sql import SQLStore
from vulnwatch.vulndb.index import VulnIndex
from vulnwatch.vulndb.match import Matcher
from vulnwatch.vulndb.sync import import_path

from .factories import A, B, C, T0, finding, image, make_event, result

CURL = Package("curl", "7.88.1-10", "Debian:12", source_name="curl")
ZLIB = Package("zlib1g", "1:1.2.13.dfsg-1", "Debian:12", source_name="zlib")


def _record(vid: str, source: str, fixed: str) -> dict:
    return {"schema_version": "1.6.0", "id": vid, "modified": "2024-05-01T00:00:00Z",
            "published": "2024-05-01T00:00:00Z", "summary": f"{source} flaw",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": source},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}


def _publish(index: VulnIndex, folder, *records: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / f"{r['id']}.json").write_text(json.dumps(r))
    import_path(index, folder, source="Debian", replace=False)


@pytest.fixture
def index(tmp_path):
    ix = VulnIndex(tmp_path / "osv.db")
    _publish(ix, tmp_path / "first", _record("DSA-0001-1", "zlib", "1:1.2.13.dfsg-2"))
    yield ix
    ix.close()


def _scanned(index: VulnIndex, img, packages, *, coverage: bool = True) -> ScanResult:
    """As the built-in scanner records an image (with its coverage; ``coverage=False``: as a
    snapshot stored before coverage was kept)."""
    m = Matcher(index)
    found = m.match(list(packages), "Debian:12")
    return ScanResult(img, "builtin", T0, findings=tuple(found), packages=tuple(packages), distro="Debian:12",
                      coverage=m.coverage(list(packages), "Debian:12") if coverage else None)


class Calls:
    """Counts the calls a store gets to the methods that read inventories or snapshots."""

    READS = ("inventories", "snapshots_of", "snapshot", "snapshots", "package_index", "inventories_holding")

    def __init__(self, store, monkeypatch) -> None:
        self.calls: list[tuple[str, tuple]] = []
        for name in self.READS:
            real = getattr(store, name)

            def spy(*args, _real=real, _name=name, **kw):
                self.calls.append((_name, args, kw))
                return _real(*args, **kw)
            monkeypatch.setattr(store, name, spy)

    def named(self, name: str) -> list:
        return [c for c in self.calls if c[0] == name]


# --- the advisory index's change log --------------------------------------------------------

def test_change_log_names_what_changed_since_a_version(index, tmp_path):
    v0 = index.data_version()
    assert index.changes_since(v0) == set()                        # nothing since now
    assert index.changes_since(None) is None                       # no version: anything may have moved
    assert index.changes_since("another-file:1") is None           # a version of another index file
    _publish(index, tmp_path / "second", _record("DSA-0002-1", "curl", "7.88.1-11"))
    v1 = index.data_version()
    assert v1 != v0
    assert ("Debian:12", "curl") in index.changes_since(v0)
    assert ("Debian:12", "zlib") not in index.changes_since(v0)
    assert index.changes_since(v1) == set()
    index.log_change([("Debian:12", "openssl")])                   # data that moves findings otherwise
    assert index.changes_since(v1) == {("Debian:12", "openssl")}
    index.log_change()                                             # default: everything may have moved
    assert index.changes_since(v1) is None
    later = index.data_version()
    assert index.changes_since(later) == set()
    assert index.changes_since(later.rsplit(":", 1)[0] + ":999999") is None   # a version from the future


# --- re-matching proportional to the change -------------------------------------------------

def test_rematch_with_nothing_changed_reads_no_inventory(store, index, monkeypatch):
    store.commit_scans([ScanCommit(_scanned(index, image(A), (CURL, ZLIB))),
                        ScanCommit(_scanned(index, image(B), (ZLIB,)))])
    pipeline = Pipeline(store, [], resources=ScanResources(lambda: index))
    assert pipeline.rematch() == []                                # the first one looks at everything
    calls = Calls(store, monkeypatch)
    assert pipeline.rematch() == []
    assert calls.calls == []                                       # nothing read at all


def _curl_becomes_vulnerable(store, index, tmp_path, monkeypatch) -> tuple[Pipeline, Calls]:
    """Re-match the stored images, publish a curl advisory and re-match again, counting the store's
    reads during the second; only image A (the one holding curl) must move."""
    pipeline = Pipeline(store, [], resources=ScanResources(lambda: index))
    assert pipeline.rematch() == []
    calls = Calls(store, monkeypatch)
    _publish(index, tmp_path / "curl", _record("DSA-0002-1", "curl", "7.88.1-11"))
    events = pipeline.rematch()
    assert [e.image.digest for e in events] == [A]
    assert {f.vulnerability_id for f in events[0].added} == {"DSA-0002-1"}
    return pipeline, calls


def test_update_reads_only_the_images_holding_a_package_that_moved(store, index, tmp_path, monkeypatch):
    store.commit_scans([ScanCommit(_scanned(index, image(A), (CURL, ZLIB))),
                        ScanCommit(_scanned(index, image(B), (ZLIB,))),
                        ScanCommit(_scanned(index, image(C), (ZLIB,)))])
    pipeline, calls = _curl_becomes_vulnerable(store, index, tmp_path, monkeypatch)
    # no inventory read: the package index says what A holds; only A's snapshot is read back
    assert calls.named("inventories") == []
    assert {tuple(k) for _n, args, kw in calls.named("snapshots_of") for k in (kw.get("keys") or args[0])} == {
        image(A).key}
    assert store.snapshot(*image(A).key).findings and any(
        f.vulnerability_id == "DSA-0002-1" for f in store.snapshot(*image(A).key).findings)
    # a record of the same name that moves nothing (a version no image has): no image read back
    calls.calls.clear()
    _publish(index, tmp_path / "curl-old", _record("DSA-0003-1", "curl", "7.0.0-1"))
    assert pipeline.rematch() == []
    assert calls.named("inventories") == [] or all(
        not (kw.get("keys") or (args[1] if len(args) > 1 else None)) for _n, args, kw in calls.named("inventories"))
    assert calls.named("snapshots_of") == []


def test_a_snapshot_without_coverage_is_re_matched_from_its_inventory(store, index, tmp_path, monkeypatch):
    store.commit_scans([ScanCommit(_scanned(index, image(A), (CURL, ZLIB), coverage=False)),
                        ScanCommit(_scanned(index, image(B), (ZLIB,)))])
    pipeline, calls = _curl_becomes_vulnerable(store, index, tmp_path, monkeypatch)
    # what the snapshot alone cannot tell (no coverage to refresh) is read whole, and only A
    assert [kw.get("keys") for _n, _args, kw in calls.named("inventories")] == [[image(A).key]]
    assert store.snapshot(*image(A).key).coverage is not None


def test_an_image_stored_after_the_index_was_built_is_found(store, index, tmp_path):
    store.commit_scan(_scanned(index, image(A), (ZLIB,)), [])
    pipeline = Pipeline(store, [], resources=ScanResources(lambda: index))
    assert pipeline.rematch() == []
    store.commit_scan(_scanned(index, image(B), (CURL,)), [])          # not indexed yet
    _publish(index, tmp_path / "curl", _record("DSA-0002-1", "curl", "7.88.1-11"))
    events = pipeline.rematch()
    assert [e.image.digest for e in events] == [B]


# --- batched writes ------------------------------------------------------------------------

def test_a_conflict_in_a_batch_leaves_that_image_and_its_events_out_and_writes_the_rest(store):
    first = result(image(A))
    store.commit_scan(first, [])
    stale = result(image(A), at=T0 - timedelta(days=1))             # not what is stored
    items = []
    for img, expected in ((image(B), None), (image(A), stale), (image(C), None)):
        res = result(img, at=T0 + timedelta(hours=1), findings=(finding("CVE-2024-0002"),))
        items.append(ScanCommit(res, ((make_event(res), ("hook",)),), False, expected))
    out = store.commit_scans(items)
    assert out[0] is None and out[2] is None and isinstance(out[1], StoreConflict)
    assert store.snapshot(*image(A).key).scanned_at == T0            # the conflicted image untouched
    assert store.snapshot(*image(B).key).scanned_at == T0 + timedelta(hours=1)
    with store._engine.connect() as conn:
        digests = {r[0] for r in conn.execute(text("SELECT digest FROM events"))}
        sinks = conn.execute(text("SELECT count(*) FROM deliveries")).scalar()
    assert digests == {B, C} and sinks == 2                         # its outbox rows left out with it


def test_a_failing_batch_writes_nothing(store, monkeypatch):
    items = [ScanCommit(result(image(d)), ((make_event(result(image(d))), ("hook",)),)) for d in (A, B)]
    real = SQLStore._see_tags

    def boom(self, conn, images, now):
        real(self, conn, images, now)
        raise sqlmod.SQLAlchemyError("disk full")
    monkeypatch.setattr(SQLStore, "_see_tags", boom)
    with pytest.raises(Exception):
        store.commit_scans(items)
    monkeypatch.setattr(SQLStore, "_see_tags", real)
    assert store.snapshot(*image(A).key) is None and store.snapshot(*image(B).key) is None
    with store._engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM images")).scalar() == 0


# --- upgrades -------------------------------------------------------------------------------

def _store_at(url: str, version: int, monkeypatch) -> None:
    """Make the database of ``url`` at schema ``version`` (the migrations up to it only)."""
    with monkeypatch.context() as m:
        m.setattr(sqlmod, "MIGRATIONS", tuple(x for x in sqlmod.MIGRATIONS if x.version <= version))
        m.setattr(sqlmod, "LATEST_VERSION", version)
        SQLStore(url).close()


def test_a_store_from_before_finding_sets_is_upgraded(store_url, monkeypatch):
    _store_at(store_url, 6, monkeypatch)
    f1, f2 = finding("CVE-2024-0001"), finding("CVE-2024-0002", package_name="zlib", package_version="1")
    inline = json.dumps([f1.to_dict(), f2.to_dict()])
    pkgs = json.dumps([{"name": "curl", "version": "7.88.1-10", "ecosystem": "Debian:12", "purl": None,
                        "source_name": "curl", "source_version": None, "path": None, "layer": None}])
    from sqlalchemy import create_engine   # raw SQL as the old code wrote it: findings inline
    engine = create_engine(store_url)
    with engine.begin() as conn:
        for d in (A, B):
            conn.execute(text("INSERT INTO images (registry, repository, digest, tags, updated_at) "
                              "VALUES ('prod', 'team/app', :d, '[\"latest\"]', :t)"), {"d": d, "t": T0})
            conn.execute(text("INSERT INTO snapshots (registry, repository, digest, scanner, scanned_at, recorded_at, "
                              "state, findings, packages, distro, notes, counts) VALUES ('prod', 'team/app', :d, "
                              "'builtin', :t, :t, 'COMPLETE', :f, :p, 'Debian:12', '[]', '{}')"),
                         {"d": d, "t": T0, "f": inline, "p": pkgs})
    engine.dispose()
    s = SQLStore(store_url)                # migrations 7, 8 and 9 run
    try:
        assert s.schema_version() == sqlmod.LATEST_VERSION
        for d in (A, B):
            snap = s.snapshot(*image(d).key)
            assert [f.vulnerability_id for f in snap.findings] == ["CVE-2024-0001", "CVE-2024-0002"]
        with s._engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM finding_sets")).scalar() == 2     # one per package, shared
            assert conn.execute(text("SELECT count(*) FROM snapshots WHERE findings = '[]' "
                                     "AND finding_sets IS NOT NULL")).scalar() == 2
        # migration 9 left them unindexed; the index picks them up when asked
        [pkg] = s.package_index(["curl"])
        assert pkg.row[0] == "curl" and pkg.signature is None
        assert sorted(s.inventories_holding([pkg.id])) == sorted([image(A).key, image(B).key])
    finally:
        s.close()


def test_a_store_from_before_the_package_index_is_indexed_on_first_use(store_url, index, monkeypatch, tmp_path):
    _store_at(store_url, 8, monkeypatch)
    with monkeypatch.context() as m:      # written by the code of schema 8: no names_chunk column
        m.setattr(sqlmod, "MIGRATIONS", tuple(x for x in sqlmod.MIGRATIONS if x.version <= 8))
        m.setattr(sqlmod, "LATEST_VERSION", 8)
        cols = [c for c in sqlmod.snapshots_t.columns if c.name == "names_chunk"]
        sqlmod.snapshots_t._columns.remove(cols[0])
        try:
            s8 = SQLStore(store_url)
            s8.commit_scans([ScanCommit(_scanned(index, image(A), (CURL, ZLIB))),
                             ScanCommit(_scanned(index, image(B), (ZLIB,)))])
            s8.close()
        finally:
            sqlmod.snapshots_t._columns.add(cols[0])
    s = SQLStore(store_url)
    try:
        assert s.schema_version() == sqlmod.LATEST_VERSION
        pipeline = Pipeline(s, [], resources=ScanResources(lambda: index))
        assert pipeline.rematch() == []
        _publish(index, tmp_path / "curl", _record("DSA-0002-1", "curl", "7.88.1-11"))
        assert [e.image.digest for e in pipeline.rematch()] == [A]
    finally:
        s.close()


# --- garbage: finding sets and the change log -----------------------------------------------

def _set_ids(store) -> set[str]:
    with store._engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT id FROM finding_sets"))}


def test_collecting_finding_sets_keeps_what_snapshots_and_history_refer_to(store):
    old, new = finding("CVE-2024-0001"), finding("CVE-2024-0009", package_name="zlib", package_version="1")
    store.commit_scan(result(image(A), findings=(old,)), [])
    store.commit_scan(result(image(B), findings=(old,)), [])
    assert store.collect_finding_sets() == 0                          # all referenced
    store.commit_scan(result(image(A), at=T0 + timedelta(hours=1), findings=(new,)), [])
    assert store.collect_finding_sets() == 0                          # A's history and B still hold `old`
    with store._engine.begin() as conn:                               # history pruned, B rewritten
        conn.execute(text("DELETE FROM scan_history"))
    store.commit_scan(result(image(B), at=T0 + timedelta(hours=1), findings=(new,)), [])
    with store._engine.begin() as conn:
        conn.execute(text("DELETE FROM scan_history"))
    before = _set_ids(store)
    assert store.collect_finding_sets() == 1
    assert len(_set_ids(store)) == len(before) - 1
    assert [f.vulnerability_id for f in store.snapshot(*image(A).key).findings] == ["CVE-2024-0009"]
    # a writer whose cache says `old` is stored writes it again after a collection took it
    store.commit_scan(result(image(C), findings=(old,)), [])
    assert [f.vulnerability_id for f in store.snapshot(*image(C).key).findings] == ["CVE-2024-0001"]


def test_a_second_store_object_writes_a_collected_set_again(store_url):
    first, second = SQLStore(store_url), SQLStore(store_url)
    try:
        f = finding("CVE-2024-0001")
        second.commit_scan(result(image(A), findings=(f,)), [])        # second's cache: the set is stored
        with first._engine.begin() as conn:
            conn.execute(text("DELETE FROM snapshots"))
            conn.execute(text("DELETE FROM scan_history"))
        assert first.collect_finding_sets() == 1
        second.commit_scan(result(image(B), findings=(f,)), [])        # must not trust its cache
        assert [x.vulnerability_id for x in first.snapshot(*image(B).key).findings] == ["CVE-2024-0001"]
    finally:
        first.close()
        second.close()


def test_pruned_change_log_answers_none_for_versions_before_it(index, tmp_path):
    v0 = index.data_version()
    _publish(index, tmp_path / "a", _record("DSA-0002-1", "curl", "7.88.1-11"))
    v1 = index.data_version()
    _publish(index, tmp_path / "b", _record("DSA-0003-1", "openssl", "3.0.12-1"))
    v2 = index.data_version()
    assert index.prune_changes(v1) > 0
    assert index.changes_since(v0) is None                          # that part is gone
    assert ("Debian:12", "openssl") in index.changes_since(v1)      # what came after is kept
    assert index.data_version() == v2
    assert index.prune_changes(v2) >= 0 and index.data_version() == v2   # the newest entry stays
    assert index.changes_since(v2) == set()
    assert index.prune_changes("another-file:5") == 0


def test_rematch_prunes_the_log_up_to_its_previous_marker(store, index, tmp_path):
    store.commit_scan(_scanned(index, image(A), (CURL,)), [])
    pipeline = Pipeline(store, [], resources=ScanResources(lambda: index))
    v0 = index.data_version()
    pipeline.rematch()
    _publish(index, tmp_path / "a", _record("DSA-0002-1", "curl", "7.88.1-11"))
    assert [e.image.digest for e in pipeline.rematch()] == [A]
    v1 = index.data_version()
    assert index.changes_since(v0) is not None                      # pruned up to v0 only
    _publish(index, tmp_path / "b", _record("DSA-0003-1", "curl", "7.88.1-12"))
    assert [e.image.digest for e in pipeline.rematch()] == [A]      # still proportional afterwards
    assert index.changes_since(v0) is None                          # pruned up to the marker before: v1
    assert index.changes_since(v1) is not None


def _fail_inserting_events_of(store, digest: str) -> None:
    """A real database error in the middle of a batch: a trigger refuses the outbox row of one
    image, after the batch's snapshots, finding sets, history and tags are written."""
    with store._engine.begin() as conn:
        if store._sqlite:
            conn.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.digest = '{digest}' "
                              "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"))
        else:
            conn.execute(text(f"CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                              f"IF NEW.digest = '{digest}' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; "
                              "RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()"))


def test_a_batch_failing_in_the_middle_leaves_no_half_written_image(store, index):
    scans = [_scanned(index, image(d, tags=(t,)), (CURL, ZLIB)) for d, t in ((A, "a"), (B, "b"), (C, "c"))]
    assert scans[0].findings            # finding sets to write
    items = [ScanCommit(r, ((make_event(r), ("hook",)),)) for r in scans]
    _fail_inserting_events_of(store, C)
    with pytest.raises(sqlmod.StoreError, match="refused by test trigger"):
        store.commit_scans(items)
    with store._engine.connect() as conn:
        for table in ("images", "snapshots", "scan_history", "tag_history", "events", "deliveries", "finding_sets"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
    with store._engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse" if store._sqlite else "DROP TRIGGER refuse ON events"))
    # the same store object again: it must not take the sets of the failed batch for stored
    assert store.commit_scans(items) == [None, None, None]
    for r in scans:
        snap = store.snapshot(*r.image.key)
        assert snap.findings == r.findings and snap.packages == r.packages
    with store._engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM deliveries")).scalar() == 3


# --- the re-match from snapshots alone equals the whole re-match ------------------------------

SSL = Package("libssl3", "3.0.11-1~deb12u2", "Debian:12", source_name="openssl")
BASH = Package("bash", "5.2.15-2+b2", "Debian:12", source_name="bash")
LIBCURL = Package("libcurl4", "7.88.1-10", "Debian:12", source_name="curl")
ODD = Package("curl-odd", "not a version", "Debian:12", source_name="curl")     # refused by the comparator


def _fleet(index):
    """Images of every shape the re-match meets: several moved packages, one newly vulnerable, a
    package reported twice (a copy of the same row), a snapshot with a suppressed finding, one
    without coverage, one holding only a package whose records changed without moving it."""
    out = [_scanned(index, image(A), (ZLIB, CURL, SSL, BASH, ODD)), _scanned(index, image(B), (ZLIB, SSL)),
           _scanned(index, image(C), (CURL, CURL, BASH, LIBCURL)),
           _scanned(index, image("d" * 64), (SSL, LIBCURL), coverage=False),
           _scanned(index, image("e" * 64), (BASH, ZLIB))]
    e = out[4]                         # as the policy stage leaves one finding of it suppressed
    from vulnwatch.model import Suppression
    quiet = replace(e.findings[0], suppression=Suppression("ignore", "config", "accepted"))
    out[4] = replace(e, findings=e.findings[1:], suppressed=(quiet,))
    return out


def _state(store) -> dict:
    out = {}
    for snap in store.snapshots():
        out[snap.image.key] = (sorted(json.dumps(f.to_dict(), sort_keys=True) for f in snap.findings),
                               sorted(f.key for f in snap.suppressed), snap.counts,
                               snap.coverage.key if snap.coverage else None,
                               [(e.ecosystem, e.packages, e.present, e.records) for e in snap.coverage.ecosystems]
                               if snap.coverage else None)
    return out


def _events(events) -> list:
    return sorted((e.image.key, e.kind.value, e.id, sorted(f.key for f in e.added), sorted(f.key for f in e.fixed),
                   sorted((c.after.key, c.what) for c in e.changed), e.counts, e.previous_counts,
                   [r.summary for r in e.reasons]) for e in events)


def test_rematch_from_the_package_index_equals_matching_every_inventory(store, index, tmp_path, monkeypatch):
    _publish(index, tmp_path / "ssl", _record("DSA-0100-1", "openssl", "3.0.13-1~deb12u1"),
             _record("DSA-0101-1", "openssl", "3.0.12-1~deb12u1"))
    whole = SQLStore.from_path(tmp_path / "whole.db")           # re-matched reading every inventory
    try:
        monkeypatch.setattr(whole, "holdings", lambda ids: None)
        for s in (store, whole):
            s.commit_scans([ScanCommit(r) for r in _fleet(index)])
        pipelines = [Pipeline(s, [], resources=ScanResources(lambda: index)) for s in (store, whole)]
        assert [p.rematch() for p in pipelines] == [[], []]
        # the update: curl becomes vulnerable, one openssl record gets a later fix, the other is
        # withdrawn, a zlib record arrives for versions no image has
        moved = _record("DSA-0100-1", "openssl", "3.0.14-1~deb12u1")
        gone = dict(_record("DSA-0101-1", "openssl", "3.0.12-1~deb12u1"), withdrawn="2024-06-01T00:00:00Z",
                    modified="2024-06-01T00:00:00Z")
        moved["modified"] = "2024-06-01T00:00:00Z"
        _publish(index, tmp_path / "update", _record("DSA-0002-1", "curl", "7.88.1-11"), moved, gone,
                 _record("DSA-0003-1", "zlib", "1:1.2.0-1"))
        calls = Calls(store, monkeypatch)
        fast, slow = [p.rematch() for p in pipelines]
        assert _events(fast) == _events(slow)
        assert {e.image.digest for e in fast} == {A, B, C, "d" * 64}
        assert any(e.added for e in fast) and any(e.fixed for e in fast) and any(e.changed for e in fast)
        assert [u.name for u in store.snapshot(*image(A).key).coverage.unjudged] == ["curl-odd"]
        assert _state(store) == _state(whole)
        # only what the snapshots cannot tell was read whole: C (curl twice), D (no coverage)
        assert {k for _n, _a, kw in calls.named("inventories") for k in kw["keys"]} == {
            image(C).key, image("d" * 64).key}
        assert [p.rematch() for p in pipelines] == [[], []]
    finally:
        whole.close()


def test_rematch_events_come_a_batch_at_a_time_and_a_stopped_rematch_is_finished_next_time(store, index, tmp_path):
    """A mass move is yielded as it is written (a large fleet's events are not held): with one
    image a batch, the first event comes when one image is written and the others are not yet;
    the marker moves only at the end, so a re-match stopped part way does the rest next time,
    writing no event twice."""
    store.commit_scans([ScanCommit(r) for r in _fleet(index)])
    pipeline = Pipeline(store, [], resources=ScanResources(lambda: index), record_batch=1)
    assert pipeline.rematch() == []
    _publish(index, tmp_path / "update", _record("DSA-0002-1", "curl", "7.88.1-11"))

    def outbox() -> list:
        with store._engine.connect() as conn:
            return conn.execute(text("SELECT id, digest FROM events")).all()

    stream = pipeline.rematch_events()
    first = next(stream)
    assert {d for _i, d in outbox()} == {first.image.digest}      # one image written, the others not yet
    written = len(outbox())
    stream.close()                                   # stopped after the first batch
    rest = pipeline.rematch()
    assert rest and first.image.digest not in {e.image.digest for e in rest}
    assert len(outbox()) == written + len(rest) == len({i for i, _d in outbox()})
    assert pipeline.rematch() == []


def test_stored_event_is_the_events_json():
    """Events are stored as a body and per-package lists of their findings' cached texts: put
    back together, the same JSON value as encoding ``to_dict()``, for every part of an event;
    the lists are cut per package."""
    from vulnwatch.diff import diff
    from vulnwatch.model import (ChangeReason, Coverage, DataSource, EcosystemCoverage, FindingChange,
                                 KevListing, ReasonKind, Severity, UnjudgedPackage)
    from vulnwatch.store._finding_sets import event_dict, event_parts

    before = result(image(A), findings=(finding("CVE-1", Severity.LOW), finding("CVE-2"),
                                        finding("CVE-3", title='a "quoted" \u00e9 title')))
    now = result(image(A), at=T0 + timedelta(hours=1),
                 findings=(finding("CVE-1", Severity.CRITICAL, cvss_score=9.8, epss=0.5,
                                   kev=KevListing(date_added="2024-01-01")), finding("CVE-4", fixed_versions=("2",))))
    ev = diff(now, before, data=(DataSource("advisory", "Debian", "v1", T0),))
    assert ev.added and ev.fixed and ev.changed
    cov = Coverage((EcosystemCoverage("Debian:12", 3, True, 10, T0),), (UnjudgedPackage("Debian:12", "x", "1", "why"),))
    ev2 = replace(ev, coverage=cov, previous_coverage=None, changed=(FindingChange(now.findings[0], now.findings[0]),),
                  reasons=(ChangeReason(ReasonKind.ADVISORY_DATA_CHANGED, "data"),))
    for e in (ev, ev2, replace(ev, added=(), fixed=(), changed=())):
        body, lists = event_parts(e)
        parsed = json.loads(body)
        assert "added" not in parsed and set(parsed["lists"]) == {"added", "fixed", "changed"}
        whole = event_dict(parsed, {lid: json.loads(t) for lid, t in lists})
        assert whole == json.loads(json.dumps(e.to_dict()))
        for lid, t in lists:       # one package a list
            items = json.loads(t)
            assert len({json.dumps([(i.get("after") or i)[k] for k in ("package_name", "package_version")])
                        for i in items}) == 1
