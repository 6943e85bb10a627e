"""The loop of ``vulnwatch watch``: cycles on a schedule until asked to stop.

* Each cycle runs :meth:`Pipeline.run_cycle` under a :class:`~vulnwatch.pipeline.CycleLease`:
  one cycle at a time per store (a cycle another process is running makes this tick a
  ``busy`` one: skipped, not waited for), or, in worker mode, as one worker of a round (the
  round is the scheduled start, which every worker computes alike).
* :meth:`Daemon.request_stop` (the SIGTERM/SIGINT handler calls it) ends the wait at once, or
  ends the running cycle after the image being recorded; images being scanned then are
  abandoned with nothing of them written, the lease is released, and :meth:`Daemon.run` returns.
* A cycle that raises (the store is down, a registry cannot be listed at all) is logged and
  remembered; the loop goes on at the next start.
* Readiness: the store answers, the last cycle did not fail, and one finished (or was seen
  running elsewhere) within ``overdue_after``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..model import utcnow
from ..pipeline import CycleLease, CycleReport, Pipeline, new_holder
from ..store.interface import LeaseHeld
from .schedule import Schedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleStatus:
    """How one cycle (or tick) went."""

    started_at: datetime
    finished_at: datetime
    outcome: str
    """``ok``, ``failures`` (some images or deliveries failed; the cycle went on), ``busy`` (another
    process held the store; skipped), ``interrupted`` (stopped, or the lease was lost), ``error``."""
    detail: str = ""
    """What went wrong, or who was busy."""
    events: int = 0
    failures: int = 0

    @property
    def failed(self) -> bool:
        return self.outcome == "error"

    def to_dict(self) -> dict[str, Any]:
        return {"started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
                "outcome": self.outcome, "detail": self.detail, "events": self.events,
                "failures": self.failures}


@dataclass
class Daemon:
    """Runs ``pipeline`` cycles on ``schedule`` until :meth:`request_stop`."""

    pipeline: Pipeline
    schedule: Schedule
    lease_ttl: timedelta = timedelta(minutes=5)
    workers: bool = False
    run_at_start: bool = True
    overdue_after: timedelta | None = None
    """Default: twice the schedule's period plus ``lease_ttl``."""
    holder: str = field(default_factory=new_holder)
    clock: Callable[[], datetime] = utcnow
    on_cycle: Callable[[CycleStatus, CycleReport | None], None] | None = None
    """Called after each cycle (the CLI prints a line)."""

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.started_at = self.clock()
        self.last: CycleStatus | None = None
        """The last cycle's status."""
        self.last_done: datetime | None = None
        """When a cycle last finished without an error (or was found running elsewhere)."""
        self.running_since: datetime | None = None
        self.next_at: datetime | None = None
        self.cycles = 0
        self._loop_alive = False

    @classmethod
    def from_config(cls, cfg: Any, pipeline: Pipeline, **kw: Any) -> "Daemon":
        """The daemon of ``cfg.service`` (:class:`vulnwatch.config.service.ServiceSettings`)."""
        sv = cfg.service
        return cls(pipeline, Schedule(sv.interval, sv.cron), lease_ttl=sv.lease_ttl, workers=sv.workers,
                   run_at_start=sv.run_at_start, overdue_after=sv.overdue_after, **kw)

    # -- control ---------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        """Finish (or abandon) the current image, release the lease, return from :meth:`run`."""
        self.stop.set()

    def run(self, max_cycles: int | None = None) -> None:
        """Cycle until stopped (or ``max_cycles`` cycles ran)."""
        self._loop_alive = True
        try:
            now = self.clock()
            self.next_at = self.schedule.start_of(now) if self.run_at_start else self.schedule.next_after(now)
            first = self.run_at_start
            while not self.stop.is_set():
                wait = (self.next_at - self.clock()).total_seconds()
                if wait > 0 and not first and self.stop.wait(wait):
                    break
                first = False
                tick = self.next_at
                self.run_one(tick)
                self.cycles += 1
                if max_cycles is not None and self.cycles >= max_cycles:
                    break
                self.next_at = self.schedule.next_after(max(self.clock(), tick))   # missed starts are skipped
        finally:
            self._loop_alive = False

    def run_one(self, tick: datetime) -> CycleStatus:
        """One cycle of the round starting at ``tick``; never raises."""
        started = self.clock()
        self.running_since = started
        lease = CycleLease(holder=self.holder, ttl=self.lease_ttl, worker=self.workers,
                           round_start=tick if self.workers else None)
        report: CycleReport | None = None
        try:
            report = self.pipeline.run_cycle(lease=lease, stop=self.stop)
            if report.interrupted:
                status = CycleStatus(started, self.clock(), "interrupted", report.interrupted,
                                     len(report.events), len(report.failures))
            else:
                d = report.delivery
                bad = bool(report.failures) or bool(d is not None and (d.failed or d.dead))
                status = CycleStatus(started, self.clock(), "failures" if bad else "ok", "",
                                     len(report.events), len(report.failures))
        except LeaseHeld as e:
            status = CycleStatus(started, self.clock(), "busy", f"another process runs the cycle ({e.holder})")
        except Exception as e:  # the loop outlives a bad cycle; readiness reports it
            log.exception("cycle failed")
            status = CycleStatus(started, self.clock(), "error", f"{type(e).__name__}: {e}")
        self.running_since = None
        self.last = status
        if status.outcome in ("ok", "failures", "busy"):
            self.last_done = status.finished_at
        if self.on_cycle is not None:
            try:
                self.on_cycle(status, report)
            except Exception:  # printing must not stop the loop
                log.exception("on_cycle callback failed")
        return status

    # -- health ----------------------------------------------------------------------------
    def overdue_limit(self) -> timedelta:
        if self.overdue_after is not None:
            return self.overdue_after
        return 2 * self.schedule.period(self.clock()) + self.lease_ttl

    def live(self) -> tuple[bool, dict[str, Any]]:
        """Alive while the loop runs (or has not started yet)."""
        ok = self._loop_alive or self.cycles == 0 and not self.stop.is_set()
        return ok, {"cycles": self.cycles, "stopping": self.stop.is_set()}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the store answers, the last cycle did not fail, and a cycle finished
        within :meth:`overdue_limit` (counted from the daemon's start before the first)."""
        details: dict[str, Any] = {"holder": self.holder, "workers": self.workers}
        try:
            self.pipeline.store.due_deliveries(self.clock(), limit=1)
            details["store"] = "ok"
            store_ok = True
        except Exception as e:
            details["store"] = f"unreachable ({type(e).__name__})"
            store_ok = False
        now = self.clock()
        since = self.last_done or self.started_at
        overdue = now - since > self.overdue_limit() and self.running_since is None
        details["last_cycle"] = self.last.to_dict() if self.last else None
        details["overdue"] = overdue
        details["next_cycle_at"] = self.next_at.isoformat() if self.next_at else None
        if self.running_since is not None:
            details["running_since"] = self.running_since.isoformat()
        failed = self.last is not None and self.last.failed
        return store_ok and not failed and not overdue and not self.stop.is_set(), details


__all__ = ["CycleStatus", "Daemon"]
