"""Delivers the outbox: retries with backoff, attempts, dead letters.

Events reach sinks through the store's outbox (written in the same transaction as the
snapshot, see ``Store.commit_scan``). :class:`Dispatcher` reads the due rows, sends them
and records the outcome. Delivery is **at least once**: a crash between a sink accepting
a message and ``mark_delivered`` sends it again on the next run, with the same event id
(receivers de-duplicate on it; the CloudEvent ``id``).

Per sink, per run:

* ``per_image`` sinks get one :meth:`Notifier.send` per delivery, ``digest`` sinks one
  send with all their due events.
* In order per image per sink: the store holds a later delivery back while an earlier one of
  the same image to the same sink waits for a retry (``Store.due_deliveries``), and the due
  ones are sent oldest first.
* A digest is a **batch** fixed before its first send: the due deliveries not yet in one are
  recorded as batch ``batch_id_of(them)`` (``Store.assign_batch``) and only then sent. A batch
  is retried (after a failure, or after a crash between the sink accepting it and
  ``mark_delivered``) with exactly the same events, hence the same digest id; new events go into
  a new batch. A batch succeeds, retries or dies as one.
* Success -> ``mark_delivered``.
* Failure -> one more attempt recorded. Not retryable (e.g. HTTP 404), or attempts reached
  ``max_attempts`` -> dead letter (``mark_failed(next_attempt_at=None)``). Otherwise the
  next attempt is at ``now + U(0, 1) * min(backoff_max, backoff_base * 2**(attempts-1))``
  ("full jitter"), and never before the receiver's ``Retry-After``.
* After a retryable failure the sink's remaining deliveries are left for a later run
  (counted as ``skipped``, attempts unchanged): a sink that is down is not hammered.
* A delivery for a sink no longer configured is dead at once with an error saying so.
* One failing sink never stops the others; stored errors never contain URLs or secrets.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..model import current_deadline, stable_id, utcnow
from ..store.interface import Delivery, LeaseLost, Store
from ..logs import redact
from ..notify.interface import DeliveryError, Notifier
from .routing import MODES

log = logging.getLogger(__name__)


def batch_id_of(deliveries: Sequence[Delivery]) -> str:
    """The id of a digest batch: derived from the ids of the events it carries (the same events,
    the same batch id)."""
    return stable_id("batch", sorted(d.event.id for d in deliveries))


@dataclass(frozen=True)
class DispatchReport:
    """What one :meth:`Dispatcher.dispatch` did."""

    delivered: int = 0
    """Deliveries the sinks accepted."""
    failed: int = 0
    """Deliveries that failed and were scheduled for another attempt."""
    dead: int = 0
    """Deliveries dead-lettered (permanent error, max attempts, or sink gone)."""
    skipped: int = 0
    """Due deliveries not attempted because their sink had just failed (left pending)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Sink name -> last error of this run (secrets removed)."""

    @property
    def ok(self) -> bool:
        """True when nothing failed or died."""
        return not (self.failed or self.dead)


@dataclass
class _Tally:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    errors: dict[str, str] = field(default_factory=dict)


class Dispatcher:
    """Sends due outbox rows to their sinks (``notifiers``: sink name -> notifier)."""

    def __init__(self, store: Store, notifiers: Mapping[str, Notifier], *, max_attempts: int = 8,
                 backoff_base: float = 30.0, backoff_max: float = 3600.0,
                 modes: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 rng: Callable[[], float] = random.random) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        modes = dict(modes or {})
        for sink, mode in modes.items():
            if mode not in MODES:
                raise ValueError(f"notification {sink!r}: mode {mode!r} is not one of {', '.join(MODES)}")
        self.store = store
        self.notifiers = dict(notifiers)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.modes = modes
        self.clock = clock
        self.rng = rng

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds until the next try after ``attempts`` failed attempts (jittered)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** min(max(0, attempts - 1), 40))
        delay = self.rng() * ceiling
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def dispatch(self, now: datetime | None = None) -> DispatchReport:
        """Deliver everything due at ``now`` (default: the clock); see the module doc."""
        now = now or self.clock()
        due = self.store.due_deliveries(now)
        per_sink: dict[str, list[Delivery]] = {}
        for d in due:
            per_sink.setdefault(d.sink, []).append(d)
        tally = _Tally()
        for sink, deliveries in per_sink.items():
            try:
                self._dispatch_sink(sink, deliveries, now, tally)
            except LeaseLost:
                raise      # another process works this store now: stop, it will deliver
            except Exception as e:  # a store failure for one sink must not stop the others
                msg = f"sink {sink!r}: could not record the outcome ({type(e).__name__})"
                log.error("%s", msg)
                tally.errors[sink] = msg
        report = DispatchReport(tally.delivered, tally.failed, tally.dead, tally.skipped, tally.errors)
        if due:
            log.info("outbox: %d delivered, %d to retry, %d dead, %d skipped", report.delivered,
                     report.failed, report.dead, report.skipped)
        return report

    # ------------------------------------------------------------------------------------
    def _dispatch_sink(self, sink: str, deliveries: list[Delivery], now: datetime, tally: _Tally) -> None:
        notifier = self.notifiers.get(sink)
        if notifier is None:
            msg = (f"notification sink {sink!r} is no longer configured; add it back to "
                   "notifications and retry the dead letters, or ignore them")
            self.store.mark_failed([d.id for d in deliveries], msg, now, None)
            tally.dead += len(deliveries)
            tally.errors[sink] = msg
            return
        if self.modes.get(sink, "per_image") == "digest":
            batches = self._digest_batches(deliveries)
        else:
            batches = [[d] for d in deliveries]
        deadline = current_deadline()
        for i, batch in enumerate(batches):
            if deadline is not None and deadline.expired:   # the cycle's time is up: the rest waits
                left = sum(len(b) for b in batches[i:])
                tally.skipped += left
                msg = f"sink {sink!r}: {left} notification(s) left in the outbox for the next cycle: {deadline.what} reached"
                log.warning("%s", msg)
                tally.errors.setdefault(sink, msg)
                return
            error = self._send(notifier, batch)
            if error is None:
                self.store.mark_delivered([d.id for d in batch], now)
                tally.delivered += len(batch)
                continue
            tally.errors[sink] = str(error)
            self._record_failure(batch, error, now, tally)
            if error.retryable:
                tally.skipped += sum(len(b) for b in batches[i + 1:])
                return

    def _digest_batches(self, deliveries: list[Delivery]) -> list[list[Delivery]]:
        """The batches already recorded (re-sent as they are), then one new batch of the rest,
        recorded before it is sent."""
        recorded: dict[str, list[Delivery]] = {}
        fresh: list[Delivery] = []
        for d in deliveries:
            if d.batch_id:
                recorded.setdefault(d.batch_id, []).append(d)
            else:
                fresh.append(d)
        batches = list(recorded.values())
        if fresh:
            bid = batch_id_of(fresh)
            try:
                self.store.assign_batch([d.id for d in fresh], bid)
            except NotImplementedError:   # a store without batches: sent as before, not pinned
                log.debug("store %s keeps no digest batches", type(self.store).__name__)
            batches.append([replace(d, batch_id=bid) for d in fresh])
        return batches

    def _send(self, notifier: Notifier, batch: Sequence[Delivery]) -> DeliveryError | None:
        try:
            notifier.send([d.event for d in batch])
        except DeliveryError as e:
            clean = DeliveryError(redact(str(e), urls=True), retryable=e.retryable, retry_after=e.retry_after)
            log.warning("%s", clean)
            return clean
        except Exception as e:  # a bug in a notifier: keep only the type, messages may hold URLs
            log.error("sink %r: unexpected %s while sending", notifier.name, type(e).__name__)
            return DeliveryError(f"sink {notifier.name!r}: unexpected {type(e).__name__} while sending")
        return None

    def _record_failure(self, batch: Sequence[Delivery], error: DeliveryError, now: datetime,
                        tally: _Tally) -> None:
        if len(batch) > 1:   # a digest batch lives or dies whole, so it is re-sent unchanged
            gone = not error.retryable or max(d.attempts for d in batch) + 1 >= self.max_attempts
            dead = [d.id for d in batch] if gone else []
        else:
            dead = [d.id for d in batch if not error.retryable or d.attempts + 1 >= self.max_attempts]
        retry = [d.id for d in batch if d.id not in dead]
        if retry:
            # one time for the whole batch, so a digest's events stay together
            attempts = max(d.attempts + 1 for d in batch if d.id in retry)
            when = now + timedelta(seconds=self.backoff(attempts, error.retry_after))
            self.store.mark_failed(retry, str(error), now, when)
            tally.failed += len(retry)
        if dead:
            reason = str(error) if not error.retryable else f"{error} (gave up after {self.max_attempts} attempts)"
            self.store.mark_failed(dead, reason, now, None)
            tally.dead += len(dead)
