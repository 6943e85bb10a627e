"""SQLStore against SQLite and a real PostgreSQL: what is particular to SQL (statements, rows,
migrations, WAL, URLs). The behaviour every store shares is in test_contract.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text

from vulnwatch.model import Package
from vulnwatch.store import sql as sqlmod
from vulnwatch.store.interface import ScanCommit, StoreError
from vulnwatch.store.migrations import Migration
from vulnwatch.store.sql import SQLStore

from .factories import A, T0, finding, image, result


# --- statements and rows -------------------------------------------------------------------

def test_snapshots_of_many_images_is_two_queries(store):
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
    assert len(statements) == 2      # the snapshots, then the finding sets they refer to (150 < 500 a query)
    assert "finding_sets" in statements[1]


# --- tags ----------------------------------------------------------------------------------


def test_tag_seen_again_on_same_digest_keeps_one_row(store):
    store.commit_scan(result(), [])
    store.commit_scan(result(at=T0 + timedelta(hours=1)), [])
    with store._engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(sqlmod.tag_history_t)) == 1


# --- migrations ------------------------------------------------------------------------------

def test_migrations_run_once_and_newer_db_is_refused(store_url, monkeypatch):
    SQLStore(store_url).close()
    calls = []

    def add_column(conn):
        calls.append(1)
        conn.execute(text("CREATE TABLE extra_test (id INTEGER PRIMARY KEY)"))

    extended = (*sqlmod.MIGRATIONS, Migration(sqlmod.MIGRATIONS[-1].version + 1, "test step", add_column))
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
        assert sorted(versions) == [m.version for m in extended]
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

    extended = (*sqlmod.MIGRATIONS, Migration(sqlmod.MIGRATIONS[-1].version + 1, "flaky", broken))
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


# --- inventories stored compressed (migration 11) --------------------------------------------

def _inventory(n: int) -> tuple[Package, ...]:
    """``n`` packages with every field used (None, non-ASCII text, a layer digest) and a source
    package shared by many, as a real image's inventory."""
    return tuple(Package(f"lib-ü{i}", f"1.{i}-{i % 7}~deb12u1", "Debian:12",
                         purl=f"pkg:deb/debian/lib-%C3%BC{i}@1.{i}?arch=amd64" if i % 3 else None,
                         source_name=f"src{i // 10}", source_version=f"1.{i}" if i % 2 else None,
                         path="/var/lib/dpkg/status", layer="sha256:" + f"{i % 4:x}" * 64) for i in range(n))


def _stored_packages_text(store, key) -> str:
    with store._engine.connect() as conn:
        return conn.execute(text("SELECT packages FROM snapshots WHERE registry = :r AND repository = :p "
                                 "AND digest = :d"), dict(zip("rpd", key))).scalar()


def test_an_inventory_is_stored_compressed_and_read_back_equal(store):
    pkgs = _inventory(600)
    store.commit_scan(result(image(A), packages=pkgs, distro="Debian:12"), [])
    stored = _stored_packages_text(store, image(A).key)
    plain = sqlmod._dump_packages(pkgs)
    assert stored.startswith(sqlmod._PACKED) and len(stored) * 4 < len(plain)
    assert store.snapshot(*image(A).key).packages == pkgs
    [inv] = list(store.inventories())
    assert inv.packages == [sqlmod.PackageRow(*sqlmod._ROW_OF(p)) for p in pkgs]
    assert {p.row[0] for p in store.package_index(["src3"])} == {f"lib-ü{i}" for i in range(30, 40)}


def test_a_small_inventory_is_kept_as_plain_json(store):
    pkgs = _inventory(2)
    store.commit_scan(result(image(A), packages=pkgs, distro="Debian:12"), [])
    assert _stored_packages_text(store, image(A).key) == sqlmod._dump_packages(pkgs)
    assert store.snapshot(*image(A).key).packages == pkgs


def test_plain_inventories_written_before_version_11_are_still_read(store):
    pkgs = _inventory(600)
    store.commit_scan(result(image(A), packages=pkgs, distro="Debian:12"), [])
    with store._engine.begin() as conn:
        conn.execute(text("UPDATE snapshots SET packages = :p"), {"p": sqlmod._dump_packages(pkgs)})
    assert store.snapshot(*image(A).key).packages == pkgs
    [inv] = list(store.inventories())
    assert [tuple(r) for r in inv.rows] == [sqlmod._ROW_OF(p) for p in pkgs]


def test_postgresql_does_not_compress_inventories_again(store):
    if store._sqlite:
        pytest.skip("PostgreSQL's TOAST storage")
    with store._engine.connect() as conn:
        storage = conn.execute(text("SELECT attstorage FROM pg_attribute WHERE attrelid = 'snapshots'::regclass "
                                    "AND attname = 'packages'")).scalar()
    assert storage == "e"     # EXTERNAL: out of line, not compressed


def test_batches_read_by_many_keys_find_exactly_theirs(store):
    # more than one chunk of keys (PostgreSQL reads them as one array per column, SQLite as ORs),
    # with a timestamp among the keys (the history entry of a scan seen again is not repeated)
    n = 230
    firsts = [result(image(f"sha256:{i:064x}", tags=(f"v{i}",)), findings=(finding(f"CVE-2024-{i:04d}"),))
              for i in range(n)]
    assert store.commit_scans([ScanCommit(r) for r in firsts]) == [None] * n
    again = [ScanCommit(r, expected=r) for r in firsts[::2]]     # the same scans, seen again
    assert store.commit_scans(again) == [None] * len(again)
    wanted = [r.image.key for r in firsts[1::3]] + [("prod", "team/app", "sha256:" + "f" * 64)]
    got = {s.image.key: s for s in store.snapshots_of(wanted, with_inventory=False)}
    assert set(got) == set(wanted[:-1])
    assert all(got[r.image.key].findings == r.findings for r in firsts[1::3])
    with store._engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scan_history")).scalar() == n
