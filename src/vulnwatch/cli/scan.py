"""Verbs of the offline scanner: ``scan IMAGE`` and ``db update|import|status``.

``scan`` takes Trivy's and Grype's habits: ``--severity HIGH,CRITICAL`` is a list, ``--min-severity``
a threshold, ``--exit-code N`` alone fails when a finding is left after the filters, ``-o FILE``
writes the report to a file (Trivy's meaning; Grype's ``-o json`` is ``--format json`` here and
``-o json`` is refused with that hint), ``--timeout`` bounds the whole scan.
"""

from __future__ import annotations

import json
import signal
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Literal, Optional

import typer

from .. import logs
from ..formats import FORMATTERS
from ..model import Severity
from .app import (EXIT_CONFIG, EXIT_ERROR, EXIT_FAILURES, EXIT_INCOMPLETE, EXIT_OK, app, config_error, config_option, exit_codes, fail, load,
                  option, quiet_option, verb_state, TableOrJson)
from .common import WIDE, consoles, report, stdout_is_terminal, stdout_write, without_subject

db_app = typer.Typer(help="The local OSV vulnerability data: update, import, status.", no_args_is_help=True,
                     rich_markup_mode=None)
app.add_typer(db_app, name="db")

ScanFormat = Literal[tuple(FORMATTERS)]  # type: ignore[valid-type]

SCAN_SECTIONS = ("vulndb", "layer_cache", "ignore", "limits")
"""What ``scan`` reads of the configuration: the advisory data, the layer cache, the ignore rules and the limits
(nothing it does not use, so an unset ``${SLACK_URL}`` does not stop it)."""
DB_SECTIONS = ("state", "vulndb", "layer_cache", "delivery", "notifications", "ignore")
"""``db update`` / ``db import``: the data, and the stored inventories to re-match, whose changes
go to the outbox of every sink (their routes are needed even with ``--no-deliver``)."""


def _severity(value: Optional[str], opt: str) -> Optional[Severity]:
    if value is None:
        return None
    try:
        return Severity.from_name(value)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=opt) from None


def _severities(value: Optional[str]) -> Optional[frozenset[Severity]]:
    """``HIGH,CRITICAL`` -> the set (Trivy's ``--severity``); None when not given."""
    if value is None:
        return None
    names = [v for v in (p.strip() for p in value.split(",")) if v]
    if not names:
        raise typer.BadParameter("give one or more of UNKNOWN, NEGLIGIBLE, LOW, MEDIUM, HIGH, CRITICAL, "
                                 "comma-separated (e.g. HIGH,CRITICAL)", param_hint="--severity")
    return frozenset(_severity(n, "--severity") for n in names)


def _output_file(value: Optional[str]) -> Optional[Path]:
    """``-o FILE``; a bare format name is Grype's ``-o FORMAT``, refused with the right spelling."""
    if value is None:
        return None
    if value in FORMATTERS or value.split("=", 1)[0] in FORMATTERS or value in ("cyclonedx-json", "sarif-json"):
        fmt = value.split("=", 1)[0]
        raise typer.BadParameter(
            f"{value!r} is a format name: -o names the file to write (as in Trivy); write --format "
            f"{fmt if fmt in FORMATTERS else 'cyclonedx'} for the format (Grype's -o {fmt}), and -o ./{value} "
            "for a file called that", param_hint="-o/--output")
    return Path(value)


class _Timeout(Exception):
    pass


@contextmanager
def _deadline(seconds: float | None):
    """Raise :class:`_Timeout` in this (the main) thread after ``seconds``."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _timeout(value: Optional[str]) -> Optional[float]:
    if value is None or value.strip() in ("", "0"):
        return None
    from ..config import parse_duration

    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--timeout") from None
    if seconds <= 0:
        raise typer.BadParameter("must be greater than zero (or 0 for no limit)", param_hint="--timeout")
    return seconds


SCAN_EXIT_CODES = exit_codes(
    "0    scanned; no finding left after the filters, or neither --exit-code nor --fail-on given",
    "N    findings left (--exit-code N alone), or one at least --fail-on (N: --exit-code, default 1)",
    "2    bad usage or configuration",
    "3    could not scan: the image cannot be opened or read, the output file cannot be written, --timeout,",
    "     no advisory data for an ecosystem it needs and the download failed (offline: vulnwatch db import)",
    "4    the advisory data does not cover an ecosystem or release the image needs (the report names it);",
    "     --allow-missing-data (vulndb.allow_missing_data) exits as if it did")


@app.command(epilog=SCAN_EXIT_CODES)
def scan(
    ctx: typer.Context,
    image: str = typer.Argument(..., help="docker-archive:PATH, oci:PATH[:TAG] (layout dir or tar), or a registry "
                                          "reference host/repo:tag[@digest] (debian:12 is Docker Hub's)."),
    output_format: ScanFormat = option("table", "--format", "-f", help="Report format."),
    out_file: Optional[str] = option(None, "--output", "-o", help="Write the report to this file instead of stdout "
                                     "(Trivy's -o; Grype's -o FORMAT is --format here)."),
    sbom: bool = option(False, "--sbom", help="Inventory only (no vulnerabilities)."),
    severity: Optional[str] = option(None, "--severity", "-s", help="Only these severities, comma-separated "
                                     "(as Trivy): HIGH,CRITICAL."),
    min_severity: Optional[str] = option(None, "--min-severity", help="Only findings at least this severe "
                                         "(a threshold: HIGH keeps HIGH and CRITICAL)."),
    ignore_unfixed: bool = option(False, "--ignore-unfixed", help="Hide findings without a known fix."),
    kev_only: bool = option(False, "--kev-only", help="Only findings listed in CISA's KEV catalog."),
    min_epss: Optional[float] = option(None, "--min-epss", min=0.0, max=1.0,
                                       help="Only findings with an EPSS score at least this (0-1)."),
    allow_missing_data: Optional[bool] = option(None, "--allow-missing-data/--no-allow-missing-data",
                                                help="Exit as usual when the advisory data does not cover an "
                                                     "ecosystem or release the image needs (default: exit 4; "
                                                     "vulndb.allow_missing_data)."),
    fail_on: Optional[str] = option(None, "--fail-on", help="Exit with --exit-code (default 1) when a finding left "
                                    "after the filters is at least this severe."),
    exit_code: Optional[int] = option(None, "--exit-code", help="Exit with this code when findings are left after "
                                      "the filters (with --fail-on: one at least that severe)."),
    ignorefile: Optional[list[Path]] = option(None, "--ignorefile", help="Ignore rules: a .trivyignore (ids, "
                                              "exp:YYYY-MM-DD) or a rules YAML; repeatable. Default: ./.trivyignore "
                                              "when there is one (as Trivy)."),
    vex: Optional[list[Path]] = option(None, "--vex", help="An OpenVEX or CycloneDX VEX document (not_affected, "
                                       "fixed); repeatable."),
    timeout: Optional[str] = option(None, "--timeout", help="Give up after this long (30s, 5m, 1h); default: no "
                                    "limit."),
    platform: str = option("linux/amd64", "--platform", help="Platform to pick from a multi-platform image."),
    insecure: bool = option(False, "--insecure", help="Plain HTTP / unverified TLS for the registry."),
    layer_cache: bool = option(True, "--layer-cache/--no-layer-cache",
                               help="Reuse what earlier scans read from shared layers."),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Scan one image with the built-in scanner and print a report (nothing is stored)."""
    from ..build import image_scan
    from ..formats import get_formatter
    from ..formats.interface import FormatError
    from ..model import FindingFilter
    from ..registries.interface import RegistryError
    from ..scanners.interface import ScanError
    from ..vulndb.interface import VulnDBError

    state = verb_state(ctx, config, quiet)
    wanted = _severities(severity)
    threshold = _severity(min_severity, "--min-severity")
    fail_sev = _severity(fail_on, "--fail-on")
    target = _output_file(out_file)
    seconds = _timeout(timeout)
    if target is not None and not target.parent.is_dir():
        fail(state, EXIT_ERROR, "output_error", f"cannot write the report to {target}: no such folder "
                                                f"{target.parent}", path=str(target))
    cfg = load(state, SCAN_SECTIONS)
    # an inventory is not matched, so no rule applies to it: the policy is built (and its files
    # checked) only when there are files to check
    needs_policy = not sbom or ignorefile or vex or Path(".trivyignore").is_file()
    policy = _policy(state, cfg, ignorefile, vex) if needs_policy else None
    show = state.interactive
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        bar_cm = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          console=consoles.err, transient=True)
    else:
        bar_cm = nullcontext(None)
    subject = image.split(":", 1)[1] if image.startswith(("docker-archive:", "oci:", "oci-archive:")) else image
    try:
        with _deadline(seconds), bar_cm as bar:
            task = None

            def layer_progress(_img, done: int, total: int) -> None:
                if bar is not None and task is not None:
                    bar.update(task, completed=done, total=total)

            try:     # an inventory needs no vulnerability data
                job = image_scan(cfg, image, platform=platform, insecure=insecure, layer_cache=layer_cache,
                                 inventory_only=sbom, layer_progress=layer_progress)
            except (RegistryError, OSError, ValueError, VulnDBError, ScanError) as e:
                _cannot(state, "open", image, subject, e)
            img = job.image
            task = bar.add_task(f"layers of {img.repository}", total=None) if bar else None
            try:
                result = job.scanner.sbom(img) if sbom else job.scanner.scan(img)
            except (ScanError, VulnDBError, OSError) as e:
                _cannot(state, "scan", image, subject, e)
            finally:
                job.close()
    except _Timeout:
        fail(state, EXIT_ERROR, "timeout", f"scan of {image} did not finish within {timeout} (--timeout)",
             image=image)
    shown = FindingFilter(severities=wanted, min_severity=threshold or Severity.UNKNOWN, fixable_only=ignore_unfixed,
                          kev_only=kev_only, min_epss=min_epss)
    if not sbom:
        result = policy.apply(result)      # suppressed findings: shown, never counted or gated on
    result = replace(result, findings=() if sbom else shown.apply(result.findings),
                     suppressed=() if sbom else shown.apply(result.suppressed))
    try:
        if output_format == "table":
            width = consoles.out.width if (target is None and stdout_is_terminal()) else WIDE
            formatter = get_formatter("table", width=max(width, 100), color=False)
        else:
            formatter = get_formatter(output_format)
        text = formatter.render(result, sbom_only=sbom)
    except FormatError as e:
        fail(state, EXIT_CONFIG, "format_error", str(e))
    if target is not None:
        try:
            target.write_text(text if text.endswith("\n") else text + "\n")
        except OSError as e:
            fail(state, EXIT_ERROR, "output_error", f"cannot write the report to {target}: {e.strerror or e}",
                 path=str(target))
        report(state, "info", "report_written", f"report written to {target}", path=str(target))
    else:
        stdout_write(text)
    for note in result.notes:
        report(state, "info", "note", f"note: {note}", style="dim", note=note)
    cov = result.coverage
    if not sbom and cov is not None and not cov.complete:
        allowed = cfg.vulndb.allow_missing_data if allow_missing_data is None else allow_missing_data
        level = "warning" if cov.missing and not allowed else "info"
        report(state, level, "coverage", f"coverage: {cov.summary()}"
               + (" (exit 4; --allow-missing-data to accept)" if cov.missing and not allowed else ""),
               missing=list(cov.missing), unjudged=len(cov.unjudged))
        if cov.missing and not allowed:
            raise typer.Exit(EXIT_INCOMPLETE)
    if not sbom:
        if fail_sev is not None:
            if any(f.severity >= fail_sev for f in result.findings):
                raise typer.Exit(EXIT_FAILURES if exit_code is None else exit_code)
        elif exit_code is not None and result.findings:
            raise typer.Exit(exit_code)
    raise typer.Exit(EXIT_OK)


def _policy(state, cfg, ignorefile: Optional[list[Path]], vex: Optional[list[Path]]):
    """The ignore rules of the config, ``--ignorefile`` (else ``./.trivyignore`` when present) and
    ``--vex``; exits 2 naming the file and line of one that cannot be used."""
    from ..build import build_policy
    from ..policy.interface import PolicyError

    files = list(ignorefile or ())
    if not files and Path(".trivyignore").is_file():
        files = [Path(".trivyignore")]
        report(state, "info", "note", "note: using ./.trivyignore", style="dim", note="using ./.trivyignore")
    for p in [*files, *(vex or ())]:
        if not p.is_file():
            fail(state, EXIT_CONFIG, "usage_error", f"{p}: no such file", path=str(p))
    try:
        return build_policy(cfg, ignore_files=files, vex=list(vex or ()))
    except PolicyError as e:
        fail(state, EXIT_CONFIG, "ignore_error", f"error: {e}", file=e.file, line=e.line)


def _cannot(state, verb: str, image: str, subject: str, error: Exception):
    reason = getattr(error, "reason", None) or (error.strerror if isinstance(error, OSError) and error.strerror
                                                else str(error))
    if isinstance(error, OSError) and error.filename:
        reason = f"{error.filename}: {reason}"
    reason = without_subject(logs.redact(str(reason)), image, subject, str(Path(subject)))
    fail(state, EXIT_ERROR, f"cannot_{verb}", f"cannot {verb} {image}: {reason}", image=image,
         error_type=type(error).__name__)


def _pipeline(state, cfg):
    """The pipeline of ``db update|import`` (no registries); exits 2 on a bad ignore file or VEX document."""
    from ..build import build_pipeline
    from ..config import ConfigError

    try:
        return build_pipeline(cfg, with_watches=False)
    except ConfigError as e:
        config_error(state, e)


def _format_option():
    return option("table", "--format", "-f", help="Output format.")


def _rematch_and_report(state, pipeline, deliver: bool, output: str, results: list) -> int:
    """Re-match every stored inventory against the new data; record and deliver what moved."""
    from ..diff import summarize

    if output == "json":
        events = [{"summary": summarize(e), "event": e.to_dict()} for e in pipeline.rematch_events()]
        d = pipeline.deliver() if deliver else None
        consoles.out.print_json(json.dumps({"results": results, "events": events, "delivery": _delivery_dict(d)},
                                           default=str))
    else:
        out = consoles.out
        for r in results:
            out.print(r["text"], highlight=False, markup=False)
        n = 0
        for e in pipeline.rematch_events():      # printed as each batch is written, not held
            n += 1
            out.print(f"  {e.subject} ({e.image.registry}) {summarize(e)}", highlight=False, markup=False)
        out.print(f"re-matched stored inventories: {n} change events")
        d = pipeline.deliver() if deliver else None
        if d is not None:
            out.print(f"delivery: {d.delivered} delivered, {d.failed} to retry, {d.dead} dead-lettered")
    return EXIT_FAILURES if d is not None and (d.failed or d.dead) else EXIT_OK


def _delivery_dict(d):
    if d is None:
        return None
    return d.to_dict() if hasattr(d, "to_dict") else {"delivered": d.delivered, "failed": d.failed, "dead": d.dead,
                                                      "skipped": d.skipped, "errors": dict(d.errors)}


def _print_results(output: str, results: list) -> None:
    if output == "json":
        consoles.out.print_json(json.dumps({"results": results, "events": [], "delivery": None}, default=str))
    else:
        for r in results:
            consoles.out.print(r["text"], highlight=False, markup=False)


DB_EXIT_CODES = exit_codes("0    done", "1    re-matched changes could not all be delivered",
                           "2    bad usage or configuration", "3    could not download or import the data")


@db_app.command("update", epilog=DB_EXIT_CODES)
def db_update(
    ctx: typer.Context,
    ecosystems: Optional[list[str]] = typer.Argument(None, help="Ecosystems to download (default: vulndb.ecosystems, "
                                                               "else those of the stored inventories)."),
    rematch: bool = option(True, "--rematch/--no-rematch", help="Re-match stored inventories afterwards."),
    deliver: bool = option(True, "--deliver/--no-deliver", help="Deliver the resulting notifications."),
    enrich: bool = option(True, "--enrichment/--no-enrichment", help="Also download the enrichment sources "
                          "(vulndb.enrichment: KEV, EPSS, CVE JSON 5, NVD)."),
    output: TableOrJson = _format_option(),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Download OSV exports (<base_url>/<Ecosystem>/all.zip) and the enrichment sources, only when changed."""
    from ..vulndb.interface import VulnDBError

    state = verb_state(ctx, config, quiet)
    cfg = load(state, DB_SECTIONS)
    pipeline = _pipeline(state, cfg)
    try:
        wanted = list(ecosystems or cfg.vulndb.ecosystems or pipeline.needed_ecosystems())
        if not wanted:
            fail(state, EXIT_CONFIG, "usage_error", "nothing to update: name ecosystems (e.g. `vulnwatch db update "
                                                    "Debian PyPI`) or set vulndb.ecosystems")
        try:
            updates = pipeline.update_advisories(wanted)
        except VulnDBError as e:
            fail(state, EXIT_ERROR, "update_failed", f"update failed: {e}")
        results, changed = [], False
        for r in updates:
            if r.changed and r.report:
                changed = True
                results.append({"ecosystem": r.ecosystem, "changed": True, "imported": r.report.imported,
                                "removed": r.report.removed, "withdrawn": r.report.withdrawn,
                                "text": f"{r.ecosystem}: {r.report.imported} records imported, {r.report.removed} "
                                        f"removed, {r.report.withdrawn} withdrawn"})
            else:
                results.append({"ecosystem": r.ecosystem, "changed": False, "text": f"{r.ecosystem}: unchanged"})
        for src in cfg.vulndb.enrichment if enrich else ():
            url = src.url or _default_url(src.type)
            try:
                rep = pipeline.update_enrichment([(src.type, url)])[0]
            except VulnDBError as e:     # the OSV data is in; the scores keep their last import
                report(state, "warning", "enrichment_failed", f"enrichment {src.type}: {e}", source=src.type,
                       url=url)
                results.append({"source": src.type, "changed": False, "error": str(e),
                                "text": f"{src.type}: download failed (kept the last import)"})
                continue
            changed = changed or rep.changed
            results.append(_enrichment_result(rep))
        if changed and rematch:
            # an enrichment download that failed is a warning: the OSV data is in, the scores keep
            # their last import (`db status` shows its age)
            raise typer.Exit(_rematch_and_report(state, pipeline, deliver, output, results))
        _print_results(output, results)
        raise typer.Exit(EXIT_OK)
    finally:
        pipeline.close()


def _default_url(kind: str) -> str:
    from ..build import enrichment_default_url

    return enrichment_default_url(kind)


def _enrichment_result(rep) -> dict:
    if not rep.changed:
        return {"source": rep.source, "changed": False, "location": rep.location,
                "text": f"{rep.source}: unchanged ({rep.location})"}
    version = f", version {rep.version}" if rep.version else ""
    return {"source": rep.source, "changed": True, "location": rep.location, "records": rep.records,
            "version": rep.version, "skipped": [{"record": w, "reason": y} for w, y in rep.skipped],
            "text": f"{rep.source}: {rep.records} vulnerabilities imported{version}"
                    + (f", {len(rep.skipped)} entries skipped" if rep.skipped else "")}


@db_app.command("import", epilog=DB_EXIT_CODES)
def db_import(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="OSV exports (all.zip files or folders of OSV *.json) or "
                                                 "enrichment files (KEV, EPSS, CVE JSON 5, NVD)."),
    rematch: bool = option(True, "--rematch/--no-rematch", help="Re-match stored inventories afterwards."),
    deliver: bool = option(True, "--deliver/--no-deliver", help="Deliver the resulting notifications."),
    output: TableOrJson = _format_option(),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Import OSV data or enrichment files (KEV JSON, EPSS CSV, CVE JSON 5, NVD API 2.0 JSON;
    recognised by content) from local files (air-gapped sites)."""
    from ..vulndb.interface import VulnDBError

    state = verb_state(ctx, config, quiet)
    for p in paths:
        if not p.exists():
            fail(state, EXIT_CONFIG, "usage_error", f"{p}: no such file or folder", path=str(p))
    cfg = load(state, DB_SECTIONS)
    pipeline = _pipeline(state, cfg)
    try:
        results = []
        for p in paths:
            try:
                rep = pipeline.import_advisories(p)
            except VulnDBError as e:
                fail(state, EXIT_ERROR, "import_failed", f"import of {p} failed: {without_subject(str(e), str(p))}",
                     path=str(p))
            if not hasattr(rep, "imported"):      # an enrichment file
                results.append({"path": str(p), **_enrichment_result(rep)})
                continue
            results.append({"path": str(p), "imported": rep.imported, "removed": rep.removed,
                            "withdrawn": rep.withdrawn, "skipped": [{"record": w, "reason": y} for w, y in rep.skipped],
                            "text": f"{p}: {rep.imported} records imported, {rep.removed} removed, {rep.withdrawn} "
                                    f"withdrawn, {len(rep.skipped)} invalid skipped"})
            for what, why in rep.skipped[:10]:
                report(state, "warning", "record_skipped", f"  skipped {what}: {why}", record=what, reason=why)
        if rematch:
            raise typer.Exit(_rematch_and_report(state, pipeline, deliver, output, results))
        _print_results(output, results)
        raise typer.Exit(EXIT_OK)
    finally:
        pipeline.close()


@db_app.command("status", epilog=exit_codes("0    shown", "2    bad usage or configuration",
                                           "3    the data cannot be read"))
def db_status(
    ctx: typer.Context,
    output: TableOrJson = _format_option(),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Sources in the local OSV index: records, when imported, age."""
    from rich.table import Table

    from ..build import build_pipeline

    state = verb_state(ctx, config, quiet)
    cfg = load(state, ("state", "vulndb", "layer_cache"))
    pipeline = build_pipeline(cfg, with_watches=False)
    try:
        sources, total, path = pipeline.advisory_sources()
        enrichment = pipeline.enrichment_sources()
    finally:
        pipeline.close()
    if output == "json":
        consoles.out.print_json(json.dumps({
            "path": str(path), "records": total, "max_age_days": cfg.vulndb.max_age.total_seconds() / 86400,
            "sources": [{"source": s.ecosystem, "records": s.records, "imported_at": s.imported_at.isoformat(),
                         "age_days": s.age.days, "stale": s.is_stale(cfg.vulndb.max_age), "from": s.location}
                        for s in sources],
            "enrichment": [{"source": s.ecosystem, "records": s.records, "version": s.version,
                            "imported_at": s.imported_at.isoformat(), "age_days": s.age.days,
                            "stale": s.is_stale(cfg.vulndb.max_age), "from": s.location} for s in enrichment]}))
        return
    table = Table(title=f"OSV data: {total} records in {path}")
    for col in ("source", "records", "imported", "age", "from"):
        table.add_column(col)
    for s in sources:
        stale = s.is_stale(cfg.vulndb.max_age)
        table.add_row(s.ecosystem, str(s.records), s.imported_at.strftime("%Y-%m-%d %H:%M"),
                      f"[red]{s.age.days}d (stale)[/]" if stale else f"{s.age.days}d", s.location)
    consoles.out.print(table)
    if enrichment:
        et = Table(title="Enrichment (severity, KEV, EPSS)")
        for col in ("source", "vulnerabilities", "version", "imported", "age", "from"):
            et.add_column(col)
        for s in enrichment:
            stale = s.is_stale(cfg.vulndb.max_age)
            et.add_row(s.ecosystem, str(s.records), s.version or "-", s.imported_at.strftime("%Y-%m-%d %H:%M"),
                       f"[red]{s.age.days}d (stale)[/]" if stale else f"{s.age.days}d", s.location)
        consoles.out.print(et)
