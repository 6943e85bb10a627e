"""Enrichment through the DynamoDB store (moto_server): `run` stores the example image's findings
with their CVE JSON 5 / NVD severities, KEV and EPSS, `status` and the store read them back
unchanged; an enrichment update (`db import` of a newer KEV catalog and EPSS file, offline)
re-matches the inventory stored in DynamoDB and writes a re-score event there, with nothing
from the registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE
from vulnwatch.store import open_store

EXAMPLE_OSV = Path(IMAGE_ARCHIVE).parent / "osv"
ENRICHMENT = Path("/work/shared/data/enrichment")
KEV = ENRICHMENT / "kev" / "known_exploited_vulnerabilities.json"
CVE5 = ENRICHMENT / "cve" / "cve-json5.zip"
FIXTURES = Path(__file__).resolve().parents[1] / "vulndb" / "data" / "enrichment"


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def by_id(findings, vid):
    return {f.package_name: f for f in findings if f.vulnerability_id == vid}


def test_enriched_findings_and_a_rescore_on_dynamodb(tmp_path, monkeypatch, dynamodb_url, receiver):
    if not (KEV.exists() and CVE5.exists()):
        pytest.skip("no shared enrichment data")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    archive = tmp_path / "webapp.tar"
    shutil.copy(IMAGE_ARCHIVE, archive)
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{url: "{dynamodb_url}"}}
vulndb:
  path: {tmp_path / 'osv.db'}
  auto_update: false
  ecosystems: []
  imports: [{EXAMPLE_OSV / 'PyPI'}, {EXAMPLE_OSV / 'Debian'}, {FIXTURES / 'nvd-cves.json'}, {CVE5}, {KEV},
            {FIXTURES / 'epss.csv'}]
  epss_threshold: 0.2
registries:
  - {{name: local, type: archive, path: {archive}}}
notifications:
  - {{name: all, type: webhook, url: '{receiver.url}/all'}}
""")
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output

    store = open_store(dynamodb_url)
    try:
        [status] = store.images()
        key = status.image.key
        snap = store.snapshot(*key)
        zlib = by_id(snap.findings, "CVE-2022-37434")["zlib1g"]
        assert (zlib.severity.name, zlib.severity_source, zlib.epss) == ("CRITICAL", "nvd:nvd@nist.gov", 0.02285)
        assert zlib.kev is None
        uuid = by_id(snap.findings, "CVE-2021-3996")        # severity from the CVE record's CISA-ADP metric
        assert {f.severity_source for f in uuid.values()} == {"cve5:adp:CISA-ADP"}
        assert {f.severity.name for f in uuid.values()} == {"MEDIUM"}
        assert not by_id(snap.findings, "CVE-2023-0286")["openssl"].kev
        assert status.kev == 0
        stored_once = snap.findings
    finally:
        store.close()

    # the publishers move: CVE-2023-0286 is listed in KEV, zlib's EPSS jumps 0.02 -> 0.45
    catalog = json.loads(KEV.read_text())
    catalog["catalogVersion"] = "2025.08.26"
    catalog["vulnerabilities"].insert(0, {
        "cveID": "CVE-2023-0286", "vendorProject": "OpenSSL", "product": "OpenSSL",
        "vulnerabilityName": "OpenSSL X.400 Type Confusion (test entry)", "dateAdded": "2025-08-26",
        "shortDescription": "", "requiredAction": "", "dueDate": "2025-09-16",
        "knownRansomwareCampaignUse": "Unknown", "notes": "", "cwes": ["CWE-843"]})
    kev2 = tmp_path / "kev-later.json"
    kev2.write_text(json.dumps(catalog))
    archive.unlink()                                           # the re-match needs no registry
    r = cli(cfg, "db", "import", str(kev2), str(FIXTURES / "epss-later.csv"), "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    [event] = [e["event"] for e in out["events"]]
    what = {c["after"]["vulnerability_id"]: c["what"] for c in event["changed"]}
    assert what["CVE-2023-0286"] == ["kev"] and what["CVE-2022-37434"] == ["epss"]
    [why] = event["reasons"]
    assert why["kind"] == "rescore" and "CVE-2023-0286 listed in KEV (2025-08-26)" in why["summary"]
    assert "CVE-2022-37434 EPSS 0.02 -> 0.45" in why["summary"]

    store = open_store(dynamodb_url)
    try:
        snap = store.snapshot(*key)                            # the re-scored findings, read back
        ssl = by_id(snap.findings, "CVE-2023-0286")
        assert {f.kev.date_added for f in ssl.values()} == {"2025-08-26"}
        assert by_id(snap.findings, "CVE-2022-37434")["zlib1g"].epss == pytest.approx(0.451, abs=0.01)
        assert {f.severity_source for f in by_id(snap.findings, "CVE-2021-3996").values()} == {"cve5:adp:CISA-ADP"}
        assert len(snap.findings) == len(stored_once)
        [status] = store.images()
        assert status.kev == len(ssl)
        [stored] = [d for d in store.deliveries() if d.event.reasons and d.event.reasons[0].kind == "rescore"]
        assert stored.status.value == "delivered" and stored.event.image.key == key
        assert {c.after.vulnerability_id for c in stored.event.changed} >= {"CVE-2023-0286", "CVE-2022-37434"}
    finally:
        store.close()

    [_, posted] = [b["data"] for b in receiver.bodies("/all")]  # the new image, then the re-score
    assert {c["after"]["vulnerability_id"] for c in posted["changed"]} >= {"CVE-2023-0286", "CVE-2022-37434"}
    assert posted["reasons"][0]["kind"] == "rescore"

    r = cli(cfg, "db", "import", str(kev2), str(FIXTURES / "epss-later.csv"), "--format", "json")
    assert json.loads(r.stdout)["events"] == [] and len(receiver.bodies("/all")) == 2   # unchanged: no re-score
