"""A small in-memory Store with only the outbox implemented (used when SQLStore is absent)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from vulnwatch.model import Event, ScanResult
from vulnwatch.store.interface import Delivery, DeliveryStatus, Store


class MemoryOutboxStore(Store):
    def __init__(self) -> None:
        self.rows: dict[int, Delivery] = {}
        self._next = 1

    # outbox -------------------------------------------------------------------------------
    def commit_scan(self, result: ScanResult | None, deliveries: Sequence[tuple[Event, Sequence[str]]]) -> None:
        seen = {(d.event.id, d.sink) for d in self.rows.values()}
        for event, sinks in deliveries:
            for sink in sinks:
                if (event.id, sink) in seen:
                    continue
                self.rows[self._next] = Delivery(id=self._next, event=event, sink=sink,
                                                 status=DeliveryStatus.PENDING, attempts=0,
                                                 created_at=event.occurred_at)
                self._next += 1

    def due_deliveries(self, now: datetime, limit: int | None = None) -> list[Delivery]:
        due = [d for d in self.rows.values() if d.status is DeliveryStatus.PENDING
               and (d.next_attempt_at is None or d.next_attempt_at <= now)]
        due.sort(key=lambda d: (d.created_at, d.id))
        return due[:limit] if limit else due

    def mark_delivered(self, delivery_ids: Sequence[int], at: datetime) -> None:
        for i in delivery_ids:
            self.rows[i] = dataclasses.replace(self.rows[i], status=DeliveryStatus.DELIVERED, delivered_at=at,
                                               attempts=self.rows[i].attempts + 1)

    def mark_failed(self, delivery_ids: Sequence[int], error: str, at: datetime,
                    next_attempt_at: datetime | None) -> None:
        for i in delivery_ids:
            d = self.rows[i]
            self.rows[i] = dataclasses.replace(
                d, attempts=d.attempts + 1, last_error=error, next_attempt_at=next_attempt_at,
                status=DeliveryStatus.PENDING if next_attempt_at else DeliveryStatus.DEAD)

    def deliveries(self, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]:
        rows = [d for d in self.rows.values() if status is None or d.status is status]
        return sorted(rows, key=lambda d: d.id, reverse=True)[:limit]

    def retry_dead(self, delivery_ids: Sequence[int] | None = None, now: datetime | None = None) -> int:
        n = 0
        for i, d in list(self.rows.items()):
            if d.status is DeliveryStatus.DEAD and (delivery_ids is None or i in delivery_ids):
                self.rows[i] = dataclasses.replace(d, status=DeliveryStatus.PENDING, attempts=0,
                                                   next_attempt_at=now)
                n += 1
        return n

    # not needed by the dispatcher -----------------------------------------------------------
    def snapshot(self, registry, repository, digest):
        raise NotImplementedError

    def snapshots(self, registry=None):
        raise NotImplementedError

    def tag_digest(self, registry, repository, tag):
        raise NotImplementedError

    def record_failure(self, image, scanner, error, at):
        raise NotImplementedError

    def images(self):
        raise NotImplementedError

    def history(self, registry, repository, digest=None, limit=100):
        raise NotImplementedError
