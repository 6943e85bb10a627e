"""The SQL state store: SQLite (the default, one file) or PostgreSQL, through SQLAlchemy 2 Core.

Open with ``SQLStore("sqlite:///path/state.db")``, ``SQLStore.from_path(path)`` or
``SQLStore("postgresql+psycopg://user:pass@host/db")`` (a plain ``postgresql://`` URL uses
psycopg 3). Opening applies pending migrations (:mod:`vulnwatch.store.migrations`), each in
its own transaction, and refuses a database written by a newer vulnwatch.

Every method uses its own connection from the engine's pool and its own transaction, so
one thread may record scans while another works the outbox. On SQLite the database runs
in WAL mode, waits for locks (``busy_timeout``) and takes the write lock at the start of
write transactions (``BEGIN IMMEDIATE``) so that concurrent writers queue instead of
failing. Datetimes are stored in UTC and come back timezone-aware in UTC; naive datetimes
given to the store are taken to be UTC.

The database URL may hold a password: it is shown only with the password hidden.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (BigInteger, bindparam, tuple_, Column, DateTime, Integer, MetaData, String, Table, Text,
                        and_, case, cast, create_engine, event, exists, func, literal, not_, or_, select, text,
                        type_coerce, update)
from sqlalchemy.dialects.postgresql import JSON as PG_JSON
from sqlalchemy.types import JSON
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from ..model import (Event, Finding, Image, Package, ScanResult, ScanState, Severity,
                     result_signature, utcnow)
from .interface import (FLEET_SORTS, UNCHECKED, Affected, Delivery, DeliveryStatus, FixableGroup, FixableSummary,
                        FixRecord, FleetImage, FleetPage, FleetQuery, HistoryEntry, ImageStatus, Lease, LeaseHeld,
                        LeaseLost, PackageRow, Store, StoreConflict, StoredInventory, StoreError, StoreStats,
                        TrendPoint, bucket_width, stored_error, sweep_fixes)
from .migrations import LATEST_VERSION, MIGRATIONS

__all__ = ["SQLStore"]

_CHUNK = 500
"""Ids per ``IN (...)`` list, well under SQLite's parameter limit."""
_PG_MIGRATION_LOCK = 0x76756C6E  # "vuln": pg_advisory_xact_lock key serialising migrations


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC, always returned timezone-aware (UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":  # stored as text: one fixed format keeps comparisons right
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# The current schema (what the latest migration leaves), for queries. DDL lives in migrations/.
_md = MetaData()
schema_migrations = Table(
    "schema_migrations", _md,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(255), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)
images_t = Table(
    "images", _md,
    Column("registry", String, primary_key=True),
    Column("repository", String, primary_key=True),
    Column("digest", String, primary_key=True),
    Column("tags", Text),
    Column("pushed_at", UTCDateTime),
    Column("media_type", String),
    Column("size_bytes", BigInteger),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("last_error_scanner", String),
    Column("updated_at", UTCDateTime),
    Column("last_checked_at", UTCDateTime),
)
snapshots_t = Table(
    "snapshots", _md,
    Column("registry", String, primary_key=True),
    Column("repository", String, primary_key=True),
    Column("digest", String, primary_key=True),
    Column("scanner", String),
    Column("scanned_at", UTCDateTime),
    Column("recorded_at", UTCDateTime),
    Column("vulnerability_source_updated_at", UTCDateTime),
    Column("state", String),
    Column("findings", Text),
    Column("packages", Text),
    Column("findings_signature", String),
    Column("distro", String),
    Column("notes", Text),
    Column("counts", Text),
    Column("suppressed", Text),     # migration 8
)
snapshot_summary_t = Table(   # a view (migration 4): the small columns of snapshots, cheap to scan
    "snapshot_summary", _md,
    Column("registry", String, primary_key=True),
    Column("repository", String, primary_key=True),
    Column("digest", String, primary_key=True),
    Column("scanner", String),
    Column("scanned_at", UTCDateTime),
    Column("recorded_at", UTCDateTime),
    Column("state", String),
    Column("counts", Text),
    Column("notes", Text),
)
scan_history_t = Table(
    "scan_history", _md,
    Column("id", Integer, primary_key=True),
    Column("registry", String),
    Column("repository", String),
    Column("digest", String),
    Column("tags", Text),
    Column("scanner", String),
    Column("scanned_at", UTCDateTime),
    Column("recorded_at", UTCDateTime),
    Column("state", String),
    Column("counts", Text),
    Column("finding_keys", Text),
)
tag_history_t = Table(
    "tag_history", _md,
    Column("id", Integer, primary_key=True),
    Column("registry", String),
    Column("repository", String),
    Column("tag", String),
    Column("digest", String),
    Column("first_seen", UTCDateTime),
    Column("last_seen", UTCDateTime),
)
events_t = Table(
    "events", _md,
    Column("id", String, primary_key=True),
    Column("kind", String),
    Column("registry", String),
    Column("repository", String),
    Column("digest", String),
    Column("body", Text),
    Column("created_at", UTCDateTime),
)
deliveries_t = Table(
    "deliveries", _md,
    Column("id", Integer, primary_key=True),
    Column("event_id", String),
    Column("sink", String),
    Column("status", String),
    Column("attempts", Integer),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("last_attempt_at", UTCDateTime),
    Column("created_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("batch_id", String),
)
leases_t = Table(
    "leases", _md,
    Column("name", String, primary_key=True),
    Column("holder", String),
    Column("token", BigInteger),
    Column("acquired_at", UTCDateTime),
    Column("expires_at", UTCDateTime),
    Column("done_at", UTCDateTime),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""``expires_at`` of a lease row made before anyone held it (free)."""

_PACKAGE_FIELDS = frozenset(f.name for f in fields(Package))
_ROW_FIELDS = list(PackageRow._fields)   # Package's fields, in order (PackageRow is derived from it)


@functools.lru_cache(maxsize=1 << 16)
def _finding_json(f: Finding) -> str:
    """A finding as stored (cached: re-matching writes the same findings into many images)."""
    return _dumps(f.to_dict())


_FROM_DICT_CACHE: dict[tuple, Finding] = {}


def _finding_from_dict(d: dict) -> Finding:
    """Finding.from_dict, sharing one object per distinct finding (re-matching a fleet reads
    the same findings from many images)."""
    g = d.get
    key = (g("vulnerability_id"), g("package_name"), g("package_version"), g("ecosystem"), g("severity"),
           g("cvss_score"), g("cvss_vector"), g("title"), g("fix_available"), g("scanner"),
           g("exploit_available"), g("purl"), tuple(g("aliases") or ()), tuple(g("fixed_versions") or ()),
           tuple(g("links") or ()), _dumps(g("suppression")) if g("suppression") else None,
           g("severity_source"), _dumps(g("kev")) if g("kev") else None, g("epss"), g("epss_percentile"))
    hit = _FROM_DICT_CACHE.get(key)
    if hit is None:
        if len(_FROM_DICT_CACHE) >= 1 << 16:
            _FROM_DICT_CACHE.clear()
        hit = _FROM_DICT_CACHE[key] = Finding.from_dict(d)
    return hit


def _dump_packages(packages) -> str:
    """Compact rows: field names once, then one list per package."""
    rows = [[getattr(p, f) for f in _ROW_FIELDS] for p in packages]
    return json.dumps({"v": 2, "fields": _ROW_FIELDS, "rows": rows}, separators=(",", ":"))


def _load_rows(text: str | None) -> list:
    """Plain rows in PackageRow field order, from either format."""
    if not text:
        return []
    data = json.loads(text)
    if isinstance(data, dict) and (data.get("fields") or _ROW_FIELDS) == _ROW_FIELDS:
        return data.get("rows") or []
    return [[getattr(p, f) for f in _ROW_FIELDS] for p in _load_packages(text)]


def _load_packages(text: str | None) -> list:
    """PackageRows from either format (version 1 wrote a list of objects)."""
    if not text:
        return []
    data = json.loads(text)
    if isinstance(data, dict):
        names = data.get("fields") or _ROW_FIELDS
        if names == _ROW_FIELDS:
            make = PackageRow._make
            return [make(r) for r in data.get("rows") or ()]
        return [PackageRow(**{k: v for k, v in zip(names, r) if k in _PACKAGE_FIELDS}) for r in data["rows"]]
    return [Package(**{k: v for k, v in d.items() if k in _PACKAGE_FIELDS}) for d in data]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # key order kept: counts go most severe first


def _reason(e: SQLAlchemyError) -> str:
    """The driver's own message (first line), without SQLAlchemy's statement and parameters."""
    orig = getattr(e, "orig", None)
    text = str(orig) if orig is not None else str(e)
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return f"{type(orig or e).__name__}: {first}"


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    ids = list(dict.fromkeys(int(i) for i in ids))
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


class SQLStore(Store):
    """State in a SQL database. ``url`` is a SQLAlchemy URL: ``sqlite:///path.db`` or
    ``postgresql+psycopg://user:password@host:5432/db`` (``sqlite://`` is an in-memory
    database, for tests)."""

    def __init__(self, url: str | URL, *, read_only: bool = False) -> None:
        self._read_only = read_only
        try:
            u = make_url(url)
        except ArgumentError:
            raise StoreError("state store URL is not a SQLAlchemy database URL; use "
                             "sqlite:///path/to/state.db or postgresql+psycopg://user@host/db") from None
        self._display = u.render_as_string(hide_password=True)
        backend = u.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(f"state store {self._display}: unsupported database {backend!r}; "
                             "use sqlite:///... or postgresql+psycopg://...")
        self._sqlite = backend == "sqlite"
        self._lock: Any = nullcontext()
        self._fences = threading.local()   # per thread: the leases its writes are fenced by
        try:
            if self._sqlite:
                self._engine = self._sqlite_engine(u)
            else:
                if u.drivername == "postgresql":  # psycopg 3 is the driver we ship with
                    u = u.set(drivername="postgresql+psycopg")
                if read_only:   # every transaction of every connection is READ ONLY
                    options = " ".join(filter(None, [u.query.get("options"),
                                                     "-c default_transaction_read_only=on"]))
                    u = u.update_query_dict({"options": options})
                self._engine = create_engine(u, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ImportError) as e:
            raise StoreError(f"state store {self._display}: cannot load the database driver ({e}); "
                             "for PostgreSQL install vulnwatch[postgres]") from None
        self._insert = sqlite_insert if self._sqlite else pg_insert
        try:
            self._check_schema() if read_only else self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_url(cls, url: str) -> "SQLStore":
        return cls(url)

    @classmethod
    def open_read_only(cls, url: str) -> "SQLStore":
        """SQLite: the file opened with ``mode=ro`` (it must exist); PostgreSQL: sessions with
        ``default_transaction_read_only``. Migrations are not applied: the schema must be current."""
        return cls(url, read_only=True)

    @classmethod
    def from_path(cls, path: str | Path) -> "SQLStore":
        """An SQLite store in the file ``path`` (its directory is created if missing)."""
        return cls(URL.create("sqlite", database=str(Path(path).expanduser())))

    def __repr__(self) -> str:
        return f"SQLStore({self._display!r})"

    # --- engine and transactions -----------------------------------------------------
    def _sqlite_engine(self, u: URL):
        database = u.database or ""
        memory = database in ("", ":memory:") or "mode=memory" in database
        read_only = self._read_only and not memory
        if read_only:
            if not database.startswith("file:"):
                path = Path(database).expanduser()
                if not path.exists():
                    raise StoreError(f"state store {self._display}: no database file there yet; run "
                                     "`vulnwatch run` once (or point state at the right file)")
                u = u.set(database=f"file:{path}?mode=ro").update_query_dict({"uri": "true"})
        elif not memory and not database.startswith("file:"):
            try:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"state store {self._display}: cannot create the directory of the "
                                 f"database file ({e.strerror}); choose a writable state.path") from None
        if memory:  # one shared connection, one user at a time
            engine = create_engine(u, poolclass=StaticPool, connect_args={"check_same_thread": False})
            self._lock = threading.RLock()
        else:
            engine = create_engine(u, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            try:
                cur.execute("PRAGMA busy_timeout = 30000")
                if read_only:
                    cur.execute("PRAGMA query_only = ON")
                elif not memory:
                    cur.execute("PRAGMA journal_mode = WAL")
                    cur.execute("PRAGMA synchronous = NORMAL")
                cur.execute("PRAGMA foreign_keys = ON")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("vulnwatch_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _tx(self, what: str, *, write: bool = False, fence: bool = True) -> Iterator[Connection]:
        """A connection inside a transaction, committed on success; database errors become
        :class:`StoreError` naming the database and ``what`` was being done. A write
        transaction first checks this thread's fences (:meth:`fenced`) unless ``fence`` is off."""
        try:
            with self._lock, self._engine.connect() as conn:
                if write:
                    conn.execution_options(vulnwatch_write=True)
                with conn.begin():
                    if write and fence:
                        self._check_fences(conn, what)
                    yield conn
        except SQLAlchemyError as e:
            raise StoreError(f"state store {self._display}: {what} failed: {_reason(e)}") from None

    # --- migrations ------------------------------------------------------------------
    def _lock_schema(self, conn: Connection) -> None:
        """Serialise migrations across processes (SQLite: BEGIN IMMEDIATE already does)."""
        if not self._sqlite:
            conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))

    def _applied_versions(self, conn: Connection) -> set[int]:
        schema_migrations.create(conn, checkfirst=True)
        return set(conn.execute(select(schema_migrations.c.version)).scalars())

    def _migrate(self) -> None:
        with self._tx("reading the schema version", write=True) as conn:
            self._lock_schema(conn)
            applied = self._applied_versions(conn)
        self._refuse_unknown(applied)
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            with self._tx(f"migration {migration.version} ({migration.description})", write=True) as conn:
                self._lock_schema(conn)
                if migration.version in self._applied_versions(conn):
                    continue  # another process got there first
                migration.apply(conn)
                conn.execute(schema_migrations.insert().values(
                    version=migration.version, description=migration.description, applied_at=utcnow()))

    def _refuse_unknown(self, applied: set[int]) -> None:
        """A database that ran a migration this code does not know was written by a newer vulnwatch."""
        unknown = sorted(applied - {m.version for m in MIGRATIONS})
        if unknown:
            raise StoreError(
                f"state store {self._display} has schema version {max(applied)}, but this vulnwatch "
                f"knows versions up to {LATEST_VERSION}: it was written by a newer vulnwatch. "
                "Upgrade vulnwatch (or point state at another database).")

    def _check_schema(self) -> None:
        """For a read-only store: the schema must be the one this code reads."""
        try:
            current = self.schema_version()
        except StoreError as e:
            raise StoreError(f"{e} (opened read-only: is this a vulnwatch state store?)") from None
        with self._tx("reading the schema version") as conn:
            applied = set(conn.execute(select(schema_migrations.c.version)).scalars())
        if applied != {m.version for m in MIGRATIONS}:
            raise StoreError(
                f"state store {self._display} has schema version {current}, this vulnwatch reads version "
                f"{LATEST_VERSION}; it is opened read-only, so it cannot be migrated here: run any other "
                "vulnwatch command on it once (or upgrade vulnwatch if it is newer)")

    def schema_version(self) -> int:
        """The highest migration applied to the database."""
        with self._tx("reading the schema version") as conn:
            return conn.scalar(select(func.max(schema_migrations.c.version))) or 0

    # --- snapshots -------------------------------------------------------------------
    _SNAPSHOT_COLUMNS = (images_t.c.registry, images_t.c.repository, images_t.c.digest, images_t.c.tags,
                         images_t.c.pushed_at, images_t.c.media_type, images_t.c.size_bytes,
                         snapshots_t.c.scanner, snapshots_t.c.scanned_at,
                         snapshots_t.c.vulnerability_source_updated_at, snapshots_t.c.state,
                         snapshots_t.c.findings, snapshots_t.c.packages, snapshots_t.c.distro,
                         snapshots_t.c.notes, snapshots_t.c.suppressed)

    def _snapshot_query(self):
        return select(*self._SNAPSHOT_COLUMNS).select_from(snapshots_t.join(images_t, and_(
            images_t.c.registry == snapshots_t.c.registry,
            images_t.c.repository == snapshots_t.c.repository,
            images_t.c.digest == snapshots_t.c.digest)))

    @staticmethod
    def _image(row) -> Image:
        return Image(registry=row.registry, repository=row.repository, digest=row.digest,
                     tags=tuple(json.loads(row.tags or "[]")), pushed_at=row.pushed_at,
                     media_type=row.media_type, size_bytes=row.size_bytes)

    def _result(self, row, *, with_inventory: bool = True) -> ScanResult:
        where = f"snapshot of {row.registry}/{row.repository}@{row.digest}"
        try:
            return ScanResult(
                image=self._image(row),
                scanner=row.scanner,
                scanned_at=row.scanned_at,
                findings=tuple(_finding_from_dict(d) for d in json.loads(row.findings)),
                vulnerability_source_updated_at=row.vulnerability_source_updated_at,
                state=ScanState(row.state),
                packages=tuple(Package(*r) if isinstance(r, PackageRow) else r
                               for r in _load_packages(row.packages)) if with_inventory else (),
                distro=row.distro,
                notes=tuple(json.loads(row.notes)),
                suppressed=tuple(_finding_from_dict(d) for d in json.loads(row.suppressed or "[]")),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"state store {self._display}: cannot read the {where} ({e}); "
                             "rescan the image to replace it") from None

    def snapshot(self, registry: str, repository: str, digest: str, *,
                 with_inventory: bool = True) -> ScanResult | None:
        with self._tx(f"reading the snapshot of {registry}/{repository}@{digest}") as conn:
            row = conn.execute(self._snapshot_query().where(
                snapshots_t.c.registry == registry, snapshots_t.c.repository == repository,
                snapshots_t.c.digest == digest)).first()
        return self._result(row, with_inventory=with_inventory) if row is not None else None

    def snapshots(self, registry: str | None = None) -> list[ScanResult]:
        q = self._snapshot_query().order_by(snapshots_t.c.registry, snapshots_t.c.repository,
                                            snapshots_t.c.digest)
        if registry is not None:
            q = q.where(snapshots_t.c.registry == registry)
        with self._tx("reading snapshots") as conn:
            rows = conn.execute(q).all()
        return [self._result(r) for r in rows]

    def inventories(self, registry: str | None = None,
                    keys: Sequence[tuple[str, str, str]] | None = None) -> Iterator[StoredInventory]:
        s = snapshots_t
        q = (select(s.c.registry, s.c.repository, s.c.digest, s.c.scanner, s.c.distro, s.c.packages,
                    s.c.findings_signature)
             .where(s.c.packages.is_not(None), s.c.packages != "[]")
             .order_by(s.c.registry, s.c.repository, s.c.digest))
        if registry is not None:
            q = q.where(s.c.registry == registry)
        if keys is not None:
            keys = list(dict.fromkeys(tuple(k) for k in keys))
            for i in range(0, len(keys), 300):
                chunk = keys[i:i + 300]
                yield from self._inventories(q.where(tuple_(s.c.registry, s.c.repository, s.c.digest).in_(chunk)))
            return
        yield from self._inventories(q)

    def _inventories(self, q) -> Iterator[StoredInventory]:
        with self._tx("reading inventories") as conn:
            for row in conn.execution_options(yield_per=200).execute(q):
                rows = _load_rows(row.packages)
                if not rows and not row.distro:
                    continue
                yield StoredInventory(key=(row.registry, row.repository, row.digest), scanner=row.scanner,
                                      distro=row.distro, rows=rows, findings_signature=row.findings_signature)

    def tag_digest(self, registry: str, repository: str, tag: str) -> str | None:
        with self._tx(f"reading tag {registry}/{repository}:{tag}") as conn:
            return self._current_tag(conn, registry, repository, tag)[1]

    @staticmethod
    def _current_tag(conn: Connection, registry: str, repository: str, tag: str) -> tuple[int | None, str | None]:
        th = tag_history_t
        row = conn.execute(select(th.c.id, th.c.digest).where(
            th.c.registry == registry, th.c.repository == repository, th.c.tag == tag,
        ).order_by(th.c.last_seen.desc(), th.c.id.desc()).limit(1)).first()
        return (row.id, row.digest) if row is not None else (None, None)

    # --- writes ----------------------------------------------------------------------
    def _upsert_image(self, conn: Connection, image: Image, now: datetime, **error: Any) -> None:
        """Insert or update the image row; ``error`` sets or clears the ``last_error*`` columns."""
        values = dict(registry=image.registry, repository=image.repository, digest=image.digest,
                      tags=_dumps(sorted(image.tags)), pushed_at=image.pushed_at,
                      media_type=image.media_type, size_bytes=image.size_bytes, updated_at=now,
                      **error)
        stmt = self._insert(images_t).values(**values)
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[images_t.c.registry, images_t.c.repository, images_t.c.digest],
            set_=dict(tags=ex.tags,
                      pushed_at=func.coalesce(ex.pushed_at, images_t.c.pushed_at),
                      media_type=func.coalesce(ex.media_type, images_t.c.media_type),
                      size_bytes=func.coalesce(ex.size_bytes, images_t.c.size_bytes),
                      updated_at=ex.updated_at,
                      **{k: getattr(ex, k) for k in error}))
        conn.execute(stmt)

    def _see_tag(self, conn: Connection, image: Image, tag: str, now: datetime) -> None:
        """Record that ``tag`` points at ``image`` now; a moved tag is taken off its old image."""
        row_id, digest = self._current_tag(conn, image.registry, image.repository, tag)
        th = tag_history_t
        if digest == image.digest:
            conn.execute(update(th).where(th.c.id == row_id).values(last_seen=now))
            return
        conn.execute(th.insert().values(registry=image.registry, repository=image.repository, tag=tag,
                                        digest=image.digest, first_seen=now, last_seen=now))
        if digest is None:
            return
        key = and_(images_t.c.registry == image.registry, images_t.c.repository == image.repository,
                   images_t.c.digest == digest)
        old_tags = conn.scalar(select(images_t.c.tags).where(key))
        if old_tags is not None:
            kept = [t for t in json.loads(old_tags) if t != tag]
            conn.execute(update(images_t).where(key).values(tags=_dumps(kept)))

    def commit_scan(self, result: ScanResult, deliveries: Sequence[tuple[Event, Sequence[str]]], *,
                    keep_inventory: bool = False, expected: ScanResult | None = UNCHECKED) -> None:
        img = result.image
        now = utcnow()
        counts = _dumps(result.counts)
        snapshot = dict(
            scanner=result.scanner, scanned_at=result.scanned_at, recorded_at=now,
            vulnerability_source_updated_at=result.vulnerability_source_updated_at,
            state=ScanState(result.state).value,
            findings="[" + ",".join(_finding_json(f) for f in result.findings) + "]",
            findings_signature=result_signature(result),
            suppressed="[" + ",".join(_finding_json(f) for f in result.suppressed) + "]",
            notes=_dumps(list(result.notes)), counts=counts)
        if not keep_inventory:
            snapshot.update(packages=_dump_packages(result.packages), distro=result.distro)
        with self._tx(f"recording the scan of {img.registry}/{img.repository}@{img.digest}",
                      write=True) as conn:
            self._upsert_image(conn, img, now, last_error=None, last_error_at=None,
                               last_error_scanner=None)   # locks the image's row until commit
            st = snapshots_t
            if expected is not UNCHECKED:
                self._check_expected(conn, img, expected)
            updated = 0
            if keep_inventory:   # a re-match: the row and its inventory are there; change the rest
                updated = conn.execute(update(st).where(
                    st.c.registry == img.registry, st.c.repository == img.repository,
                    st.c.digest == img.digest).values(**snapshot)).rowcount
            if not updated:
                snapshot.setdefault("packages", _dump_packages(result.packages))
                snapshot.setdefault("distro", result.distro)
                stmt = self._insert(st).values(registry=img.registry, repository=img.repository,
                                               digest=img.digest, **snapshot)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[st.c.registry, st.c.repository, st.c.digest],
                    set_={k: getattr(stmt.excluded, k) for k in snapshot}))

            sh = scan_history_t
            seen = conn.scalar(select(sh.c.id).where(
                sh.c.registry == img.registry, sh.c.repository == img.repository,
                sh.c.digest == img.digest, sh.c.scanner == result.scanner,
                sh.c.scanned_at == result.scanned_at).limit(1))
            if seen is None:  # the same scan seen again (e.g. ECR not rescanned) is one entry
                conn.execute(sh.insert().values(
                    registry=img.registry, repository=img.repository, digest=img.digest,
                    tags=_dumps(sorted(img.tags)), scanner=result.scanner, scanned_at=result.scanned_at,
                    recorded_at=now, state=snapshot["state"], counts=counts,
                    finding_keys=_dumps(sorted(list(f.key) for f in result.findings))))

            for tag in sorted(set(img.tags)):
                self._see_tag(conn, img, tag, now)

            for ev, sinks in deliveries:
                added = conn.execute(self._insert(events_t).values(
                    id=ev.id, kind=ev.kind.value, registry=ev.image.registry,
                    repository=ev.image.repository, digest=ev.image.digest,
                    body=_dumps(ev.to_dict()), created_at=now,
                ).on_conflict_do_nothing(index_elements=[events_t.c.id]).returning(events_t.c.id)).first()
                if added is None or not sinks:
                    continue  # already in the outbox: an idempotent re-run
                conn.execute(deliveries_t.insert(), [
                    dict(event_id=ev.id, sink=sink, status=DeliveryStatus.PENDING.value, attempts=0,
                         next_attempt_at=None, created_at=now)
                    for sink in dict.fromkeys(sinks)])

    def _check_expected(self, conn: Connection, img: Image, expected: ScanResult | None) -> None:
        st = snapshots_t
        row = conn.execute(select(st.c.scanned_at, st.c.findings_signature).where(
            st.c.registry == img.registry, st.c.repository == img.repository, st.c.digest == img.digest)).first()
        if expected is None:
            if row is not None:
                raise StoreConflict(f"{img}: another writer recorded this image first")
            return
        if row is None or row.scanned_at != expected.scanned_at or (
                row.findings_signature is not None
                and row.findings_signature != result_signature(expected)):
            raise StoreConflict(f"{img}: the stored snapshot changed since it was read")

    def record_failure(self, image: Image, scanner: str, error: str, at: datetime) -> None:
        with self._tx(f"recording the failure of {image.registry}/{image.repository}@{image.digest}",
                      write=True) as conn:
            self._upsert_image(conn, image, utcnow(), last_error=stored_error(error),
                               last_error_at=at, last_error_scanner=scanner)

    def mark_checked(self, keys: Sequence[tuple[str, str, str]], at: datetime) -> None:
        i = images_t
        if not keys:
            return
        with self._tx("stamping checked images", write=True) as conn:
            conn.execute(update(i).where(and_(i.c.registry == bindparam("r"), i.c.repository == bindparam("p"),
                                              i.c.digest == bindparam("d"))).values(last_checked_at=at),
                         [{"r": r, "p": p, "d": d} for r, p, d in keys])

    # --- status and history ------------------------------------------------------------
    def images(self) -> list[ImageStatus]:
        s, i = snapshots_t, images_t
        q = (select(i.c.registry, i.c.repository, i.c.digest, i.c.tags, i.c.pushed_at, i.c.media_type,
                    i.c.size_bytes, i.c.last_error, i.c.last_error_at, i.c.last_error_scanner,
                    i.c.last_checked_at, s.c.scanner, s.c.scanned_at, s.c.counts)
             .select_from(i.outerjoin(s, and_(s.c.registry == i.c.registry,
                                              s.c.repository == i.c.repository,
                                              s.c.digest == i.c.digest)))
             .where(or_(s.c.digest.is_not(None), i.c.last_error.is_not(None)))
             .order_by(i.c.registry, i.c.repository, i.c.digest))
        with self._tx("listing images") as conn:
            rows = conn.execute(q).all()
        return [ImageStatus(image=self._image(r), scanner=r.scanner or r.last_error_scanner,
                            last_scanned_at=r.scanned_at,
                            counts=json.loads(r.counts) if r.counts else {},
                            last_error=r.last_error, last_error_at=r.last_error_at,
                            last_checked_at=r.last_checked_at or r.scanned_at)
                for r in rows]

    def history(self, registry: str, repository: str, digest: str | None = None,
                limit: int = 100) -> list[HistoryEntry]:
        h, i = scan_history_t, images_t
        q = (select(h.c.registry, h.c.repository, h.c.digest, h.c.tags, h.c.scanner, h.c.scanned_at,
                    h.c.recorded_at, h.c.counts, i.c.pushed_at, i.c.media_type, i.c.size_bytes)
             .select_from(h.outerjoin(i, and_(i.c.registry == h.c.registry,
                                              i.c.repository == h.c.repository,
                                              i.c.digest == h.c.digest)))
             .where(h.c.registry == registry, h.c.repository == repository)
             .order_by(h.c.scanned_at.desc(), h.c.id.desc()).limit(limit))
        if digest is not None:
            q = q.where(h.c.digest == digest)
        with self._tx(f"reading the history of {registry}/{repository}") as conn:
            rows = conn.execute(q).all()
        return [HistoryEntry(image=self._image(r), scanner=r.scanner, scanned_at=r.scanned_at,
                             recorded_at=r.recorded_at, counts=json.loads(r.counts)) for r in rows]

    # --- outbox ----------------------------------------------------------------------
    def _delivery_query(self):
        d, e = deliveries_t, events_t
        return select(d, e.c.body).select_from(d.join(e, e.c.id == d.c.event_id))

    def _delivery(self, row) -> Delivery:
        try:
            ev = Event.from_dict(json.loads(row.body))
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"state store {self._display}: cannot read event {row.event_id} of "
                             f"delivery {row.id} ({e}); dead-letter or delete it") from None
        return Delivery(id=row.id, event=ev, sink=row.sink, status=DeliveryStatus(row.status),
                        attempts=row.attempts, created_at=row.created_at,
                        next_attempt_at=row.next_attempt_at, last_error=row.last_error,
                        delivered_at=row.delivered_at, batch_id=row.batch_id)

    def due_deliveries(self, now: datetime, limit: int | None = None) -> list[Delivery]:
        d, e = deliveries_t, events_t
        pending = DeliveryStatus.PENDING.value
        earlier, earlier_ev = deliveries_t.alias("earlier"), events_t.alias("earlier_event")
        held_back = exists().where(      # an earlier delivery of the same image to the same sink waits
            earlier.c.sink == d.c.sink, earlier.c.status == pending, earlier.c.id < d.c.id,
            earlier.c.next_attempt_at > now, earlier_ev.c.id == earlier.c.event_id,
            earlier_ev.c.registry == e.c.registry, earlier_ev.c.repository == e.c.repository,
            earlier_ev.c.digest == e.c.digest)
        q = (self._delivery_query()
             .where(d.c.status == pending,
                    or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now), ~held_back)
             .order_by(d.c.created_at, d.c.id))
        if limit is not None:
            q = q.limit(limit)
        with self._tx("reading due deliveries") as conn:
            rows = conn.execute(q).all()
        return [self._delivery(r) for r in rows]

    def mark_delivered(self, delivery_ids: Sequence[int], at: datetime) -> None:
        d = deliveries_t
        with self._tx("marking deliveries delivered", write=True) as conn:
            for chunk in _chunks(delivery_ids):
                conn.execute(update(d).where(d.c.id.in_(chunk)).values(
                    status=DeliveryStatus.DELIVERED.value, attempts=d.c.attempts + 1,
                    delivered_at=at, last_attempt_at=at, next_attempt_at=None))

    def mark_failed(self, delivery_ids: Sequence[int], error: str, at: datetime,
                    next_attempt_at: datetime | None) -> None:
        d = deliveries_t
        status = DeliveryStatus.PENDING if next_attempt_at is not None else DeliveryStatus.DEAD
        with self._tx("marking deliveries failed", write=True) as conn:
            for chunk in _chunks(delivery_ids):
                conn.execute(update(d).where(
                    d.c.id.in_(chunk), d.c.status != DeliveryStatus.DELIVERED.value,
                ).values(status=status.value, attempts=d.c.attempts + 1,
                         last_error=stored_error(error), last_attempt_at=at,
                         next_attempt_at=next_attempt_at))

    def deliveries(self, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]:
        d = deliveries_t
        q = self._delivery_query().order_by(d.c.id.desc()).limit(limit)
        if status is not None:
            q = q.where(d.c.status == DeliveryStatus(status).value)
        with self._tx("listing deliveries") as conn:
            rows = conn.execute(q).all()
        return [self._delivery(r) for r in rows]

    def retry_dead(self, delivery_ids: Sequence[int] | None = None, now: datetime | None = None) -> int:
        d = deliveries_t
        values = dict(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now)
        dead = d.c.status == DeliveryStatus.DEAD.value
        with self._tx("retrying dead deliveries", write=True) as conn:
            # counted with RETURNING: psycopg's rowcount is not reliable here (-1)
            if delivery_ids is None:
                return len(conn.execute(update(d).where(dead).values(**values).returning(d.c.id)).all())
            return sum(len(conn.execute(update(d).where(dead, d.c.id.in_(chunk)).values(**values)
                                        .returning(d.c.id)).all())
                       for chunk in _chunks(delivery_ids))

    def assign_batch(self, delivery_ids: Sequence[int], batch_id: str) -> None:
        d = deliveries_t
        with self._tx(f"recording digest batch {batch_id}", write=True) as conn:
            for chunk in _chunks(delivery_ids):
                conn.execute(update(d).where(d.c.id.in_(chunk), d.c.batch_id.is_(None),
                                             d.c.status == DeliveryStatus.PENDING.value).values(batch_id=batch_id))

    # --- leases ------------------------------------------------------------------------
    def _clock(self, conn: Connection) -> datetime:
        """Now, by the database's clock on PostgreSQL (one clock for every machine sharing it),
        by this machine's on SQLite (a file on one machine)."""
        if self._sqlite:
            return utcnow()
        return conn.scalar(select(func.clock_timestamp())).astimezone(timezone.utc)

    def _fence_stack(self) -> list[Lease]:
        stack = getattr(self._fences, "stack", None)
        if stack is None:
            stack = self._fences.stack = []
        return stack

    @contextmanager
    def fenced(self, *leases: Lease) -> Iterator[None]:
        stack = self._fence_stack()
        stack.extend(leases)
        try:
            yield
        finally:
            del stack[len(stack) - len(leases):]

    def _check_fences(self, conn: Connection, what: str) -> None:
        stack = self._fence_stack()
        if not stack:
            return
        lt = leases_t
        wanted = {lease.name: lease for lease in stack}
        q = select(lt.c.name, lt.c.token, lt.c.holder).where(lt.c.name.in_(sorted(wanted)))
        if not self._sqlite:   # takeovers (UPDATE) wait for this write to commit
            q = q.order_by(lt.c.name).with_for_update(read=True)
        current = {r.name: r for r in conn.execute(q)}
        for name, lease in wanted.items():
            row = current.get(name)
            if row is None or row.token != lease.token:
                now = f"by {row.holder} (token {row.token})" if row is not None else "(the lease is gone)"
                raise LeaseLost(f"state store {self._display}: {what} refused: lease {name!r} held by "
                                f"{lease.holder} with token {lease.token} was taken over {now}")

    def _lease_row(self, conn: Connection, name: str):
        lt = leases_t
        conn.execute(self._insert(lt).values(name=name, holder="", token=0, expires_at=_EPOCH)
                     .on_conflict_do_nothing(index_elements=[lt.c.name]))
        return conn.execute(select(lt).where(lt.c.name == name).with_for_update()).first()

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, *, take_over: str | None = None) -> Lease:
        lt = leases_t
        with self._tx(f"taking lease {name!r}", write=True, fence=False) as conn:
            now = self._clock(conn)
            row = self._lease_row(conn, name)
            held = row.expires_at > now and not (take_over not in (None, holder) and row.holder == take_over)
            if held and row.holder != holder:
                raise LeaseHeld(f"lease {name!r} is held by {row.holder} until "
                                f"{row.expires_at.isoformat(timespec='seconds')} (token {row.token})",
                                name=name, holder=row.holder, expires_at=row.expires_at)
            same = held                        # held by this holder: extended, same token
            token = row.token if same else row.token + 1
            until = now + ttl
            conn.execute(update(lt).where(lt.c.name == name).values(
                holder=holder, token=token, expires_at=until, acquired_at=row.acquired_at if same else now))
        return Lease(name, holder, token, until)

    def renew_lease(self, lease: Lease, ttl: timedelta) -> Lease:
        lt = leases_t
        with self._tx(f"renewing lease {lease.name!r}", write=True, fence=False) as conn:
            until = self._clock(conn) + ttl
            kept = conn.execute(update(lt).where(lt.c.name == lease.name, lt.c.token == lease.token,
                                                 lt.c.holder == lease.holder)
                                .values(expires_at=until).returning(lt.c.name)).first()
            if kept is None:
                raise LeaseLost(f"state store {self._display}: lease {lease.name!r} of {lease.holder} "
                                f"(token {lease.token}) was taken over; stop working under it")
        return Lease(lease.name, lease.holder, lease.token, until)

    def release_lease(self, lease: Lease, *, done: bool = False) -> None:
        lt = leases_t
        with self._tx(f"releasing lease {lease.name!r}", write=True, fence=False) as conn:
            now = self._clock(conn)
            conn.execute(update(lt).where(lt.c.name == lease.name, lt.c.token == lease.token,
                                          lt.c.holder == lease.holder)
                         .values(expires_at=now, **({"done_at": now} if done else {})))

    def lease(self, name: str) -> Lease | None:
        lt = leases_t
        with self._tx(f"reading lease {name!r}") as conn:
            row = conn.execute(select(lt).where(lt.c.name == name)).first()
        if row is None or row.token == 0:
            return None
        return Lease(row.name, row.holder, row.token, row.expires_at)

    def claim_leases(self, names: Sequence[str], holder: str, ttl: timedelta, *, limit: int,
                     done_before: datetime | None = None) -> list[Lease]:
        lt = leases_t
        names = list(dict.fromkeys(names))
        taken: list[Lease] = []
        for i in range(0, len(names), _CHUNK):
            if len(taken) >= limit:
                break
            chunk = names[i:i + _CHUNK]
            with self._tx("claiming images", write=True, fence=False) as conn:
                now = self._clock(conn)
                have = set(conn.scalars(select(lt.c.name).where(lt.c.name.in_(chunk))))
                missing = [n for n in chunk if n not in have]
                if missing:
                    conn.execute(self._insert(lt).on_conflict_do_nothing(index_elements=[lt.c.name]),
                                 [dict(name=n, holder="", token=0, expires_at=_EPOCH) for n in missing])
                q = select(lt.c.name, lt.c.token).where(lt.c.name.in_(chunk), lt.c.expires_at <= now)
                if done_before is not None:
                    q = q.where(or_(lt.c.done_at.is_(None), lt.c.done_at < done_before))
                q = q.order_by(lt.c.name).limit(limit - len(taken))
                if not self._sqlite:     # rows another worker is claiming right now are skipped
                    q = q.with_for_update(skip_locked=True)
                free = conn.execute(q).all()
                if not free:
                    continue
                until = now + ttl
                conn.execute(update(lt).where(lt.c.name == bindparam("n")).values(
                    holder=holder, token=bindparam("t"), acquired_at=now, expires_at=until, done_at=None),
                    [{"n": r.name, "t": r.token + 1} for r in free])
                taken.extend(Lease(r.name, holder, r.token + 1, until) for r in free)
        return taken

    # --- reads for the dashboard ------------------------------------------------------
    _SEVERITIES = tuple(s.name for s in sorted(Severity, reverse=True))

    def _count(self, column, severity: str):
        """The integer ``severity`` of a JSON counts column (0 when absent)."""
        if self._sqlite:
            return func.coalesce(func.json_extract(column, f"$.{severity}"), 0)
        return func.coalesce(cast(cast(column, PG_JSON)[severity].astext, Integer), 0)

    def _superseded(self):
        """Every tag this image had has moved away (its tags are empty and it had some)."""
        i, th = images_t, tag_history_t
        return and_(i.c.tags == "[]", exists().where(
            th.c.registry == i.c.registry, th.c.repository == i.c.repository, th.c.digest == i.c.digest))

    _CURRENT_SQL = ("NOT (i.tags = '[]' AND EXISTS (SELECT 1 FROM tag_history th WHERE th.registry = i.registry "
                    "AND th.repository = i.repository AND th.digest = i.digest))")

    def ping(self) -> None:
        with self._tx("answering a ping") as conn:
            conn.execute(select(literal(1)))

    def data_version(self) -> str | None:
        i, s, h = images_t, snapshot_summary_t, scan_history_t
        with self._tx("reading the data version") as conn:
            a = conn.execute(select(func.max(s.c.recorded_at), func.count())).first()
            b = conn.execute(select(func.max(i.c.updated_at), func.count())).first()
            c = conn.scalar(select(func.max(h.c.id)))
        return f"{a[0]}|{a[1]}|{b[0]}|{b[1]}|{c}"

    def fleet(self, query: FleetQuery = FleetQuery()) -> FleetPage:
        if query.sort not in FLEET_SORTS:
            raise ValueError(f"unknown sort {query.sort!r}: use one of {', '.join(FLEET_SORTS)}")
        i, s = images_t, snapshot_summary_t
        joined = i.outerjoin(s, and_(s.c.registry == i.c.registry, s.c.repository == i.c.repository,
                                     s.c.digest == i.c.digest))
        counts = {sev: self._count(s.c.counts, sev) for sev in self._SEVERITIES}
        conds = [or_(s.c.digest.is_not(None), i.c.last_error.is_not(None))]
        superseded = self._superseded()
        if not query.include_superseded:
            conds.append(not_(superseded))
        if query.registry is not None:
            conds.append(i.c.registry == query.registry)
        if query.text:
            t = query.text.lower()
            conds.append(or_(func.lower(i.c.registry).contains(t, autoescape=True),
                             func.lower(i.c.repository).contains(t, autoescape=True),
                             func.lower(i.c.tags).contains(t, autoescape=True)))
        if query.min_severity is not None:
            worse = [counts[sev.name] for sev in Severity if sev >= query.min_severity]
            conds.append(sum(worse[1:], worse[0]) > 0)
        if query.with_notes:
            conds.append(and_(s.c.notes.is_not(None), s.c.notes != "[]"))
        if query.with_errors:
            conds.append(i.c.last_error.is_not(None))
        names = [i.c.repository, i.c.registry, i.c.digest]
        if query.sort == "severity":
            keys = [counts[sev] for sev in self._SEVERITIES]
        elif query.sort == "total":
            keys = [sum(list(counts.values())[1:], counts["CRITICAL"])]
        elif query.sort in ("critical", "high", "medium", "low"):
            keys = [counts[query.sort.upper()]]
        elif query.sort == "registry":
            keys, names = [i.c.registry, i.c.repository], [i.c.digest]
        elif query.sort == "repository":
            keys, names = [i.c.repository, i.c.registry], [i.c.digest]
        elif query.sort == "last_scanned":
            keys = [s.c.scanned_at]
        else:
            keys = [func.coalesce(i.c.last_checked_at, s.c.scanned_at)]
        order = [(k.desc() if query.descending else k.asc()).nulls_last() for k in keys] + [n.asc() for n in names]
        # Two steps: the page's keys from a narrow sort (deep pages stay cheap), then their rows.
        keyq = (select(i.c.registry, i.c.repository, i.c.digest, func.count().over().label("matching"))
                .select_from(joined).where(*conds).order_by(*order)
                .offset(max(0, query.offset)).limit(max(0, query.limit)))
        with self._tx("listing the fleet") as conn:
            keys = conn.execute(keyq).all()      # the total rides along (one pass, not a second query)
            total = keys[0].matching if keys else (
                conn.scalar(select(func.count()).select_from(joined).where(*conds)) if query.offset > 0 else 0)
            found = {}
            if keys:
                q = (select(i.c.registry, i.c.repository, i.c.digest, i.c.tags, i.c.pushed_at, i.c.media_type,
                            i.c.size_bytes, i.c.last_error, i.c.last_error_at, i.c.last_error_scanner,
                            i.c.last_checked_at, s.c.scanner, s.c.scanned_at, s.c.counts, s.c.notes,
                            superseded.label("superseded"))
                     .select_from(joined)
                     .where(or_(*[and_(i.c.registry == k.registry, i.c.repository == k.repository,
                                       i.c.digest == k.digest) for k in keys])))
                found = {(r.registry, r.repository, r.digest): r for r in conn.execute(q)}
        rows = [found[(k.registry, k.repository, k.digest)] for k in keys
                if (k.registry, k.repository, k.digest) in found]
        return FleetPage(total=total or 0, images=[FleetImage(
            status=ImageStatus(image=self._image(r), scanner=r.scanner or r.last_error_scanner,
                               last_scanned_at=r.scanned_at, counts=json.loads(r.counts) if r.counts else {},
                               last_error=r.last_error, last_error_at=r.last_error_at,
                               last_checked_at=r.last_checked_at or r.scanned_at),
            notes=tuple(json.loads(r.notes)) if r.notes else (), superseded=bool(r.superseded)) for r in rows])

    def histories(self, keys: Sequence[tuple[str, str, str]], limit: int = 30) -> dict[tuple[str, str, str], list[HistoryEntry]]:
        h, i = scan_history_t, images_t
        keys = list(dict.fromkeys(tuple(k) for k in keys))
        out: dict[tuple[str, str, str], list[HistoryEntry]] = {k: [] for k in keys}
        for n in range(0, len(keys), 100):
            chunk = keys[n:n + 100]
            # OR of equalities, not a tuple IN list: SQLite searches the index for each of them
            ranked = (select(h.c.registry, h.c.repository, h.c.digest, h.c.tags, h.c.scanner, h.c.scanned_at,
                             h.c.recorded_at, h.c.counts,
                             func.row_number().over(partition_by=(h.c.registry, h.c.repository, h.c.digest),
                                                    order_by=(h.c.scanned_at.desc(), h.c.id.desc())).label("rn"))
                      .where(or_(*[and_(h.c.registry == r, h.c.repository == p, h.c.digest == d)
                                   for r, p, d in chunk])).subquery())
            q = (select(ranked, i.c.pushed_at, i.c.media_type, i.c.size_bytes)
                 .select_from(ranked.outerjoin(i, and_(i.c.registry == ranked.c.registry,
                                                       i.c.repository == ranked.c.repository,
                                                       i.c.digest == ranked.c.digest)))
                 .where(ranked.c.rn <= limit).order_by(ranked.c.rn))
            with self._tx("reading histories") as conn:
                for r in conn.execute(q):
                    out[(r.registry, r.repository, r.digest)].append(HistoryEntry(
                        image=self._image(r), scanner=r.scanner, scanned_at=r.scanned_at,
                        recorded_at=r.recorded_at, counts=json.loads(r.counts)))
        return out

    def _epoch_offset(self, column: str) -> str:
        """SQL: seconds from :start to the timestamp ``column``."""
        if self._sqlite:
            return f"((julianday({column}) - julianday(:start)) * 86400.0)"
        return f"EXTRACT(EPOCH FROM ({column} - CAST(:start AS TIMESTAMP WITH TIME ZONE)))"

    def _json_int(self, column: str, key: str) -> str:
        if self._sqlite:
            return f"COALESCE(json_extract({column}, '$.{key}'), 0)"
        return f"COALESCE((CAST({column} AS json) ->> '{key}')::int, 0)"

    def fleet_trend(self, since: datetime | None = None, buckets: int = 120) -> list[TrendPoint]:
        sevs = self._SEVERITIES
        with self._tx("reading the fleet trend") as conn:
            lo, hi = conn.execute(select(func.min(scan_history_t.c.recorded_at),
                                         func.max(scan_history_t.c.recorded_at))).first()
            if lo is None:
                return []
            t_hi = conn.scalar(select(func.max(tag_history_t.c.first_seen)))
            end = max(hi, t_hi) if t_hi is not None else hi
            start = max(lo, since) if since is not None else lo
            width = bucket_width(start, end, buckets)
            cols = ", ".join(f"{self._json_int('sh.counts', sev)} AS c{n}" for n, sev in enumerate(sevs))
            lags = ", ".join(f"c{n} - LAG(c{n}, 1, 0) OVER (PARTITION BY registry, repository, digest "
                             f"ORDER BY at, id) AS d{n}" for n in range(len(sevs)))
            negs = ", ".join(f"-c{n} AS d{n}" for n in range(len(sevs)))
            sums = ", ".join(f"SUM(d{n})" for n in range(len(sevs)))
            bucket = (f"CASE WHEN at < :start THEN -1 ELSE CAST(FLOOR({self._epoch_offset('at')} / :width) "
                      f"AS INTEGER) END")
            if self._sqlite:
                bucket = (f"CASE WHEN at < :start THEN -1 ELSE CAST({self._epoch_offset('at')} / :width "
                          f"AS INTEGER) END")
            sql = f"""
WITH th AS (
  SELECT registry, repository, digest,
         LEAD(first_seen) OVER (PARTITION BY registry, repository, tag ORDER BY first_seen, id) AS ended
  FROM tag_history),
ret AS (
  SELECT registry, repository, digest, MAX(ended) AS retired_at FROM th
  GROUP BY registry, repository, digest HAVING COUNT(ended) = COUNT(*)),
h AS (
  SELECT sh.registry, sh.repository, sh.digest, sh.id, sh.recorded_at AS at, ret.retired_at, {cols}
  FROM scan_history sh LEFT JOIN ret ON ret.registry = sh.registry AND ret.repository = sh.repository
                                    AND ret.digest = sh.digest
  WHERE ret.retired_at IS NULL OR sh.recorded_at < ret.retired_at),
d AS (
  SELECT at, {lags} FROM h
  UNION ALL
  SELECT retired_at AS at, {negs} FROM (
    SELECT h.*, ROW_NUMBER() OVER (PARTITION BY registry, repository, digest ORDER BY at DESC, id DESC) AS rn
    FROM h WHERE retired_at IS NOT NULL) last_rows WHERE rn = 1)
SELECT {bucket} AS b, MAX(at) AS at, {sums} FROM d GROUP BY 1 ORDER BY 1"""
            rows = conn.execute(text(sql).bindparams(bindparam("start", type_=UTCDateTime),
                                                     bindparam("width")),
                                {"start": start, "width": width}).all()
        out, running = [], [0] * len(sevs)
        for r in rows:
            running = [a + int(b or 0) for a, b in zip(running, r[2:])]
            at = r.at
            if isinstance(at, str):   # SQLite hands the MAX of a text column back as text
                at = UTCDateTime().process_result_value(datetime.fromisoformat(at), self._engine.dialect)
            out.append(TrendPoint(start if r.b == -1 else at, dict(zip(sevs, running))))
        return out

    def recent_events(self, registry: str | None = None, repository: str | None = None,
                      digest: str | None = None, limit: int = 100) -> list[Event]:
        e = events_t
        q = select(e.c.id, e.c.body).order_by(e.c.created_at.desc(), e.c.id).limit(limit)
        if registry is not None:
            q = q.where(e.c.registry == registry)
        if repository is not None:
            q = q.where(e.c.repository == repository)
        if digest is not None:
            q = q.where(or_(e.c.digest == digest, and_(
                e.c.kind == "rebuild", e.c.body.contains(f'"previous_digest":{_dumps(digest)}', autoescape=True))))
        with self._tx("reading events") as conn:
            rows = conn.execute(q).all()
        out = []
        for r in rows:
            try:
                out.append(Event.from_dict(json.loads(r.body)))
            except (ValueError, KeyError, TypeError) as ex:
                raise StoreError(f"state store {self._display}: cannot read event {r.id} ({ex})") from None
        return sorted(out, key=lambda ev: ev.occurred_at, reverse=True)

    def affected(self, vulnerability_id: str) -> list[Affected]:
        s, h, i = snapshots_t, scan_history_t, images_t
        needle = _dumps(vulnerability_id)
        has = (func.instr if self._sqlite else func.strpos)
        q = (select(*[c for c in self._SNAPSHOT_COLUMNS if c.name != "packages"])
             .select_from(s.join(i, and_(i.c.registry == s.c.registry, i.c.repository == s.c.repository,
                                         i.c.digest == s.c.digest)))
             .where(has(s.c.findings, needle) > 0, not_(self._superseded()))
             .order_by(s.c.registry, s.c.repository, s.c.digest))
        out = []
        with self._tx(f"finding the images affected by {vulnerability_id}") as conn:
            for row in conn.execute(q).all():
                snap = self._result(row, with_inventory=False)
                hits = [f for f in snap.findings if vulnerability_id in (f.vulnerability_id, *f.aliases)]
                if not hits:
                    continue
                flags = [has(h.c.finding_keys, _dumps(list(f.key))) > 0 for f in hits]
                history = conn.execute(
                    select(h.c.scanned_at, *[f.label(f"k{n}") for n, f in enumerate(flags)])
                    .where(h.c.registry == row.registry, h.c.repository == row.repository,
                           h.c.digest == row.digest)
                    .order_by(h.c.scanned_at.desc(), h.c.id.desc())).all()
                for n, f in enumerate(hits):
                    since = None
                    for entry in history:          # newest first: back to the first scan without it
                        if not entry[n + 1]:
                            break
                        since = entry.scanned_at
                    out.append(Affected(snap.image, f, since))
        return out

    def _findings_table(self, alias: str = "j") -> tuple[str, str]:
        """(FROM item expanding ``s.findings``, SQL template for one field of an element)."""
        if self._sqlite:
            return f"json_each(s.findings) AS {alias}", f"json_extract({alias}.value, '$.%s')"
        return f"json_array_elements(CAST(s.findings AS json)) AS {alias}(value)", f"({alias}.value ->> '%s')"

    def fixable_summary(self) -> FixableSummary:
        each, field = self._findings_table()
        fixv = ("json_extract(j.value, '$.fixed_versions')" if self._sqlite
                else "CAST(j.value -> 'fixed_versions' AS text)")
        fixable = (f"{field % 'fixable'} = 1" if self._sqlite else f"CAST({field % 'fixable'} AS boolean)")
        sql = f"""
WITH f AS MATERIALIZED (
  SELECT s.registry || '|' || s.repository || '|' || s.digest AS image,
         {field % 'ecosystem'} AS eco, {field % 'package_name'} AS pkg, {field % 'package_version'} AS ver,
         {fixv} AS fixv, {field % 'severity'} AS sev, {field % 'vulnerability_id'} AS vid
  FROM snapshots s JOIN images i ON i.registry = s.registry AND i.repository = s.repository
                                AND i.digest = s.digest, {each}
  WHERE {fixable} AND {self._CURRENT_SQL})
SELECT 'g' AS kind, eco, pkg, ver, fixv, sev, vid, COUNT(*) AS n FROM f GROUP BY eco, pkg, ver, fixv, sev, vid
UNION ALL
SELECT 'i', eco, pkg, NULL, NULL, NULL, NULL, COUNT(DISTINCT image) FROM f GROUP BY eco, pkg"""
        with self._tx("summarising fixable findings") as conn:
            rows = conn.execute(text(sql)).all()
        groups, images = [], {}
        for r in rows:
            if r.kind == "i":
                images[(r.eco or "", r.pkg)] = int(r.n)
            else:
                groups.append(FixableGroup(r.eco or "", r.pkg, r.ver, tuple(json.loads(r.fixv or "[]")),
                                           r.sev, r.vid, int(r.n)))
        return FixableSummary(groups, images)

    def fixes(self, since: datetime) -> list[FixRecord]:
        def part(path: str) -> tuple[str, str]:
            if self._sqlite:
                return (f"json_each(e.body, '$.{path}') AS j", "json_extract(j.value, '$.%s')")
            return (f"json_array_elements(CAST(e.body AS json) -> '{path}') AS j(value)", "(j.value ->> '%s')")

        def rows(path: str, what: int, where: str) -> str:
            each, field = part(path)
            at = ("json_extract(e.body, '$.occurred_at')" if self._sqlite
                  else "(CAST(e.body AS json) ->> 'occurred_at')")
            return (f"SELECT {what} AS what, e.registry, e.repository, {at} AS at, "
                    f"{field % 'vulnerability_id'} AS vid, {field % 'ecosystem'} AS eco, "
                    f"{field % 'package_name'} AS pkg FROM events e, {each} WHERE {where}")

        changed = "e.kind IN ('findings_changed', 'rebuild')"
        sql = f"""
WITH fx AS ({rows('fixed', 1, changed)}),
keys AS (SELECT DISTINCT registry, repository, vid, eco, pkg FROM fx WHERE at >= :since_text),
ad AS ({rows('added', 0, "EXISTS (SELECT 1 FROM keys k WHERE k.registry = e.registry AND k.repository = e.repository)")})
SELECT fx.* FROM fx JOIN keys k ON k.registry = fx.registry AND k.repository = fx.repository AND k.vid = fx.vid
                               AND k.eco = fx.eco AND k.pkg = fx.pkg
UNION ALL
SELECT ad.* FROM ad JOIN keys k ON k.registry = ad.registry AND k.repository = ad.repository AND k.vid = ad.vid
                               AND k.eco = ad.eco AND k.pkg = ad.pkg"""
        # occurred_at is ISO text with its offset (always UTC here), so text order is time order
        since_utc = since.astimezone(timezone.utc) if since.tzinfo else since.replace(tzinfo=timezone.utc)
        with self._tx("reading fixes") as conn:
            found = conn.execute(text(sql), {"since_text": since_utc.isoformat()}).all()
        marks = [(datetime.fromisoformat(r.at), r.what, r.registry, r.repository, (r.vid, r.eco or "", r.pkg))
                 for r in found]
        return sweep_fixes(marks, since_utc)

    def stats(self) -> StoreStats:
        i, s, d = images_t, snapshot_summary_t, deliveries_t
        joined = i.outerjoin(s, and_(s.c.registry == i.c.registry, s.c.repository == i.c.repository,
                                     s.c.digest == i.c.digest))
        current = not_(self._superseded())
        sums = [func.sum(self._count(s.c.counts, sev)) for sev in self._SEVERITIES]
        with self._tx("reading totals") as conn:
            per_registry = conn.execute(
                select(i.c.registry,
                       func.sum(case((and_(current, or_(s.c.digest.is_not(None), i.c.last_error.is_not(None))), 1),
                                     else_=0)),
                       func.sum(case((i.c.last_error.is_not(None), 1), else_=0)),
                       func.max(func.coalesce(i.c.last_checked_at, s.c.scanned_at)))
                .select_from(joined).group_by(i.c.registry)).all()
            totals = conn.execute(select(*sums).select_from(joined).where(current)).first()
            by_status = conn.execute(select(d.c.status, func.count()).group_by(d.c.status)).all()
            retrying = conn.scalar(select(func.count()).where(
                d.c.status == DeliveryStatus.PENDING.value, d.c.attempts > 0))
        checked = {}
        for r in per_registry:
            at = r[3]
            if isinstance(at, str):
                at = UTCDateTime().process_result_value(datetime.fromisoformat(at), self._engine.dialect)
            if at is not None:
                checked[r[0]] = at
        deliveries = {st.value: 0 for st in DeliveryStatus}
        deliveries.update({st: int(n) for st, n in by_status})
        return StoreStats(images={r[0]: int(r[1] or 0) for r in per_registry if r[1]},
                          findings={sev: int(n or 0) for sev, n in zip(self._SEVERITIES, totals)},
                          failing={r[0]: int(r[2]) for r in per_registry if r[2]},
                          last_checked=checked, deliveries=deliveries, retrying=int(retrying or 0))

    def delivery(self, delivery_id: int) -> Delivery | None:
        with self._tx(f"reading delivery {delivery_id}") as conn:
            row = conn.execute(self._delivery_query().where(deliveries_t.c.id == int(delivery_id))).first()
        return self._delivery(row) if row is not None else None

    def close(self) -> None:
        self._engine.dispose()
