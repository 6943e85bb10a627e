"""What other entry points (the ``vulnwatch watch`` verb) use of the daemon: entry points reach one
another only through their ``interface``."""

from __future__ import annotations

from .daemon import CycleStatus, Daemon
from .health import HealthServer

__all__ = ["CycleStatus", "Daemon", "HealthServer"]
