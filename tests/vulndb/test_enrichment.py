"""Enrichment: CVE JSON 5, NVD API 2.0, CISA KEV, FIRST EPSS -> severity (with its source), KEV and
EPSS on findings; imported from files and downloaded conditionally from a real HTTP server.

Real data: the shared OSV exports, the real KEV catalog and CVE JSON 5 records; NVD and EPSS are
fixtures in their published formats (tests/vulndb/data/enrichment)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vulnwatch.model import Package, Severity, priority_order
from vulnwatch.vulndb.index import VulnIndex
from vulnwatch.vulndb.match import Matcher
from vulnwatch.vulndb.sync import detect_kind, import_enrichment, import_path, update_enrichment

from ..support.servers import start_file_server
from .conftest import osv_zip

SHARED = Path("/work/shared/data/enrichment")
KEV = SHARED / "kev" / "known_exploited_vulnerabilities.json"
CVE5 = SHARED / "cve" / "cve-json5.zip"
FIXTURES = Path(__file__).parent / "data" / "enrichment"
NVD = FIXTURES / "nvd-cves.json"
EPSS = FIXTURES / "epss.csv"

# packages of the bundled example image (Debian 11 + PyPI), as the catalogers list them
ZLIB = Package("zlib1g", "1:1.2.11.dfsg-2+deb11u1", "Debian", source_name="zlib")
UTIL_LINUX = Package("util-linux", "2.36.1-8", "Debian", source_name="util-linux")
OPENSSL = Package("libssl1.1", "1.1.1n-0+deb11u3", "Debian", source_name="openssl")
JINJA = Package("Jinja2", "2.10", "PyPI")
URLLIB3 = Package("urllib3", "1.24.1", "PyPI")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def osv_db(tmp_path_factory):
    """Debian and PyPI real exports, no enrichment (copied per test that enriches)."""
    path = tmp_path_factory.mktemp("enrich") / "osv.db"
    with VulnIndex(path) as db:
        import_path(db, osv_zip("Debian"))
        import_path(db, osv_zip("PyPI"))
    return path


@pytest.fixture
def db(osv_db, tmp_path):
    target = tmp_path / "osv.db"
    shutil.copy(osv_db, target)
    index = VulnIndex(target)
    yield index
    index.close()


def by_id(findings, vid, package=None):
    got = [f for f in findings if f.vulnerability_id == vid and (package is None or f.package_name == package)]
    assert got, f"{vid} not found"
    return got[0]


def test_formats_are_recognised_by_content(tmp_path):
    assert detect_kind(need(KEV)) == "kev"
    assert detect_kind(need(CVE5)) == "cve5"
    assert detect_kind(NVD) == "nvd"
    assert detect_kind(EPSS) == "epss"
    assert detect_kind(osv_zip("PyPI")) is None
    gz = tmp_path / "epss_scores-2024-10-01.csv.gz"
    import gzip
    gz.write_bytes(gzip.compress(EPSS.read_bytes()))
    assert detect_kind(gz) == "epss"


def test_real_kev_and_cve5_import_once_then_unchanged(db):
    rep = import_enrichment(db, need(KEV))
    assert (rep.source, rep.changed, rep.records, rep.version) == ("kev", True, 1404, "2025.08.25")
    assert import_enrichment(db, KEV).changed is False      # same content: not imported again
    rep = import_enrichment(db, need(CVE5))
    assert rep.source == "cve5" and rep.records == 1445 and rep.changed
    # CVE-2011-0611: CISA-ADP's CVSS 3.1 and a KEV entry with its dates
    assert ("cve5", "adp:CISA-ADP", 30, "CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H") in \
        db.enrichment_cvss(["CVE-2011-0611"])
    assert db.kev(["CVE-2011-0611"]) == ("2022-03-03", "2022-03-24", None)
    names = {s.ecosystem: s for s in db.enrichment_sources()}
    assert names["kev"].version == "2025.08.25" and names["cve5"].records == 1445


def test_severity_comes_from_every_source_in_order_and_says_which(db):
    m = Matcher(db)
    before = m.match([ZLIB, UTIL_LINUX, JINJA, URLLIB3], "Debian:11")
    zlib = by_id(before, "CVE-2022-37434")
    assert (zlib.severity, zlib.severity_source) == (Severity.UNKNOWN, "none")   # Debian records carry none
    import_enrichment(db, need(CVE5))
    import_enrichment(db, NVD)
    import_enrichment(db, EPSS)
    m = Matcher(db)
    after = m.match([ZLIB, UTIL_LINUX, JINJA, URLLIB3], "Debian:11")
    zlib = by_id(after, "CVE-2022-37434")
    assert (zlib.severity, zlib.cvss_score, zlib.severity_source) == (Severity.CRITICAL, 9.8, "nvd:nvd@nist.gov")
    assert zlib.epss == pytest.approx(0.02285) and zlib.epss_percentile == pytest.approx(0.8955)
    # CVE JSON 5: CISA-ADP's CVSS for util-linux (the CVE is not in the NVD fixture)
    ul = by_id(after, "CVE-2021-3996", "util-linux")
    assert ul.severity is Severity.MEDIUM and ul.severity_source == "cve5:adp:CISA-ADP"
    # NVD prefers v3 over v2 for Jinja2
    jinja = by_id(after, "CVE-2019-10906")
    assert (jinja.severity, jinja.cvss_score, jinja.cvss_vector.startswith("CVSS:3.0")) == (Severity.HIGH, 8.6, True)
    # the record's own CVSS still wins over enrichment
    own = by_id(after, "CVE-2023-43804")
    assert own.severity_source.startswith("record:PYSEC-") and own.severity is Severity.HIGH
    unknown = sum(f.severity is Severity.UNKNOWN for f in after)
    assert unknown < sum(f.severity is Severity.UNKNOWN for f in before)


def test_alias_cvss_then_text_then_unknown(tmp_path):
    """A record without CVSS takes the CVSS of another record naming the same CVE; without one, an
    enrichment source; without that, its own textual rating; else UNKNOWN."""
    recs = tmp_path / "osv"
    recs.mkdir()

    def rec(rid, name, aliases=(), severity=None, db_specific=None):
        r = {"id": rid, "modified": "2024-01-01T00:00:00Z", "aliases": list(aliases),
             "affected": [{"package": {"ecosystem": "PyPI", "name": name},
                           "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}]}]}
        if severity:
            r["severity"] = [{"type": "CVSS_V3", "score": severity}]
        if db_specific:
            r["database_specific"] = db_specific
        (recs / f"{rid}.json").write_text(json.dumps(r))

    rec("PYSEC-1", "alpha", ["CVE-2099-0001"])                       # no CVSS ...
    rec("GHSA-aaaa-bbbb-cccc", "alpha-other", ["CVE-2099-0001"],     # ... another record of the CVE has one
        severity="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    rec("PYSEC-2", "beta", ["CVE-2099-0002"], db_specific={"severity": "MODERATE"})
    rec("PYSEC-3", "gamma", ["CVE-2099-0003"])
    with VulnIndex(tmp_path / "x.db") as db:
        import_path(db, recs, source="test")
        got = {f.package_name: f for f in Matcher(db).match(
            [Package("alpha", "1.0", "PyPI"), Package("beta", "1.0", "PyPI"), Package("gamma", "1.0", "PyPI")])}
        assert (got["alpha"].severity, got["alpha"].severity_source) == (Severity.CRITICAL, "alias:GHSA-aaaa-bbbb-cccc")
        assert (got["beta"].severity, got["beta"].severity_source) == (Severity.MEDIUM, "text:PYSEC-2")
        assert (got["gamma"].severity, got["gamma"].severity_source) == (Severity.UNKNOWN, "none")
        nvd = tmp_path / "nvd.json"
        nvd.write_text(json.dumps({"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [
            {"cve": {"id": "CVE-2099-0002", "metrics": {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary",
             "cvssData": {"vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}}]}}}]}))
        import_enrichment(db, nvd)
        beta = Matcher(db).match([Package("beta", "1.0", "PyPI")])[0]
        assert (beta.severity, beta.severity_source) == (Severity.HIGH, "nvd:nvd@nist.gov")   # enrichment > text


def test_kev_listing_and_priority_order(db, tmp_path):
    catalog = json.loads(need(KEV).read_text())
    catalog["vulnerabilities"].insert(0, {"cveID": "CVE-2023-0286", "vendorProject": "OpenSSL", "product": "OpenSSL",
                                          "vulnerabilityName": "test entry", "dateAdded": "2025-08-26",
                                          "shortDescription": "", "requiredAction": "", "dueDate": "2025-09-16",
                                          "knownRansomwareCampaignUse": "Known", "notes": "", "cwes": []})
    kev = tmp_path / "kev.json"
    kev.write_text(json.dumps(catalog))
    import_enrichment(db, kev)
    import_enrichment(db, NVD)
    import_enrichment(db, EPSS)
    found = Matcher(db).match([ZLIB, OPENSSL, JINJA], "Debian:11")
    ossl = by_id(found, "CVE-2023-0286")
    assert ossl.kev is not None and (ossl.kev.date_added, ossl.kev.due_date, ossl.kev.ransomware) == \
        ("2025-08-26", "2025-09-16", True)
    ordered = sorted(found, key=priority_order)
    assert ordered[0].vulnerability_id == "CVE-2023-0286"        # in KEV: first, though only HIGH
    assert ordered[1].vulnerability_id == "CVE-2022-37434"       # then CRITICAL
    d = ossl.to_dict()
    assert d["kev"] == {"date_added": "2025-08-26", "due_date": "2025-09-16", "known_ransomware": True}
    from vulnwatch.model import Finding
    assert Finding.from_dict(d) == ossl


def test_download_is_conditional_on_change(db):
    server = start_file_server({"/kev.json": need(KEV).read_bytes(), "/epss.csv": EPSS.read_bytes()})
    try:
        sources = [("kev", f"{server.url}/kev.json"), ("epss", f"{server.url}/epss.csv")]
        first = update_enrichment(db, sources)
        assert [(r.source, r.changed) for r in first] == [("kev", True), ("epss", True)]
        again = update_enrichment(db, sources)
        assert [r.changed for r in again] == [False, False]
        assert server.statuses() == [200, 200, 304, 304]
        server.etags = False                                    # no validators: the content hash decides
        assert [r.changed for r in update_enrichment(db, sources)] == [False, False]
        server.files["/epss.csv"] = (FIXTURES / "epss-later.csv").read_bytes()
        last = update_enrichment(db, sources)
        assert [r.changed for r in last] == [False, True] and last[1].version == "2024-10-02T00:00:00+0000"
        assert db.epss(["CVE-2022-37434"])[0] == pytest.approx(0.451)
    finally:
        server.close()


def test_bad_entries_are_skipped_and_named_bad_files_refused(db, tmp_path):
    from vulnwatch.vulndb.interface import VulnDBError

    bad = tmp_path / "epss.csv"
    bad.write_text("#model_version:v1,score_date:2024-01-01\ncve,epss,percentile\nCVE-2022-37434,0.5,0.9\n"
                   "NOT-A-CVE,0.1,0.1\nCVE-2022-1664,7,0.5\n")
    rep = import_enrichment(db, bad)
    assert rep.records == 1 and len(rep.skipped) == 2 and "line 4" in rep.skipped[0][0]
    broken = tmp_path / "kev.json"
    broken.write_text('{"catalogVersion": "1", "vulnerabilities": 5}')
    with pytest.raises(VulnDBError, match="not a KEV catalog"):
        import_enrichment(db, broken)
    assert db.kev(["CVE-2011-0611"]) is None      # nothing half-imported


def test_an_older_index_gains_the_alias_table(tmp_path):
    """A version-1 index (no record_cvss) is upgraded in place on open."""
    import sqlite3

    with VulnIndex(tmp_path / "old.db") as db:
        import_path(db, osv_zip("PyPI"))
        n = db._rows("SELECT COUNT(*) FROM record_cvss")[0][0]
    assert n > 0
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("DELETE FROM record_cvss")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with VulnIndex(tmp_path / "old.db") as db:
        assert db._rows("SELECT COUNT(*) FROM record_cvss")[0][0] == n
