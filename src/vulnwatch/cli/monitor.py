"""Verbs of the monitor: ``run``, ``status``, ``events``, ``check-config``."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from .app import (EXIT_BUSY, EXIT_CONFIG, EXIT_ERROR, EXIT_FAILURES, EXIT_OK, app, config_error, config_option, exit_codes,
                  fail, find_config, load, load_or_raise, option, quiet_option, verb_state, TableOrJson)
from .common import consoles, counts_text, report, stdout_is_terminal

READ_STATE = ("state",)
"""What ``status`` and ``events`` read of the configuration: the state store only."""
DELIVER = ("state", "notifications", "delivery")
"""``events --retry-dead``: the state and the sinks to deliver to."""


def _format_option():
    return option("table", "--format", "-f", help="Output format.")


def _progress(state, label: str):
    """(context manager, progress callback) for a pipeline: a bar at a terminal; in a log that is
    no terminal, a line now and then while notifications are delivered (Slack is paced)."""
    if state.interactive:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=consoles.err, transient=True)
        task = bar.add_task(label, total=None)

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "deliver":
                bar.update(task, description="delivering notifications", completed=done, total=total or None)
            else:
                bar.update(task, description=label, completed=done, total=total or None)

        return bar, progress

    def lines(stage: str, done: int, total: int) -> None:
        if stage == "deliver" and done:
            state.progress_line(f"delivering notifications: {done} sent so far")

    return nullcontext(), lines


def _delivery_dict(d):
    if d is None:
        return None
    return {"delivered": d.delivered, "failed": d.failed, "dead": d.dead, "skipped": d.skipped,
            "errors": dict(d.errors)}


RUN_EXIT_CODES = exit_codes(
    "0    every image scanned and recorded, every delivery made (warnings allowed)",
    "1    some images, registries or deliveries failed (the others were recorded)",
    "2    bad usage or configuration", "3    could not run (state store, watch list)",
    "75   another cycle holds the store (its lease): nothing done; --wait waits for it instead")


@app.command(epilog=RUN_EXIT_CODES)
def run(
    ctx: typer.Context,
    deliver: bool = option(True, "--deliver/--no-deliver", help="Deliver notifications at the end of the cycle."),
    output: TableOrJson = _format_option(),
    wait: bool = option(False, "--wait/--no-wait", help="If another cycle holds the store, wait for it "
                        "(default: exit 75 at once)."),
    wait_timeout: Optional[str] = option(None, "--wait-timeout", help="With --wait: give up after this long "
                                         "(e.g. 10m; default: no limit)."),
    worker: Optional[bool] = option(None, "--worker/--no-worker", help="Run as one of several workers sharing "
                                    "the store (claims images); default: service.workers."),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """One cycle: list -> scan -> collect -> diff -> outbox -> deliver.

    One cycle at a time per store: a second run exits 75 (or waits, with --wait)."""
    from datetime import timedelta

    from ..build import build_pipeline
    from ..config import ConfigError, parse_duration
    from ..diff import summarize
    from ..model import utcnow
    from ..pipeline import CycleLease, Schedule, TargetError
    from ..store.interface import LeaseHeld

    state = verb_state(ctx, config, quiet)
    cfg = load(state)
    sv = cfg.service
    limit: timedelta | None = timedelta(days=36500) if wait else None
    if wait and wait_timeout:
        try:
            limit = parse_duration(wait_timeout)
        except ValueError as e:
            fail(state, EXIT_CONFIG, "usage_error", f"--wait-timeout: {e}")
    workers = sv.workers if worker is None else worker
    lease = CycleLease(ttl=sv.lease_ttl, wait=limit, worker=workers,
                       round_start=Schedule(sv.interval, sv.cron).start_of(utcnow()) if workers else None)
    bar, progress = _progress(state, "scanning")
    try:
        with bar:
            pipeline = build_pipeline(cfg, progress=progress)
            try:
                report_ = pipeline.run_cycle(deliver=deliver, lease=lease)
            finally:
                pipeline.close()
    except ConfigError as e:
        config_error(state, e)
    except TargetError as e:
        fail(state, EXIT_ERROR, "watch_list_error", f"error: {e}")
    except LeaseHeld as e:
        fail(state, EXIT_BUSY, "store_busy",
             f"another vulnwatch cycle is running on this store ({e.holder}, lease until "
             f"{e.expires_at.strftime('%Y-%m-%d %H:%M:%S')} UTC); nothing done. Run again later, or pass "
             "--wait to wait for it.", holder=e.holder, expires_at=e.expires_at.isoformat())
    d = report_.delivery
    for f in report_.failures:
        report(state, "error", "failure", f"  failed {f.target}: {f.error}", target=f.target, code=f.code,
               error=f.error)
    for w in report_.warnings:
        report(state, "warning", "warning", f"  warning {w.target}: {w.error}", target=w.target, code=w.code,
               error=w.error)
    for n in report_.notes:
        report(state, "info", "note", f"  note: {n}", style="dim", note=n)
    if report_.interrupted:
        report(state, "error", "cycle_interrupted", f"cycle interrupted: {report_.interrupted}",
               reason=report_.interrupted)
    summary = {"images": report_.images, "scanned": report_.scanned, "events": len(report_.events),
               "failures": len(report_.failures), "warnings": len(report_.warnings), "delivery": _delivery_dict(d)}
    if state.json_logs:
        report(state, "info", "cycle_summary", f"{report_.images} images selected, {report_.scanned} scanned, "
                                               f"{len(report_.events)} change events, {len(report_.failures)} failures",
               **summary)
    if output == "json":
        consoles.out.print_json(json.dumps({
            "images": report_.images, "scanned": report_.scanned,
            "events": [e.to_dict() for e in report_.events],
            "failures": [f.__dict__ for f in report_.failures],
            "warnings": [w.__dict__ for w in report_.warnings],
            "notes": list(report_.notes),
            "interrupted": report_.interrupted,
            "delivery": _delivery_dict(d),
        }, default=str))
    else:
        out = consoles.out
        out.print(f"{report_.images} images selected, {report_.scanned} scanned, {len(report_.events)} change events, "
                  f"{len(report_.failures)} failures" + (f", {len(report_.warnings)} warnings" if report_.warnings
                                                         else ""), highlight=False)
        for e in report_.events:
            out.print(f"  {e.subject} ({e.image.registry}) {summarize(e)}", highlight=False, markup=False)
        if d is not None:
            out.print(f"delivery: {d.delivered} delivered, {d.failed} to retry, {d.dead} dead-lettered",
                      highlight=False)
    failed_delivery = d is not None and (d.failed or d.dead)
    raise typer.Exit(EXIT_FAILURES if report_.failures or failed_delivery or report_.interrupted else EXIT_OK)


READ_EXIT_CODES = exit_codes("0    shown", "2    bad usage or configuration", "3    the state store cannot be read")


def _table(title: str, columns: tuple[str, ...]):
    """A rich table; at a terminal the long columns are cut to fit, anywhere else nothing is cut."""
    from rich.table import Table

    table = Table(title=title)
    terminal = stdout_is_terminal()
    for col in columns:
        if terminal and col in ("error", "last error"):
            table.add_column(col, max_width=60, overflow="ellipsis", no_wrap=True)
        else:
            table.add_column(col)
    return table


@app.command(epilog=READ_EXIT_CODES)
def status(
    ctx: typer.Context,
    output: TableOrJson = _format_option(),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Watched images: findings by severity, KEV findings, coverage, last scan, last error.

    Coverage is ``complete``, ``partial`` (some packages not judged) or ``missing`` (an ecosystem
    the image needs has no advisory data), with what is missing; ``not recorded`` for a snapshot
    stored before coverage was kept (until its next scan or re-match), ``-`` for a scanner that
    says nothing about it (ECR)."""
    from ..build import open_store

    state = verb_state(ctx, config, quiet)
    store = open_store(load(state, READ_STATE))
    try:
        rows = store.images()
        full = {}
        if output == "json":     # the JSON output names every ecosystem and package not judged
            for r in rows:
                if r.coverage is not None and r.coverage.state != "complete":
                    snap = store.snapshot(*r.image.key, with_inventory=False)
                    if snap is not None and snap.coverage is not None:
                        full[r.image.key] = snap.coverage.to_dict()
    finally:
        store.close()
    if output == "json":
        consoles.out.print_json(json.dumps([{
            "registry": r.image.registry, "repository": r.image.repository, "digest": r.image.digest,
            "tags": list(r.image.tags), "scanner": r.scanner, "last_scanned_at": r.last_scanned_at,
            "last_checked_at": r.last_checked_at,
            "counts": r.counts, "kev": r.kev,
            "coverage": (full.get(r.image.key) or r.coverage.to_dict()) if r.coverage is not None else None,
            "last_error": r.last_error} for r in rows], default=str))
        return
    table = _table(f"{len(rows)} watched images",
                   ("registry", "repository", "tags", "digest", "findings", "KEV", "coverage", "last scan",
                    "last check", "error"))
    for r in rows:
        table.add_row(r.image.registry, r.image.repository, ",".join(r.image.tags) or "<untagged>",
                      r.image.short_digest if stdout_is_terminal() else r.image.digest, counts_text(r.counts),
                      str(r.kev) if r.kev is not None else "-", _coverage_cell(r),
                      r.last_scanned_at.strftime("%Y-%m-%d %H:%M") if r.last_scanned_at else "never",
                      r.last_checked_at.strftime("%Y-%m-%d %H:%M") if r.last_checked_at else "",
                      r.last_error or "")
    consoles.out.print(table)


def _coverage_cell(r) -> str:
    """``complete`` / ``missing: no advisory data for Alpine:v3.17; 14 packages not judged``."""
    if r.coverage is not None:
        return r.coverage.text()
    if r.last_scanned_at is None:
        return ""
    return "-" if (r.scanner or "").startswith("ecr") else "not recorded"


EVENTS_EXIT_CODES = exit_codes("0    shown (with --retry-dead: every re-queued delivery made)",
                               "1    --retry-dead: some deliveries failed again",
                               "2    bad usage or configuration", "3    the state store cannot be read")


@app.command(epilog=EVENTS_EXIT_CODES)
def events(
    ctx: typer.Context,
    limit: int = option(50, "--limit", "-n", help="How many outbox rows to show."),
    dead: bool = option(False, "--dead", help="Only dead letters."),
    retry_dead: bool = option(False, "--retry-dead", help="Put every dead letter back in the queue, then deliver."),
    output: TableOrJson = _format_option(),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Recent change events and their delivery state; dead letters; --retry-dead."""
    from ..build import build_pipeline, open_store
    from ..diff import summarize
    from ..store.interface import DeliveryStatus

    state = verb_state(ctx, config, quiet)
    if retry_dead:
        cfg = load(state, DELIVER)
        bar, progress = _progress(state, "delivering notifications")
        with bar:
            pipeline = build_pipeline(cfg, with_watches=False, progress=progress)
            try:
                n = pipeline.store.retry_dead()
                d = pipeline.deliver()
            finally:
                pipeline.close()
        if output == "json":
            consoles.out.print_json(json.dumps({"requeued": n, "delivery": _delivery_dict(d)}))
        else:
            consoles.out.print(f"{n} dead letters re-queued; {d.delivered} delivered, {d.failed} to retry, "
                               f"{d.dead} dead", highlight=False)
        raise typer.Exit(EXIT_FAILURES if d.failed or d.dead else EXIT_OK)
    store = open_store(load(state, READ_STATE))
    try:
        rows = store.deliveries(DeliveryStatus.DEAD if dead else None, limit=limit)
    finally:
        store.close()

    def last_error(r) -> str | None:
        # a delivery made (after --retry-dead, say) no longer shows the error of its failed attempts
        return None if r.status is DeliveryStatus.DELIVERED else r.last_error

    if output == "json":
        consoles.out.print_json(json.dumps([{
            "delivery": r.id, "event": r.event.id, "kind": r.event.kind.value, "subject": r.event.subject,
            "summary": summarize(r.event), "sink": r.sink, "status": r.status.value, "attempts": r.attempts,
            "created_at": r.created_at, "next_attempt_at": r.next_attempt_at, "delivered_at": r.delivered_at,
            "last_error": last_error(r), "data": r.event.to_dict()} for r in rows], default=str))
        return
    table = _table("dead letters" if dead else "recent events",
                   ("id", "when", "image", "change", "sink", "state", "attempts", "last error"))
    style = {"delivered": "green", "pending": "yellow", "dead": "red"}
    from rich.text import Text

    for r in rows:
        table.add_row(str(r.id), r.created_at.strftime("%Y-%m-%d %H:%M"), Text(r.event.subject), summarize(r.event),
                      r.sink, Text(r.status.value, style=style.get(r.status.value, "")), str(r.attempts),
                      Text(last_error(r) or ""))
    consoles.out.print(table)


def _policy_problems(cfg) -> list:
    """The ignore files and VEX documents of ``cfg`` read: one that cannot be used is a problem
    naming its file and line (at the config key that names it)."""
    from ..build import build_policy
    from ..config import ConfigProblem
    from ..policy.interface import PolicyError

    try:
        build_policy(cfg)
    except PolicyError as e:
        return [ConfigProblem(e.file, e.line or 1, "", e.message)]
    return []


@app.command("check-config", epilog=exit_codes("0    the configuration is valid",
                                              "2    it has problems (all listed, each with file, line and key)"))
def check_config(
    ctx: typer.Context,
    output: TableOrJson = _format_option(),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Validate the config (every section, every problem at once, paths that must exist) and show
    what it watches (secrets hidden)."""
    from ..config import ConfigError, check_config as file_checks, config_summary

    state = verb_state(ctx, config, quiet)
    source = find_config(state.config_path)
    try:
        cfg = load_or_raise(state)
        from ..build import check_watch_lists

        problems = file_checks(cfg) + check_watch_lists(cfg)
    except ConfigError as e:
        cfg, problems = None, list(e.problems)
        if not problems:
            config_error(state, e)
    if cfg is not None and not problems:
        problems = _policy_problems(cfg)
    if output == "json":
        consoles.out.print_json(json.dumps({
            "ok": not problems, "config": str(source) if source else None,
            "problems": [{"file": p.file, "line": p.line, "key": p.key_path, "message": p.message} for p in problems],
            "summary": config_summary(cfg) if cfg is not None and not problems else []}))
        raise typer.Exit(EXIT_CONFIG if problems else EXIT_OK)
    if problems:
        config_error(state, ConfigError.from_problems(problems))
    out = consoles.out
    out.print(f"config OK: {source or 'embedded defaults'}", highlight=False, markup=False)
    for line in config_summary(cfg):
        out.print(f"  {line}", highlight=False, markup=False)
