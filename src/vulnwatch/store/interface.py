"""State that outlives a run: the ``Store`` interface.

Holds the current snapshot per image digest, the full scan history, tag -> digest
history, per-image failures, and the notification outbox. Implementations, by URL scheme in
:data:`vulnwatch.store.STORES`: ``sql`` (SQLAlchemy: SQLite by default, PostgreSQL).

Secrets never reach the store: sinks are referred to by their configured name.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collections.abc import Iterator

from ..model import Event, Image, PackageRow, ScanResult, StoredInventory  # noqa: F401  (re-exported)


class StoreError(Exception):
    """The state store failed or holds data this version cannot read; the message says which."""


class StoreConflict(StoreError):
    """The snapshot a caller diffed against is no longer the stored one: another writer (a second
    cycle, another worker) recorded this image in between. Nothing was written; read the
    snapshot again, diff again, and commit again."""


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
        """Pending deliveries whose ``next_attempt_at`` has come, oldest first."""

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

    def close(self) -> None:
        """Release connections."""
