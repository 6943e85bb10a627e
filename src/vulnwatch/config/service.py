"""``service``: how ``vulnwatch watch`` (the daemon) schedules cycles, shares the store with
other processes, and answers health checks. ``vulnwatch run`` uses ``lease_ttl`` and ``workers``
too (the schedule itself is the daemon's, or the cron job's)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from .problems import loc_error
from .types import Duration, Model, format_duration

__all__ = ["ServiceSettings"]


class ServiceSettings(Model):
    """The daemon: schedule, leases and health endpoint."""

    interval: Duration = timedelta(hours=1)
    """Time between cycle starts, when no ``cron`` is given. Cycles start on multiples of it
    (counted from 1970-01-01 UTC), so every process agrees on the schedule; a cycle that runs
    longer than the interval delays the next, never overlaps it."""
    cron: str | None = None
    """A cron expression (five fields, e.g. ``*/15 * * * *``; read by croniter) for cycle
    starts, in UTC; overrides ``interval``."""
    run_at_start: bool = True
    """Run a cycle as soon as the daemon starts, then on the schedule."""
    lease_ttl: Duration = timedelta(minutes=5)
    """How long a cycle's hold on the store (or a worker's claim on an image) lasts unless
    renewed; it is renewed every third of this. A holder that crashed is taken over after it
    (at once when it was a process of the same machine)."""
    workers: bool = False
    """Worker mode: several ``watch`` (or ``run --worker``) processes share one store and split
    each round's images between them (claims; meant for PostgreSQL, where claiming skips rows
    other workers are taking). Off: one cycle at a time per store, the others wait or skip."""
    health_host: str = "0.0.0.0"
    """Address the health endpoint listens on."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """Port of ``/healthz`` (liveness) and ``/readyz`` (readiness); 0 turns the endpoint off."""
    overdue_after: Duration | None = None
    """Readiness fails when no cycle finished for this long. Default: twice the interval (or
    the cron expression's period) plus ``lease_ttl``."""

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"bad cron expression {value!r}: use five fields, minute hour day month weekday "
                             "(e.g. '*/15 * * * *' or '0 3 * * *')")
        return value

    @model_validator(mode="after")
    def _ttl(self) -> "ServiceSettings":
        if self.lease_ttl < timedelta(seconds=1):
            raise loc_error(("lease_ttl",), f"lease_ttl ({format_duration(self.lease_ttl)}) must be at "
                            "least 1s: it is renewed every third of it")
        return self
