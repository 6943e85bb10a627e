"""``--format table``: a rich table for people at a terminal.

A header (image, scanner, times), one row per finding most severe first (severity,
vulnerability id with the CVE preferred, package, installed version, fixed versions, title),
then a summary line with the count per severity. With ``sbom_only``: one row per package (name,
version, ecosystem, purl) and a count per ecosystem.
"""

from __future__ import annotations

from collections import Counter
from io import StringIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..model import ScanResult, ScanState, Severity, severity_counts
from ._shared import coverage_lines, image_label, package_order, preferred_id, severity_order
from .interface import FormatError, Formatter

SEVERITY_STYLE = {Severity.CRITICAL: "bold red", Severity.HIGH: "red", Severity.MEDIUM: "yellow",
                  Severity.LOW: "cyan", Severity.NEGLIGIBLE: "dim", Severity.UNKNOWN: "dim"}
"""Colour of each severity when colour is on."""

MIN_WIDTH = 60
"""Narrowest width accepted: below this the columns cannot show anything useful."""


class TableFormatter(Formatter):
    """Findings (or packages) as a rich table, rendered to a string."""

    name = "table"
    media_type = "text/plain"

    def __init__(self, *, width: int = 120, color: bool = False) -> None:
        if width < MIN_WIDTH:
            raise FormatError(self.name, f"width {width} is too narrow; use at least {MIN_WIDTH} columns")
        self.width = width
        """Characters per line."""
        self.color = color
        """When True the text carries ANSI colour codes (for a terminal)."""

    def render(self, result: ScanResult, *, sbom_only: bool = False) -> str:
        console = Console(file=StringIO(), record=True, width=self.width, color_system="standard" if self.color else None,
                          force_terminal=self.color, highlight=False, emoji=False, soft_wrap=False)
        console.print(Text(image_label(result.image), style="bold"))
        console.print(Text(self._header(result)))
        if sbom_only:
            self._packages(console, result)
        else:
            self._findings(console, result)
            for line in coverage_lines(result.coverage):
                missing = "NO ADVISORY DATA" in line or "not judged" in line
                console.print(Text(line, style="bold yellow" if missing else "dim"))
        for note in result.notes:
            console.print(Text(f"note: {note}", style="italic"))
        return console.export_text(styles=self.color)

    @staticmethod
    def _header(result: ScanResult) -> str:
        parts = [f"scanner {result.scanner}", f"scanned {result.scanned_at.isoformat(timespec='seconds')}"]
        if result.distro:
            parts.append(f"distro {result.distro}")
        if result.vulnerability_source_updated_at is not None:
            parts.append("advisories from "
                         + result.vulnerability_source_updated_at.isoformat(timespec="seconds"))
        return " | ".join(parts)

    def _findings(self, console: Console, result: ScanResult) -> None:
        if result.state is ScanState.UNSUPPORTED:
            console.print(Text(f"Scanner {result.scanner} cannot scan this image (unsupported): "
                               "no findings to show.", style="yellow"))
            return
        if not result.findings:
            if result.coverage is not None and result.coverage.missing:
                console.print(Text("No vulnerabilities found, but the advisory data does not cover "
                                   + ", ".join(result.coverage.missing) + ": this image was NOT fully judged.",
                                   style="bold yellow"))
            else:
                console.print(Text("No vulnerabilities found.", style="green"))
            self._suppressed(console, result)
            return
        table = Table(show_lines=False, expand=False, header_style="bold")
        table.add_column("Severity")
        table.add_column("Vulnerability", no_wrap=True)  # ids stay whole: people copy them
        table.add_column("Package", overflow="fold")
        table.add_column("Installed", overflow="fold")
        table.add_column("Fixed in", overflow="fold")
        table.add_column("Title")  # cells are one-line Texts that end in "…" when cut
        # where the severity came from; KEV and EPSS when the data has them for any finding
        table.add_column("Source", no_wrap=True)
        kev = any(f.in_kev for f in result.findings)
        epss = any(f.epss is not None for f in result.findings)
        if kev:
            table.add_column("KEV", no_wrap=True)
        if epss:
            table.add_column("EPSS", no_wrap=True)
        for f in severity_order(result.findings):
            sev = f.severity.name
            if f.cvss_score is not None:
                sev += f" {f.cvss_score:.1f}"
            fixed = ", ".join(f.fixed_versions) if f.fixed_versions else (
                "(fix exists)" if f.fix_available else "-")
            table.add_row(Text(sev, style=SEVERITY_STYLE[f.severity]), preferred_id(f), f.package_name,
                          f.package_version, fixed,
                          Text(f.title, no_wrap=True, overflow="ellipsis"), _source(f.severity_source),
                          *([Text("KEV", style="bold red") if f.in_kev else "-"] if kev else []),
                          *([f"{f.epss:.2f}" if f.epss is not None else "-"] if epss else []))
        console.print(table)
        console.print(Text(self.summary(result)))
        self._suppressed(console, result)

    @staticmethod
    def _suppressed(console: Console, result: ScanResult) -> None:
        """The suppressed findings, marked as such with why and by which rule (not counted)."""
        if not result.suppressed:
            return
        n = len(result.suppressed)
        console.print(Text(f"Suppressed (not counted): {n} finding{'' if n == 1 else 's'}", style="bold"))
        table = Table(show_lines=False, expand=False, header_style="bold")
        table.add_column("Severity")
        table.add_column("Vulnerability", no_wrap=True)
        table.add_column("Package", overflow="fold")
        table.add_column("Installed", overflow="fold")
        table.add_column("Suppressed by", overflow="fold")
        table.add_column("Reason")
        for f in severity_order(result.suppressed):
            s = f.suppression
            by = "-" if s is None else (f"VEX {s.status}" if s.kind == "vex" else "ignore rule") + f" ({s.source})" + (
                f", until {s.expires}" if s is not None and s.expires else "")
            table.add_row(Text(f"SUPPRESSED {f.severity.name}", style="dim"), preferred_id(f), f.package_name,
                          f.package_version, by, Text(s.reason if s else "", no_wrap=True, overflow="ellipsis"))
        console.print(table)

    @staticmethod
    def summary(result: ScanResult) -> str:
        """``7 findings (3 fixable, 1 in KEV): CRITICAL 1, HIGH 2, MEDIUM 0, ...``: every severity,
        most severe first."""
        counts = severity_counts(result.findings)
        fixable = sum(1 for f in result.findings if f.fixable)
        kev = sum(1 for f in result.findings if f.in_kev)
        n = len(result.findings)
        by_sev = ", ".join(f"{name} {count}" for name, count in counts.items())
        in_kev = f", {kev} in KEV" if kev else ""
        return f"{n} finding{'' if n == 1 else 's'} ({fixable} fixable{in_kev}): {by_sev}"

    @staticmethod
    def _packages(console: Console, result: ScanResult) -> None:
        if not result.packages:
            console.print(Text(f"No packages: scanner {result.scanner} did not list the image's packages "
                               "(use the builtin scanner for an inventory).", style="yellow"))
            return
        table = Table(header_style="bold")
        table.add_column("Name", overflow="fold")
        table.add_column("Version", overflow="fold")
        table.add_column("Ecosystem", no_wrap=True)
        table.add_column("PURL", overflow="fold")
        for p in package_order(result.packages):
            table.add_row(p.name, p.version, p.ecosystem, p.purl or "-")
        console.print(table)
        per_eco = Counter(p.ecosystem for p in result.packages)
        n = len(result.packages)
        console.print(Text(f"{n} package{'' if n == 1 else 's'}: "
                           + ", ".join(f"{eco} {c}" for eco, c in sorted(per_eco.items()))))


def _source(source: str) -> str:
    """The severity source, short: ``record``, ``alias``, ``cve5:adp``, ``nvd``, ``text``, ``-``."""
    if not source or source == "none":
        return "-"
    kind, _, rest = source.partition(":")
    if kind == "cve5":
        return "cve5:" + rest.split(":", 1)[0]
    return kind
