"""The embedded demo (`vulnwatch run`, no config, fresh home) reads its bundled enrichment data:
the real CVE JSON 5 records and KEV entries of the example's CVEs give severities where they have
CVSS, and say so; the bundled data never reaches a user's own scan."""

from __future__ import annotations

import collections
import json

from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.config.root import Config
from vulnwatch.examples import CVE5_DIR, KEV_CATALOG


def _fresh_home(tmp_path, monkeypatch):
    for k in ("VULNWATCH_CONFIG", "XDG_STATE_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def test_demo_run_shows_cvss_severities_from_the_bundled_cve_records(tmp_path, monkeypatch):
    _fresh_home(tmp_path, monkeypatch)
    r = CliRunner().invoke(app, ["run", "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    event = json.loads(r.stdout)["events"][0]
    findings = event["added"]
    assert len(findings) == 73
    # before the bundled enrichment: HIGH 1, MEDIUM 2, UNKNOWN 70
    assert {k: v for k, v in event["counts"].items() if v} == {"HIGH": 1, "MEDIUM": 4, "UNKNOWN": 68}
    sources = collections.Counter(f["severity_source"].split(":")[0] for f in findings)
    assert sources == {"none": 68, "record": 3, "cve5": 2}
    # util-linux's CVE-2021-3996: Debian's records carry no severity; CISA-ADP's CVSS 3.1 says 5.5
    by_pkg = {f["package_name"]: f for f in findings if f["vulnerability_id"] == "CVE-2021-3996"}
    assert set(by_pkg) == {"util-linux", "libuuid1"}
    for f in by_pkg.values():
        assert (f["severity"], f["cvss_score"], f["severity_source"]) == ("MEDIUM", 5.5, "cve5:adp:CISA-ADP")
        assert f["cvss_vector"].startswith("CVSS:3.1/")
    assert not any(f["kev"] for f in findings)  # the KEV catalog lists none of the example's CVEs


def test_the_bundled_enrichment_is_the_real_data_of_exactly_the_demo_cves():
    kev = json.loads(KEV_CATALOG.read_text())
    assert kev["catalogVersion"] == "2025.08.25" and kev["vulnerabilities"] == [] and kev["count"] == 0
    records = sorted(p.stem for p in CVE5_DIR.glob("*.json"))
    assert records == ["CVE-2018-25091", "CVE-2021-3996", "CVE-2022-2097", "CVE-2022-43552", "CVE-2023-45803"]
    for p in CVE5_DIR.glob("*.json"):
        assert json.loads(p.read_text())["cveMetadata"]["cveId"] == p.stem
    assert sum(p.stat().st_size for p in CVE5_DIR.parent.rglob("*.json")) < 300_000


def test_only_the_embedded_defaults_import_the_bundled_enrichment():
    demo = Config.default()
    assert CVE5_DIR in demo.vulndb.imports and KEV_CATALOG in demo.vulndb.imports
    assert demo.vulndb.path.name == "example-osv.db"  # the demo's own index, never a user's data
    user = Config.model_validate({"registries": []})
    assert not any("examples" in str(p) for p in user.vulndb.imports)
