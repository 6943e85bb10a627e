"""The daemon (``vulnwatch watch``): cycles on a schedule, one at a time per store (or as one
worker of several), stopped cleanly by SIGTERM/SIGINT, with ``/healthz`` and ``/readyz``.

* ``schedule`` -- when cycles start: an interval aligned to the epoch, or a cron expression;
* ``daemon`` -- the loop: waits for the next start, runs :meth:`vulnwatch.pipeline.Pipeline.run_cycle`
  under the store's lease, remembers how the last cycle went;
* ``health`` -- a tiny HTTP server answering liveness and readiness from the daemon's state.

An entry point: it reaches the stages only through :mod:`vulnwatch.build` and
:mod:`vulnwatch.pipeline`.
"""

from .daemon import CycleStatus, Daemon
from .health import HealthServer
from .schedule import Schedule

__all__ = ["CycleStatus", "Daemon", "HealthServer", "Schedule"]
