"""KEV, EPSS and re-scoring end to end: `run` records the example image with enrichment applied and
posts to real HTTP receivers; `db update` downloads a newer KEV catalog and EPSS file from a real
HTTP server, re-matches the stored inventory without the registry, and the change (listed in KEV,
an EPSS jump over the threshold) reaches the sinks whose routes ask for it (`kev_only`, `min_epss`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE

from ..support.servers import start_file_server

EXAMPLE_OSV = Path(IMAGE_ARCHIVE).parent / "osv"
KEV = Path("/work/shared/data/enrichment/kev/known_exploited_vulnerabilities.json")
FIXTURES = Path(__file__).resolve().parents[1] / "vulndb" / "data" / "enrichment"


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def kev_with_openssl() -> bytes:
    catalog = json.loads(KEV.read_text())
    catalog["catalogVersion"] = "2025.08.26"
    catalog["vulnerabilities"].insert(0, {
        "cveID": "CVE-2023-0286", "vendorProject": "OpenSSL", "product": "OpenSSL",
        "vulnerabilityName": "OpenSSL X.400 Type Confusion (test entry)", "dateAdded": "2025-08-26",
        "shortDescription": "", "requiredAction": "", "dueDate": "2025-09-16",
        "knownRansomwareCampaignUse": "Unknown", "notes": "", "cwes": ["CWE-843"]})
    return json.dumps(catalog).encode()


def test_kev_epss_and_rescore_events_through_run_and_db_update(tmp_path, monkeypatch, receiver):
    if not KEV.exists():
        pytest.skip("no shared KEV catalog")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    import io
    import zipfile

    debian = io.BytesIO()
    with zipfile.ZipFile(debian, "w") as z:
        for f in sorted((EXAMPLE_OSV / "Debian").glob("*.json")):
            z.write(f, f.name)
    files = start_file_server({"/kev.json": KEV.read_bytes(), "/epss.csv": (FIXTURES / "epss.csv").read_bytes(),
                               "/Debian/all.zip": debian.getvalue()})
    archive = tmp_path / "webapp.tar"
    shutil.copy(IMAGE_ARCHIVE, archive)
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb:
  path: {tmp_path / 'osv.db'}
  auto_update: false
  ecosystems: []
  base_url: '{files.url}'
  imports: [{EXAMPLE_OSV / 'PyPI'}, {FIXTURES / 'nvd-cves.json'}]
  enrichment:
    - {{type: kev, url: '{files.url}/kev.json'}}
    - {{type: epss, url: '{files.url}/epss.csv'}}
  epss_threshold: 0.2
registries:
  - {{name: local, type: archive, path: {archive}}}
notifications:
  - {{name: all, type: webhook, url: '{receiver.url}/all'}}
  - {{name: exploited, type: webhook, url: '{receiver.url}/kev', kev_only: true}}
  - {{name: likely, type: webhook, url: '{receiver.url}/epss', min_epss: 0.3}}
""")
    try:
        r = cli(cfg, "db", "update", "Debian", "--no-rematch")      # enrichment from the HTTP server
        assert "kev: 1404 vulnerabilities imported" in r.stdout and "epss: 6 vulnerabilities" in r.stdout
        r = cli(cfg, "run")
        assert r.exit_code == 0, r.output
        [first] = [b["data"] for b in receiver.bodies("/all")]
        zlib = next(f for f in first["added"] if f["vulnerability_id"] == "CVE-2022-37434")
        assert (zlib["severity"], zlib["severity_source"], zlib["epss"]) == ("CRITICAL", "nvd:nvd@nist.gov", 0.02285)
        assert zlib["kev"] is None
        assert receiver.bodies("/kev") == [] and receiver.bodies("/epss") == []   # nothing in KEV, no EPSS >= 0.3
        ids = [f["vulnerability_id"] for f in first["added"]]
        assert ids.index("CVE-2022-37434") < ids.index("CVE-2023-0286")          # CRITICAL before HIGH

        # the publishers move: CVE-2023-0286 is listed in KEV, zlib's EPSS jumps 0.02 -> 0.45
        files.files["/kev.json"] = kev_with_openssl()
        files.files["/epss.csv"] = (FIXTURES / "epss-later.csv").read_bytes()
        archive.unlink()                                                         # no registry needed
        r = cli(cfg, "db", "update", "Debian", "--format", "json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert {x.get("source"): x["changed"] for x in out["results"] if x.get("source")} == {"kev": True,
                                                                                            "epss": True}
        [event] = [e["event"] for e in out["events"]]
        what = {c["after"]["vulnerability_id"]: c["what"] for c in event["changed"]}
        assert what["CVE-2023-0286"] == ["kev"] and what["CVE-2022-37434"] == ["epss"]
        assert event["changed"][0]["after"]["vulnerability_id"] == "CVE-2023-0286"   # in KEV: first
        [why] = event["reasons"]                                  # a re-score, naming the enrichment data
        assert why["kind"] == "rescore" and "CVE-2023-0286 listed in KEV (2025-08-26)" in why["summary"]
        assert "CVE-2022-37434 EPSS 0.02 -> 0.45" in why["summary"] and "kev" in why["summary"]
        [kev_msg] = [b["data"] for b in receiver.bodies("/kev")]
        assert {c["after"]["vulnerability_id"] for c in kev_msg["changed"]} == {"CVE-2023-0286"}   # libssl, openssl
        assert kev_msg["changed"][0]["after"]["kev"]["date_added"] == "2025-08-26"
        [epss_msg] = [b["data"] for b in receiver.bodies("/epss")]
        assert {c["after"]["vulnerability_id"] for c in epss_msg["changed"]} == {"CVE-2022-37434"}
        assert len(receiver.bodies("/all")) == 2

        r = cli(cfg, "db", "update", "Debian", "--format", "json")           # nothing moved: 304s, no event
        assert json.loads(r.stdout)["events"] == [] and len(receiver.bodies("/all")) == 2
    finally:
        files.close()
