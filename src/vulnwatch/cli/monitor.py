"""Verbs of the monitor: ``run``, ``status``, ``events``, ``check-config``."""

from __future__ import annotations

import json
from contextlib import nullcontext

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import logs
from ..config import ConfigError, config_summary
from ..store.interface import DeliveryStatus
from .common import console, counts_text, err_console
from .app import EXIT_CONFIG, EXIT_FAILURES, EXIT_OK, app, load


def _progress_bar(state):
    if not state.interactive:
        return nullcontext(None)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)


@app.command()
def run(
    ctx: typer.Context,
    deliver: bool = typer.Option(True, "--deliver/--no-deliver", help="Deliver notifications at the end of the cycle."),
    output: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """One cycle: list -> scan -> collect -> diff -> outbox -> deliver."""
    from ..build import build_pipeline

    state = ctx.obj
    cfg = load(state)
    try:
        with _progress_bar(state) as bar:
            task = bar.add_task("scanning", total=None) if bar else None

            def progress(stage: str, done: int, total: int) -> None:
                if bar is not None:
                    bar.update(task, completed=done, total=total or None)

            pipeline = build_pipeline(cfg, progress=progress)
            try:
                report = pipeline.run_cycle(deliver=deliver)
            finally:
                pipeline.close()
    except ConfigError as e:
        err_console.print(f"[bold red]config error[/]\n{logs.redact(str(e))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    d = report.delivery
    if output == "json":
        console.print_json(json.dumps({
            "images": report.images, "scanned": report.scanned,
            "events": [e.to_dict() for e in report.events],
            "failures": [f.__dict__ for f in report.failures],
            "notes": list(report.notes),
            "delivery": d.to_dict() if d is not None and hasattr(d, "to_dict") else (d.__dict__ if d else None),
        }, default=str))
    else:
        console.print(f"{report.images} images selected, {report.scanned} scanned, "
                      f"{len(report.events)} change events, {len(report.failures)} failures")
        for e in report.events:
            from ..diff import summarize
            console.print(f"  [bold]{e.subject}[/] ({e.image.registry}) {summarize(e)}", highlight=False)
        for n in report.notes:
            console.print(f"  note: {n}", style="dim", highlight=False)
        for f in report.failures:
            err_console.print(f"  [red]failed[/] {f.target}: {f.error}", highlight=False)
        if d is not None:
            console.print(f"delivery: {d.delivered} delivered, {d.failed} to retry, {d.dead} dead-lettered")
    failed_delivery = d is not None and (d.failed or d.dead)
    raise typer.Exit(EXIT_FAILURES if report.failures or failed_delivery else EXIT_OK)


@app.command()
def status(ctx: typer.Context, output: str = typer.Option("table", "--format", "-f", help="table or json.")) -> None:
    """Watched images: findings by severity, last scan, last error."""
    from ..build import open_store

    store = open_store(load(ctx.obj))
    try:
        rows = store.images()
    finally:
        store.close()
    if output == "json":
        console.print_json(json.dumps([{
            "registry": r.image.registry, "repository": r.image.repository, "digest": r.image.digest,
            "tags": list(r.image.tags), "scanner": r.scanner, "last_scanned_at": r.last_scanned_at,
            "last_checked_at": r.last_checked_at,
            "counts": r.counts, "last_error": r.last_error} for r in rows], default=str))
        return
    table = Table(title=f"{len(rows)} watched images")
    for col in ("registry", "repository", "tags", "digest", "findings", "last scan", "last check", "error"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.image.registry, r.image.repository, ",".join(r.image.tags) or "<untagged>",
                      r.image.short_digest, counts_text(r.counts),
                      r.last_scanned_at.strftime("%Y-%m-%d %H:%M") if r.last_scanned_at else "never",
                      r.last_checked_at.strftime("%Y-%m-%d %H:%M") if r.last_checked_at else "",
                      (r.last_error or "")[:60])
    console.print(table)


@app.command()
def events(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", "-n", help="How many outbox rows to show."),
    dead: bool = typer.Option(False, "--dead", help="Only dead letters."),
    retry_dead: bool = typer.Option(False, "--retry-dead", help="Put every dead letter back in the queue, then deliver."),
    output: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Recent change events and their delivery state; dead letters; --retry-dead."""
    from ..build import build_pipeline, open_store

    cfg = load(ctx.obj)
    if retry_dead:
        pipeline = build_pipeline(cfg, with_watches=False)
        try:
            n = pipeline.store.retry_dead()
            report = pipeline.deliver()
        finally:
            pipeline.close()
        console.print(f"{n} dead letters re-queued; {report.delivered} delivered, {report.failed} to retry, "
                      f"{report.dead} dead")
        raise typer.Exit(EXIT_FAILURES if report.failed or report.dead else EXIT_OK)
    store = open_store(cfg)
    try:
        rows = store.deliveries(DeliveryStatus.DEAD if dead else None, limit=limit)
    finally:
        store.close()
    if output == "json":
        console.print_json(json.dumps([{
            "delivery": r.id, "event": r.event.id, "kind": r.event.kind.value, "subject": r.event.subject,
            "sink": r.sink, "status": r.status.value, "attempts": r.attempts, "created_at": r.created_at,
            "next_attempt_at": r.next_attempt_at, "last_error": r.last_error} for r in rows], default=str))
        return
    from ..diff import summarize

    table = Table(title="dead letters" if dead else "recent events")
    for col in ("id", "when", "image", "change", "sink", "state", "attempts", "last error"):
        table.add_column(col)
    style = {"delivered": "green", "pending": "yellow", "dead": "red"}
    for r in rows:
        table.add_row(str(r.id), r.created_at.strftime("%Y-%m-%d %H:%M"), r.event.subject, summarize(r.event),
                      r.sink, f"[{style.get(r.status.value, '')}]{r.status.value}[/]", str(r.attempts),
                      (r.last_error or "")[:60])
    console.print(table)


@app.command("check-config")
def check_config(ctx: typer.Context) -> None:
    """Validate the config and show what it watches (secrets hidden)."""
    state = ctx.obj
    cfg = load(state)
    console.print(f"config OK: {state.config_path or 'embedded defaults'}", highlight=False)
    for line in config_summary(cfg):
        console.print(f"  {line}", highlight=False)
