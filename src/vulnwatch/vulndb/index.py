"""The local OSV index: one SQLite file.

Tables:

- ``records``: one row per OSV record (``id``, base ``ecosystem``, ``source`` it was
  imported from, ``modified``, ``withdrawn``, ``data`` = the record's JSON, zlib-compressed).
  Withdrawn records are not kept (an import deletes them).
- ``affected``: ``(ecosystem, name, record_id)``: for every ``affected[].package`` the
  ecosystem exactly as the record spells it (``Debian:11``, ``Alpine:v3.11``, ``PyPI``)
  and the name normalised for that ecosystem (:func:`index_name`).
- ``sources``: one row per imported source (ecosystem export): where it came from,
  its ETag / Last-Modified, when it was imported and how many records it holds.

- ``record_cvss``: ``(vuln_id, record_id, kind, vector)``: every CVSS vector of a record, under
  the record's id, each alias and each upstream CVE, so that a record without a vector can take
  the one of another record about the same vulnerability (a GHSA or PYSEC record of the CVE).
- Enrichment, kept apart from the OSV records and keyed by vulnerability id: ``enrichment_cvss``
  (CVSS vectors from CVE JSON 5 records and NVD, by ``source`` and ``provider`` with a ``rank``),
  ``enrichment_kev`` (the KEV catalog), ``enrichment_epss`` (EPSS scores), and
  ``enrichment_sources`` (where each came from, its validators and content hash, its version).

Queries are exact on the ecosystem string; the matcher asks for both ``Debian:11`` and
``Debian`` (records without a release apply to every release).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..model import utcnow
from .interface import SourceStatus, VulnDBError, ecosystem_base
from .schema import RecordError, parse_json

SCHEMA_VERSION = 2
"""2: ``record_cvss`` and the enrichment tables (a version-1 file is upgraded in place)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    ecosystem TEXT NOT NULL,
    source TEXT NOT NULL,
    modified TEXT,
    withdrawn TEXT,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_source ON records(source);
CREATE TABLE IF NOT EXISTS affected (
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (ecosystem, name, record_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS affected_record ON affected(record_id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS index_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    ecosystem TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    imported_at TEXT NOT NULL,
    records INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS record_cvss (
    vuln_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    vector TEXT NOT NULL,
    PRIMARY KEY (vuln_id, record_id, kind, vector)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_cvss_record ON record_cvss(record_id);
CREATE TABLE IF NOT EXISTS enrichment_cvss (
    vuln_id TEXT NOT NULL,
    source TEXT NOT NULL,
    provider TEXT NOT NULL,
    rank INTEGER NOT NULL,
    kind TEXT NOT NULL,
    vector TEXT NOT NULL,
    PRIMARY KEY (vuln_id, source, provider, kind, vector)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS enrichment_cvss_source ON enrichment_cvss(source);
CREATE TABLE IF NOT EXISTS enrichment_kev (
    vuln_id TEXT PRIMARY KEY,
    date_added TEXT NOT NULL,
    due_date TEXT,
    ransomware INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS enrichment_epss (
    vuln_id TEXT PRIMARY KEY,
    epss REAL NOT NULL,
    percentile REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS enrichment_sources (
    name TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    content_hash TEXT,
    version TEXT,
    imported_at TEXT NOT NULL,
    records INTEGER NOT NULL
);
"""

_CASE_INSENSITIVE = {"NuGet", "Packagist", "Pub", "Hex", "SwiftURL"}
_PEP503 = re.compile(r"[-_.]+")


def default_path() -> Path:
    """``$XDG_CACHE_HOME/vulnwatch/osv.db`` (``~/.cache/vulnwatch/osv.db``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vulnwatch" / "osv.db"


def index_name(ecosystem: str, name: str) -> str:
    """Package name as the index stores it: PyPI per PEP 503 (``Foo_Bar`` -> ``foo-bar``),
    lower-case for case-insensitive ecosystems, as-is otherwise."""
    base = ecosystem_base(ecosystem)
    if base == "PyPI":
        return _PEP503.sub("-", name).lower()
    if base in _CASE_INSENSITIVE:
        return name.lower()
    return name


def cvss_rows(record: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(vuln_id, record_id, kind, vector)`` for every CVSS vector of ``record`` (its own
    ``severity`` and its ``affected[].severity``), under its id, aliases and upstream CVEs."""
    rid = record.get("id")
    vectors = []
    blocks = [record.get("severity")] + [a.get("severity") for a in record.get("affected") or ()
                                         if isinstance(a, Mapping)]
    for block in blocks:
        for e in block if isinstance(block, list) else ():
            if (isinstance(e, Mapping) and str(e.get("type", "")).startswith("CVSS_")
                    and isinstance(e.get("score"), str) and (e["type"], e["score"]) not in vectors):
                vectors.append((e["type"], e["score"]))
    if not vectors or not isinstance(rid, str):
        return []
    ids = {rid} | {a for a in record.get("aliases") or () if isinstance(a, str)} | {
        u for u in record.get("upstream") or () if isinstance(u, str)}
    return [(i, rid, kind, vector) for i in sorted(ids) for kind, vector in vectors]


def pack(record: Mapping[str, Any]) -> bytes:
    """Compressed JSON of a record, as stored."""
    return zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 6)


def unpack(blob: bytes) -> dict[str, Any]:
    """Inverse of :func:`pack`; raises :class:`~.schema.RecordError` when ``blob`` is not a
    packed JSON object (a damaged file, or a record no JSON parser should accept)."""
    try:
        data = zlib.decompress(blob)
    except (zlib.error, TypeError) as e:
        raise RecordError(f"stored data is not zlib-compressed JSON ({e})") from None
    record = parse_json(data)
    if not isinstance(record, dict):
        raise RecordError("stored data is not a JSON object")
    return record


def _unpack(record_id: str, blob: bytes) -> dict[str, Any]:
    try:
        return unpack(blob)
    except RecordError as e:
        raise VulnDBError(f"OSV record {record_id!r} in the index cannot be read: {e.reason}; "
                          f"import its source again", code="BadRecord") from None


class VulnIndex:
    """The SQLite file holding OSV records, indexed by (ecosystem, package name).

    ``VulnIndex(path)``; ``path`` defaults to :func:`default_path`. Safe to share
    between threads (one connection, serialised by a lock). Use as a context
    manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA mmap_size=1073741824")   # read pages in place, not through read()
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, SCHEMA_VERSION):
                raise VulnDBError(f"{self.path}: OSV index schema version {version} is not supported "
                                  f"(expected {SCHEMA_VERSION}); delete the file and import again",
                                  code="SchemaMismatch")
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT OR IGNORE INTO index_meta (key, value) VALUES ('instance', ?)",
                               (uuid.uuid4().hex,))
            if version == 1:
                self._fill_record_cvss()
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as e:
            raise VulnDBError(f"{self.path}: cannot open the OSV index ({e}); check the path or delete "
                              f"the file and import again", code="IndexUnreadable") from e
        self.lock = threading.RLock()

    def _fill_record_cvss(self) -> None:
        """Upgrade from version 1: the ``record_cvss`` rows of the records already stored."""
        rows = []
        for rid, blob in self._conn.execute("SELECT id, data FROM records").fetchall():
            try:
                rows += cvss_rows(unpack(blob))
            except RecordError:
                continue
        self._conn.execute("BEGIN")
        self._conn.executemany("INSERT OR IGNORE INTO record_cvss VALUES (?, ?, ?, ?)", rows)
        self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the database file."""
        with self.lock:
            self._conn.close()

    def __enter__(self) -> "VulnIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VulnIndex({str(self.path)!r})"

    # ------------------------------------------------------------------ reads

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Run a read query; a damaged or vanished file becomes a :class:`VulnDBError`."""
        try:
            with self.lock:
                return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise VulnDBError(f"{self.path}: cannot read the OSV index ({e}); delete the file and import "
                              f"again", code="IndexUnreadable") from e

    def record(self, record_id: str) -> dict[str, Any] | None:
        """One record by id, or None. Raises :class:`VulnDBError` (code ``BadRecord``) when its
        stored data cannot be decoded; the record's content is not checked here
        (:func:`.schema.check_record` does that)."""
        rows = self._rows("SELECT data FROM records WHERE id = ?", (record_id,))
        return _unpack(record_id, rows[0][0]) if rows else None

    def records_for(self, ecosystem: str, name: str) -> list[dict[str, Any]]:
        """Records with an ``affected[].package`` of exactly ``ecosystem`` and (normalised) ``name``.

        Raises :class:`VulnDBError` (code ``BadRecord``) when one cannot be decoded."""
        rows = self._rows(
            "SELECT r.id, r.data FROM affected a JOIN records r ON r.id = a.record_id "
            "WHERE a.ecosystem = ? AND a.name = ? ORDER BY r.id",
            (ecosystem, index_name(ecosystem, name)))
        return [_unpack(rid, blob) for rid, blob in rows]

    def record_ids_for(self, ecosystem: str, name: str) -> list[str]:
        """Ids of the records :meth:`records_for` would return."""
        rows = self._rows(
            "SELECT record_id FROM affected WHERE ecosystem = ? AND name = ? ORDER BY record_id",
            (ecosystem, index_name(ecosystem, name)))
        return [r[0] for r in rows]

    def data_version(self) -> str:
        """Where the change log stands: ``<instance>:<seq>`` (the instance is made with the file, so
        a version of another file, or of this one recreated, is never taken for one of its own)."""
        rows = self._rows("SELECT (SELECT value FROM index_meta WHERE key = 'instance'), "
                          "(SELECT COALESCE(MAX(seq), 0) FROM changes)")
        return f"{rows[0][0]}:{rows[0][1]}"

    def changes_since(self, version: str | None) -> set[tuple[str, str]] | None:
        """The (ecosystem, normalised name) pairs whose records were added, changed, withdrawn or
        removed since :meth:`data_version` was ``version``; None when that cannot be told (no
        version, one of another file, or a change logged as ``("*", "*")``, which is how data
        that is not per package, such as enrichment, says "anything may have moved"): then
        everything may have changed."""
        if not version or ":" not in version:
            return None
        instance, _, seq = version.rpartition(":")
        mine, _, now = self.data_version().rpartition(":")
        if instance != mine or not seq.isdigit() or int(seq) > int(now):
            return None
        pruned = self._rows("SELECT value FROM index_meta WHERE key = 'changes_pruned_upto'")
        if pruned and int(seq) < int(pruned[0][0]):
            return None                        # that part of the log is gone (prune_changes)
        found = {(e, n) for e, n in self._rows("SELECT DISTINCT ecosystem, name FROM changes WHERE seq > ?",
                                                (int(seq),))}
        return None if ("*", "*") in found else found

    def prune_changes(self, version: str | None) -> int:
        """Forget the change log up to ``version`` (a :meth:`data_version` of this file): asked
        for changes since a version before it, :meth:`changes_since` then says None (anything may
        have moved). The newest entry is kept (the data version never goes back). Returns how many
        entries went; a version of another file, or none, prunes nothing."""
        if not version or ":" not in version:
            return 0
        instance, _, seq = version.rpartition(":")
        mine, _, _now = self.data_version().rpartition(":")
        if instance != mine or not seq.isdigit():
            return 0
        with self.lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                gone = c.execute("DELETE FROM changes WHERE seq <= ? AND seq < (SELECT MAX(seq) FROM changes)",
                                 (int(seq),)).rowcount
                c.execute("INSERT INTO index_meta (key, value) VALUES ('changes_pruned_upto', ?) "
                          "ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), "
                          "CAST(excluded.value AS INTEGER))", (seq,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return gone

    def log_change(self, pairs: Iterable[tuple[str, str]] = (("*", "*"),)) -> None:
        """Append (ecosystem, normalised name) pairs to the change log, for data that changes
        findings other than through records (default: everything may have moved)."""
        with self.lock:
            self._conn.executemany("INSERT INTO changes (ecosystem, name) VALUES (?, ?)", list(pairs))
    def alias_cvss(self, ids: "tuple[str, ...] | list[str]") -> list[tuple[str, str, str]]:
        """``(record_id, kind, vector)`` of every record that has a CVSS vector and names one of
        ``ids`` (as its id, an alias or an upstream CVE), by record id."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return [tuple(r) for r in self._rows(
            f"SELECT DISTINCT record_id, kind, vector FROM record_cvss WHERE vuln_id IN ({marks}) "
            f"ORDER BY record_id, kind, vector", tuple(ids))]

    def enrichment_cvss(self, ids: "tuple[str, ...] | list[str]") -> list[tuple[str, str, int, str, str]]:
        """``(source, provider, rank, kind, vector)`` of the enrichment CVSS vectors of ``ids``,
        best rank first."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return [tuple(r) for r in self._rows(
            f"SELECT source, provider, rank, kind, vector FROM enrichment_cvss WHERE vuln_id IN ({marks}) "
            f"ORDER BY rank, vuln_id, provider, kind, vector", tuple(ids))]

    def kev(self, ids: "tuple[str, ...] | list[str]") -> tuple[str, str | None, bool | None] | None:
        """``(date_added, due_date, ransomware)`` of the first of ``ids`` in the KEV catalog, or None."""
        if not ids:
            return None
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT date_added, due_date, ransomware FROM enrichment_kev WHERE vuln_id IN ({marks}) "
                          f"ORDER BY date_added LIMIT 1", tuple(ids))
        if not rows:
            return None
        d, due, ransom = rows[0]
        return d, due, None if ransom is None else bool(ransom)

    def epss(self, ids: "tuple[str, ...] | list[str]") -> tuple[float, float | None] | None:
        """``(epss, percentile)``: the highest EPSS score among ``ids``, or None."""
        if not ids:
            return None
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT epss, percentile FROM enrichment_epss WHERE vuln_id IN ({marks}) "
                          f"ORDER BY epss DESC LIMIT 1", tuple(ids))
        return (rows[0][0], rows[0][1]) if rows else None

    def kev_epss(self, ids: "tuple[str, ...] | list[str]"):
        """``(kev, epss)`` of ``ids`` in one query: as :meth:`kev` and :meth:`epss` return them."""
        if not ids:
            return None, None
        marks = ",".join("?" * len(ids))
        rows = self._rows(
            f"SELECT 0, date_added, due_date, ransomware FROM enrichment_kev WHERE vuln_id IN ({marks}) "
            f"UNION ALL SELECT 1, epss, percentile, NULL FROM enrichment_epss WHERE vuln_id IN ({marks})",
            tuple(ids) * 2)
        kev = min(((r[1], r[2], None if r[3] is None else bool(r[3])) for r in rows if r[0] == 0), default=None)
        epss = max(((r[1], r[2]) for r in rows if r[0] == 1), default=None)
        return kev, epss

    def enrichment_of(self, cves: "Iterable[str]") -> dict[str, tuple[list, tuple | None, tuple | None]]:
        """Everything the enrichment tables hold on ``cves``, in one query per 300 ids: per CVE
        ``(cvss rows, kev, epss)``, the cvss rows as :meth:`enrichment_cvss` returns them, kev as
        :meth:`kev` and epss as :meth:`epss` would for that id alone. Every id asked for is a key."""
        ids = list(dict.fromkeys(cves))
        out: dict[str, tuple[list, tuple | None, tuple | None]] = {}
        for i in range(0, len(ids), 300):
            part = tuple(ids[i:i + 300])
            marks = ",".join("?" * len(part))
            cvss: dict[str, list] = {}
            kev: dict[str, tuple] = {}
            epss: dict[str, tuple] = {}
            for tag, vid, a, b, c, d, e in self._rows(
                    f"SELECT 0, vuln_id, source, provider, rank, kind, vector FROM enrichment_cvss "
                    f"WHERE vuln_id IN ({marks}) UNION ALL "
                    f"SELECT 1, vuln_id, date_added, due_date, ransomware, NULL, NULL FROM enrichment_kev "
                    f"WHERE vuln_id IN ({marks}) UNION ALL "
                    f"SELECT 2, vuln_id, epss, percentile, NULL, NULL, NULL FROM enrichment_epss "
                    f"WHERE vuln_id IN ({marks})", part * 3):
                if tag == 0:
                    cvss.setdefault(vid, []).append((vid, a, b, c, d, e))
                elif tag == 1:
                    kev[vid] = (a, b, None if c is None else bool(c))
                else:
                    epss[vid] = (a, b)
            for vid in part:
                out[vid] = (cvss.get(vid, []), kev.get(vid), epss.get(vid))
        return out

    def enrichment_kinds(self) -> frozenset[str]:
        """Which enrichment tables hold anything: ``cvss``, ``kev``, ``epss`` (lookups into an
        empty one are skipped)."""
        out = set()
        for name, table in (("cvss", "enrichment_cvss"), ("kev", "enrichment_kev"), ("epss", "enrichment_epss")):
            if self._rows(f"SELECT 1 FROM {table} LIMIT 1"):
                out.add(name)
        return frozenset(out)

    def has_enrichment(self) -> bool:
        """True when any enrichment source was imported."""
        return bool(self._rows("SELECT 1 FROM enrichment_sources LIMIT 1"))

    def enrichment_sources(self, now: datetime | None = None) -> list[SourceStatus]:
        """Freshness of every imported enrichment source (``ecosystem`` is the source's name:
        ``kev``, ``epss``, ``cve5``, ``nvd``; ``last_modified`` as downloaded)."""
        now = now or utcnow()
        out = []
        for name, location, etag, last_modified, _h, version, imported_at, records in self._rows(
                "SELECT name, location, etag, last_modified, content_hash, version, imported_at, records "
                "FROM enrichment_sources ORDER BY name"):
            at = datetime.fromisoformat(imported_at)
            if at.tzinfo is None:
                at = at.replace(tzinfo=timezone.utc)
            out.append(SourceStatus(ecosystem=name, records=records, imported_at=at, age=now - at,
                                    location=location, etag=etag, last_modified=last_modified, version=version))
        return out

    def enrichment_validators(self, name: str) -> tuple[str | None, str | None, str | None] | None:
        """``(etag, last_modified, content_hash)`` of enrichment source ``name``, None if never imported."""
        rows = self._rows("SELECT etag, last_modified, content_hash FROM enrichment_sources WHERE name = ?", (name,))
        return tuple(rows[0]) if rows else None

    def coverage_of(self, ecosystem: str) -> tuple[int, datetime | None]:
        """``(records, imported_at)`` for an ecosystem string exactly as packages need it
        (``Debian:12``): the records with an affected package of it, and when the oldest
        source holding them was imported (None when there are none)."""
        both = (ecosystem, ecosystem_base(ecosystem))     # records without a release apply to all
        rows = self._rows("SELECT COUNT(DISTINCT record_id) FROM affected WHERE ecosystem IN (?, ?)", both)
        n = rows[0][0] if rows else 0
        if not n:
            return 0, None
        at = self._rows("SELECT MIN(s.imported_at) FROM sources s WHERE s.ecosystem IN ("
                        "SELECT DISTINCT r.source FROM records r JOIN affected a ON a.record_id = r.id "
                        "WHERE a.ecosystem IN (?, ?))", both)
        when = None
        if at and at[0][0]:
            when = datetime.fromisoformat(at[0][0])
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
        return n, when

    def has_base(self, base: str) -> bool:
        """True when any record of base ecosystem ``base`` (``Debian``, ``PyPI``) is stored."""
        return bool(self._rows("SELECT 1 FROM records WHERE ecosystem = ? LIMIT 1", (base,)))

    def drop_source(self, source: str) -> int:
        """Delete every record of ``source`` and its ``sources`` row; returns records deleted."""
        with self.lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                ids = [(r[0],) for r in c.execute("SELECT id FROM records WHERE source = ?", (source,))]
                c.executemany("DELETE FROM affected WHERE record_id = ?", ids)
                c.executemany("DELETE FROM record_cvss WHERE record_id = ?", ids)
                c.executemany("DELETE FROM records WHERE id = ?", ids)
                c.execute("DELETE FROM sources WHERE ecosystem = ?", (source,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return len(ids)

    def replace_enrichment(self, name: str, *, location: str, cvss=(), kev=(), epss=(), records: int,
                           etag: str | None = None, last_modified: str | None = None,
                           content_hash: str | None = None, version: str | None = None) -> None:
        """Replace what enrichment source ``name`` holds, in one transaction: its CVSS rows
        ``(vuln_id, provider, rank, kind, vector)``, KEV rows ``(vuln_id, date_added, due_date,
        ransomware)`` or EPSS rows ``(vuln_id, epss, percentile)``, and its ``enrichment_sources`` row."""
        with self.lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute("DELETE FROM enrichment_cvss WHERE source = ?", (name,))
                c.executemany("INSERT OR IGNORE INTO enrichment_cvss VALUES (?, ?, ?, ?, ?, ?)",
                              ((v, name, p, r, k, vec) for v, p, r, k, vec in cvss))
                if name == "kev":
                    c.execute("DELETE FROM enrichment_kev")
                    c.executemany("INSERT OR REPLACE INTO enrichment_kev VALUES (?, ?, ?, ?)", kev)
                if name == "epss":
                    c.execute("DELETE FROM enrichment_epss")
                    c.executemany("INSERT OR REPLACE INTO enrichment_epss VALUES (?, ?, ?)", epss)
                c.execute("INSERT INTO enrichment_sources (name, location, etag, last_modified, content_hash, version, "
                          "imported_at, records) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                          "location = excluded.location, etag = excluded.etag, last_modified = excluded.last_modified, "
                          "content_hash = excluded.content_hash, version = excluded.version, "
                          "imported_at = excluded.imported_at, records = excluded.records",
                          (name, location, etag, last_modified, content_hash, version, utcnow().isoformat(), records))
                # enrichment is not per package: a re-match must look at every inventory
                c.execute("INSERT INTO changes (ecosystem, name) VALUES ('*', '*')")
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def touch_enrichment(self, name: str, *, etag: str | None = None, last_modified: str | None = None) -> None:
        """Record that enrichment source ``name`` was confirmed unchanged."""
        with self.lock:
            self._conn.execute("UPDATE enrichment_sources SET imported_at = ?, etag = COALESCE(?, etag), "
                               "last_modified = COALESCE(?, last_modified) WHERE name = ?",
                               (utcnow().isoformat(), etag, last_modified, name))

    def ecosystems(self) -> list[str]:
        """Every ecosystem string found in ``affected`` (``Debian:11``, ``PyPI``, ...)."""
        with self.lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT ecosystem FROM affected ORDER BY 1")]

    def packages(self, ecosystem: str) -> list[str]:
        """Normalised package names with records in ``ecosystem`` (exact string)."""
        with self.lock:
            return [r[0] for r in self._conn.execute(
                "SELECT DISTINCT name FROM affected WHERE ecosystem = ? ORDER BY 1", (ecosystem,))]

    def count(self, source: str | None = None) -> int:
        """Number of records (of one source, if given)."""
        with self.lock:
            if source is None:
                return self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
            return self._conn.execute("SELECT COUNT(*) FROM records WHERE source = ?", (source,)).fetchone()[0]

    def iter_records(self, source: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record (of one source), one at a time; raises :class:`VulnDBError` (code
        ``BadRecord``) at one that cannot be decoded."""
        sql = "SELECT id, data FROM records" + (" WHERE source = ?" if source else "") + " ORDER BY id"
        for rid, blob in self._rows(sql, (source,) if source else ()):
            yield _unpack(rid, blob)

    def sources(self, now: datetime | None = None) -> list[SourceStatus]:
        """Freshness of every imported source, by ecosystem."""
        now = now or utcnow()
        with self.lock:
            rows = self._conn.execute(
                "SELECT ecosystem, location, etag, last_modified, imported_at, records "
                "FROM sources ORDER BY ecosystem").fetchall()
        out = []
        for eco, location, etag, last_modified, imported_at, records in rows:
            at = datetime.fromisoformat(imported_at)
            if at.tzinfo is None:
                at = at.replace(tzinfo=timezone.utc)
            out.append(SourceStatus(ecosystem=eco, records=records, imported_at=at, age=now - at,
                                    location=location, etag=etag, last_modified=last_modified))
        return out

    def source(self, ecosystem: str) -> SourceStatus | None:
        """Freshness of one source, or None when it was never imported."""
        for s in self.sources():
            if s.ecosystem == ecosystem:
                return s
        return None

    # ------------------------------------------------------------------ writes

    def writer(self, source: str, location: str) -> "IndexWriter":
        """Start replacing the records of ``source`` (one transaction; see :class:`IndexWriter`)."""
        return IndexWriter(self, source, location)

    def touch_source(self, source: str, *, etag: str | None = None, last_modified: str | None = None,
                     at: datetime | None = None) -> None:
        """Record that ``source`` was confirmed current (e.g. a 304) without re-importing it."""
        at = at or utcnow()
        with self.lock:
            self._conn.execute(
                "UPDATE sources SET imported_at = ?, etag = COALESCE(?, etag), "
                "last_modified = COALESCE(?, last_modified) WHERE ecosystem = ?",
                (at.isoformat(), etag, last_modified, source))

    def set_validators(self, source: str, etag: str | None, last_modified: str | None) -> None:
        """Store the HTTP validators of the export ``source`` was imported from."""
        with self.lock:
            self._conn.execute("UPDATE sources SET etag = ?, last_modified = ? WHERE ecosystem = ?",
                               (etag, last_modified, source))


class IndexWriter:
    """Adds the records of one source inside a single transaction.

    ``add(record)`` stores (or replaces) a record, ``withdraw(id)`` deletes one;
    ``finish(replace=True)`` deletes records of this source not seen in this import,
    updates the ``sources`` row and commits. Leaving the ``with`` block on an error
    rolls everything back (the index stays as it was).
    """

    BATCH = 500

    def __init__(self, index: VulnIndex, source: str, location: str) -> None:
        self.index = index
        self.source = source
        self.location = location
        self._conn = index._conn
        self._batch: list[tuple[str, str, str | None, bytes, list[tuple[str, str, str]]]] = []
        self._withdrawn: list[str] = []
        self._open = False
        self.added = 0
        self.withdrawn = 0
        self.removed = 0

    def __enter__(self) -> "IndexWriter":
        self.index.lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")
            self._conn.execute("DELETE FROM seen")
            self._open = True
        except BaseException:
            self.index.lock.release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._open:
                self._conn.execute("ROLLBACK")
                self._open = False
        finally:
            self.index.lock.release()

    def add(self, record: Mapping[str, Any]) -> None:
        """Queue one (valid, not withdrawn) record for storing."""
        rid = record["id"]
        rows = []
        seen = set()
        base = ""
        for aff in record.get("affected") or ():
            pkg = aff.get("package") or {}
            eco, name = pkg.get("ecosystem"), pkg.get("name")
            if not eco or not name:
                continue
            base = base or ecosystem_base(eco)
            row = (eco, index_name(eco, name), rid)
            if row not in seen:
                seen.add(row)
                rows.append(row)
        self._batch.append((rid, base, record.get("modified"), pack(record), rows, cvss_rows(record)))
        if len(self._batch) >= self.BATCH:
            self._flush()

    def withdraw(self, record_id: str) -> None:
        """Delete a record that is withdrawn (if present)."""
        self._withdrawn.append(record_id)
        self.withdrawn += 1

    def _log_changes(self, ids: list[str], new: dict[str, tuple[bytes | None, list]] | None = None) -> None:
        """Append to the change log the names of the records ``ids`` whose content changes (new
        data ``new[id]``, or removed when ``new`` is None): their names before and after."""
        c = self._conn
        names: set[tuple[str, str]] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            old = dict(c.execute(f"SELECT id, data FROM records WHERE id IN ({marks})", chunk).fetchall())
            moved = [rid for rid in chunk if new is None and rid in old
                     or new is not None and old.get(rid) != new[rid][0]]
            if not moved:
                continue
            marks = ",".join("?" * len(moved))
            names.update(c.execute(f"SELECT ecosystem, name FROM affected WHERE record_id IN ({marks})",
                                   moved).fetchall())
            if new is not None:
                names.update((eco, name) for rid in moved for eco, name, _ in new[rid][1])
        if names:
            c.executemany("INSERT INTO changes (ecosystem, name) VALUES (?, ?)", sorted(names))

    def _flush(self) -> None:
        if not self._batch:
            return
        c = self._conn
        ids = [(b[0],) for b in self._batch]
        self._log_changes([b[0] for b in self._batch], {b[0]: (b[3], b[4]) for b in self._batch})
        c.executemany("DELETE FROM affected WHERE record_id = ?", ids)
        c.executemany("DELETE FROM record_cvss WHERE record_id = ?", ids)
        c.executemany("INSERT OR REPLACE INTO records (id, ecosystem, source, modified, withdrawn, data) "
                      "VALUES (?, ?, ?, ?, NULL, ?)",
                      [(rid, base, self.source, modified, blob) for rid, base, modified, blob, _, _ in self._batch])
        c.executemany("INSERT OR IGNORE INTO affected (ecosystem, name, record_id) VALUES (?, ?, ?)",
                      [row for b in self._batch for row in b[4]])
        c.executemany("INSERT OR IGNORE INTO record_cvss VALUES (?, ?, ?, ?)",
                      [row for b in self._batch for row in b[5]])
        c.executemany("INSERT OR IGNORE INTO seen (id) VALUES (?)", ids)
        self.added += len(self._batch)
        self._batch.clear()

    def finish(self, replace: bool = True, *, etag: str | None = None,
               last_modified: str | None = None) -> int:
        """Write what is queued; with ``replace``, delete this source's records not seen
        in this import. Updates the ``sources`` row and commits. Returns records removed."""
        self._flush()
        c = self._conn
        if self._withdrawn:
            self._log_changes(list(self._withdrawn))
            w = [(i,) for i in self._withdrawn]
            c.executemany("DELETE FROM affected WHERE record_id = ?", w)
            c.executemany("DELETE FROM record_cvss WHERE record_id = ?", w)
            c.executemany("DELETE FROM records WHERE id = ?", w)
        if replace:
            gone = [r[0] for r in c.execute(
                "SELECT id FROM records WHERE source = ? AND id NOT IN (SELECT id FROM seen)", (self.source,))]
            self._log_changes(gone)
            c.executemany("DELETE FROM affected WHERE record_id = ?", [(i,) for i in gone])
            c.executemany("DELETE FROM record_cvss WHERE record_id = ?", [(i,) for i in gone])
            c.executemany("DELETE FROM records WHERE id = ?", [(i,) for i in gone])
            self.removed = len(gone)
        total = c.execute("SELECT COUNT(*) FROM records WHERE source = ?", (self.source,)).fetchone()[0]
        c.execute("INSERT INTO sources (ecosystem, location, etag, last_modified, imported_at, records) "
                  "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(ecosystem) DO UPDATE SET location = excluded.location, "
                  "etag = excluded.etag, last_modified = excluded.last_modified, "
                  "imported_at = excluded.imported_at, records = excluded.records",
                  (self.source, self.location, etag, last_modified, utcnow().isoformat(), total))
        c.execute("COMMIT")
        self._open = False
        return self.removed
