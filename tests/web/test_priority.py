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


def test_overview_kev_column_metrics_coverage_and_timeline_data_versions(tmp_path, serve):
    """The overview's KEV column and ``/metrics`` read the stored KEV count; the image page shows
    the stored coverage; its timeline lists each reason with the version and date of its data."""
    from prometheus_client.parser import text_string_to_metric_families

    from vulnwatch.model import (ChangeReason, Coverage, DataSource, EcosystemCoverage, Event, EventKind,
                                 ReasonKind, UnjudgedPackage)

    cfg_path = tmp_path / "vulnwatch.yaml"
    cfg_path.write_text(f"state: {{path: {tmp_path / 'state.db'}}}\n")
    cfg = load_config(cfg_path)
    kev = KevListing(date_added="2024-05-01")
    findings = (_finding("CVE-2024-0001", Severity.CRITICAL), _finding("CVE-2024-0002", Severity.MEDIUM, kev=kev),
                _finding("CVE-2024-0004", Severity.LOW, kev=kev))
    coverage = Coverage((EcosystemCoverage("Debian:12", 90, True, records=4000, updated_at=T0),
                         EcosystemCoverage("npm", 12, False)),
                        (UnjudgedPackage("npm", "left-pad", "1.3.0", "no advisory data for npm"),))
    img = Image(registry="lab", repository="team/app", digest=DIGEST, tags=("1.0",))
    other = Image(registry="lab", repository="team/zzz", digest="sha256:" + "cd" * 32, tags=("2",))
    result = ScanResult(image=img, scanner="builtin", scanned_at=T0, findings=findings, distro="Debian:12",
                        coverage=coverage)
    debian = DataSource("advisory", "Debian", version='W/"debian-42"', updated_at=T0)
    kev_data = DataSource("enrichment", "kev", version="2025.08.26", updated_at=T0.replace(hour=13))
    event = Event(id="ev-1", kind=EventKind.FINDINGS_CHANGED, image=img, scanner="builtin", occurred_at=T0,
                  added=findings[:1], counts=result.counts, previous_counts={},
                  reasons=(ChangeReason(ReasonKind.ADVISORY_DATA_CHANGED, "advisory data changed: Debian",
                                        (findings[0].key,), (debian,)),
                           ChangeReason(ReasonKind.RESCORE, "re-scored (kev): CVE-2024-0002 listed in KEV",
                                        (findings[1].key,), (debian, kev_data))))
    store = open_store(cfg)
    store.commit_scan(result, [(event, ["hook"])])
    store.commit_scan(ScanResult(image=other, scanner="builtin", scanned_at=T0, findings=findings[:1],
                                 coverage=Coverage(coverage.ecosystems[:1])), [])
    store.close()

    s = serve(cfg)
    with httpx.Client(base_url=s.url, timeout=30) as c:
        rows = c.get("/api/v1/images", params={"sort": "kev"}).json()["items"]
        assert [(r["image"]["repository"], r["kev"]) for r in rows] == [("team/app", 2), ("team/zzz", 0)]
        assert rows[0]["coverage"] == {"state": "missing", "missing": ["npm"], "unjudged": 1,
                                       "text": "missing: no advisory data for npm; 1 package not judged"}
        assert rows[1]["coverage"]["state"] == "complete"
        html = c.get("/", params={"sort": "kev"}).text
        assert 'data-sort="kev"' in html and "no data yet" not in html
        assert '<td class="num kev" title="findings listed in CISA\'s Known Exploited Vulnerabilities">2</td>' in html
        assert "coverage missing: no advisory data for npm" in html

        m = {f.name: f for f in text_string_to_metric_families(c.get("/metrics").text)}
        assert [x.value for x in m["vulnwatch_kev_findings"].samples] == [2]
        assert {x.labels["metric"] for x in m["vulnwatch_not_recorded"].samples} == {"cycle_duration_seconds"}

        doc = c.get(f"/api/v1/images/lab/team/app@{DIGEST}").json()
        assert doc["kev"] == 2 and doc["coverage"]["state"] == "missing"
        assert [(e["ecosystem"], e["present"]) for e in doc["coverage"]["ecosystems"]] == [("Debian:12", True),
                                                                                           ("npm", False)]
        assert doc["coverage"]["unjudged_packages"] == ["left-pad 1.3.0: no advisory data for npm"]
        [ev] = doc["timeline"]
        assert [(r["kind"], [(d["name"], d["version"]) for d in r["data"]]) for r in ev["reasons"]] == [
            ("advisory_data_changed", [("Debian", 'W/"debian-42"')]),
            ("rescore", [("Debian", 'W/"debian-42"'), ("kev", "2025.08.26")])]
        assert ev["reasons"][1]["data"][1]["updated_at"].startswith("2026-12-01T13:00")
        page = c.get(f"/images/lab/team/app@{DIGEST}").text
        assert page.count('class="data-source"') == 3          # each reason lists its own data
        assert "version <code>2025.08.26</code> · imported 2026-12-01 13:00:00 UTC" in page
        assert "version <code>W/&#34;debian-42&#34;</code>" in page
        assert 'id="coverage-state">missing: no advisory data for npm; 1 package not judged</b>' in page
        assert 'data-ecosystem="npm" data-present="no"' in page
