"""When cycles start: :class:`vulnwatch.pipeline.Schedule` (an interval aligned to the epoch, or a
cron expression). It lives with the pipeline because ``vulnwatch run --worker`` needs the same
rounds as the daemon."""

from __future__ import annotations

from ..pipeline import Schedule

__all__ = ["Schedule"]
