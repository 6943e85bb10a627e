"""Every output lists findings by priority: listed in KEV first, then severity, then EPSS."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vulnwatch.formats import FORMATS
from vulnwatch.model import KevListing, Severity

from .conftest import make_result


@pytest.mark.parametrize("fmt", ["table", "json", "sarif", "cyclonedx"])
def test_every_format_orders_kev_then_severity_then_epss(fmt):
    result = make_result()
    low = next(f for f in result.findings if f.vulnerability_id == "CVE-2024-0727")   # LOW
    crit = [f for f in result.findings if f.severity is Severity.CRITICAL][:2]
    assert len(crit) == 2 and low.vulnerability_id not in {c.vulnerability_id for c in crit}
    findings = [replace(f, kev=KevListing("2026-11-30")) if f is low
                else replace(f, epss=0.9) if f is crit[1] else replace(f, epss=0.1) if f is crit[0] else f
                for f in result.findings]
    text = FORMATS[fmt].render(replace(result, findings=tuple(findings)))
    first = [low.vulnerability_id, crit[1].vulnerability_id, crit[0].vulnerability_id]
    assert sorted(first, key=text.index) == first, text[:3000]
