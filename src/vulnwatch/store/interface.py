"""State that outlives a run: the ``Store`` interface.

Holds the current snapshot per image digest, the full scan history, tag -> digest
history, per-image failures, the notification outbox, and the leases that keep cycles (and
workers) from stepping on each other. Implementations, by URL scheme in
:data:`vulnwatch.store.STORES`: ``sql`` (SQLAlchemy: SQLite by default, PostgreSQL).

Secrets never reach the store: sinks are referred to by their configured name.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from collections.abc import Iterator

from ..logs import redact
from ..model import (CoverageSummary, Event, EventKind, Finding, Image, PackageRow, ScanResult,  # noqa: F401
                     Severity, StoredInventory)  # PackageRow, StoredInventory: re-exported


class StoreError(Exception):
    """The state store failed or holds data this version cannot read; the message says which."""


class StoreConflict(StoreError):
    """The snapshot a caller diffed against is no longer the stored one: another writer (a second
    cycle, another worker) recorded this image in between. Nothing was written; read the
    snapshot again, diff again, and commit again."""


class LeaseHeld(StoreError):
    """The lease is held by another holder and has not expired: someone else is running."""

    def __init__(self, message: str, *, name: str, holder: str, expires_at: datetime) -> None:
        super().__init__(message)
        self.name = name
        self.holder = holder
        """Who holds it (``host:pid:nonce`` as the holder named itself)."""
        self.expires_at = expires_at
        """When it expires unless renewed."""


class LeaseLost(StoreError):
    """A lease this holder had was taken over (its fencing token moved on): the write made under
    it was refused and rolled back, or the renewal failed. Stop: another holder is working."""


UNCHECKED: Any = object()
"""``commit_scan(expected=UNCHECKED)``: write without comparing with the stored snapshot."""


@dataclass(frozen=True)
class ScanCommit:
    """One image's write for :meth:`Store.commit_scans`: the arguments of :meth:`Store.commit_scan`."""

    result: ScanResult
    deliveries: Sequence[tuple[Event, Sequence[str]]] = ()
    keep_inventory: bool = False
    expected: ScanResult | None = UNCHECKED


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"
    """Waiting for its first attempt or for its next retry (``next_attempt_at``)."""
    DELIVERED = "delivered"
    """The sink accepted it."""
    DEAD = "dead"
    """Gave up after ``max_attempts`` or a permanent error; see ``last_error``."""


@dataclass(frozen=True)
class Delivery:
    """One event to one sink: a row of the outbox."""

    id: int
    """Outbox row id."""
    event: Event
    """The event to deliver (the same id on every retry)."""
    sink: str
    """Configured name of the notification sink."""
    status: DeliveryStatus
    attempts: int
    """Attempts made so far."""
    created_at: datetime
    next_attempt_at: datetime | None = None
    """Not before this time (backoff, or Slack's ``Retry-After``)."""
    last_error: str | None = None
    """Last failure, secrets removed."""
    delivered_at: datetime | None = None
    batch_id: str | None = None
    """For a digest sink: the batch this delivery was put in before its first send
    (:meth:`Store.assign_batch`); a batch is always re-sent whole, with the same events."""


@dataclass(frozen=True)
class Lease:
    """A time-limited, exclusive right to work on something in this store, with a fencing token.

    Names in use: ``cycle`` (one cycle at a time per store), ``dispatch`` (one outbox dispatcher
    at a time, in worker mode) and ``image:<registry>/<repository>@<digest>`` (a worker's claim
    on one image for one round). See :meth:`Store.acquire_lease`."""

    name: str
    holder: str
    """Who holds it: unique per process (``host:pid:nonce``)."""
    token: int
    """Fencing token: greater after every takeover of this name, the same across renewals.
    Writes made under :meth:`Store.fenced` with a token that is no longer current are refused."""
    expires_at: datetime
    """Free for others from this instant on, unless renewed (the store's clock)."""


@dataclass(frozen=True)
class ImageStatus:
    """A watched image as ``vulnwatch status`` shows it."""

    image: Image
    scanner: str | None
    last_scanned_at: datetime | None
    counts: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    """Error of the last attempt, if it failed (the previous findings are still kept)."""
    last_error_at: datetime | None = None
    last_checked_at: datetime | None = None
    """When a cycle last confirmed the snapshot (it is rewritten only when something changed)."""
    kev: int | None = None
    """Findings listed in CISA's KEV catalog (suppressed ones not counted); None when the store
    has no count for the snapshot (SQL: ``snapshots.kev``, migration 6; DynamoDB: the status
    item's ``kev``)."""
    coverage: CoverageSummary | None = None
    """What the advisory data could judge of the image (state, ecosystems without data, packages
    not judged); None when the scanner says nothing about it (ECR) or it was not recorded yet
    (SQL: ``snapshots.coverage_summary``, migration 6; the full coverage is
    :attr:`ScanResult.coverage` of the snapshot)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One stored scan of one digest (for trends)."""

    image: Image
    scanner: str
    scanned_at: datetime
    recorded_at: datetime
    counts: dict[str, int]


# --- read models of the dashboard (see the read methods at the end of Store) -----------------

FLEET_SORTS: tuple[str, ...] = ("severity", "total", "critical", "high", "medium", "low", "kev", "repository",
                                "registry", "last_scanned", "last_checked")
"""Orders :meth:`Store.fleet` knows: ``severity`` (most critical first, then high, ...), a count
(``total``, one severity, or ``kev``: findings listed in KEV, then by severity), a name (``repository``: registry, repository, then tags), or a time."""


@dataclass(frozen=True)
class FleetQuery:
    """Which images :meth:`Store.fleet` returns, in what order, which page."""

    text: str = ""
    """Case-insensitive substring of the registry name, the repository or a tag ("" for all)."""
    registry: str | None = None
    """Only images of this registry (configured name)."""
    min_severity: Severity | None = None
    """Only images with at least one finding of this severity or worse."""
    with_notes: bool = False
    """Only images with coverage warnings: their snapshot carries notes (unread files, stale data)
    or its coverage is not complete."""
    with_errors: bool = False
    """Only images whose last scan attempt failed."""
    include_superseded: bool = False
    """Also digests that every tag of theirs has moved away from (older builds; left out by default)."""
    sort: str = "severity"
    """One of :data:`FLEET_SORTS`."""
    descending: bool = True
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True)
class FleetImage:
    """One row of the fleet overview."""

    status: ImageStatus
    notes: tuple[str, ...] = ()
    """The snapshot's notes (coverage warnings)."""
    superseded: bool = False
    """Every tag that pointed at this digest has moved to another one."""


@dataclass(frozen=True)
class FleetPage:
    total: int
    """Images matching the query (all pages)."""
    images: list[FleetImage]
    """This page, in the requested order."""


@dataclass(frozen=True)
class TrendPoint:
    """Findings per severity over the current images of the fleet at ``at``."""

    at: datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class Affected:
    """One image holding a finding of a vulnerability."""

    image: Image
    finding: Finding
    since: datetime | None
    """Since when this digest has had the finding without a break (first scan showing it)."""


@dataclass(frozen=True)
class FixableGroup:
    """Fixable findings of the current images that share vulnerability, package, version and fix."""

    ecosystem: str
    package: str
    version: str
    """Installed version."""
    fixed_versions: tuple[str, ...]
    severity: str
    vulnerability_id: str
    findings: int
    """How many findings (one per image holding it)."""


@dataclass(frozen=True)
class FixableSummary:
    groups: list[FixableGroup]
    images_by_package: dict[tuple[str, str], int]
    """(ecosystem, package) -> current images with at least one fixable finding in it."""


@dataclass(frozen=True)
class FixRecord:
    """One finding fixed in a repository (a ``findings_changed`` or ``rebuild`` event's ``fixed``),
    with the first time it was seen there since it was last fixed."""

    registry: str
    repository: str
    vulnerability_id: str
    ecosystem: str
    package: str
    first_seen: datetime | None
    fixed_at: datetime


@dataclass(frozen=True)
class StoreStats:
    """Totals for ``/metrics``, over current images (superseded digests left out)."""

    images: dict[str, int]
    """Registry -> images."""
    findings: dict[str, int]
    """Severity name -> findings."""
    failing: dict[str, int]
    """Registry -> images whose last scan attempt failed."""
    last_checked: dict[str, datetime]
    """Registry -> the last time a cycle recorded or confirmed one of its images."""
    deliveries: dict[str, int]
    """Delivery status -> outbox rows."""
    retrying: int
    """Pending deliveries that failed at least once."""
    kev: int = 0
    """Findings listed in CISA's KEV catalog over the current images (from each snapshot's KEV
    count; snapshots without one count 0)."""


_SEVERITIES = [s.name for s in sorted(Severity, reverse=True)]


def _fleet_sort_key(sort: str):
    def key(row: FleetImage):
        st = row.status
        c = st.counts
        if sort == "severity":
            return tuple(c.get(s, 0) for s in _SEVERITIES)
        if sort == "total":
            return sum(c.values())
        if sort in ("critical", "high", "medium", "low"):
            return c.get(sort.upper(), 0)
        if sort == "kev":
            return (st.kev or 0, *(c.get(s, 0) for s in _SEVERITIES))
        if sort == "registry":
            return (st.image.registry, st.image.repository)
        if sort == "last_scanned":
            return st.last_scanned_at or datetime.min.replace(tzinfo=timezone.utc)
        if sort == "last_checked":
            return st.last_checked_at or datetime.min.replace(tzinfo=timezone.utc)
        return (st.image.repository, st.image.registry)
    return key


def bucket_width(start: datetime, end: datetime, buckets: int) -> float:
    """Seconds per bucket so that ``start..end`` fits in ``buckets`` buckets (at least 1 ms)."""
    return max(0.001, (end - start).total_seconds() / max(1, buckets) * 1.0001)


class Store(abc.ABC):
    """Persistent state. All writes of one image's scan happen in one transaction."""

    @classmethod
    def from_url(cls, url: str) -> "Store":
        """Open the store at ``url`` (``state.url``; the scheme picked this class)."""
        raise NotImplementedError(f"{cls.__name__} cannot be opened from a URL")

    # --- snapshots -------------------------------------------------------------------
    @abc.abstractmethod
    def snapshot(self, registry: str, repository: str, digest: str, *,
                 with_inventory: bool = True) -> ScanResult | None:
        """The current snapshot of a digest, or None if never scanned. ``with_inventory=False``
        leaves ``packages`` empty (cheaper, for re-matching, which reads them as rows)."""

    @abc.abstractmethod
    def snapshots(self, registry: str | None = None) -> list[ScanResult]:
        """All current snapshots (optionally of one registry)."""

    def current(self, keys: Sequence[tuple[str, str, str]]
                ) -> tuple[dict[tuple[str, str, str], ScanResult], set[tuple[str, str, str]]]:
        """For the images of ``keys`` (``Image.key``): their current snapshots (those that have
        one) and the keys whose last scan failed (a recorded error). What one slice of a
        repository needs before it is scanned, without listing the whole store. This default
        asks per key; stores override it with one batched read."""
        wanted = list(dict.fromkeys(tuple(k) for k in keys))
        snaps = {}
        for key in wanted:
            snap = self.snapshot(*key)
            if snap is not None:
                snaps[key] = snap
        want = set(wanted)
        failing = {st.image.key for st in self.images() if st.last_error and st.image.key in want}
        return snaps, failing

    @abc.abstractmethod
    def inventories(self, registry: str | None = None,
                    keys: Sequence[tuple[str, str, str]] | None = None) -> Iterator[StoredInventory]:
        """Every snapshot that carries an inventory (or those of ``keys``), streamed."""

    def collect_finding_sets(self) -> int:
        """Delete stored findings no snapshot or history entry refers to any more (stores that
        keep findings per distinct package); returns how many sets went. The default keeps none."""
        return 0

    def package_index(self, names: Iterable[str]) -> list | None:
        """The distinct packages of the stored inventories looked up under one of ``names``
        (compared folded: :func:`vulnwatch.store._name_index.name_key`), as
        :class:`~vulnwatch.store._name_index.IndexedPackage` (with the findings signature last
        kept by :meth:`set_package_signatures`); ``names`` empty: only bring the index up to date.
        None (the default): this store keeps no package index, and a re-match reads every
        inventory."""
        return None

    def set_package_signatures(self, signatures: Mapping[tuple, str]) -> None:
        """Keep each distinct package's findings signature, ``{(distro, matching key): signature}``
        (see :meth:`package_index`); packages not in the index are ignored. The default keeps none."""

    def inventories_holding(self, package_ids: Iterable[str]) -> list[tuple[str, str, str]]:
        """Keys of the stored inventories that may hold one of the packages ``package_ids`` (from
        :meth:`package_index`): every image holding one, perhaps others; and every image whose
        coverage names an ecosystem without data. Only called on a store whose
        :meth:`package_index` is not None."""
        raise NotImplementedError

    def holdings(self, package_ids: Iterable[str]) -> dict[tuple[str, str, str], frozenset[str]] | None:
        """Which of the packages ``package_ids`` (from :meth:`package_index`) each indexed image
        holds, exactly: ``{image key: the ids it holds}``, images holding none left out. An image
        not indexed since it was last written, or holding one of them twice, is left out too
        (its holdings are not known exactly: read its inventory). None (the default): this store
        keeps no package index."""
        return None

    def inventory_ecosystems(self) -> set[str]:
        """The ecosystems (as stored, with release: ``Debian:12``) of every stored inventory's
        packages: what advisory data the fleet needs."""
        return {r[2] for inv in self.inventories() for r in inv.rows if r[2]}

    @abc.abstractmethod
    def tag_digest(self, registry: str, repository: str, tag: str) -> str | None:
        """The digest a tag pointed to when last seen, or None."""

    def tag_digests(self, registry: str, repository: str, tags: Sequence[str]) -> dict[str, str]:
        """:meth:`tag_digest` of many tags of one repository at once: ``{tag: digest}``, tags
        never seen left out. The default asks one by one."""
        out = {}
        for tag in tags:
            digest = self.tag_digest(registry, repository, tag)
            if digest:
                out[tag] = digest
        return out

    @abc.abstractmethod
    def commit_scan(self, result: ScanResult, deliveries: Sequence[tuple[Event, Sequence[str]]], *,
                    keep_inventory: bool = False, expected: ScanResult | None = UNCHECKED) -> None:
        """In one transaction: replace the digest's snapshot, append to history, record the
        tags as now pointing to this digest, clear the image's error, and add each event
        to the outbox once per named sink. An event whose id is already in the outbox is
        not added again (idempotent re-runs). ``keep_inventory`` keeps the stored packages and
        distro (a re-match, whose result carries none) instead of replacing them.

        ``expected`` is the snapshot of this digest the caller diffed against (None: there was
        none). Unless it is :data:`UNCHECKED`, the write happens only if the stored snapshot is
        still that one (same ``scanned_at`` and the same findings, by
        :func:`~vulnwatch.model.findings_signature`); otherwise nothing is written and
        :class:`StoreConflict` is raised. This is what keeps two writers from recording one
        change twice."""

    def commit_scans(self, items: Sequence[ScanCommit]) -> list[StoreConflict | None]:
        """Many :meth:`commit_scan` at once, as few transactions as the store can (SQLStore: one).
        Still all or nothing per image: an image is written whole with its outbox rows, or not
        at all. Returns, per item, None when it was written or the :class:`StoreConflict` that
        kept it from being written (its ``expected`` snapshot is no longer the stored one; the
        others are written). Any other error writes none of them (the caller may retry them one
        by one). The same image twice in ``items`` is written in order."""
        out: list[StoreConflict | None] = []
        for it in items:
            try:
                self.commit_scan(it.result, it.deliveries, keep_inventory=it.keep_inventory, expected=it.expected)
                out.append(None)
            except StoreConflict as e:
                out.append(e)
        return out

    def snapshots_of(self, keys: Sequence[tuple[str, str, str]], *,
                     with_inventory: bool = True) -> Iterator[ScanResult]:
        """The current snapshots of ``keys`` (``Image.key``), streamed, in no particular order;
        keys without one are left out. SQLStore reads them a few hundred per query."""
        for k in keys:
            snap = self.snapshot(*k, with_inventory=with_inventory)
            if snap is not None:
                yield snap

    def marker(self, name: str) -> str | None:
        """A value the pipeline keeps in the store under ``name`` (``set_marker``), or None. The
        default keeps none (re-matching then always looks at every inventory)."""
        return None

    def set_marker(self, name: str, value: str) -> None:
        """Keep ``value`` under ``name`` (see :meth:`marker`); the default keeps nothing."""

    @abc.abstractmethod
    def record_failure(self, image: Image, scanner: str, error: str, at: datetime) -> None:
        """Remember that scanning ``image`` failed (the snapshot, if any, is kept)."""

    @abc.abstractmethod
    def mark_checked(self, keys: Sequence[tuple[str, str, str]], at: datetime) -> None:
        """Stamp ``last_checked_at`` of these images (``Image.key``) in one statement: a cycle
        saw them and found their snapshot still current."""

    @abc.abstractmethod
    def images(self) -> list[ImageStatus]:
        """Every image with a snapshot or a recorded failure."""

    @abc.abstractmethod
    def history(self, registry: str, repository: str, digest: str | None = None,
                limit: int = 100) -> list[HistoryEntry]:
        """Past scans, newest first."""

    # --- outbox ----------------------------------------------------------------------
    @abc.abstractmethod
    def due_deliveries(self, now: datetime, limit: int | None = None) -> list[Delivery]:
        """Pending deliveries whose ``next_attempt_at`` has come, oldest first (by creation).

        In order per image per sink: a delivery is not due while an earlier pending delivery
        (by outbox row order) of the same image (registry, repository, digest) to the same sink
        is still waiting for its next attempt; so a later event never overtakes an earlier one
        of its image. Dead and delivered rows do not hold later ones back."""

    @abc.abstractmethod
    def mark_delivered(self, delivery_ids: Sequence[int], at: datetime) -> None:
        """The sink accepted these."""

    @abc.abstractmethod
    def mark_failed(self, delivery_ids: Sequence[int], error: str, at: datetime,
                    next_attempt_at: datetime | None) -> None:
        """One more failed attempt; ``next_attempt_at=None`` dead-letters them."""

    @abc.abstractmethod
    def deliveries(self, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]:
        """Outbox rows, newest first, optionally of one status."""

    @abc.abstractmethod
    def retry_dead(self, delivery_ids: Sequence[int] | None = None, now: datetime | None = None) -> int:
        """Put dead letters (all, or these) back to pending with attempts reset; returns how many."""

    def assign_batch(self, delivery_ids: Sequence[int], batch_id: str) -> None:
        """Record, before the first send, that these pending deliveries go out together as one
        digest message ``batch_id`` (derived from the events it carries). From then on they are
        returned with that ``batch_id`` and the dispatcher re-sends exactly that batch, until it
        is delivered or dead: a retry after a crash carries the same events under the same id.
        Rows already in a batch keep theirs."""
        raise NotImplementedError(f"{type(self).__name__} does not support digest batches")

    # --- leases: one cycle at a time, claims, fencing ----------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl: timedelta, *, take_over: str | None = None) -> Lease:
        """Take lease ``name`` for ``holder`` until now + ``ttl`` (the store's clock).

        Granted when nobody holds it (never taken, released, or expired), when ``holder`` itself
        holds it (then only extended), or when it is held by exactly ``take_over`` (a holder the
        caller knows is gone: a crashed process of its own machine). Every grant to a new holder, and every grant after an
        expiry, gives a fencing token greater than any given before for that name. Atomic: of
        two callers racing, one wins. Raises :class:`LeaseHeld` (naming the holder and the
        expiry) when another holder has it."""
        raise NotImplementedError(f"{type(self).__name__} does not support leases")

    def renew_lease(self, lease: Lease, ttl: timedelta) -> Lease:
        """Extend ``lease`` to now + ``ttl``; the token stays. Raises :class:`LeaseLost` if its
        token is no longer current (someone took it over)."""
        raise NotImplementedError(f"{type(self).__name__} does not support leases")

    def release_lease(self, lease: Lease, *, done: bool = False) -> None:
        """Give ``lease`` up (it is free at once); ``done`` also records that the work it
        covered was finished now (see :meth:`claim_leases`). Does nothing if it was lost."""
        raise NotImplementedError(f"{type(self).__name__} does not support leases")

    def lease(self, name: str) -> Lease | None:
        """The current state of lease ``name`` (held or not: compare ``expires_at``), or None."""
        raise NotImplementedError(f"{type(self).__name__} does not support leases")

    def claim_leases(self, names: Sequence[str], holder: str, ttl: timedelta, *, limit: int,
                     done_before: datetime | None = None) -> list[Lease]:
        """Take up to ``limit`` of the leases ``names`` that are free and, with ``done_before``,
        whose work was not finished (:meth:`release_lease` with ``done``) at or after that time;
        in ``names`` order. Rows another claimer is taking at this moment are skipped, not waited
        for (PostgreSQL: ``FOR UPDATE SKIP LOCKED``), so workers sharing a store split the work
        between them: none gets a name another holds. Returns the leases taken (maybe none)."""
        raise NotImplementedError(f"{type(self).__name__} does not support leases")

    def fenced(self, *leases: Lease) -> AbstractContextManager[None]:
        """A context in which every write this thread makes through this store (``commit_scan``,
        ``record_failure``, ``mark_checked``, the outbox writes) happens only if each of
        ``leases`` is still current (its token unchanged), checked inside the write's own
        transaction: a write under a stale token is rolled back and raises :class:`LeaseLost`.
        Nested contexts add their leases."""
        raise NotImplementedError(f"{type(self).__name__} does not support leases")

    def close(self) -> None:
        """Release connections."""

    # --- reads for the dashboard ------------------------------------------------------
    # Not abstract: each has a default built on the methods above (correct, not fast), which a
    # store overrides with a query of its own (SQLStore does).

    @classmethod
    def open_read_only(cls, url: str) -> "Store":
        """Open the store at ``url`` for reading only, where the database can enforce it (the
        default opens it as :meth:`from_url` does)."""
        return cls.from_url(url)

    def ping(self) -> None:
        """Raise :class:`StoreError` unless the store answers (for readiness probes)."""
        self.deliveries(limit=1)

    def data_version(self) -> str | None:
        """A value that changes whenever a scan or failure is recorded (deliveries aside), for
        caching what is computed from snapshots, history and events; None: cannot tell."""
        return None

    def fleet(self, query: FleetQuery = FleetQuery()) -> FleetPage:
        """One page of the watched images, filtered and sorted (the fleet overview)."""
        if query.sort not in FLEET_SORTS:
            raise ValueError(f"unknown sort {query.sort!r}: use one of {', '.join(FLEET_SORTS)}")
        rows = []
        text = query.text.lower()
        for st in self.images():
            img = st.image
            superseded = not img.tags
            if superseded and not query.include_superseded:
                continue
            if query.registry is not None and img.registry != query.registry:
                continue
            if text and text not in img.registry.lower() and text not in img.repository.lower() and not any(
                    text in t.lower() for t in img.tags):
                continue
            if query.min_severity is not None and not any(
                    n for s, n in st.counts.items() if Severity.parse(s) >= query.min_severity):
                continue
            if query.with_errors and not st.last_error:
                continue
            notes: tuple[str, ...] = ()
            if query.with_notes:
                snap = self.snapshot(*img.key, with_inventory=False)
                notes = snap.notes if snap else ()
                if not notes and (st.coverage is None or st.coverage.state == "complete"):
                    continue
            rows.append(FleetImage(st, notes, superseded))
        rows.sort(key=lambda r: (r.status.image.repository, r.status.image.registry, r.status.image.digest))
        rows.sort(key=_fleet_sort_key(query.sort), reverse=query.descending)   # stable: ties stay in name order
        page = rows[query.offset:query.offset + query.limit]
        if not query.with_notes:
            page = [FleetImage(r.status, (s.notes if (s := self.snapshot(*r.status.image.key, with_inventory=False))
                                          else ()), r.superseded) for r in page]
        return FleetPage(total=len(rows), images=page)

    def histories(self, keys: Sequence[tuple[str, str, str]], limit: int = 30) -> dict[tuple[str, str, str], list[HistoryEntry]]:
        """The last ``limit`` scans of each image (``Image.key``), newest first (sparklines)."""
        return {tuple(k): self.history(k[0], k[1], k[2], limit=limit) for k in keys}

    def fleet_trend(self, since: datetime | None = None, buckets: int = 120) -> list[TrendPoint]:
        """Findings per severity summed over the fleet's current images (by ``recorded_at``), cut
        into ``buckets`` equal time buckets from ``since`` (or the first record) to the last one:
        one point per bucket in which something changed, at its last change, with the totals after
        it; what came before ``since`` is folded into a first point at ``since``. The last point is
        what the current images hold now. (The default counts the images tagged now over their
        whole history; SQLStore also counts a digest until its last tag moved away from it.)"""
        changes: list[tuple[datetime, tuple[str, str, str], dict[str, int]]] = []
        for st in self.images():
            if not st.image.tags:
                continue
            for h in self.history(*st.image.key, limit=1_000_000):
                changes.append((h.recorded_at, st.image.key, h.counts))
        if not changes:
            return []
        changes.sort(key=lambda c: c[0])
        start, end = changes[0][0], changes[-1][0]
        if since is not None and since > start:
            start = since
        width = bucket_width(start, end, buckets)
        latest: dict[tuple[str, str, str], dict[str, int]] = {}
        total = {s: 0 for s in _SEVERITIES}
        points: dict[int, tuple[datetime, dict[str, int]]] = {}
        for at, key, counts in changes:
            for s, n in latest.get(key, {}).items():
                total[s] = total.get(s, 0) - n
            latest[key] = counts
            for s, n in counts.items():
                total[s] = total.get(s, 0) + n
            b = -1 if at < start else int((at - start).total_seconds() / width)
            points[b] = (at if b >= 0 else start, dict(total))
        return [TrendPoint(at, c) for _, (at, c) in sorted(points.items())]

    def recent_events(self, registry: str | None = None, repository: str | None = None,
                      digest: str | None = None, limit: int = 100) -> list[Event]:
        """Change events, newest first; with ``digest``, also the rebuilds that moved a tag away
        from it. The default reads them from the outbox (events without a sink are missed)."""
        seen: dict[str, Event] = {}
        for d in self.deliveries(limit=1_000_000):
            ev = d.event
            if ev.id in seen:
                continue
            if registry is not None and ev.image.registry != registry:
                continue
            if repository is not None and ev.image.repository != repository:
                continue
            if digest is not None and ev.image.digest != digest and ev.previous_digest != digest:
                continue
            seen[ev.id] = ev
        return sorted(seen.values(), key=lambda e: e.occurred_at, reverse=True)[:limit]

    def affected(self, vulnerability_id: str) -> list[Affected]:
        """Every current image with a finding of ``vulnerability_id`` (its id or an alias)."""
        out = []
        for st in self.images():
            if not st.image.tags or st.last_scanned_at is None:
                continue
            snap = self.snapshot(*st.image.key, with_inventory=False)
            hits = [f for f in (snap.findings if snap else ()) if vulnerability_id in (f.vulnerability_id, *f.aliases)]
            if hits:
                history = self.history(*st.image.key, limit=1_000_000)
                since = history[-1].scanned_at if history else snap.scanned_at
                out.extend(Affected(snap.image, f, since) for f in hits)
        return out

    def fixable_summary(self) -> FixableSummary:
        """The fixable findings of the current images, grouped for remediation planning."""
        groups: dict[tuple, int] = {}
        images: dict[tuple[str, str], set] = {}
        for st in self.images():
            if not st.image.tags or st.last_scanned_at is None:
                continue
            snap = self.snapshot(*st.image.key, with_inventory=False)
            for f in snap.findings if snap else ():
                if not f.fixable:
                    continue
                k = (f.ecosystem, f.package_name, f.package_version, f.fixed_versions, f.severity.name,
                     f.vulnerability_id)
                groups[k] = groups.get(k, 0) + 1
                images.setdefault((f.ecosystem, f.package_name), set()).add(st.image.key)
        return FixableSummary([FixableGroup(*k, findings=n) for k, n in groups.items()],
                              {k: len(v) for k, v in images.items()})

    def fixes(self, since: datetime) -> list[FixRecord]:
        """Findings fixed since ``since`` in each repository, with when each was first seen there
        (after its previous fix, if any): what mean time to remediate is computed from."""
        events = [e for e in self.recent_events(limit=1_000_000)]
        return fix_records(events, since)

    def stats(self) -> StoreStats:
        """Totals for metrics."""
        images: dict[str, int] = {}
        findings = {s: 0 for s in _SEVERITIES}
        failing: dict[str, int] = {}
        checked: dict[str, datetime] = {}
        kev = 0
        for st in self.images():
            reg = st.image.registry
            if st.last_error:
                failing[reg] = failing.get(reg, 0) + 1
            at = st.last_checked_at or st.last_scanned_at
            if at is not None and (reg not in checked or at > checked[reg]):
                checked[reg] = at
            if not st.image.tags:
                continue
            images[reg] = images.get(reg, 0) + 1
            for s, n in st.counts.items():
                findings[s] = findings.get(s, 0) + n
            kev += st.kev or 0
        deliveries = {s.value: 0 for s in DeliveryStatus}
        retrying = 0
        for d in self.deliveries(limit=1_000_000):
            deliveries[d.status.value] += 1
            retrying += d.status is DeliveryStatus.PENDING and d.attempts > 0
        return StoreStats(images, findings, failing, checked, deliveries, retrying, kev)

    def delivery(self, delivery_id: int) -> Delivery | None:
        """One outbox row by id, or None."""
        return next((d for d in self.deliveries(limit=1_000_000) if d.id == delivery_id), None)


def fix_records(events: Sequence[Event], since: datetime) -> list[FixRecord]:
    """:class:`FixRecord` of the findings fixed at or after ``since``, from change events (any
    order): per repository and (vulnerability, ecosystem, package), the first addition after
    the previous fix is when it was first seen."""
    marks: list[tuple[datetime, int, str, str, tuple[str, str, str]]] = []
    for ev in events:
        img = ev.image
        for f in ev.added:
            marks.append((ev.occurred_at, 0, img.registry, img.repository,
                          (f.vulnerability_id, f.ecosystem, f.package_name)))
        if ev.kind in (EventKind.FINDINGS_CHANGED, EventKind.REBUILD):
            for f in ev.fixed:
                marks.append((ev.occurred_at, 1, img.registry, img.repository,
                              (f.vulnerability_id, f.ecosystem, f.package_name)))
    return sweep_fixes(marks, since)


def sweep_fixes(marks, since: datetime) -> list[FixRecord]:
    """``marks``: (time, 0 added / 1 fixed, registry, repository, (vulnerability, ecosystem,
    package)). Returns the fixes at or after ``since`` with their first-seen time."""
    open_since: dict[tuple, datetime | None] = {}
    out = []
    for at, what, registry, repository, key in sorted(marks, key=lambda m: (m[0], m[1])):
        k = (registry, repository, key)
        if what == 0:
            if open_since.get(k) is None:
                open_since[k] = at
            continue
        if k not in open_since and at < since:
            continue
        first = open_since.pop(k, None)
        if at >= since:
            out.append(FixRecord(registry, repository, key[0], key[1], key[2], first, at))
    return out


MAX_ERROR_CHARS = 4000
"""Longer error texts are cut (a scanner's error can carry a whole HTTP body)."""


def stored_error(text: object) -> str:
    """An error text as every store writes it (``last_error`` of images and deliveries): through
    :func:`vulnwatch.logs.redact` -- registered secrets and whatever looks like a credential,
    also in what a server sent back -- and cut to :data:`MAX_ERROR_CHARS`. The stores' one
    choke point: nothing else writes an error."""
    return redact(str(text))[:MAX_ERROR_CHARS]
