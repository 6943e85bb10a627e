"""Verbs of the offline scanner: ``scan IMAGE`` and ``db update|import|status``."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from .. import logs
from ..model import Severity
from .common import console, err_console
from .app import EXIT_CONFIG, EXIT_FAILURES, EXIT_OK, app, load

db_app = typer.Typer(help="The local OSV vulnerability data: update, import, status.", no_args_is_help=True,
                     rich_markup_mode=None)
app.add_typer(db_app, name="db")


def _severity(value: Optional[str], option: str) -> Optional[Severity]:
    if value is None:
        return None
    try:
        return Severity.from_name(value)
    except ValueError as e:
        err_console.print(f"{option}: {e}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)


@app.command()
def scan(
    ctx: typer.Context,
    image: str = typer.Argument(..., help="docker-archive:PATH, oci:PATH[:TAG] (layout dir or tar), or a registry "
                                          "reference host/repo:tag[@digest]."),
    output: str = typer.Option("table", "--format", "-f", help="table, json, sarif or cyclonedx."),
    sbom: bool = typer.Option(False, "--sbom", help="Inventory only (no vulnerabilities)."),
    severity: Optional[str] = typer.Option(None, "--severity", help="Show only findings at least this severe."),
    ignore_unfixed: bool = typer.Option(False, "--ignore-unfixed", help="Hide findings without a known fix."),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Exit with --exit-code when a shown finding is at "
                                                                  "least this severe."),
    exit_code: int = typer.Option(1, "--exit-code", help="Exit code for --fail-on."),
    platform: str = typer.Option("linux/amd64", "--platform", help="Platform to pick from a multi-platform image."),
    insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP / unverified TLS for the registry."),
    out_file: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report to this file."),
    layer_cache: bool = typer.Option(True, "--layer-cache/--no-layer-cache",
                                     help="Reuse what earlier scans read from shared layers."),
) -> None:
    """Scan one image with the built-in scanner and print a report (nothing is stored)."""
    from ..build import image_scan
    from ..formats import FORMATS, get_formatter
    from ..formats.interface import FormatError
    from ..model import FindingFilter
    from ..scanners.interface import ScanError

    if output not in FORMATS:
        err_console.print(f"--format: unknown format {output!r}; use one of {', '.join(sorted(FORMATS))}")
        raise typer.Exit(EXIT_CONFIG)
    min_sev = _severity(severity, "--severity")
    fail_sev = _severity(fail_on, "--fail-on")
    state = ctx.obj
    cfg = load(state)
    show = state.interactive
    bar_cm = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=err_console, transient=True) if show else nullcontext(None)
    with bar_cm as bar:
        task = None

        def layer_progress(_img, done: int, total: int) -> None:
            if bar is not None and task is not None:
                bar.update(task, completed=done, total=total)

        try:     # an inventory needs no vulnerability data
            job = image_scan(cfg, image, platform=platform, insecure=insecure, layer_cache=layer_cache,
                             inventory_only=sbom, layer_progress=layer_progress)
        except Exception as e:  # RegistryError, InvalidReferenceError, OSError: name the input
            err_console.print(f"[red]cannot open {image}[/]: {logs.redact(str(e))}", highlight=False)
            raise typer.Exit(EXIT_FAILURES)
        img = job.image
        task = bar.add_task(f"layers of {img.repository}", total=None) if bar else None
        try:
            result = job.scanner.sbom(img) if sbom else job.scanner.scan(img)
        except ScanError as e:
            err_console.print(f"[red]scan failed[/]: {logs.redact(str(e))}", highlight=False)
            raise typer.Exit(EXIT_FAILURES)
        finally:
            job.close()
    shown = FindingFilter(min_severity=min_sev or Severity.UNKNOWN, fixable_only=ignore_unfixed)
    result = replace(result, findings=() if sbom else shown.apply(result.findings))
    try:
        formatter = get_formatter(output, width=max(console.width, 100), color=False) if output == "table" \
            else FORMATS[output]
        text = formatter.render(result, sbom_only=sbom)
    except FormatError as e:
        err_console.print(f"[red]{e}[/]", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    if out_file:
        out_file.write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    for note in result.notes:
        err_console.print(f"note: {note}", style="dim", highlight=False)
    if fail_sev is not None and not sbom and any(f.severity >= fail_sev for f in result.findings):
        raise typer.Exit(exit_code)
    raise typer.Exit(EXIT_OK)


def _rematch_and_report(pipeline, deliver: bool) -> int:
    """Re-match every stored inventory against the new data; record and deliver what moved."""
    from ..diff import summarize

    events = pipeline.rematch()
    for e in events:
        console.print(f"  [bold]{e.subject}[/] ({e.image.registry}) {summarize(e)}", highlight=False)
    console.print(f"re-matched stored inventories: {len(events)} change events")
    if deliver:
        d = pipeline.deliver()
        console.print(f"delivery: {d.delivered} delivered, {d.failed} to retry, {d.dead} dead-lettered")
        return EXIT_FAILURES if (d.failed or d.dead) else EXIT_OK
    return EXIT_OK


@db_app.command("update")
def db_update(
    ctx: typer.Context,
    ecosystems: Optional[list[str]] = typer.Argument(None, help="Ecosystems to download (default: vulndb.ecosystems, "
                                                               "else those of the stored inventories)."),
    rematch: bool = typer.Option(True, "--rematch/--no-rematch", help="Re-match stored inventories afterwards."),
    deliver: bool = typer.Option(True, "--deliver/--no-deliver", help="Deliver the resulting notifications."),
) -> None:
    """Download OSV exports (<base_url>/<Ecosystem>/all.zip), only when changed."""
    from ..build import build_pipeline
    from ..vulndb.interface import VulnDBError

    cfg = load(ctx.obj)
    pipeline = build_pipeline(cfg, with_watches=False)
    try:
        wanted = list(ecosystems or cfg.vulndb.ecosystems or pipeline.needed_ecosystems())
        if not wanted:
            err_console.print("nothing to update: name ecosystems (e.g. `vulnwatch db update Debian PyPI`) or set "
                              "vulndb.ecosystems")
            raise typer.Exit(EXIT_CONFIG)
        try:
            results = pipeline.update_advisories(wanted)
        except VulnDBError as e:
            err_console.print(f"[red]update failed[/]: {e}", highlight=False)
            raise typer.Exit(EXIT_FAILURES)
        changed = False
        for r in results:
            if r.changed and r.report:
                changed = True
                console.print(f"{r.ecosystem}: {r.report.imported} records imported, {r.report.removed} removed, "
                              f"{r.report.withdrawn} withdrawn", highlight=False)
            else:
                console.print(f"{r.ecosystem}: unchanged", highlight=False)
        raise typer.Exit(_rematch_and_report(pipeline, deliver) if (changed and rematch) else EXIT_OK)
    finally:
        pipeline.close()


@db_app.command("import")
def db_import(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="OSV exports: all.zip files or folders of OSV *.json."),
    rematch: bool = typer.Option(True, "--rematch/--no-rematch", help="Re-match stored inventories afterwards."),
    deliver: bool = typer.Option(True, "--deliver/--no-deliver", help="Deliver the resulting notifications."),
) -> None:
    """Import OSV data from local files (air-gapped sites)."""
    from ..build import build_pipeline
    from ..vulndb.interface import VulnDBError

    cfg = load(ctx.obj)
    for p in paths:
        if not p.exists():
            err_console.print(f"[red]{p}[/]: no such file or folder", highlight=False)
            raise typer.Exit(EXIT_CONFIG)
    pipeline = build_pipeline(cfg, with_watches=False)
    try:
        for p in paths:
            try:
                rep = pipeline.import_advisories(p)
            except VulnDBError as e:
                err_console.print(f"[red]import failed[/]: {e}", highlight=False)
                raise typer.Exit(EXIT_FAILURES)
            console.print(f"{p}: {rep.imported} records imported, {rep.removed} removed, {rep.withdrawn} withdrawn, "
                          f"{len(rep.skipped)} invalid skipped", highlight=False)
            for what, why in rep.skipped[:10]:
                err_console.print(f"  skipped {what}: {why}", highlight=False)
        raise typer.Exit(_rematch_and_report(pipeline, deliver) if rematch else EXIT_OK)
    finally:
        pipeline.close()


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Sources in the local OSV index: records, when imported, age."""
    from ..build import build_pipeline

    cfg = load(ctx.obj)
    pipeline = build_pipeline(cfg, with_watches=False)
    try:
        sources, total, path = pipeline.advisory_sources()
    finally:
        pipeline.close()
    table = Table(title=f"OSV data: {total} records in {path}")
    for col in ("source", "records", "imported", "age", "from"):
        table.add_column(col)
    for s in sources:
        stale = s.is_stale(cfg.vulndb.max_age)
        table.add_row(s.ecosystem, str(s.records), s.imported_at.strftime("%Y-%m-%d %H:%M"),
                      f"[red]{s.age.days}d (stale)[/]" if stale else f"{s.age.days}d", s.location)
    console.print(table)
