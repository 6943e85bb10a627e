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
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from collections.abc import Iterator

from ..model import Event, Image, PackageRow, ScanResult, StoredInventory  # noqa: F401  (re-exported)


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


@dataclass(frozen=True)
class HistoryEntry:
    """One stored scan of one digest (for trends)."""

    image: Image
    scanner: str
    scanned_at: datetime
    recorded_at: datetime
    counts: dict[str, int]


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

    @abc.abstractmethod
    def inventories(self, registry: str | None = None,
                    keys: Sequence[tuple[str, str, str]] | None = None) -> Iterator[StoredInventory]:
        """Every snapshot that carries an inventory (or those of ``keys``), streamed."""

    def inventory_ecosystems(self) -> set[str]:
        """The ecosystems (as stored, with release: ``Debian:12``) of every stored inventory's
        packages: what advisory data the fleet needs."""
        return {r[2] for inv in self.inventories() for r in inv.rows if r[2]}

    @abc.abstractmethod
    def tag_digest(self, registry: str, repository: str, tag: str) -> str | None:
        """The digest a tag pointed to when last seen, or None."""

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
