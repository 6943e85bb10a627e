"""``delivery``: how notifications are retried from the outbox (the policy itself is
:class:`vulnwatch.delivery.outbox.Dispatcher`'s)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from .problems import loc_error
from .types import Duration, Model, format_duration

__all__ = ["DeliverySettings"]


class DeliverySettings(Model):
    """Retries of notifications from the outbox."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    """Attempts before a delivery is dead-lettered."""
    backoff_base: Duration = timedelta(seconds=30)
    """Delay before the second attempt; doubles each time."""
    backoff_max: Duration = timedelta(hours=1)
    """Upper bound on the delay between attempts."""

    @model_validator(mode="after")
    def _order(self) -> "DeliverySettings":
        if self.backoff_max < self.backoff_base:
            raise loc_error(("backoff_max",), f"backoff_max ({format_duration(self.backoff_max)}) is "
                             f"shorter than backoff_base ({format_duration(self.backoff_base)})")
        return self
