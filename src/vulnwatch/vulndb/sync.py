"""Getting OSV data into the index: import an export from disk, or download one.

- :func:`import_path`: an ``all.zip`` (or any zip of OSV ``*.json``), a folder of
  ``*.json`` (searched recursively) or one ``.json`` file. Records are read and
  stored one at a time (never the whole export in memory); each is checked against
  the OSV schema's types and vulnwatch's size bounds (:mod:`.schema`), and one that
  fails (or is not JSON, or too big to read) is skipped and named in the report
  while the others are imported; withdrawn ones are dropped.
- :func:`update`: downloads ``<base_url>/<Ecosystem>/all.zip`` with a conditional
  GET (``If-None-Match`` / ``If-Modified-Since`` from the previous download); a
  ``304`` means unchanged and only refreshes the source's timestamp.
- :func:`status` / :func:`stale`: how old each imported source is.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .index import VulnIndex
from .interface import DEFAULT_BASE_URL, ImportReport, SourceStatus, UpdateResult, VulnDBError, ecosystem_base
from .schema import MAX_ID_LENGTH, MAX_RECORD_BYTES, RecordError, check_record, parse_json

log = logging.getLogger(__name__)

_MAX_SKIPPED_KEPT = 1000
"""Invalid records named one by one in an :class:`ImportReport`; the rest are counted."""


def _as_index(db: VulnIndex | str | os.PathLike[str]) -> tuple[VulnIndex, bool]:
    if isinstance(db, VulnIndex):
        return db, False
    return VulnIndex(db), True


def validate_record(record: Any) -> str | None:
    """Why ``record`` (parsed JSON) is not a usable OSV record, or None when it is.

    The OSV schema's types and vulnwatch's size bounds: see :mod:`.schema`.
    """
    return check_record(record)


_READ_ERRORS = (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError, RuntimeError)
"""What reading one zip member can raise: a bad CRC or truncated data, an unsupported
compression method (``NotImplementedError``), an encrypted member (``RuntimeError``)."""


def _read_zip(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise VulnDBError(f"{path}: not a readable zip file ({e}); download the export again",
                          code="BadExport") from e
    with z:
        for info in z.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            label = f"{path.name}:{info.filename}"
            if info.file_size > MAX_RECORD_BYTES:
                yield label, RecordError(f"{info.file_size} bytes, larger than {MAX_RECORD_BYTES} bytes")
                continue
            try:
                with z.open(info) as member:
                    data = member.read(MAX_RECORD_BYTES + 1)  # the header's size may lie
            except _READ_ERRORS as e:
                yield label, RecordError(f"cannot be read from the zip ({type(e).__name__}: {e})")
                continue
            yield label, _parse(data)


def _read_dir(path: Path) -> Iterator[tuple[str, Any]]:
    files = [path] if path.is_file() else sorted(path.rglob("*.json"))
    for f in files:
        try:
            if f.stat().st_size > MAX_RECORD_BYTES:
                yield str(f), RecordError(f"{f.stat().st_size} bytes, larger than {MAX_RECORD_BYTES} bytes")
                continue
            data = f.read_bytes()
        except OSError as e:
            yield str(f), RecordError(f"cannot be read ({e})")
            continue
        yield str(f), _parse(data)


def _parse(data: bytes) -> Any:
    try:
        return parse_json(data)
    except RecordError as e:
        return e


def _record_id(rec: Any) -> str | None:
    """The id of a refused record when it has a usable one (a string, shortened), else None."""
    rid = rec.get("id") if isinstance(rec, Mapping) else None
    if not isinstance(rid, str) or not rid:
        return None
    return rid if len(rid) <= MAX_ID_LENGTH else rid[:MAX_ID_LENGTH] + "..."


def read_export(path: str | os.PathLike[str]) -> Iterator[tuple[str, Any]]:
    """``(file label, parsed JSON or a RecordError)`` for every ``*.json`` in a zip, folder or file.

    Each file is read and parsed on its own (:func:`.schema.parse_json`): one that is too
    large, unreadable or not JSON yields a :class:`~.schema.RecordError` in its place.
    """
    p = Path(path)
    if not p.exists():
        raise VulnDBError(f"{p}: no such file or folder; give an OSV all.zip or a folder of OSV *.json",
                          code="NotFound")
    if p.is_file() and zipfile.is_zipfile(p):
        return _read_zip(p)
    return _read_dir(p)


def export_source(path: Path) -> str | None:
    """The source key of an OSV export by its place: ``Debian`` for ``.../Debian/all.zip``; else None."""
    if path.is_file() and path.name == "all.zip":
        return path.parent.name or None
    return None


def import_path(db: VulnIndex | str | os.PathLike[str], path: str | os.PathLike[str], *,
                source: str | None = None, replace: bool = True, location: str | None = None,
                etag: str | None = None, last_modified: str | None = None) -> ImportReport:
    """Import OSV records from ``path`` into ``db`` (one transaction).

    ``source`` is the key the records are stored under (default: the folder name of an
    ``all.zip``, i.e. the ecosystem, else the first record's ecosystem). With ``replace``
    (the default, right for a full export) records of that source that are no longer in
    the export are deleted. ``location``/``etag``/``last_modified`` are recorded in the
    ``sources`` table (``location`` defaults to ``path``).
    """
    index, close = _as_index(db)
    p = Path(path)
    try:
        items = read_export(p)
        skipped: list[tuple[str, str]] = []
        skipped_total = 0
        source = source or export_source(p)
        writer = None
        try:
            for label, rec in items:
                if isinstance(rec, RecordError):
                    reason = rec.reason
                else:
                    reason = validate_record(rec)
                if reason:
                    skipped_total += 1
                    rid = _record_id(rec)
                    if len(skipped) < _MAX_SKIPPED_KEPT:
                        skipped.append((f"{label} ({rid})" if rid else label, reason))
                    log.warning("skipping OSV record %s: %s", rid or label, reason)
                    continue
                if writer is None:
                    if source is None:
                        affected = rec.get("affected") or [{}]
                        eco = (affected[0].get("package") or {}).get("ecosystem")
                        source = ecosystem_base(eco) if eco else rec["id"].split("-", 1)[0]
                    writer = index.writer(source, location or str(p)).__enter__()
                if rec.get("withdrawn"):
                    writer.withdraw(rec["id"])
                else:
                    writer.add(rec)
            if writer is None:
                # never let an empty or broken export wipe what the index holds
                raise VulnDBError(f"{p}: no valid OSV records found"
                                  + (f" ({skipped_total} invalid, first: {skipped[0][0]}: {skipped[0][1]})"
                                     if skipped else "") + "; check the path; the index was not changed",
                                  code="EmptyExport")
            writer.finish(replace=replace, etag=etag, last_modified=last_modified)
        except BaseException as e:
            if writer is not None:
                writer.__exit__(type(e), e, None)
            raise
        else:
            writer.__exit__(None, None, None)
        if skipped_total > len(skipped):
            skipped.append(("...", f"{skipped_total - len(skipped)} more invalid records not listed"))
        report = ImportReport(source=source, location=location or str(p), imported=writer.added,
                              withdrawn=writer.withdrawn, removed=writer.removed, skipped=tuple(skipped))
        log.info("imported %d OSV records into %s from %s (%d withdrawn, %d removed, %d skipped)",
                 report.imported, source, report.location, report.withdrawn, report.removed, skipped_total)
        return report
    finally:
        if close:
            index.close()


def export_url(ecosystem: str, base_url: str = DEFAULT_BASE_URL) -> str:
    """``<base_url>/<Ecosystem>/all.zip`` with the ecosystem URL-quoted (``Rocky%20Linux``)."""
    return f"{base_url.rstrip('/')}/{quote(ecosystem, safe='')}/all.zip"


def update(db: VulnIndex | str | os.PathLike[str], ecosystems: Iterable[str],
           base_url: str = DEFAULT_BASE_URL, client: httpx.Client | None = None, *,
           timeout: float = 120.0) -> list[UpdateResult]:
    """Download and import each ecosystem's ``all.zip``, skipping unchanged ones (HTTP 304).

    The download streams to a temporary file next to the index, then is imported with
    :func:`import_path` (``replace=True``). Raises :class:`VulnDBError` naming the URL on
    an HTTP error or a network failure; ecosystems already done stay imported.
    """
    index, close = _as_index(db)
    own_client = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=True)
    results: list[UpdateResult] = []
    try:
        for eco in ecosystems:
            url = export_url(eco, base_url)
            previous = index.source(eco)
            headers = {}
            if previous is not None and previous.etag:
                headers["If-None-Match"] = previous.etag
            if previous is not None and previous.last_modified:
                headers["If-Modified-Since"] = previous.last_modified
            fd, tmp_name = tempfile.mkstemp(prefix=".osv-", suffix=".zip", dir=str(index.path.parent))
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    try:
                        with http.stream("GET", url, headers=headers) as resp:
                            if resp.status_code == 304:
                                index.touch_source(eco)
                                log.info("%s: not modified", url)
                                results.append(UpdateResult(ecosystem=eco, url=url, changed=False))
                                continue
                            if resp.status_code != 200:
                                raise VulnDBError(
                                    f"{url}: HTTP {resp.status_code}; check the ecosystem name {eco!r} "
                                    f"(OSV spells them like 'PyPI', 'Debian') and the base URL, then retry",
                                    code="DownloadFailed")
                            for chunk in resp.iter_bytes(1 << 20):
                                out.write(chunk)
                            etag = resp.headers.get("etag")
                            last_modified = resp.headers.get("last-modified")
                    except httpx.HTTPError as e:
                        raise VulnDBError(f"{url}: download failed ({type(e).__name__}: {e}); "
                                          f"check the network and retry", code="DownloadFailed") from e
                report = import_path(index, tmp, source=eco, replace=True, location=url,
                                     etag=etag, last_modified=last_modified)
                results.append(UpdateResult(ecosystem=eco, url=url, changed=True, report=report))
            finally:
                tmp.unlink(missing_ok=True)
        return results
    finally:
        if own_client:
            http.close()
        if close:
            index.close()


def status(db: VulnIndex | str | os.PathLike[str], now: datetime | None = None) -> list[SourceStatus]:
    """Every imported source: records, when imported, age."""
    index, close = _as_index(db)
    try:
        return index.sources(now)
    finally:
        if close:
            index.close()


def stale(db: VulnIndex | str | os.PathLike[str], max_age: timedelta,
          ecosystems: Iterable[str] | None = None, now: datetime | None = None) -> list[str]:
    """Sources older than ``max_age``, plus any of ``ecosystems`` never imported (sorted)."""
    sources = {s.ecosystem: s for s in status(db, now)}
    out = {eco for eco, s in sources.items() if s.is_stale(max_age)}
    for eco in ecosystems or ():
        if eco not in sources:
            out.add(eco)
    return sorted(out)


def local_source(path: Path) -> str:
    """The source key a local export is imported under: ``Debian`` for ``.../Debian/all.zip``,
    ``local:<path>`` for a folder of records."""
    return export_source(path) or f"local:{path}"


def _newest_mtime(path: Path) -> float:
    if path.is_dir():
        newest = path.stat().st_mtime
        for p in path.rglob("*.json"):
            try:
                newest = max(newest, p.stat().st_mtime)
            except FileNotFoundError:     # removed while we looked: it is not part of the export
                continue
        return newest
    return path.stat().st_mtime


def import_changed(db: VulnIndex, paths: Iterable[Path]) -> list:
    """Import each local export (``vulndb.imports``: the air-gapped way to feed the data) that
    changed since it was last imported (OSV exports by modification time, enrichment files by
    content); returns the reports of those imported. Raises :class:`VulnDBError` naming a file
    that cannot be read."""
    paths = list(paths)
    if not paths:
        return []
    with _import_lock(db):     # another process importing the same exports: wait, then look again
        return _import_changed(db, paths)


@contextlib.contextmanager
def _import_lock(db: VulnIndex) -> Iterator[None]:
    """An exclusive lock beside the index file, across processes: two processes starting at
    once (a ``run`` beside a ``watch``) must not both import a changed export — the second
    would stamp the same data with a later import time, which reads as a data change."""
    import fcntl

    with open(f"{db.path}.import-lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _import_changed(db: VulnIndex, paths: list[Path]) -> list:
    known = {s.location: s for s in db.sources()}
    reports = []
    for path in paths:
        if detect_kind(path) is not None:        # an enrichment file: imported when its content changed
            rep = import_enrichment(db, path)
            if rep.changed:
                reports.append(rep)
            continue
        seen = known.get(str(path))
        # Read through the link once: a folder published by swapping a symbolic link (a new
        # folder, then an atomic rename of the link) is imported whole, the old or the new one,
        # never files listed in one and read from the other.
        real = Path(path).resolve()
        newest = _newest_mtime(real)
        if _export_changed(seen, newest):
            reports.append(import_path(db, real, source=local_source(path), location=str(path),
                                       etag=_mtime_tag(newest), last_modified=_version_of(newest)))
    return reports


def _mtime_tag(newest: float) -> str:
    """The exact version of a local export, kept as its ETag: its newest modification time."""
    return f"mtime:{newest:.6f}"


def _export_changed(seen: SourceStatus | None, newest: float) -> bool:
    """Whether a local export whose newest file is dated ``newest`` changed since its import
    ``seen``: its exact newest modification time differs from the one imported (kept as the
    source's ETag). An export whose files carry times ahead of the clock is imported once, not
    at every start. A source imported before that ETag was kept: by import time."""
    if seen is None:
        return True
    if seen.etag and seen.etag.startswith("mtime:"):
        return seen.etag != _mtime_tag(newest)
    return seen.imported_at.timestamp() < newest


def local_version(path: Path) -> str:
    """The version of a local export, as a download's ``Last-Modified`` is written: its newest
    modification time (``Wed, 02 Dec 2026 07:00:00 GMT``); change events name it."""
    return _version_of(_newest_mtime(path))


def _version_of(mtime: float) -> str:
    from email.utils import formatdate

    return formatdate(mtime, usegmt=True)


# ---------------------------------------------------------------------------- enrichment

def content_hash(path: Path) -> str:
    """sha256 of a file, or of every file of a folder (names and contents), for "changed?"."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:            # a folder: its names count too; a file: only its content
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def detect_kind(path: str | os.PathLike[str]) -> str | None:
    """The enrichment source a file or folder is (``kev``, ``epss``, ``cve5``, ``nvd``), or None
    for OSV data."""
    from .enrichment import detect

    return detect(Path(path))


def import_enrichment(db: VulnIndex, path: str | os.PathLike[str], name: str | None = None, *,
                      location: str | None = None, etag: str | None = None, last_modified: str | None = None,
                      force: bool = False):
    """Import one enrichment file (or folder, or zip) into ``db``'s enrichment tables, replacing
    what that source held; unchanged content (same sha256 as the last import) is not imported
    again unless ``force``. Returns an :class:`~.enrichment.EnrichmentReport`; raises
    :class:`VulnDBError` naming the file when it cannot be used."""
    from .enrichment import SOURCES, EnrichmentReport, detect

    p = Path(path)
    if not p.exists():
        raise VulnDBError(f"{p}: no such file or folder", code="NotFound")
    name = name or detect(p)
    if name not in SOURCES:
        raise VulnDBError(f"{p}: not a known enrichment format (CVE JSON 5, NVD CVE API 2.0, CISA KEV, EPSS CSV)",
                          code="BadEnrichment")
    digest = content_hash(p)
    previous = db.enrichment_validators(name)
    where = location or str(p)
    if previous is not None and previous[2] == digest and not force:
        db.touch_enrichment(name, etag=etag, last_modified=last_modified)
        log.info("%s: %s unchanged", where, name)
        return EnrichmentReport(name, where, changed=False)
    data = SOURCES[name]().read(p)
    db.replace_enrichment(name, location=where, cvss=data.cvss, kev=data.kev, epss=data.epss, records=data.records,
                          etag=etag, last_modified=last_modified, content_hash=digest, version=data.version)
    log.info("imported %s from %s: %d vulnerabilities (%d entries skipped)", name, where, data.records,
             len(data.skipped))
    return EnrichmentReport(name, where, changed=True, records=data.records, version=data.version,
                            skipped=tuple(data.skipped))


def update_enrichment(db: VulnIndex, sources: Iterable[tuple[str, str]], client: httpx.Client | None = None, *,
                      timeout: float = 120.0) -> list:
    """Download each ``(name, url)`` enrichment source with a conditional GET (ETag /
    Last-Modified of the last download) and import it when its content changed (sha256).
    Raises :class:`VulnDBError` naming the URL on an HTTP or network failure."""
    from .enrichment import EnrichmentReport

    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=True)
    out = []
    try:
        for name, url in sources:
            previous = db.enrichment_validators(name)
            headers = {}
            if previous is not None and previous[0]:
                headers["If-None-Match"] = previous[0]
            if previous is not None and previous[1]:
                headers["If-Modified-Since"] = previous[1]
            suffix = "".join(Path(url.split("?", 1)[0]).suffixes[-2:]) or ".dat"
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}-", suffix=suffix, dir=str(db.path.parent))
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as fh:
                    try:
                        with http.stream("GET", url, headers=headers) as resp:
                            if resp.status_code == 304:
                                db.touch_enrichment(name)
                                out.append(EnrichmentReport(name, url, changed=False))
                                continue
                            if resp.status_code != 200:
                                raise VulnDBError(f"{url}: HTTP {resp.status_code}; check vulndb.enrichment "
                                                  f"({name}) or import the file with `vulnwatch db import PATH`",
                                                  code="DownloadFailed")
                            for chunk in resp.iter_bytes(1 << 20):
                                fh.write(chunk)
                            etag, modified = resp.headers.get("etag"), resp.headers.get("last-modified")
                    except httpx.HTTPError as e:
                        raise VulnDBError(f"{url}: download failed ({type(e).__name__}: {e}); check the network, "
                                          f"or import the file with `vulnwatch db import PATH`",
                                          code="DownloadFailed") from e
                out.append(import_enrichment(db, tmp, name, location=url, etag=etag, last_modified=modified))
            finally:
                tmp.unlink(missing_ok=True)
        return out
    finally:
        if own:
            http.close()


def fetch_missing(db: VulnIndex, ecosystems: Iterable[str], base_url: str = DEFAULT_BASE_URL,
                  client: httpx.Client | None = None) -> list[UpdateResult]:
    """``db update`` for base ecosystems an image needs that the data has no record of at all
    (a scan or a cycle on fresh data). Raises :class:`VulnDBError` naming the ecosystems, the
    source and ``vulnwatch db import`` when the download fails (offline)."""
    wanted = sorted(set(ecosystems))
    try:
        return update(db, wanted, base_url, client)
    except VulnDBError as e:
        names = ", ".join(wanted)
        raise VulnDBError(
            f"no advisory data for {names}, and downloading it from {base_url} failed ({e}); offline, import an "
            f"OSV export: `vulnwatch db import {wanted[0]}/all.zip` (or set vulndb.imports)",
            code="NoAdvisoryData") from e
