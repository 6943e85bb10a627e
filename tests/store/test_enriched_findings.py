"""Findings carry enrichment (severity source, KEV, EPSS) through the store unchanged, and two
findings that differ only in it are never confused (the store shares decoded findings)."""

from __future__ import annotations

from dataclasses import replace

from vulnwatch.model import Finding, Image, KevListing, ScanResult, Severity, findings_signature, utcnow


def test_enrichment_round_trips_and_is_not_shared_between_different_findings(store):
    plain = Finding("CVE-2022-37434", "zlib1g", "1:1.2.11.dfsg-2+deb11u1", Severity.CRITICAL, "Debian",
                    cvss_score=9.8, severity_source="nvd:nvd@nist.gov", scanner="builtin")
    rich = replace(plain, kev=KevListing("2025-08-26", "2025-09-16", True), epss=0.451, epss_percentile=0.977)
    for i, f in enumerate((plain, rich)):
        img = Image("r", "app", "sha256:%064x" % i)
        store.commit_scan(ScanResult(img, "builtin", utcnow(), findings=(f,)), [])
    got = [store.snapshot("r", "app", "sha256:%064x" % i).findings for i in (0, 1)]
    assert got == [(plain,), (rich,)]
    assert findings_signature(got[1]) != findings_signature(got[0])
