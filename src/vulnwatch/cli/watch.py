"""``vulnwatch watch``: the daemon. Cycles on the ``service`` schedule until SIGTERM or SIGINT,
one at a time per store (or as one of several workers), with ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from .app import (EXIT_ERROR, EXIT_OK, app, config_error, config_option, exit_codes, fail, load,
                  option, quiet_option, verb_state)
from .common import consoles, report

WATCH_EXIT_CODES = exit_codes("0    stopped (SIGTERM / SIGINT, or --once done)", "2    bad usage or configuration",
                              "3    could not start (the state store, the health port)")


@app.command(epilog=WATCH_EXIT_CODES)
def watch(
    ctx: typer.Context,
    once: bool = option(False, "--once", help="Run one scheduled cycle (waiting for its start unless "
                                              "service.run_at_start), then exit."),
    worker: Optional[bool] = option(None, "--worker/--no-worker", help="Share the store with other workers "
                                    "(claims); default: service.workers."),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """The daemon: cycles on the service schedule until SIGTERM/SIGINT; health on service.health_port.

    One cycle at a time per store: a tick that finds another process running the cycle is skipped."""
    from ..build import build_pipeline
    from ..config import ConfigError
    from ..store.interface import StoreError
    from ..service.interface import Daemon, HealthServer

    state = verb_state(ctx, config, quiet)
    cfg = load(state)
    sv = cfg.service
    try:
        pipeline = build_pipeline(cfg)
    except ConfigError as e:
        config_error(state, e)
    except StoreError as e:
        fail(state, EXIT_ERROR, "store_error", f"error: {e}")

    def said(status, _report) -> None:
        text = (f"cycle {status.outcome}: {status.events} change events, {status.failures} failures"
                + (f" ({status.detail})" if status.detail else ""))
        if state.json_logs:
            report(state, "info", "cycle", text, **status.to_dict())
        else:
            consoles.out.print(f"{status.finished_at.strftime('%Y-%m-%d %H:%M:%S')} {text}", highlight=False,
                               markup=False)

    daemon = Daemon.from_config(cfg, pipeline, on_cycle=said)
    if worker is not None:
        daemon.workers = worker
    stops = {"n": 0}

    def on_signal(signum, _frame) -> None:
        stops["n"] += 1
        if stops["n"] > 1:          # a second signal: stop now (every write is atomic anyway)
            raise KeyboardInterrupt
        report(state, "info", "stopping", f"{signal.Signals(signum).name}: finishing the current image, then "
                                          "stopping", signal=signal.Signals(signum).name)
        daemon.request_stop()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    health = None
    try:
        if main_thread:
            for s in previous:
                signal.signal(s, on_signal)
        if sv.health_port:
            try:
                health = HealthServer(sv.health_host, sv.health_port, live=daemon.live, ready=daemon.ready).start()
            except OSError as e:
                fail(state, EXIT_ERROR, "health_port", f"error: cannot listen on {sv.health_host}:{sv.health_port} "
                     f"for /healthz ({e.strerror}); set service.health_port (0: off)")
            report(state, "info", "health", f"health: http://{sv.health_host}:{health.port}/healthz and /readyz",
                   port=health.port)
        when = f"cron '{sv.cron}' (UTC)" if sv.cron else f"every {sv.interval}"
        report(state, "info", "watching", f"watching: cycles {when}; "
               f"{'as a worker' if daemon.workers else 'one cycle at a time per store'}, as {daemon.holder}",
               holder=daemon.holder, workers=daemon.workers)
        daemon.run(max_cycles=1 if once else None)
    finally:
        if health is not None:
            health.close()
        pipeline.close()
        if main_thread:
            for s, handler in previous.items():
                signal.signal(s, handler)
    raise typer.Exit(EXIT_OK)


__all__ = ["watch"]
