"""Our own offline scanner: registry layers -> walker -> catalogers -> OSV data.

Images are immutable, so the inventory of a digest is computed once: a digest already
seen (``previous`` carries its packages) is not pulled again, only re-matched against
the current vulnerability data. That is what makes continuous re-matching cheap: after
a data update every stored inventory is matched again without touching any registry
(:meth:`BuiltinScanner.fingerprint` tells which moved, :meth:`BuiltinScanner.rematch` gives
their new result).
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..catalogers.interface import CatalogLimitError, CatalogLimits, Cataloger
from ..catalogers.plan import Inventory, catalog_layers
from ..walker import LayerCache, LayerError, LayerLimits
from ..model import (Coverage, CoverageSummary, DataSource, Deadline, Image, PackageRow, ScanResult, deadline_scope, finding_hash,
                     signature_of, utcnow)
from ..registries.interface import Registry, RegistryError
from ..runs import KEY, Run, joined, runs, walk
from ..vulndb.interface import VulnDBError, ecosystem_base
from .interface import ScanError, ScanLimits, ScanResources, Scanner, deadline_error

if TYPE_CHECKING:  # the index and the matcher load on first use: an inventory (scan --sbom) needs neither
    from ..vulndb.index import VulnIndex
    from ..vulndb.match import Matcher

log = logging.getLogger(__name__)

SCANNER = "builtin"

LayerProgress = Callable[[Image, int, int], None]
"""``progress(image, layers_done, layers_total)`` while layers stream."""


class BuiltinScanner(Scanner):
    """Scans images of one registry with our catalogers and the local OSV index.

    ``registry`` serves manifests and blobs; ``index`` is the OSV store; ``max_age`` makes
    scans warn (in ``ScanResult.notes``) when the data is older; ``max_concurrency``
    bounds parallel pulls; ``layer_cache`` (None: no cache) keeps what each layer
    contributed, so layers shared with an image already scanned are not pulled again.
    """

    name = SCANNER
    stores_inventories = True

    @classmethod
    def from_config(cls, registry_config: Any, registry: Registry, resources: ScanResources) -> "BuiltinScanner":
        lim = resources.limits
        return cls(registry, resources.vulndb, max_age=resources.max_age,
                   max_concurrency=min(registry_config.max_concurrency, 4), layer_cache=resources.layer_cache,
                   limits=lim.layers, catalog_limits=lim.catalog, image_timeout=lim.image_timeout,
                   fetch_missing=resources.fetch_missing)

    @classmethod
    def for_rematch(cls, resources: ScanResources) -> "BuiltinScanner":
        """A scanner that only re-matches stored inventories (it reads no registry)."""
        return cls(None, resources.vulndb, max_age=resources.max_age)

    def __init__(self, registry: Registry | None, index: VulnIndex | None, *, catalogers: Sequence[Cataloger] | None = None,
                 limits: LayerLimits | None = None, max_age: timedelta = timedelta(days=7),
                 max_concurrency: int = 2, matcher: Matcher | None = None,
                 layer_progress: LayerProgress | None = None, clock: Callable[[], datetime] = utcnow,
                 layer_cache: LayerCache | None = None, catalog_limits: CatalogLimits | None = None,
                 image_timeout: float | None = None,
                 fetch_missing: Callable[[list[str]], None] | None = None) -> None:
        self.registry = registry
        self.catalog_limits = catalog_limits
        self.image_timeout = image_timeout
        """Seconds one image may take (``limits.image_timeout``); None: no bound of its own."""
        self.fetch_missing = fetch_missing
        self._bases_with_data: dict[str, bool] = {}
        self._data_version: str | None = None
        """Called with the base ecosystems (``Debian``) an image needs that the data has no
        record of at all, before matching (``db update`` from the configured source); raises
        :class:`VulnDBError` when it cannot get them. None: nothing is fetched."""
        self._fetched: set[str] = set()
        self._fetch_lock = threading.Lock()
        self.index = index
        self.catalogers = catalogers
        self.limits = limits
        self.max_age = max_age
        self.max_concurrency = max_concurrency
        self._matcher = matcher
        self.layer_progress = layer_progress
        self.clock = clock
        self.layer_cache = layer_cache
        self._fingerprints: dict[str | None, dict[tuple, tuple[int, int]]] = {}
        self._touched: dict[tuple, dict[tuple, bool]] = {}
        self._package_findings: dict[tuple, tuple[tuple, str]] = {}
        self._judgements: dict[tuple, tuple[tuple, tuple, bool]] = {}
        self._held: dict[str | None, dict[int, tuple]] = {}   # distro -> id of a held row -> what rematch_held needs
        self._coverages: dict[int, tuple] = {}    # id of a stored coverage -> (it, its ecosystems now, refreshed)

    @property
    def matcher(self) -> Matcher:
        """The OSV matcher, made on first use (an inventory-only scan never needs one)."""
        if self._matcher is None:
            from ..vulndb.match import Matcher

            self._matcher = Matcher(self.index)
        return self._matcher

    def sbom(self, image: Image) -> ScanResult:
        """The inventory only: packages and distro, no vulnerability data involved."""
        inv = self.inventory(image)
        return ScanResult(image=image, scanner=self.name, scanned_at=self.clock(), packages=tuple(inv.packages),
                          distro=inv.ecosystem, notes=tuple(inv.warnings))

    # -- inventory -------------------------------------------------------------------------
    def inventory(self, image: Image) -> Inventory:
        """Pull the image's layers (each streamed once; those in the layer cache not at
        all) and catalog its packages."""
        try:
            manifest = self.registry.manifest(image.repository, image.digest)
        except RegistryError as e:
            raise ScanError(image, str(e), code="ManifestUnavailable", retryable=e.retryable) from e

        def progress(done: int, total: int) -> None:
            if self.layer_progress:
                self.layer_progress(image, done, total)

        try:
            return catalog_layers([layer.digest for layer in manifest.layers],
                                  lambda digest: self.registry.blob(image.repository, digest),
                                  self.catalogers, limits=self.limits, cache=self.layer_cache, progress=progress,
                                  catalog_limits=self.catalog_limits)
        except CatalogLimitError as e:
            raise ScanError(image, str(e), code="LimitExceeded") from e
        except LayerError as e:
            raise ScanError(image, str(e), code=getattr(e, "code", "LayerError")) from e
        except RegistryError as e:
            raise ScanError(image, str(e), code="BlobUnavailable", retryable=e.retryable) from e

    # -- matching --------------------------------------------------------------------------
    def data_notes(self) -> tuple[tuple[str, ...], datetime | None]:
        """Warnings about the vulnerability data, and its freshness (oldest source import)."""
        sources = self.index.sources()
        if not sources:
            return ("no vulnerability data imported: run `vulnwatch db update` or `vulnwatch db import PATH`",), None
        oldest = min(s.imported_at for s in sources)
        stale = [s.ecosystem for s in sources if s.is_stale(self.max_age)]
        notes = (f"vulnerability data older than {self.max_age.days} days for: {', '.join(sorted(stale))}; "
                 f"run `vulnwatch db update`",) if stale else ()
        return notes, oldest

    def ensure_data(self, packages, distro: str | None) -> None:
        """Fetch the advisory data of ecosystems these packages need and the data has no record
        of at all (once per ecosystem per scanner), when a fetcher is configured."""
        if self.fetch_missing is None:
            return
        needed = {ecosystem_base(distro)} if distro else set()
        needed |= {ecosystem_base(p[2] if isinstance(p, tuple) else p.ecosystem) for p in packages}
        needed.discard("")
        with self._fetch_lock:
            missing = sorted(b for b in needed if b not in self._fetched and not self.index.has_base(b))
            if not missing:
                return
            self._fetched.update(missing)
            self.fetch_missing(missing)
            if self._matcher is not None:
                self._matcher.clear_cache()

    def match(self, image: Image, packages, distro: str | None, extra_notes: Sequence[str] = (),
              unread: Sequence[tuple[str, str]] = ()) -> ScanResult:
        """A ScanResult for an inventory, matched against the current data (no registry involved)."""
        packages = list(packages)
        try:
            self.ensure_data(packages, distro)
            findings = self.matcher.match(packages, distro)
            coverage = self.matcher.coverage(packages, distro, unread)
        except VulnDBError as e:
            raise ScanError(image, str(e), code=e.code) from e
        notes, fresh = self.data_notes()
        if coverage.missing:      # said per image in `run` and stored with the snapshot
            notes += (f"advisory data does not cover {', '.join(coverage.missing)}: "
                      f"{sum(1 for u in coverage.unjudged if u.reason.startswith('no advisory data'))} packages "
                      f"not judged; run `vulnwatch db update`, or `vulnwatch db import PATH` offline",)
        return ScanResult(image=image, scanner=self.name, scanned_at=self.clock(), findings=tuple(findings),
                          vulnerability_source_updated_at=fresh, packages=tuple(packages), distro=distro,
                          notes=tuple(extra_notes) + notes, coverage=coverage)

    def scan(self, image: Image, previous: ScanResult | None = None) -> ScanResult:
        """Scan one image within ``image_timeout`` (and the deadline in force, the cycle's)."""
        own = Deadline.after(self.image_timeout, f"limits.image_timeout ({_seconds(self.image_timeout)})") \
            if self.image_timeout else None
        with deadline_scope(own):
            return self._scan(image, previous)

    def _scan(self, image: Image, previous: ScanResult | None = None) -> ScanResult:
        if previous is not None and previous.scanner == self.name and (previous.packages or previous.distro):
            # Same digest: no pull, only a re-match. When nothing moved, the stored snapshot is
            # still the answer (with the tags seen now), so the pipeline has nothing to write.
            result = self.match(image, previous.packages, previous.distro, unread=_unread(previous.coverage))
            stored = previous.unsuppressed()     # the policy stage decides suppression anew
            if (result.notes, result.vulnerability_source_updated_at) == (
                    previous.notes, previous.vulnerability_source_updated_at) and (
                    _coverage_key(result.coverage) == _coverage_key(previous.coverage)) and (
                    result.findings == stored.findings or set(result.findings) == set(stored.findings)):
                return replace(previous, image=image)
            return result
        inv = self.inventory(image)
        return self.match(image, inv.packages, inv.ecosystem, inv.warnings, inv.unread)

    def data_sources(self) -> tuple[DataSource, ...]:
        """Each imported OSV source: its export's Last-Modified (else ETag) and when it was imported."""
        if self.index is None:
            return ()
        return tuple(DataSource(kind="advisory", name=s.ecosystem, version=s.last_modified or s.etag,
                                updated_at=s.imported_at, location=s.location) for s in self.index.sources()) + tuple(
            DataSource(kind="enrichment", name=s.ecosystem, version=s.version or s.last_modified or s.etag,
                       updated_at=s.imported_at, location=s.location) for s in self.index.enrichment_sources())

    def result_key(self) -> str | None:
        """The advisory data's version (:meth:`VulnIndex.data_version`: every import that changes
        a record moves it) with the notes and freshness a match would give now (stale data is a
        note of the result): a stored inventory matched again under the same key gives the same
        findings. When the version moved since the last call (data imported by another process
        under a long-lived scanner, the daemon's), the matcher's cached results are dropped."""
        if self.index is None:
            return None
        notes, fresh = self.data_notes()
        self._bases_with_data = {}
        version = self.index.data_version()
        if version != self._data_version and self._matcher is not None:
            self._matcher.clear_cache()        # the data moved under a long-lived scanner (the daemon's)
        self._data_version = version
        return json.dumps([self.name, version, list(notes),
                           fresh.isoformat() if fresh else None])

    def rescan_needed(self, coverage: CoverageSummary | None) -> bool:
        """A snapshot kept without its coverage (recorded before it was kept) is matched again to
        record it; one that lacks data for an ecosystem of which nothing is imported is, when this
        scanner fetches missing data (:meth:`ensure_data`)."""
        if coverage is None:
            return True
        if self.fetch_missing is None or not coverage.missing:
            return False
        known = self._bases_with_data
        for eco in coverage.missing:
            base = ecosystem_base(eco)
            if base not in known:
                known[base] = self.index.has_base(base)
            if not known[base]:
                return True
        return False

    # -- re-matching stored inventories ---------------------------------------------------
    def fingerprint(self, rows: Iterable[Sequence], distro: str | None) -> str:
        """The findings signature (:func:`vulnwatch.model.findings_signature`) the current data
        gives an inventory of package rows (in :class:`~vulnwatch.model.PackageRow` field order),
        without building its findings: each distinct package is matched once per scanner and its
        (count, hash sum) kept, so a fleet sharing packages costs a lookup per package."""
        cache = self._fingerprints.setdefault(distro, {})
        get = cache.get
        count = total = 0
        for r in rows:
            k = (r[0], r[1], r[2], r[3], r[4], r[5])         # the fields matching depends on
            hit = get(k)
            if hit is None:
                found = self.matcher.match([PackageRow._make(r)], distro)
                hit = cache[k] = (len(found), sum(finding_hash(f) for f in found))
            count += hit[0]
            total += hit[1]
        return signature_of(count, total)

    def package_signatures(self) -> dict[tuple, str]:
        """``{(distro, matching key): findings signature}`` of every distinct package
        :meth:`fingerprint` evaluated (the fields matching depends on: name, version, ecosystem,
        purl, source name, source version)."""
        return {(distro, k): signature_of(*hit) for distro, cache in self._fingerprints.items()
                for k, hit in cache.items()}

    def touches(self, rows: Iterable[Sequence], distro: str | None, changed: set[tuple[str, str]]) -> bool:
        """Whether a change of the advisory data naming ``changed`` (ecosystem, normalised name)
        pairs (``VulnIndex.changes_since``) can move the findings of an inventory of ``rows``
        (whole rows, or the six fields the package index keeps): one of its packages is matched
        against records of those names. Answered per distinct package once."""
        if not changed:
            return False
        cache = self._touched.setdefault((distro, id(changed)), {})
        get = cache.get
        keys_of = self.matcher.index_keys
        for r in rows:
            k = (r[0], r[2], r[4])            # name, ecosystem, source name: what the lookup uses
            hit = get(k)
            if hit is None:
                hit = cache[k] = any(key in changed for key in keys_of(_package_row(r), distro))
            if hit:
                return True
        return False

    def rematch(self, snapshot: ScanResult, packages: Sequence, distro: str | None) -> ScanResult:
        """``snapshot`` (stored without its inventory) matched again: its ``packages`` against the
        current data, as of now."""
        try:
            found = self.matcher.match(list(packages), distro)
            coverage = self.matcher.coverage(list(packages), distro, _unread(snapshot.coverage))
        except VulnDBError as e:
            raise ScanError(snapshot.image, str(e), code=e.code) from e
        _notes, fresh = self.data_notes()
        return ScanResult(image=snapshot.image, scanner=snapshot.scanner, scanned_at=self.clock(),
                          findings=tuple(found), vulnerability_source_updated_at=fresh, distro=snapshot.distro,
                          coverage=coverage)

    def package_findings(self, row: Sequence, distro: str | None) -> tuple:
        """The findings the current data gives one distinct package (a row in
        :class:`~vulnwatch.model.PackageRow` field order) on an image of ``distro``, their
        findings signature and their runs: ``(findings, signature, runs)``, matched once per
        scanner."""
        k = (distro, row[0], row[1], row[2], row[3], row[4], row[5])
        hit = self._package_findings.get(k)
        if hit is None:
            found = tuple(self.matcher.match([_package_row(row)], distro))
            hit = self._package_findings[k] = (found, signature_of(len(found), sum(finding_hash(f) for f in found)),
                                               list(walk(found)))
        return hit

    def _runs_of_package(self, row: Sequence, distro: str | None) -> list[Run]:
        """:meth:`package_findings` as runs (:mod:`vulnwatch.runs`: one, or none)."""
        return self.package_findings(row, distro)[2]

    def _judged(self, row: Sequence, distro: str | None) -> tuple[tuple, tuple, bool]:
        """For one distinct package: what its findings are reported under (ecosystem, name,
        version, purl), its entries among a coverage's packages not judged, and whether the data
        has no advisories for its ecosystem; once per package (after matching it)."""
        k = (distro, *row[:6])
        hit = self._judgements.get(k)
        if hit is None:
            self.package_findings(row, distro)
            part = self.matcher.coverage([_package_row(row)], distro)
            hit = self._judgements[k] = ((row[2], row[0], row[1], row[3]), part.unjudged, bool(part.missing))
        return hit

    def rematch_held(self, snapshot: ScanResult, held: Sequence[tuple[Sequence, str | None]],
                     distro: str | None, fresh: datetime | None) -> ScanResult | None:
        """:meth:`rematch` without the inventory, for an update whose records name only some
        packages: ``snapshot``'s findings with those of the packages it holds among them
        (``held``: ``(row, the findings signature the package had when last re-matched)``) made
        anew, every other package's kept; its coverage's data refreshed and the held packages
        judged anew. ``fresh``: the oldest source import (the result's
        ``vulnerability_source_updated_at``).

        None when that cannot be told from the snapshot alone, and the whole inventory must be
        matched (:meth:`rematch`): no coverage kept, or an ecosystem without data (data arriving
        or leaving moves every package of it); a held package whose stored findings are not
        exactly the ones its signature says (two packages reported under one name and version;
        an image scanned against other data); a package reported in two places."""
        old = snapshot.coverage
        if old is None or old.missing:
            return None
        base = snapshot.unsuppressed().findings       # the policy stage decides suppression anew
        wanted: dict[tuple, tuple[tuple, str | None]] = {}
        judged: list[tuple] = []
        fresh_unjudged: list = []
        known = self._held.get(distro)
        if known is None:
            known = self._held[distro] = {}
        try:
            for row, sig in held:
                hit = known.get(id(row))              # the same row objects for every image
                if hit is None or hit[0] is not row:
                    hit = known[id(row)] = (row, *self._judged(row, distro), self._runs_of_package(row, distro))
                _row, sk, unjudged, missing, _runs = hit
                if missing:
                    return None
                judged.append(sk)
                if unjudged:
                    fresh_unjudged += unjudged
                if not row[2]:
                    continue                          # no ecosystem: never matched
                if sk in wanted:
                    return None
                wanted[sk] = (hit, sig)
            refreshed = self._coverages.get(id(old))     # once per coverage read (a store shares equal ones)
            if refreshed is None or refreshed[0] is not old:
                ecosystems = self._refreshed(old)
                refreshed = self._coverages[id(old)] = (old, ecosystems,
                                                        None if ecosystems is None else Coverage(ecosystems, ()))
            ecosystems = refreshed[1]
            if ecosystems is None:
                return None
        except VulnDBError as e:
            raise ScanError(snapshot.image, str(e), code=e.code) from e
        stored = runs(base)          # the findings, a package at a time (a run each)
        at = dict(zip(map(KEY, stored), itertools.count()))
        if len(at) != len(stored):
            return None              # a package reported in two places
        out: list[Run | None] = list(stored)
        extra: list[Run] = []
        empty = signature_of(0, 0)
        for sk, (hit, sig) in wanted.items():
            n = at.get(sk)
            if n is None:            # it had no findings
                if sig != empty:
                    return None
                extra += hit[4]
            elif sig is None or stored[n].signature != sig:
                return None
            else:
                new = hit[4]
                if len(new) > 1:
                    return None      # findings reported under two names (never seen; matched whole)
                out[n] = new[0] if new else None
        out = [r for r in out if r is not None] + extra
        if old.unjudged or fresh_unjudged:            # the held packages judged anew
            gone = {sk[:3] for sk in judged}
            unjudged = {u for u in old.unjudged if (u.ecosystem, u.name, u.version) not in gone} | set(fresh_unjudged)
            coverage = Coverage(ecosystems, tuple(sorted(unjudged, key=lambda u: (u.ecosystem, u.name, u.version))))
        else:
            coverage = refreshed[2]
        return ScanResult(image=snapshot.image, scanner=snapshot.scanner, scanned_at=self.clock(),
                          findings=joined(out), vulnerability_source_updated_at=fresh, distro=snapshot.distro,
                          coverage=coverage)

    def _refreshed(self, old: Coverage) -> tuple | None:
        """``old``'s ecosystems with the data's record counts and import dates now; None when the
        data has no records for one of them."""
        ecosystems = []
        for e in old.ecosystems:
            records, updated_at = self.matcher.ecosystem_data(e.ecosystem)
            if not records:
                return None
            ecosystems.append(e if (records, updated_at) == (e.records, e.updated_at)
                              else replace(e, records=records, updated_at=updated_at))
        return tuple(ecosystems)

    def scan_many(self, images, previous):
        images = list(images)
        if self.max_concurrency <= 1 or len(images) <= 1:
            yield from super().scan_many(images, previous)
            return
        def one(img: Image) -> ScanResult:
            late = deadline_error(img)      # the cycle's deadline passed while it waited its turn
            if late is not None:
                raise late
            return self.scan(img, previous.get(img.key))   # read in the worker: one at a time

        pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="vulnwatch-scan")
        try:
            # each task in a copy of this thread's context: the cycle's deadline goes with it
            futures = {pool.submit(contextvars.copy_context().run, one, img): img for img in images}
            for fut in as_completed(futures):
                img = futures[fut]
                try:
                    yield img, fut.result()
                except ScanError as e:
                    yield img, e
                except Exception as e:  # a broken image never stops the others
                    log.exception("scanning %s failed", img)
                    yield img, ScanError(img, f"{type(e).__name__}: {e}", code=type(e).__name__)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()



def _coverage_key(coverage: Coverage | None):
    """What a change of coverage is measured by (None: not known, e.g. stored before it was kept,
    which a re-match then records)."""
    return coverage.key if coverage is not None else None


_PAD = len(PackageRow._fields)


def _package_row(row: Sequence) -> PackageRow:
    """A row of at least the fields matching depends on (the package index keeps those six) as a
    :class:`~vulnwatch.model.PackageRow`."""
    row = tuple(row)
    return PackageRow._make(row + (None,) * (_PAD - len(row)) if len(row) < _PAD else row)


def _unread(coverage: Coverage | None) -> list[tuple[str, str]]:
    """The package databases an earlier scan found and could not read (kept with its coverage:
    a re-match has only the packages)."""
    if coverage is None:
        return []
    return [(u.name, u.reason) for u in coverage.unjudged if not u.version and "not read" in u.reason]
def _seconds(value: float) -> str:
    """``600`` -> ``10m``, ``90`` -> ``1m30s``, ``2.5`` -> ``2.5s``."""
    if value != int(value):
        return f"{value:g}s"
    n = int(value)
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        q, n = divmod(n, size)
        if q:
            out += f"{q}{unit}"
    return out or "0s"
