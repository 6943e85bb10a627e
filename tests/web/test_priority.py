"""The image page and its API show what the trustworthy-findings work records: KEV listing
(count, badge, filter), EPSS, where each severity came from, fix-first order (KEV, severity,
EPSS), and suppressed findings with their reason, kept apart and not counted."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx

from vulnwatch.build import open_store
from vulnwatch.config import load_config
from vulnwatch.model import Finding, Image, KevListing, ScanResult, Severity, Suppression

T0 = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
DIGEST = "sha256:" + "ab" * 32


def _finding(vid, severity, *, kev=None, epss=None, source="", suppression=None):
    return Finding(vulnerability_id=vid, package_name="openssl", package_version="3.0.11-1~deb12u1",
                   severity=severity, ecosystem="Debian:12", fixed_versions=("3.0.13-1~deb12u1",),
                   links=(f"https://security-tracker.debian.org/tracker/{vid}",), severity_source=source,
                   kev=kev, epss=epss, suppression=suppression)


def test_kev_epss_severity_source_order_and_suppressed(tmp_path, serve):
    cfg_path = tmp_path / "vulnwatch.yaml"
    cfg_path.write_text(f"state: {{path: {tmp_path / 'state.db'}}}\n")
    cfg = load_config(cfg_path)
    findings = (
        _finding("CVE-2024-0001", Severity.CRITICAL, epss=0.02, source="cvss_v3 (record)"),
        _finding("CVE-2024-0002", Severity.MEDIUM, kev=KevListing(date_added="2024-05-01"), epss=0.5,
                 source="cvss_v3 (CVE record, CISA-ADP)"),
        _finding("CVE-2024-0003", Severity.CRITICAL, epss=0.9, source="cvss_v3 (alias GHSA-xxxx)"),
    )
    ignored = _finding("CVE-2024-0009", Severity.HIGH, suppression=Suppression(
        kind="vex", reason="vulnerable code not in execute path", source="vex.json#0", status="not_affected"))
    store = open_store(cfg)
    img = Image(registry="lab", repository="team/app", digest=DIGEST, tags=("1.0",))
    store.commit_scan(ScanResult(image=img, scanner="builtin", scanned_at=T0, findings=findings,
                                 suppressed=(ignored,), distro="Debian:12"), [])
    store.close()

    s = serve(cfg)
    with httpx.Client(base_url=s.url, timeout=30) as c:
        doc = c.get(f"/api/v1/images/lab/team/app@{DIGEST}").json()
        assert doc["kev"] == 1 and doc["counts"]["CRITICAL"] == 2 and doc["counts"]["HIGH"] == 0
        # fix first: the KEV one (MEDIUM) leads, then CRITICALs by EPSS
        assert [f["vulnerability_id"] for f in doc["findings"]] == ["CVE-2024-0002", "CVE-2024-0003", "CVE-2024-0001"]
        first = doc["findings"][0]
        assert first["kev"] is True and first["kev_date_added"] == "2024-05-01" and first["epss"] == 0.5
        assert first["severity_source"] == "cvss_v3 (CVE record, CISA-ADP)"
        [sup] = doc["suppressed"]
        assert sup["vulnerability_id"] == "CVE-2024-0009"
        assert sup["suppressed"] == "vulnerable code not in execute path (vex.json#0)"
        only = c.get(f"/api/v1/images/lab/team/app@{DIGEST}", params={"kev": "yes"}).json()
        assert [f["vulnerability_id"] for f in only["findings"]] == ["CVE-2024-0002"]

        html = c.get(f"/images/lab/team/app@{DIGEST}").text
        assert '<b id="kev-count">1</b>' in html
        assert 'data-id="CVE-2024-0002"' in html and 'data-kev="yes"' in html and ">KEV</span>" in html
        assert "50.0%" in html and "cvss_v3 (alias GHSA-xxxx)" in html
        assert 'id="suppressed"' in html and "vulnerable code not in execute path" in html
