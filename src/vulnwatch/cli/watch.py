"""``vulnwatch watch``: the daemon. Cycles on the ``service`` schedule until SIGTERM or SIGINT,
one at a time per store (or as one of several workers), with ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import signal
import threading

import typer

from .. import logs
from ..config import ConfigError
from .app import EXIT_CONFIG, EXIT_OK, app, load
from .common import console, err_console


@app.command()
def watch(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Run one scheduled cycle (waiting for its start unless "
                                                    "service.run_at_start), then exit."),
    worker: bool = typer.Option(None, "--worker/--no-worker", help="Share the store with other workers "
                                "(claims); default: service.workers."),
) -> None:
    """The daemon: cycles on the service schedule until SIGTERM/SIGINT; health on service.health_port."""
    from ..build import build_pipeline
    from ..service.interface import Daemon, HealthServer

    cfg = load(ctx.obj)
    sv = cfg.service
    try:
        pipeline = build_pipeline(cfg)
    except ConfigError as e:
        err_console.print(f"[bold red]config error[/]\n{logs.redact(str(e))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)

    def said(status, report) -> None:
        text = (f"cycle {status.outcome}: {status.events} change events, {status.failures} failures"
                + (f" ({status.detail})" if status.detail else ""))
        console.print(f"{status.finished_at.strftime('%Y-%m-%d %H:%M:%S')} {text}", highlight=False)

    daemon = Daemon.from_config(cfg, pipeline, on_cycle=said)
    if worker is not None:
        daemon.workers = worker
    health = None
    stops = {"n": 0}

    def on_signal(signum, _frame) -> None:
        stops["n"] += 1
        if stops["n"] > 1:          # a second signal: stop now (every write is atomic anyway)
            raise KeyboardInterrupt
        err_console.print(f"{signal.Signals(signum).name}: finishing the current image, then stopping",
                          highlight=False)
        daemon.request_stop()

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    if threading.current_thread() is threading.main_thread():
        for s in previous:
            signal.signal(s, on_signal)
    try:
        if sv.health_port:
            health = HealthServer(sv.health_host, sv.health_port, live=daemon.live, ready=daemon.ready).start()
            err_console.print(f"health: http://{sv.health_host}:{health.port}/healthz and /readyz",
                              highlight=False)
        when = f"cron '{sv.cron}' (UTC)" if sv.cron else f"every {sv.interval}"
        err_console.print(f"watching: cycles {when}; {'worker' if daemon.workers else 'one cycle at a time'} "
                          f"as {daemon.holder}", highlight=False)
        daemon.run(max_cycles=1 if once else None)
    finally:
        if health is not None:
            health.close()
        pipeline.close()
        if threading.current_thread() is threading.main_thread():
            for s, handler in previous.items():
                signal.signal(s, handler)
    raise typer.Exit(EXIT_OK)
