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

import base64
import functools
import json
import operator
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (BigInteger, bindparam, tuple_, Column, DateTime, Integer, MetaData, String, Table, Text,
                        and_, case, cast, create_engine, event, exists, func, literal, not_, or_, select, text,
                        update)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from ..model import (Coverage, CoverageSummary, Event, Finding, Image, Package, ScanResult, ScanState, Severity,
                     finding_hash, signature_of, utcnow)
from ._fences import FenceStack
from .interface import (FLEET_SORTS, UNCHECKED, Affected, Delivery, DeliveryStatus, FixableGroup, FixableSummary,
                        FixRecord, FleetImage, FleetPage, FleetQuery, HistoryEntry, ImageStatus, Lease, LeaseHeld,
                        LeaseLost, PackageRow, ScanCommit, Store, StoreConflict, StoredInventory, StoreError, StoreStats,
                        TrendPoint, bucket_width, stored_error, sweep_fixes)
from ..runs import Run, finding_parts, joined, run_of, signature_total
from ._finding_sets import event_dict, event_list_ids, event_parts, summary
from ._name_index import IndexedPackage, looked_up, matching_key, name_key, package_id
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


_UTC_DATETIME = UTCDateTime()


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
    Column("finding_sets", Text),     # migration 7: ids of its finding sets (NULL: findings inline)
    Column("suppressed", Text),     # migration 8
    Column("coverage", Text),       # migration 6: model.Coverage as JSON (NULL: not known)
    Column("coverage_summary", Text),   # migration 6: model.CoverageSummary as JSON
    Column("kev", Integer),         # migration 6: findings listed in KEV (NULL: not known)
    Column("names_chunk", Integer),  # migration 9: its package index chunk (NULL: not indexed yet)
)
fleet_packages_t = Table(             # migration 9: each distinct package of the fleet, once
    "fleet_packages", _md,
    Column("id", String, primary_key=True),
    Column("name", String),
    Column("distro", String),
    Column("row", Text),
    Column("signature", String),
)
name_index_chunks_t = Table(          # migration 9: a chunk of the name index: its image keys
    "name_index_chunks", _md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("keys", Text),
)
name_postings_t = Table(              # migration 9: (package, chunk) -> positions of its images
    "name_postings", _md,
    Column("package", String, primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("members", Text),
)
store_meta_t = Table(                 # migration 7: markers (name -> value)
    "store_meta", _md,
    Column("name", String, primary_key=True),
    Column("value", Text),
)
finding_sets_t = Table(               # migration 7: one package's findings, stored once (by hash)
    "finding_sets", _md,
    Column("id", String, primary_key=True),
    Column("findings", Text),
)
event_lists_t = Table(                # migration 13: a list of findings (or changes) of one package
    "event_lists", _md,                #   inside events, stored once (by hash; see _finding_sets.event_parts)
    Column("id", String, primary_key=True),
    Column("items", Text),
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
    Column("kev", Integer),
    Column("coverage_summary", Text),
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
    Column("finding_sets", Text),     # migration 7 (finding_keys then [])
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
_SETS_GENERATION = "finding_sets_generation"
"""store_meta name: moved by every collection of unreferenced finding sets."""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""``expires_at`` of a lease row made before anyone held it (free)."""

_PACKAGE_FIELDS = frozenset(f.name for f in fields(Package))
_ROW_FIELDS = list(PackageRow._fields)   # Package's fields, in order (PackageRow is derived from it)


def _finding_json(f: Finding) -> str:
    """A finding as stored (cached by object)."""
    return finding_parts(f)[1]


def _signature(findings) -> str:
    """:func:`~vulnwatch.model.findings_signature`, with the per-finding hashes cached by object."""
    return signature_of(*signature_total(findings))


def _as_utc(value: Any, dialect) -> datetime | None:
    """A timestamp read by a text query (SQLite: text) or given by a caller, aware and in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


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


_ROW_OF = operator.attrgetter(*_ROW_FIELDS)
_ROW_TEXT: dict[int, str] = {}
"""id of a package object -> its row as JSON text. An id is here only while its object is in
:data:`_ROW_KEPT` (alive: no other object can have that id meanwhile): entries are added (kept
first) and cleared (texts first) under :data:`_ROW_LOCK`, and read without it."""
_ROW_KEPT: list[Any] = []
_ROW_LOCK = threading.Lock()
_ROWS_HEAD = '{"v":2,"fields":' + json.dumps(_ROW_FIELDS, separators=(",", ":")) + ',"rows":['


def _row_text(p) -> str:
    text = _ROW_TEXT.get(id(p))
    if text is None:
        text = json.dumps(p if type(p) is PackageRow else _ROW_OF(p), separators=(",", ":"))
        _ROW_KEPT.append(p)
        _ROW_TEXT[id(p)] = text
    return text


def _dump_packages(packages) -> str:
    """Compact rows: field names once, then one list per package (each row's text cached by
    object: a fleet's results share package objects, e.g. an inventory kept from a layer cache).
    The look-ups are one C-level ``map`` over the inventory (~850 packages in
    bench/rematch_stored.py): measured 15 % faster than a Python loop of get, identity check and
    append per package."""
    texts = list(map(_ROW_TEXT.get, map(id, packages)))
    if None in texts:
        with _ROW_LOCK:
            if len(_ROW_TEXT) + len(packages) > 1 << 17:
                _ROW_TEXT.clear()
                _ROW_KEPT.clear()
            texts = [_row_text(p) for p in packages]
    return _ROWS_HEAD + ",".join(texts) + "]}"


_PACKED = "zstd:"
"""Prefix of an inventory stored compressed (migration 11): its JSON text (the format of
:func:`_dump_packages`), zstd-compressed, in base64, so that the column stays text on SQLite and
PostgreSQL. Measured in ``bench/rematch_stored.py``: the ~70 KB of an inventory's JSON was most
of what a stored image costs (writing its pages, SQLite's WAL and checkpoint; PostgreSQL's TOAST
compression), and zstd at level 1 makes it ~16 KB of text for ~0.1 ms of CPU."""
_PACK_FROM = 1024     # characters; a smaller inventory (e.g. ECR's empty one) is kept as plain JSON
_ZSTD = threading.local()     # zstandard's (de)compressors are not for concurrent use: one per thread


def _zstd():
    z = getattr(_ZSTD, "pair", None)
    if z is None:
        import zstandard   # here, not at import: a command that reads no inventory does not load it

        z = _ZSTD.pair = (zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor())
    return z


def _pack(text: str) -> str:
    """An inventory's JSON text as stored (see :data:`_PACKED`)."""
    if len(text) < _PACK_FROM:
        return text
    return _PACKED + base64.b64encode(_zstd()[0].compress(text.encode())).decode("ascii")


def _inventory_json(text: str):
    """The JSON value of a stored inventory, packed (:func:`_pack`) or not."""
    if text.startswith(_PACKED):
        return json.loads(_zstd()[1].decompress(base64.b64decode(text[len(_PACKED):])))
    return json.loads(text)


def _load_rows(text: str | None) -> list:
    """Plain rows in PackageRow field order, from any format."""
    if not text:
        return []
    data = _inventory_json(text)
    if isinstance(data, dict) and (data.get("fields") or _ROW_FIELDS) == _ROW_FIELDS:
        return data.get("rows") or []
    return [[getattr(p, f) for f in _ROW_FIELDS] for p in _load_packages(text)]


def _load_packages(text: str | None) -> list:
    """PackageRows from any format (version 1 wrote a list of objects)."""
    if not text:
        return []
    data = _inventory_json(text)
    if isinstance(data, dict):
        names = data.get("fields") or _ROW_FIELDS
        if names == _ROW_FIELDS:
            make = PackageRow._make
            return [make(r) for r in data.get("rows") or ()]
        return [PackageRow(**{k: v for k, v in zip(names, r) if k in _PACKAGE_FIELDS}) for r in data["rows"]]
    return [Package(**{k: v for k, v in d.items() if k in _PACKAGE_FIELDS}) for d in data]


def _coverage_summary(text: str | None) -> CoverageSummary | None:
    try:
        return CoverageSummary.from_dict(json.loads(text)) if text else None
    except (ValueError, TypeError):
        return None


_COVERAGE_TEXTS: dict[int, tuple[Coverage | None, dict, float]] = {}


def _coverage_columns(coverage: Coverage | None) -> dict:
    """The ``coverage`` and ``coverage_summary`` columns of a snapshot, cached by object for a
    minute (the results of a re-match share the coverage objects of the snapshots they come
    from; its ``age_days``, in tenths of a day, is as of when it was written)."""
    if coverage is None:
        return dict(coverage=None, coverage_summary=None)
    now = time.monotonic()
    hit = _COVERAGE_TEXTS.get(id(coverage))
    if hit is None or hit[0] is not coverage or now - hit[2] > 60:
        if len(_COVERAGE_TEXTS) >= 1 << 12:
            _COVERAGE_TEXTS.clear()
        cols = dict(coverage=_dumps(coverage.to_dict()), coverage_summary=_dumps(coverage.brief().to_dict()))
        hit = _COVERAGE_TEXTS[id(coverage)] = (coverage, cols, now)
    return hit[1]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # key order kept: counts go most severe first


def _reason(e: SQLAlchemyError) -> str:
    """The driver's own message (first line), without SQLAlchemy's statement and parameters."""
    orig = getattr(e, "orig", None)
    text = str(orig) if orig is not None else str(e)
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return f"{type(orig or e).__name__}: {first}"


def _chunks_of(values: Sequence) -> Iterator[list]:
    for i in range(0, len(values), _CHUNK):
        yield list(values[i:i + _CHUNK])


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    ids = list(dict.fromkeys(int(i) for i in ids))
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


class SQLStore(FenceStack, Store):
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
        self._known_sets: set[str] = set()        # finding sets known to be stored (committed)
        self._known_packages: set[str] = set()    # package index rows known to be stored (committed)
        self._sets_generation: str | None = None  # store_meta generation of finding-set collection
        self._known_lists: set[str] = set()       # event lists known to be stored (committed; never deleted)
        self._list_cache: dict[str, list] = {}    # event list id -> its items (parsed JSON)
        self._set_cache: dict[str, tuple[Finding, ...]] = {}   # finding set id -> its findings
        self._set_runs: dict[str, Run | None] = {}   # finding set id -> its run (None: not one run)
        self._coverages: dict[str, Coverage | None] = {}   # stored coverage text -> its value
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
        if self._sqlite:
            self._insert = sqlite_insert
        else:       # the PostgreSQL dialect (~35 ms to import) only for a PostgreSQL store
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            self._insert = pg_insert
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
            with self._tx("reading the schema version") as conn:
                applied = set(conn.scalars(select(schema_migrations.c.version)))
        except StoreError as e:
            raise StoreError(f"{e} (opened read-only: is this a vulnwatch state store?)") from None
        if applied != {m.version for m in MIGRATIONS}:
            current = max(applied, default=0)
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
                         snapshots_t.c.findings, snapshots_t.c.finding_sets, snapshots_t.c.packages,
                         snapshots_t.c.distro, snapshots_t.c.notes, snapshots_t.c.suppressed,
                         snapshots_t.c.coverage)

    def _snapshot_query(self, *, with_inventory: bool = True):
        cols = self._SNAPSHOT_COLUMNS if with_inventory else [c for c in self._SNAPSHOT_COLUMNS
                                                                if c.name != "packages"]
        return select(*cols).select_from(snapshots_t.join(images_t, and_(
            images_t.c.registry == snapshots_t.c.registry,
            images_t.c.repository == snapshots_t.c.repository,
            images_t.c.digest == snapshots_t.c.digest)))

    @staticmethod
    def _image(row) -> Image:
        return Image(registry=row.registry, repository=row.repository, digest=row.digest,
                     tags=tuple(json.loads(row.tags or "[]")), pushed_at=row.pushed_at,
                     media_type=row.media_type, size_bytes=row.size_bytes)

    def _load_sets(self, rows) -> list[list[str] | None]:
        """Read into the cache the finding sets ``rows`` (snapshot rows) refer to and it lacks;
        returns each row's set ids (None: none)."""
        cache = self._set_cache
        refs = [json.loads(r.finding_sets) if getattr(r, "finding_sets", None) else None for r in rows]
        missing = list(dict.fromkeys(sid for ids in refs if ids for sid in ids if sid not in cache))
        if not missing:
            return refs
        if len(cache) + len(missing) > 1 << 16:
            cache.clear()
            self._set_runs.clear()
        fs = finding_sets_t
        with self._tx("reading finding sets") as conn:
            for chunk in _chunks_of(missing):
                for sid, body in conn.execute(select(fs.c.id, fs.c.findings).where(fs.c.id.in_(chunk))):
                    cache[sid] = tuple(_finding_from_dict(d) for d in json.loads(body))
        return refs

    def _findings_of(self, row, ids: list[str] | None = None) -> tuple[Finding, ...]:
        """A snapshot row's findings: inline, then those of its sets (loaded by :meth:`_load_sets`,
        which gives their ``ids``)."""
        refs = getattr(row, "finding_sets", None)
        if refs and row.findings in (None, "[]"):    # the sets' runs known: a look-up per set
            parts = list(map(self._set_runs.get, ids if ids is not None else json.loads(refs)))
            if None not in parts:
                return joined(parts)
        inline = tuple(_finding_from_dict(d) for d in json.loads(row.findings or "[]"))
        if not refs:
            return inline
        cache = self._set_cache
        out = list(inline)
        parts: list[Run] | None = [] if not inline else None
        for sid in json.loads(refs):
            found = cache.get(sid)
            if found is None:
                self._load_sets([row])
                found = cache.get(sid)
                if found is None:
                    raise KeyError(f"finding set {sid} is missing")
            out.extend(found)
            if parts is not None:
                run = self._run_of_set(sid, found)
                if run is None:
                    parts = None
                else:
                    parts.append(run)
        # made of its sets' runs: counting, signing and diffing it go a set at a time
        return joined(parts) if parts else tuple(out)

    def _run_of_set(self, sid: str, found: tuple[Finding, ...]) -> Run | None:
        """The run of a stored set's findings (:mod:`vulnwatch.runs`), once per set; None when
        they are not one run with this id (written by other code)."""
        try:
            return self._set_runs[sid]
        except KeyError:
            pass
        run = run_of(found)
        if run is None or run.sid != sid or run.items is not found and run.items != found:
            run = None
        self._set_runs[sid] = run
        return run

    def _result(self, row, *, with_inventory: bool = True, ids: list[str] | None = None) -> ScanResult:
        where = f"snapshot of {row.registry}/{row.repository}@{row.digest}"
        try:
            return ScanResult(
                image=self._image(row),
                scanner=row.scanner,
                scanned_at=row.scanned_at,
                findings=self._findings_of(row, ids),
                vulnerability_source_updated_at=row.vulnerability_source_updated_at,
                state=ScanState(row.state),
                packages=tuple(Package(*r) if isinstance(r, PackageRow) else r
                               for r in _load_packages(row.packages)) if with_inventory else (),
                distro=row.distro,
                notes=tuple(json.loads(row.notes)),
                suppressed=tuple(_finding_from_dict(d) for d in json.loads(row.suppressed or "[]")),
                coverage=self._coverage_of(row.coverage) if row.coverage else None,
            )
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"state store {self._display}: cannot read the {where} ({e}); "
                             "rescan the image to replace it") from None

    def _coverage_of(self, text: str) -> Coverage | None:
        """A stored coverage, one object per distinct text (a fleet has few; they are immutable)."""
        hit = self._coverages.get(text)
        if hit is None:
            if len(self._coverages) >= 1 << 12:
                self._coverages.clear()
            hit = self._coverages[text] = Coverage.from_dict(json.loads(text))
        return hit

    def snapshot(self, registry: str, repository: str, digest: str, *,
                 with_inventory: bool = True) -> ScanResult | None:
        with self._tx(f"reading the snapshot of {registry}/{repository}@{digest}") as conn:
            row = conn.execute(self._snapshot_query(with_inventory=with_inventory).where(
                snapshots_t.c.registry == registry, snapshots_t.c.repository == repository,
                snapshots_t.c.digest == digest)).first()
        if row is None:
            return None
        self._load_sets([row])
        return self._result(row, with_inventory=with_inventory)

    def snapshots(self, registry: str | None = None) -> list[ScanResult]:
        q = self._snapshot_query().order_by(snapshots_t.c.registry, snapshots_t.c.repository,
                                            snapshots_t.c.digest)
        if registry is not None:
            q = q.where(snapshots_t.c.registry == registry)
        with self._tx("reading snapshots") as conn:
            rows = conn.execute(q).all()
        self._load_sets(rows)
        return [self._result(r) for r in rows]

    def snapshots_of(self, keys: Sequence[tuple[str, str, str]], *,
                     with_inventory: bool = True) -> Iterator[ScanResult]:
        keys = list(dict.fromkeys(tuple(k) for k in keys))
        for i in range(0, len(keys), 100):
            chunk = keys[i:i + 100]
            if self._sqlite:
                q = self._snapshots_of_query(len(chunk), with_inventory)
                params = {f"k{n}_{j}": v for n, key in enumerate(chunk) for j, v in enumerate(key)}
            else:    # by key arrays (see _select_keys)
                where, params = self._key_arrays(chunk, ("snapshots.registry", "snapshots.repository",
                                                         "snapshots.digest"), {})
                q = self._snapshot_query(with_inventory=with_inventory).where(text(where))
            with self._tx("reading snapshots") as conn:
                rows = conn.execute(q, params).all()
            for r, ids in zip(rows, self._load_sets(rows)):
                yield self._result(r, with_inventory=with_inventory, ids=ids)

    @functools.lru_cache(maxsize=16)
    def _snapshots_of_query(self, n: int, with_inventory: bool):
        """The query of :meth:`snapshots_of` for ``n`` keys (``k{i}_0`` .. ``k{i}_2``), made once
        per shape: building an OR of 100 key equalities was a tenth of a re-match's reading."""
        s = snapshots_t
        return self._snapshot_query(with_inventory=with_inventory).where(or_(*[
            and_(s.c.registry == bindparam(f"k{i}_0"), s.c.repository == bindparam(f"k{i}_1"),
                 s.c.digest == bindparam(f"k{i}_2")) for i in range(n)]))

    def inventories(self, registry: str | None = None,
                    keys: Sequence[tuple[str, str, str]] | None = None) -> Iterator[StoredInventory]:
        s = snapshots_t
        q = (select(s.c.registry, s.c.repository, s.c.digest, s.c.scanner, s.c.distro, s.c.packages,
                    s.c.findings_signature, s.c.coverage_summary)
             .where(s.c.packages.is_not(None), s.c.packages != "[]")
             .order_by(s.c.registry, s.c.repository, s.c.digest))
        if registry is not None:
            q = q.where(s.c.registry == registry)
        if keys is not None:
            keys = list(dict.fromkeys(tuple(k) for k in keys))
            for i in range(0, len(keys), 100):     # an OR of key equalities: answered from the primary key
                chunk = keys[i:i + 100]           # (SQLite scans the table for a tuple IN list)
                yield from self._inventories(q.where(or_(*[
                    and_(s.c.registry == r, s.c.repository == p, s.c.digest == d) for r, p, d in chunk])))
            return
        yield from self._inventories(q)

    def _inventories(self, q) -> Iterator[StoredInventory]:
        with self._tx("reading inventories") as conn:
            for row in conn.execution_options(yield_per=200).execute(q):
                rows = _load_rows(row.packages)
                if not rows and not row.distro:
                    continue
                cov = _coverage_summary(row.coverage_summary)
                yield StoredInventory(key=(row.registry, row.repository, row.digest), scanner=row.scanner,
                                      distro=row.distro, rows=rows, findings_signature=row.findings_signature,
                                      coverage_missing=cov.missing if cov is not None else None)

    _NAME_CHUNK = 500     # images indexed a transaction (their inventories JSON is held meanwhile)

    def package_index(self, names) -> list[IndexedPackage]:
        """The distinct packages of the fleet looked up under one of ``names`` (folded), after
        indexing the snapshots not indexed yet."""
        self._index_packages()
        wanted = sorted({name_key(n) for n in names})
        fp = fleet_packages_t
        out = []
        with self._tx("reading the package index") as conn:
            for chunk in _chunks_of(wanted):
                for r in conn.execute(select(fp.c.id, fp.c.distro, fp.c.row, fp.c.signature).where(fp.c.name.in_(chunk))):
                    out.append(IndexedPackage(r.id, r.distro, tuple(json.loads(r.row)), r.signature))
        return out

    def set_package_signatures(self, signatures) -> None:
        fp = fleet_packages_t
        values = [{"k_id": package_id(distro, tuple(key)), "sig": sig} for (distro, key), sig in signatures.items()]
        if not values:
            return
        with self._tx("keeping package signatures", write=True) as conn:
            conn.execute(update(fp).where(fp.c.id == bindparam("k_id")).values(signature=bindparam("sig")), values)

    def inventories_holding(self, package_ids) -> list[tuple[str, str, str]]:
        ids = sorted(set(package_ids))
        np, nc, s = name_postings_t, name_index_chunks_t, snapshots_t
        members: dict[int, set[int]] = {}
        out: dict[tuple[str, str, str], None] = {}
        with self._tx("reading the package index") as conn:
            for chunk in _chunks_of(ids):
                for c, m in conn.execute(select(np.c.chunk, np.c.members).where(np.c.package.in_(chunk))):
                    members.setdefault(c, set()).update(int(x) for x in m.split(","))
            for chunk in _chunks_of(sorted(members)):
                for c, keys in conn.execute(select(nc.c.id, nc.c["keys"]).where(nc.c.id.in_(chunk))):
                    listed = json.loads(keys)
                    for n in sorted(members[c]):
                        out[tuple(listed[n])] = None
            # and those missing data for an ecosystem (data arriving moves their coverage)
            for r in conn.execute(select(s.c.registry, s.c.repository, s.c.digest).where(
                    s.c.coverage_summary.like('%"missing":["%'))):
                out[(r[0], r[1], r[2])] = None
        return list(out)

    def holdings(self, package_ids) -> dict[tuple[str, str, str], frozenset[str]]:
        ids = sorted(set(package_ids))
        np, nc = name_postings_t, name_index_chunks_t
        # chunk -> position -> packages (lists, not sets: a fleet's worth of them is held at once)
        posted: dict[int, dict[int, list[str | None]]] = {}
        out: dict[tuple[str, str, str], frozenset[str]] = {}
        same: dict[frozenset, frozenset] = {}      # images of one base hold the same packages: one set
        with self._tx("reading the package index") as conn:
            for chunk in _chunks_of(ids):
                for pid, c, m in conn.execute(select(np.c.package, np.c.chunk, np.c.members).where(
                        np.c.package.in_(chunk))):
                    at = posted.setdefault(c, {})
                    seen: set[str] = set()
                    for x in m.split(","):
                        held_here = at.setdefault(int(x), [])
                        held_here.append(pid)
                        if x in seen:
                            held_here.append(None)  # held twice: its findings repeat (migration 10)
                        seen.add(x)

            held: dict[tuple[str, str, str], tuple[int, list[str | None]]] = {}
            for chunk in _chunks_of(sorted(posted)):
                for c, keys in conn.execute(select(nc.c.id, nc.c["keys"]).where(nc.c.id.in_(chunk))):
                    listed = json.loads(keys)
                    for n, pids in posted[c].items():
                        k = tuple(listed[n])
                        if k not in held or held[k][0] < c:
                            held[k] = (c, pids)
            # only the postings of the chunk an image is indexed in now count (an image written
            # again is indexed again, in a later chunk; its old postings may name what it no
            # longer holds)
            keys = sorted(held)
            for r in self._select_keys(conn, "SELECT registry, repository, digest, names_chunk FROM snapshots "
                                       "WHERE {keys}", keys, ("registry", "repository", "digest")):
                k = (r[0], r[1], r[2])
                if r[3] is not None and held[k][0] == r[3] and None not in held[k][1]:
                    ids_held = frozenset(held[k][1])
                    out[k] = same.setdefault(ids_held, ids_held)
        return out

    def _index_packages(self) -> None:
        """Index the packages of every snapshot with an inventory not indexed yet, a chunk per
        transaction; a snapshot re-written meanwhile (``recorded_at`` moved) is left for next time."""
        s, np, nc, fp = snapshots_t, name_postings_t, name_index_chunks_t, fleet_packages_t
        seen: set = set()
        known = self._known_packages
        while True:
            with self._tx("indexing packages", write=True) as conn:
                rows = conn.execute(
                    select(s.c.registry, s.c.repository, s.c.digest, s.c.recorded_at, s.c.distro, s.c.packages)
                    .where(s.c.names_chunk.is_(None), s.c.packages.is_not(None), s.c.packages != "[]")
                    .limit(self._NAME_CHUNK)).all()
                if not rows or all((r.registry, r.repository, r.digest, r.recorded_at) in seen for r in rows):
                    return                 # nothing left (or only rows being re-written as we go)
                seen.update((r.registry, r.repository, r.digest, r.recorded_at) for r in rows)
                keys = [[r.registry, r.repository, r.digest] for r in rows]
                chunk = conn.execute(nc.insert().values(keys=_dumps(keys)).returning(nc.c.id)).scalar_one()
                postings: dict[str, list[str]] = {}
                ids: dict[tuple, str] = {}
                fresh: dict[str, dict] = {}
                for n, r in enumerate(rows):
                    mine: dict[str, int] = {}       # package -> copies held (migration 10)
                    for row in _load_rows(r.packages):
                        key = (r.distro, *matching_key(row))
                        pid = ids.get(key)
                        if pid is None:
                            pid = ids[key] = package_id(r.distro, key[1:])
                            if pid not in known:
                                fresh[pid] = dict(id=pid, name=looked_up(key[1:]), distro=r.distro,
                                                  row=_dumps(list(key[1:])), signature=None)
                        mine[pid] = mine.get(pid, 0) + 1
                    for pid, copies in mine.items():
                        postings.setdefault(pid, []).extend([str(n)] * copies)
                if fresh:
                    conn.execute(self._insert(fp).on_conflict_do_nothing(index_elements=[fp.c.id]), list(fresh.values()))
                if postings:
                    conn.execute(np.insert(), [dict(package=k, chunk=chunk, members=",".join(v))
                                               for k, v in postings.items()])
                conn.execute(update(s).where(s.c.registry == bindparam("k_r"), s.c.repository == bindparam("k_p"),
                                             s.c.digest == bindparam("k_d"), s.c.names_chunk.is_(None),
                                             s.c.recorded_at == bindparam("k_at"))
                             .values(names_chunk=chunk),
                             [{"k_r": r.registry, "k_p": r.repository, "k_d": r.digest, "k_at": r.recorded_at}
                              for r in rows])
            if len(known) > 1 << 18:
                known.clear()
            known.update(fresh)

    def tag_digest(self, registry: str, repository: str, tag: str) -> str | None:
        with self._tx(f"reading tag {registry}/{repository}:{tag}") as conn:
            return self._current_tag(conn, registry, repository, tag)[1]

    def tag_digests(self, registry: str, repository: str, tags: Sequence[str]) -> dict[str, str]:
        th = tag_history_t
        wanted = sorted(set(tags))
        out: dict[str, str] = {}
        with self._tx(f"reading tags of {registry}/{repository}") as conn:
            for i in range(0, len(wanted), 500):
                rows = conn.execute(select(th.c.tag, th.c.digest).where(
                    th.c.registry == registry, th.c.repository == repository, th.c.tag.in_(wanted[i:i + 500]),
                ).order_by(th.c.last_seen, th.c.id))
                for tag, digest in rows:           # the newest last: as _current_tag picks it
                    out[tag] = digest
        return {t: d for t, d in out.items() if d}

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

    def commit_scan(self, result: ScanResult, deliveries: Sequence[tuple[Event, Sequence[str]]], *,
                    keep_inventory: bool = False, expected: ScanResult | None = UNCHECKED) -> None:
        conflict = self.commit_scans([ScanCommit(result, tuple(deliveries), keep_inventory, expected)])[0]
        if conflict is not None:
            raise conflict

    def commit_scans(self, items: Sequence[ScanCommit]) -> list[StoreConflict | None]:
        """One write transaction for all of ``items``, in set-wise statements (a few per batch,
        not a few per image): the rows each image needs are read for the whole batch first
        (stored snapshot, current tags, history entry), then written with ``executemany``.
        An image whose ``expected`` snapshot is no longer the stored one is left out (its
        conflict returned); any database error rolls the whole batch back."""
        items = list(items)
        if not items:
            return []
        keys = [it.result.image.key for it in items]
        if len(set(keys)) < len(keys):     # one image twice: consecutive batches, in order
            out: list[StoreConflict | None] = []
            start, seen = 0, set()
            for n, k in enumerate(keys):
                if k in seen:
                    out += self.commit_scans(items[start:n])
                    start, seen = n, set()
                seen.add(k)
            return out + self.commit_scans(items[start:])
        now = utcnow()
        rows = [self._scan_rows(it, now) for it in items]          # the CPU work, outside the lock
        img = items[0].result.image
        what = (f"recording the scan of {img.registry}/{img.repository}@{img.digest}" if len(items) == 1
                else f"recording {len(items)} scans")
        pending: set[str] = set()
        pending_lists: set[str] = set()
        with self._tx(what, write=True) as conn:
            out = self._write_scans(conn, items, rows, now, pending, pending_lists)
        for known, new in ((self._known_sets, pending), (self._known_lists, pending_lists)):
            if len(known) > 1 << 18:
                known.clear()
            known.update(new)      # committed: no need to write them again
        return out

    @staticmethod
    def _scan_rows(it: ScanCommit, now: datetime) -> dict:
        """The column values of one image's write (snapshot, history), computed once."""
        result = it.result
        img = result.image
        sets, total, by_severity, kev = summary(result.findings)
        refs = _dumps([sid for sid, _ in sets])
        counts = _dumps(by_severity)
        state = ScanState(result.state).value
        snapshot = dict(
            registry=img.registry, repository=img.repository, digest=img.digest,
            scanner=result.scanner, scanned_at=result.scanned_at, recorded_at=now,
            vulnerability_source_updated_at=result.vulnerability_source_updated_at, state=state,
            findings="[]", finding_sets=refs,
            findings_signature=signature_of(len(result.findings) + len(result.suppressed),
                                            total + sum(finding_hash(f) for f in result.suppressed)),
            suppressed="[" + ",".join(_finding_json(f) for f in result.suppressed) + "]",
            notes=_dumps(list(result.notes)), counts=counts, kev=kev,
            **_coverage_columns(result.coverage))
        if not it.keep_inventory:
            snapshot.update(packages=_pack(_dump_packages(result.packages)), distro=result.distro, names_chunk=None)
        history = dict(registry=img.registry, repository=img.repository, digest=img.digest,
                       tags=_dumps(sorted(img.tags)), scanner=result.scanner, scanned_at=result.scanned_at,
                       recorded_at=now, state=state, counts=counts, finding_keys="[]", finding_sets=refs)
        image = dict(registry=img.registry, repository=img.repository, digest=img.digest,
                     tags=history["tags"], pushed_at=img.pushed_at, media_type=img.media_type,
                     size_bytes=img.size_bytes, updated_at=now, last_error=None, last_error_at=None,
                     last_error_scanner=None)
        bodies = {ev.id: event_parts(ev) for ev, _sinks in it.deliveries}
        return dict(key=img.key, image=image, snapshot=snapshot, history=history, sets=sets, bodies=bodies)

    @staticmethod
    def _keys_sql(keys: Sequence[tuple], names: Sequence[str], prefix: str = "k") -> tuple[str, dict]:
        """``(a = :k0_0 AND b = :k0_1 ...) OR ...`` for ``keys`` over the columns ``names``: an OR
        of equalities, which SQLite answers from the index per key (a tuple IN list it scans)."""
        conds, params = [], {}
        for n, key in enumerate(keys):
            conds.append("(" + " AND ".join(f"{c} = :{prefix}{n}_{j}" for j, c in enumerate(names)) + ")")
            for j, v in enumerate(key):
                params[f"{prefix}{n}_{j}"] = v
        return " OR ".join(conds) or "1 = 0", params

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def _keys_query(sql: str, n: int, names: tuple[str, ...], typed: tuple[tuple[str, Any], ...]):
        """The statement of :meth:`_select_keys` for ``n`` keys, and its parameter names in key
        order. Cached: building a text() of 300 parameters (its bind regex) was ~0.05 ms of the
        ~0.5 ms storing an image costs (bench/rematch_stored.py), and a batch asks the same shapes."""
        where, params = SQLStore._keys_sql([(None,) * len(names)] * n, names)
        q = text(sql.format(keys=where))
        types = dict(typed)
        binds = [bindparam(f"k{i}_{j}", type_=types[c]) for i in range(n) for j, c in enumerate(names) if c in types]
        if binds:
            q = q.bindparams(*binds)
        return q, tuple(params)

    def _select_keys(self, conn: Connection, sql: str, keys: Sequence[tuple], names: Sequence[str],
                     typed: dict[str, Any] | None = None, per: int = 100) -> list:
        """Rows of ``sql`` (``... WHERE {keys}``) for ``keys``, ``per`` keys a query.

        On PostgreSQL the keys go as one array per column (``(a, b) IN (SELECT * FROM
        unnest(...))``): its planner answers an OR of many key equalities by scanning every row
        of the first column's value (every image of the registry), which made a batch's reads
        grow with the fleet."""
        if not keys:
            return []
        if not self._sqlite:
            return self._select_key_arrays(conn, sql, keys, names, typed or {})
        out: list = []
        typed_items = tuple(sorted((typed or {}).items()))
        for i in range(0, len(keys), per):
            chunk = keys[i:i + per]
            q, params = self._keys_query(sql, len(chunk), tuple(names), typed_items)
            out.extend(conn.execute(q, dict(zip(params, [v for key in chunk for v in key]))).all())
        return out

    def _key_arrays(self, keys: Sequence[tuple], names: Sequence[str], typed: dict[str, Any]) -> tuple[str, dict]:
        """``(a, b) IN (SELECT * FROM unnest(CAST(:ka0 AS varchar[]), ...))`` for ``keys`` over the
        columns ``names`` (PostgreSQL), and its parameters: one array per column (timestamps for
        those in ``typed``)."""
        casts, params = [], {}
        for j, c in enumerate(names):
            values = [key[j] for key in keys]
            if c in typed:
                values = [typed[c].process_bind_param(v, self._engine.dialect) for v in values]
            casts.append(f"CAST(:ka{j} AS {'timestamptz' if c in typed else 'varchar'}[])")
            params[f"ka{j}"] = values
        return f"({', '.join(names)}) IN (SELECT * FROM unnest({', '.join(casts)}))", params

    def _select_key_arrays(self, conn: Connection, sql: str, keys: Sequence[tuple], names: Sequence[str],
                           typed: dict[str, Any]) -> list:
        where, params = self._key_arrays(keys, names, typed)
        return conn.execute(text(sql.format(keys=where)), params).all()

    def _write_scans(self, conn: Connection, items: list[ScanCommit], rows: list[dict],
                     now: datetime, pending: set[str], pending_lists: set[str]) -> list[StoreConflict | None]:
        keys = sorted(r["key"] for r in rows)
        key3 = ("registry", "repository", "digest")
        if not self._sqlite:
            # Lock the image rows (in key order: two writers never wait on each other in a cycle);
            # a stub row is made for a new image so that a second writer of it waits here too.
            conn.execute(self._insert(images_t).on_conflict_do_nothing(index_elements=list(images_t.primary_key)),
                         [dict(registry=k[0], repository=k[1], digest=k[2], tags="[]", updated_at=now) for k in keys])
            self._select_keys(conn, "SELECT registry FROM images WHERE {keys} "
                              "ORDER BY registry, repository, digest FOR UPDATE", keys, key3)
        stored = {(r[0], r[1], r[2]): (_as_utc(r[3], self._engine.dialect), r[4]) for r in self._select_keys(
            conn, "SELECT registry, repository, digest, scanned_at, findings_signature FROM snapshots WHERE {keys}",
            keys, key3)}
        out: list[StoreConflict | None] = []
        ok: list[tuple[ScanCommit, dict]] = []
        dropped: list[tuple[str, str, str]] = []
        for it, r in zip(items, rows):
            conflict = None
            expected, img = it.expected, it.result.image
            if expected is not UNCHECKED:
                row = stored.get(r["key"])
                if expected is None:
                    if row is not None:
                        conflict = StoreConflict(f"{img}: another writer recorded this image first")
                elif row is None or row[0] != expected.scanned_at or (
                        row[1] is not None and row[1] != _signature(expected.findings + expected.suppressed)):
                    conflict = StoreConflict(f"{img}: the stored snapshot changed since it was read")
                    if row is None:
                        dropped.append(r["key"])
            out.append(conflict)
            if conflict is None:
                ok.append((it, r))
        if dropped and not self._sqlite:       # the stub rows this batch made for nothing
            for k in dropped:
                conn.execute(images_t.delete().where(
                    images_t.c.registry == k[0], images_t.c.repository == k[1], images_t.c.digest == k[2],
                    images_t.c.updated_at == now, images_t.c.tags == "[]", images_t.c.last_error.is_(None)))
        if not ok:
            return out
        conn.execute(self._image_upsert(), [r["image"] for _, r in ok])

        # snapshots: a re-match keeps its stored inventory; everything else is replaced whole
        st = snapshots_t
        updates = [r["snapshot"] for it, r in ok if it.keep_inventory and r["key"] in stored]
        inserts = []
        for it, r in ok:
            if it.keep_inventory and r["key"] in stored:
                continue
            snap = r["snapshot"]
            if it.keep_inventory:
                snap = dict(snap, packages=_pack(_dump_packages(it.result.packages)), distro=it.result.distro, names_chunk=None)
            inserts.append(snap)
        if updates:
            cols = [c for c in updates[0] if c not in key3]
            conn.execute(update(st).where(st.c.registry == bindparam("k_registry"),
                                          st.c.repository == bindparam("k_repository"),
                                          st.c.digest == bindparam("k_digest"))
                         .values(**{c: bindparam(f"v_{c}") for c in cols}),
                         [dict({f"v_{c}": u[c] for c in cols}, k_registry=u["registry"],
                               k_repository=u["repository"], k_digest=u["digest"]) for u in updates])
        if inserts:
            conn.execute(self._snapshot_upsert(), inserts)

        # the finding sets, after the snapshot rows are written (and locked): a collection of
        # unreferenced sets (collect_finding_sets) either committed before, and its generation
        # is read here, or waits for this transaction, and sees these references
        gen = conn.scalar(select(store_meta_t.c.value).where(store_meta_t.c.name == _SETS_GENERATION))
        if gen != self._sets_generation:
            self._known_sets.clear()
            self._sets_generation = gen
        known = self._known_sets
        fresh_sets = {sid: body for _, r in ok for sid, body in r["sets"] if sid not in known}
        if fresh_sets:
            conn.execute(self._insert(finding_sets_t).on_conflict_do_nothing(index_elements=[finding_sets_t.c.id]),
                         [{"id": k, "findings": v} for k, v in fresh_sets.items()])
        pending.update(fresh_sets)

        # history: the same scan seen again (e.g. ECR not rescanned) is one entry
        hist = [r["history"] for _, r in ok]
        seen = {(h[0], h[1], h[2], h[3], _as_utc(h[4], self._engine.dialect)) for h in self._select_keys(
            conn, "SELECT registry, repository, digest, scanner, scanned_at FROM scan_history WHERE {keys}",
            [(h["registry"], h["repository"], h["digest"], h["scanned_at"]) for h in hist],
            key3 + ("scanned_at",), typed={"scanned_at": _UTC_DATETIME})}
        new_hist = [h for h in hist if (h["registry"], h["repository"], h["digest"], h["scanner"],
                                        _as_utc(h["scanned_at"], None)) not in seen]
        if new_hist:
            conn.execute(scan_history_t.insert(), new_hist)

        self._see_tags(conn, [it.result.image for it, _ in ok], now)

        # the outbox: an event already there (an idempotent re-run) gets no new deliveries
        events = [(ev, sinks) for it, _ in ok for ev, sinks in it.deliveries]
        bodies = {k: v for _, r in ok for k, v in r["bodies"].items()}
        if events:
            ids = list(dict.fromkeys(ev.id for ev, _ in events))
            have = set()
            for chunk in _chunks_of(ids):
                have.update(conn.scalars(select(events_t.c.id).where(events_t.c.id.in_(chunk))))
            fresh, dels, lists = [], [], {}
            for ev, sinks in events:
                if ev.id in have:
                    continue
                have.add(ev.id)
                body, parts = bodies[ev.id]
                lists.update(parts)
                fresh.append(dict(id=ev.id, kind=ev.kind.value, registry=ev.image.registry,
                                  repository=ev.image.repository, digest=ev.image.digest,
                                  body=body, created_at=now))
                dels.extend(dict(event_id=ev.id, sink=sink, status=DeliveryStatus.PENDING.value, attempts=0,
                                 next_attempt_at=None, created_at=now) for sink in dict.fromkeys(sinks))
            fresh_lists = [{"id": k, "items": v} for k, v in lists.items() if k not in self._known_lists]
            if fresh_lists:
                conn.execute(self._insert(event_lists_t).on_conflict_do_nothing(index_elements=[event_lists_t.c.id]),
                             fresh_lists)
                pending_lists.update(r["id"] for r in fresh_lists)
            if fresh:
                conn.execute(self._insert(events_t).on_conflict_do_nothing(index_elements=[events_t.c.id]), fresh)
            if dels:
                conn.execute(deliveries_t.insert(), dels)
        return out

    @functools.cached_property
    def _image_upsert_stmt(self):
        ins = self._insert(images_t)
        ex = ins.excluded
        return ins.on_conflict_do_update(
            index_elements=[images_t.c.registry, images_t.c.repository, images_t.c.digest],
            set_=dict(tags=ex.tags,
                      pushed_at=func.coalesce(ex.pushed_at, images_t.c.pushed_at),
                      media_type=func.coalesce(ex.media_type, images_t.c.media_type),
                      size_bytes=func.coalesce(ex.size_bytes, images_t.c.size_bytes),
                      updated_at=ex.updated_at, last_error=ex.last_error, last_error_at=ex.last_error_at,
                      last_error_scanner=ex.last_error_scanner))

    def _image_upsert(self):
        return self._image_upsert_stmt

    @functools.cached_property
    def _snapshot_upsert_stmt(self):
        st = snapshots_t
        ins = self._insert(st)
        cols = [c.name for c in st.columns if c.name not in ("registry", "repository", "digest")]
        return ins.on_conflict_do_update(index_elements=[st.c.registry, st.c.repository, st.c.digest],
                                         set_={c: getattr(ins.excluded, c) for c in cols})

    def _snapshot_upsert(self):
        return self._snapshot_upsert_stmt

    def _see_tags(self, conn: Connection, images: list[Image], now: datetime) -> None:
        """Record that each image's tags point at it now, in order; a moved tag is taken off the
        image it pointed at before (what :meth:`_see_tag` does for one, for a whole batch)."""
        wanted = list(dict.fromkeys((img.registry, img.repository, t) for img in images for t in img.tags))
        if not wanted:
            return
        current: dict[tuple[str, str, str], tuple[Any, int | None, str]] = {}
        for r in self._select_keys(conn, "SELECT id, registry, repository, tag, digest, last_seen FROM tag_history "
                                         "WHERE {keys}", wanted, ("registry", "repository", "tag")):
            k = (r[1], r[2], r[3])
            order = (_as_utc(r[5], self._engine.dialect), r[0])
            if k not in current or order > current[k][0]:
                current[k] = (order, r[0], r[4])
        touch: list[int] = []
        new_rows: list[dict] = []
        strip: dict[tuple[str, str, str], set[str]] = {}
        for img in images:
            for tag in sorted(set(img.tags)):
                k = (img.registry, img.repository, tag)
                _, row_id, digest = current.get(k, (None, None, None))
                if digest == img.digest:
                    if row_id is not None:
                        touch.append(row_id)
                    continue
                new_rows.append(dict(registry=img.registry, repository=img.repository, tag=tag, digest=img.digest,
                                     first_seen=now, last_seen=now))
                current[k] = (None, None, img.digest)
                if digest is not None:
                    strip.setdefault((img.registry, img.repository, digest), set()).add(tag)
        th = tag_history_t
        if touch:
            conn.execute(update(th).where(th.c.id == bindparam("row_id")).values(last_seen=now),
                         [{"row_id": i} for i in touch])
        if new_rows:
            conn.execute(th.insert(), new_rows)
        if strip:
            skeys = list(strip)
            tags = {(r[0], r[1], r[2]): r[3] for r in self._select_keys(
                conn, "SELECT registry, repository, digest, tags FROM images WHERE {keys}", skeys,
                ("registry", "repository", "digest"))}
            changes = []
            for k in skeys:
                if tags.get(k) is None:
                    continue
                kept = [t for t in json.loads(tags[k]) if t not in strip[k]]
                changes.append({"k_r": k[0], "k_p": k[1], "k_d": k[2], "tags": _dumps(kept)})
            if changes:
                i = images_t
                conn.execute(update(i).where(i.c.registry == bindparam("k_r"), i.c.repository == bindparam("k_p"),
                                             i.c.digest == bindparam("k_d")).values(tags=bindparam("tags")), changes)

    def collect_finding_sets(self) -> int:
        """Delete the finding sets no snapshot and no history entry refers to; returns how many.

        One write transaction: on PostgreSQL it first locks ``snapshots`` and ``scan_history``
        against writers (so no transaction writing a reference is in flight while references are
        read), then moves the collection generation in ``store_meta``: a writer that trusts its
        cache of stored sets reads it after writing its snapshot rows and, when it moved, writes
        its sets again. References are streamed; only the set of referenced ids is held."""
        fs, st, sh, m = finding_sets_t, snapshots_t, scan_history_t, store_meta_t
        with self._tx("collecting unreferenced finding sets", write=True) as conn:
            if not self._sqlite:
                conn.execute(text("LOCK TABLE snapshots, scan_history IN SHARE ROW EXCLUSIVE MODE"))
            stmt = self._insert(m).values(name=_SETS_GENERATION, value=uuid.uuid4().hex)
            conn.execute(stmt.on_conflict_do_update(index_elements=[m.c.name], set_={"value": stmt.excluded.value}))
            referenced: set[str] = set()
            for col in (st.c.finding_sets, sh.c.finding_sets):
                for (refs,) in conn.execute(select(col).where(col.is_not(None)).execution_options(yield_per=500)):
                    referenced.update(json.loads(refs))
            gone = [sid for (sid,) in conn.execute(select(fs.c.id)) if sid not in referenced]
            for chunk in _chunks_of(gone):
                conn.execute(fs.delete().where(fs.c.id.in_(chunk)))
        self._known_sets.clear()
        return len(gone)

    def marker(self, name: str) -> str | None:
        with self._tx(f"reading marker {name!r}") as conn:
            return conn.scalar(select(store_meta_t.c.value).where(store_meta_t.c.name == name))

    def set_marker(self, name: str, value: str) -> None:
        m = store_meta_t
        with self._tx(f"keeping marker {name!r}", write=True) as conn:
            stmt = self._insert(m).values(name=name, value=value)
            conn.execute(stmt.on_conflict_do_update(index_elements=[m.c.name], set_={"value": stmt.excluded.value}))

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
                    i.c.last_checked_at, s.c.scanner, s.c.scanned_at, s.c.counts, s.c.kev, s.c.coverage_summary)
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
                            last_checked_at=r.last_checked_at or r.scanned_at, kev=r.kev,
                            coverage=_coverage_summary(r.coverage_summary))
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

    def _bodies(self, conn: Connection, rows) -> tuple[list, dict[str, list]]:
        """Each row's event body parsed (or the error parsing it), and the event lists they
        refer to (list id -> items): from this store's cache of lists (immutable, by id) or read
        in this transaction."""
        bodies: list = []
        for r in rows:
            try:
                bodies.append(json.loads(r.body))
            except (ValueError, TypeError) as e:
                bodies.append(e)
        cache = self._list_cache
        wanted = dict.fromkeys(lid for b in bodies if isinstance(b, dict) for lid in event_list_ids(b))
        lists = {lid: cache[lid] for lid in wanted if lid in cache}
        missing = [lid for lid in wanted if lid not in lists]
        if len(cache) + len(missing) > 1 << 14:
            cache.clear()
        el = event_lists_t
        for chunk in _chunks_of(missing):
            for lid, items in conn.execute(select(el.c.id, el.c["items"]).where(el.c.id.in_(chunk))):
                lists[lid] = cache[lid] = json.loads(items)
        return bodies, lists

    def _event(self, body, lists: dict[str, list]) -> Event:
        """The event of a stored body (:meth:`_bodies`); raises ValueError, KeyError or TypeError."""
        if isinstance(body, Exception):
            raise body
        if not isinstance(body, dict):
            raise TypeError(f"not a JSON object: {type(body).__name__}")
        return Event.from_dict(event_dict(dict(body), lists))

    def _deliveries(self, conn: Connection, rows) -> list[Delivery]:
        """The deliveries of ``rows`` (:meth:`_delivery_query`), their events' lists read in ``conn``."""
        bodies, lists = self._bodies(conn, rows)
        return [self._delivery(r, b, lists) for r, b in zip(rows, bodies)]

    def _delivery(self, row, body, lists: dict[str, list]) -> Delivery:
        try:
            ev = self._event(body, lists)
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
            return self._deliveries(conn, conn.execute(q).all())

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
            return self._deliveries(conn, conn.execute(q).all())

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
        from sqlalchemy.dialects.postgresql import JSON as PG_JSON

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
            conds.append(or_(and_(s.c.notes.is_not(None), s.c.notes != "[]"),
                             and_(s.c.coverage_summary.is_not(None),
                                  not_(s.c.coverage_summary.startswith('{"state":"complete"')))))
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
        elif query.sort == "kev":
            keys = [func.coalesce(s.c.kev, 0)] + [counts[sev] for sev in self._SEVERITIES]
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
                            s.c.kev, s.c.coverage_summary, superseded.label("superseded"))
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
                               last_checked_at=r.last_checked_at or r.scanned_at, kev=r.kev,
                               coverage=_coverage_summary(r.coverage_summary)),
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
            bodies, lists = self._bodies(conn, rows)
        out = []
        for r, body in zip(rows, bodies):
            try:
                out.append(self._event(body, lists))
            except (ValueError, KeyError, TypeError) as ex:
                raise StoreError(f"state store {self._display}: cannot read event {r.id} ({ex})") from None
        return sorted(out, key=lambda ev: ev.occurred_at, reverse=True)

    def affected(self, vulnerability_id: str) -> list[Affected]:
        s, h, i, fs = snapshots_t, scan_history_t, images_t, finding_sets_t
        needle = _dumps(vulnerability_id)
        has = (func.instr if self._sqlite else func.strpos)
        what = f"finding the images affected by {vulnerability_id}"
        with self._tx(what) as conn:
            # the finding sets that name it: a snapshot has it inline or refers to one of them
            sets = {sid: {tuple(d.get(k) or "" for k in ("vulnerability_id", "ecosystem", "package_name",
                                                          "package_version")) for d in json.loads(body)}
                    for sid, body in conn.execute(select(fs.c.id, fs.c.findings)
                                                  .where(has(fs.c.findings, needle) > 0))}
            q = (select(*[c for c in self._SNAPSHOT_COLUMNS if c.name != "packages"])
                 .select_from(s.join(i, and_(i.c.registry == s.c.registry, i.c.repository == s.c.repository,
                                             i.c.digest == s.c.digest)))
                 .where(or_(has(s.c.findings, needle) > 0,
                            *[has(s.c.finding_sets, _dumps(sid)) > 0 for sid in sets]),
                        not_(self._superseded()))
                 .order_by(s.c.registry, s.c.repository, s.c.digest))
            rows = conn.execute(q).all()
        self._load_sets(rows)
        out = []
        for row in rows:
            snap = self._result(row, with_inventory=False)
            hits = [f for f in snap.findings if vulnerability_id in (f.vulnerability_id, *f.aliases)]
            if not hits:
                continue
            flags = [or_(has(h.c.finding_keys, _dumps(list(f.key))) > 0,
                         *[has(h.c.finding_sets, _dumps(sid)) > 0 for sid, keys in sets.items() if f.key in keys])
                     for f in hits]
            with self._tx(what) as conn:
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
        if self._sqlite:
            refs, each_set = "json_each(s.finding_sets) AS r", "json_each(fs.findings) AS j"
        else:
            refs = "json_array_elements_text(CAST(s.finding_sets AS json)) AS r(value)"
            each_set = "json_array_elements(CAST(fs.findings AS json)) AS j(value)"
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
  WHERE {fixable} AND {self._CURRENT_SQL}
  UNION ALL
  SELECT s.registry || '|' || s.repository || '|' || s.digest AS image,
         {field % 'ecosystem'} AS eco, {field % 'package_name'} AS pkg, {field % 'package_version'} AS ver,
         {fixv} AS fixv, {field % 'severity'} AS sev, {field % 'vulnerability_id'} AS vid
  FROM snapshots s JOIN images i ON i.registry = s.registry AND i.repository = s.repository
                                AND i.digest = s.digest, {refs}, finding_sets fs, {each_set}
  WHERE fs.id = r.value AND {fixable} AND {self._CURRENT_SQL})
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
            # an event's list of ``path`` is its event lists' items, in order (migration 13)
            if self._sqlite:
                return (f"json_each(e.body, '$.lists.{path}') AS r, event_lists l, json_each(l.items) AS j",
                        "json_extract(j.value, '$.%s')")
            return (f"json_array_elements_text(CAST(e.body AS json) -> 'lists' -> '{path}') AS r(value), "
                    "event_lists l, json_array_elements(CAST(l.items AS json)) AS j(value)", "(j.value ->> '%s')")

        def rows(path: str, what: int, where: str) -> str:
            each, field = part(path)
            at = ("json_extract(e.body, '$.occurred_at')" if self._sqlite
                  else "(CAST(e.body AS json) ->> 'occurred_at')")
            return (f"SELECT {what} AS what, e.registry, e.repository, {at} AS at, "
                    f"{field % 'vulnerability_id'} AS vid, {field % 'ecosystem'} AS eco, "
                    f"{field % 'package_name'} AS pkg FROM events e, {each} WHERE l.id = r.value AND {where}")

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
            totals = conn.execute(select(*sums, func.sum(func.coalesce(s.c.kev, 0)))
                                  .select_from(joined).where(current)).first()
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
                          kev=int(totals[len(self._SEVERITIES)] or 0),
                          failing={r[0]: int(r[2]) for r in per_registry if r[2]},
                          last_checked=checked, deliveries=deliveries, retrying=int(retrying or 0))

    def delivery(self, delivery_id: int) -> Delivery | None:
        with self._tx(f"reading delivery {delivery_id}") as conn:
            row = conn.execute(self._delivery_query().where(deliveries_t.c.id == int(delivery_id))).first()
            return self._deliveries(conn, [row])[0] if row is not None else None

    def close(self) -> None:
        self._engine.dispose()
