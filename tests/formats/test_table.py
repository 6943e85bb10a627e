"""The rich table: rows most severe first, CVE ids preferred, summary, width, sbom-only."""

from __future__ import annotations

import re

import pytest

from vulnwatch.formats import get_formatter

from .conftest import FINDINGS, PACKAGES, make_result

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def rows(text: str) -> list[list[str]]:
    """Body rows of the first table: cells of each line starting with │, stripped."""
    out = []
    for line in text.splitlines():
        if line.startswith("│"):
            out.append([c.strip() for c in line.strip("│").split("│")])
    return out


def test_one_row_per_finding_most_severe_first(result):
    text = get_formatter("table").render(result)
    body = rows(text)
    assert len(body) == len(FINDINGS)  # at 120 columns nothing wraps here
    severities = [r[0].split()[0] for r in body]
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "NEGLIGIBLE", "UNKNOWN"]
    assert [order.index(s) for s in severities] == sorted(order.index(s) for s in severities)
    assert body[2][:5] == ["HIGH 8.6", "CVE-2019-10906", "Jinja2", "2.10", "2.10.1"]
    assert body[-1][1] == "TEMP-0290435-0B57B5" and body[-1][4] == "-"


def test_cve_alias_is_shown_instead_of_the_advisory_id(result):
    body = rows(get_formatter("table").render(result))
    minimist = next(r for r in body if r[2] == "minimist")
    assert minimist[1] == "CVE-2020-7598"
    assert minimist[4] == "0.2.1, 1.2.3"


def test_long_titles_are_cut_not_wrapped_and_no_line_exceeds_the_width(result):
    for width in (60, 80, 120, 200):
        text = get_formatter("table", width=width).render(result)
        assert max(len(line) for line in text.splitlines()) <= width
    text = get_formatter("table", width=120).render(result)
    requests_row = next(r for r in rows(text) if r[2] == "requests")
    assert requests_row[5].startswith("Requests sends") and requests_row[5].endswith("…")
    wide = get_formatter("table", width=250).render(result)
    assert "same-hostname https-to-http redirect" in wide


def test_summary_counts_every_severity(result):
    text = get_formatter("table").render(result)
    assert ("10 findings (6 fixable): CRITICAL 2, HIGH 4, MEDIUM 1, LOW 1, NEGLIGIBLE 1, UNKNOWN 1"
            in text)
    assert "prod-ecr/team/app@sha256:3f1a9c" in text and "1.4.2, latest" in text
    assert "distro Debian:12" in text and "note: advisory data is 3 hours old" in text


def test_no_findings_and_unsupported_say_so(unsupported_result):
    clean = get_formatter("table").render(make_result(findings=()))
    assert "No vulnerabilities found." in clean and not rows(clean)
    unsupported = get_formatter("table").render(unsupported_result)
    assert "cannot scan this image" in unsupported and "No vulnerabilities found" not in unsupported


def test_sbom_only_lists_packages_not_findings(result):
    text = get_formatter("table", width=200).render(result, sbom_only=True)
    body = rows(text)
    assert len(body) == len(PACKAGES)
    assert ["Jinja2", "2.10", "PyPI", "pkg:pypi/jinja2@2.10"] in body
    assert not any("CVE-" in line for line in text.splitlines())
    assert "11 packages: Debian:12 5, PyPI 3, npm 3" in text


def test_sbom_only_without_an_inventory_explains_why(ecr_result):
    text = get_formatter("table").render(ecr_result, sbom_only=True)
    assert "No packages" in text and "ecr-enhanced" in text


@pytest.mark.parametrize("color", [False, True])
def test_colour_only_when_asked(result, color):
    text = get_formatter("table", color=color).render(result)
    assert bool(ANSI.search(text)) is color
    assert "CVE-2023-45853" in ANSI.sub("", text)
