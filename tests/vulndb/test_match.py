"""OSV range evaluation on hand-written records (one per event rule) and on the real exports."""

from __future__ import annotations

import json

import pytest

from vulnwatch.model import Package, Severity
from vulnwatch.vulndb.index import VulnIndex
from vulnwatch.vulndb.match import Matcher
from vulnwatch.vulndb.sync import import_path

from .conftest import zip_records


def rec(rid, ranges=None, *, eco="PyPI", name="demo", versions=None, aliases=(), **extra):
    aff = {"package": {"ecosystem": eco, "name": name}}
    if ranges is not None:
        aff["ranges"] = ranges
    if versions is not None:
        aff["versions"] = versions
    r = {"id": rid, "modified": "2024-01-01T00:00:00Z", "aliases": list(aliases), "affected": [aff]}
    r.update(extra)
    return r


def eco_range(*events, kind="ECOSYSTEM"):
    return {"type": kind, "events": [dict([e]) for e in events]}


@pytest.fixture
def make_matcher(tmp_path):
    dbs = []

    def make(*records, source="test"):
        folder = tmp_path / f"records{len(dbs)}"
        folder.mkdir()
        for r in records:
            (folder / f"{r['id']}.json").write_text(json.dumps(r))
        db = VulnIndex(tmp_path / f"osv{len(dbs)}.db")
        dbs.append(db)
        import_path(db, folder, source=source)
        return Matcher(db)

    yield make
    for db in dbs:
        db.close()


def ids(matcher, version, name="demo", eco="PyPI", **kw):
    return sorted(f.vulnerability_id for f in matcher.match([Package(name, version, eco, **kw)]))


# ---------------------------------------------------------------- event rules

def test_introduced_zero_and_fixed(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "0"), ("fixed", "1.5"))]))
    assert ids(m, "0.0.1") == ["X-1"]
    assert ids(m, "1.4.9") == ["X-1"]
    assert ids(m, "1.5") == []
    assert ids(m, "2.0") == []


def test_introduced_later_than_zero(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "1.2"), ("fixed", "1.5"))]))
    assert ids(m, "1.1") == []
    assert ids(m, "1.2") == ["X-1"]
    assert ids(m, "1.5") == []


def test_last_affected_is_inclusive(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "1.0"), ("last_affected", "2.1.214"))]))
    assert ids(m, "2.1.214") == ["X-1"]
    assert ids(m, "2.1.215") == []
    assert ids(m, "0.9") == []
    f, = m.match([Package("demo", "2.0", "PyPI")])
    assert f.fixed_versions == () and f.fix_available is False


def test_open_range_everything_affected(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "0"))]))
    assert ids(m, "99.0") == ["X-1"]


def test_limit_bounds_the_range(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "1.0"), ("limit", "2.0"))]),
                     rec("X-2", [eco_range(("introduced", "1.0"), ("limit", "*"))]))
    assert ids(m, "1.5") == ["X-1", "X-2"]
    assert ids(m, "2.0") == ["X-2"]
    assert ids(m, "0.5") == []


def test_multiple_limits_any_one_suffices(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "0"), ("limit", "1.0"), ("limit", "3.0"))]))
    assert ids(m, "2.0") == ["X-1"]
    assert ids(m, "3.0") == []


def test_multiple_intervals_in_one_range(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "1.0.0"), ("fixed", "1.0.2"),
                                           ("introduced", "3.0.0"), ("fixed", "3.2.5"))]))
    assert [ids(m, v) for v in ("0.9", "1.0.1", "1.0.2", "2.0", "3.1", "3.2.5")] == \
        [[], ["X-1"], [], [], ["X-1"], []]
    f, = m.match([Package("demo", "3.1", "PyPI")])
    assert f.fixed_versions == ("3.2.5",)


def test_unsorted_events_are_sorted_by_version(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("fixed", "3.2.5"), ("introduced", "3.0.0"),
                                           ("fixed", "1.0.2"), ("introduced", "1.0.0"))]))
    assert [ids(m, v) for v in ("0.9", "1.0.1", "2.0", "3.1", "4.0")] == [[], ["X-1"], [], ["X-1"], []]


def test_multiple_ranges_any_one_suffices(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "1.0"), ("fixed", "1.1")),
                                 eco_range(("introduced", "2.0"), ("fixed", "2.1"))]))
    assert ids(m, "1.0.5") == ["X-1"]
    assert ids(m, "2.0.5") == ["X-1"]
    assert ids(m, "1.5") == []
    f, = m.match([Package("demo", "2.0.5", "PyPI")])
    assert f.fixed_versions == ("2.1",)


def test_versions_list_only(make_matcher):
    m = make_matcher(rec("X-1", versions=["1.0", "1.2"]))
    assert ids(m, "1.0") == ["X-1"]
    assert ids(m, "1.1") == []


def test_git_ranges_count_only_through_versions(make_matcher):
    git = {"type": "GIT", "repo": "https://example.invalid/r.git",
           "events": [{"introduced": "0"}, {"fixed": "a" * 40}]}
    m = make_matcher(rec("X-1", [git], versions=["1.0"]))
    assert ids(m, "1.0") == ["X-1"]
    assert ids(m, "0.5") == []
    f, = m.match([Package("demo", "1.0", "PyPI")])
    assert f.fixed_versions == ()


def test_withdrawn_records_are_dropped(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "0"))], withdrawn="2024-02-01T00:00:00Z"),
                     rec("X-2", [eco_range(("introduced", "0"))]))
    assert ids(m, "1.0") == ["X-2"]
    assert m.index.record("X-1") is None


def test_semver_range_in_a_non_semver_ecosystem(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "1.0.0-rc.1"), ("fixed", "1.0.1"), kind="SEMVER")],
                         eco="npm", name="left-pad"))
    assert ids(m, "1.0.0", name="left-pad", eco="npm") == ["X-1"]
    assert ids(m, "1.0.0-beta", name="left-pad", eco="npm") == []


def test_unparsable_bound_skips_the_record_and_counts_it(make_matcher):
    m = make_matcher(rec("BAD-1", [eco_range(("introduced", "0"), ("fixed", "not a version!"))]),
                     rec("X-2", [eco_range(("introduced", "0"), ("fixed", "2.0"))]))
    assert ids(m, "1.0") == ["X-2"]
    assert "BAD-1" in m.stats.skipped_records
    assert "not a version!" in m.stats.skipped_records["BAD-1"]


def test_unparsable_installed_version_is_counted_not_fatal(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "0"), ("fixed", "2.0"))], versions=["weird!"]))
    assert ids(m, "weird!") == ["X-1"]  # exact versions still match
    assert ids(m, "also weird!") == []
    assert "PyPI/demo@also weird!" in m.stats.skipped_packages


# ---------------------------------------------------------------- ids, merging, severity, names

def test_cve_alias_becomes_primary_and_duplicates_merge(make_matcher):
    m = make_matcher(
        rec("PYSEC-1", [eco_range(("introduced", "0"), ("fixed", "2.0"))], aliases=["CVE-2020-1", "GHSA-a"]),
        rec("GHSA-a", [eco_range(("introduced", "0"), ("fixed", "2.0.1"))], aliases=["CVE-2020-1", "PYSEC-1"],
            severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]))
    f, = m.match([Package("demo", "1.0", "PyPI", purl="pkg:pypi/demo@1.0")])
    assert f.vulnerability_id == "CVE-2020-1"
    assert f.aliases == ("GHSA-a", "PYSEC-1")
    assert set(f.fixed_versions) == {"2.0", "2.0.1"}
    assert f.severity is Severity.CRITICAL and f.cvss_score == 9.8
    assert f.cvss_vector.startswith("CVSS:3.1/")
    assert f.scanner == "builtin" and f.purl == "pkg:pypi/demo@1.0" and f.fixable


def test_upstream_cves_give_one_finding_each(make_matcher):
    m = make_matcher(rec("DSA-1-1", [eco_range(("introduced", "0"), ("fixed", "1.0-2"))], eco="Debian:11",
                         name="src", upstream=["CVE-2021-2", "CVE-2021-1"],
                         references=[{"type": "ADVISORY", "url": "https://security-tracker.debian.org/tracker/DSA-1-1"}]))
    fs = m.match([Package("libsrc1", "1.0-1", "Debian:11", source_name="src")])
    assert [f.vulnerability_id for f in fs] == ["CVE-2021-1", "CVE-2021-2"]
    assert all(f.aliases == ("DSA-1-1",) and f.package_name == "libsrc1" for f in fs)
    assert fs[0].links[:2] == ("https://osv.dev/vulnerability/DSA-1-1",
                               "https://security-tracker.debian.org/tracker/DSA-1-1")


def test_severity_from_database_specific_when_no_vector(make_matcher):
    r = rec("GHSA-x", [eco_range(("introduced", "0"))])
    r["database_specific"] = {"severity": "MODERATE"}
    m = make_matcher(r)
    f, = m.match([Package("demo", "1.0", "PyPI")])
    assert f.severity is Severity.MEDIUM and f.cvss_score is None


def test_pypi_names_are_normalised(make_matcher):
    m = make_matcher(rec("X-1", [eco_range(("introduced", "0"))], name="Zope.Interface_x"))
    assert ids(m, "1.0", name="zope-interface-X") == ["X-1"]


def test_release_scoped_and_unscoped_ecosystems(make_matcher):
    m = make_matcher(rec("D-11", [eco_range(("introduced", "0"), ("fixed", "2.0-1"))], eco="Debian:11", name="s"),
                     rec("D-10", [eco_range(("introduced", "0"), ("fixed", "2.0-1"))], eco="Debian:10", name="s"),
                     rec("D-ALL", [eco_range(("introduced", "0"), ("fixed", "2.0-1"))], eco="Debian", name="s"))
    assert ids(m, "1.0-1", name="s", eco="Debian:11") == ["D-11", "D-ALL"]
    # a package without a release takes the image's distro
    fs = m.match([Package("s", "1.0-1", "Debian")], distro="Debian:10")
    assert sorted(f.vulnerability_id for f in fs) == ["D-10", "D-ALL"]


def test_distro_packages_use_source_name_and_version(make_matcher):
    m = make_matcher(rec("D-1", [eco_range(("introduced", "0"), ("fixed", "1.1-1"))], eco="Debian:11", name="openssl"))
    hit = Package("libssl1.1", "9:9.9", "Debian:11", source_name="openssl", source_version="1.0-1")
    miss = Package("libssl1.1", "1.0-1", "Debian:11", source_name="openssl", source_version="1.1-1")
    assert [f.vulnerability_id for f in m.match([hit])] == ["D-1"]
    assert m.match([miss]) == []
    # language ecosystems ignore source names
    m2 = make_matcher(rec("P-1", [eco_range(("introduced", "0"))], name="other"))
    assert ids(m2, "1.0", name="demo", source_name="other") == []


# ---------------------------------------------------------------- the real exports

def _first(ecosystem, pred):
    for r in zip_records(ecosystem):
        if pred(r):
            return r
    pytest.skip(f"no suitable record in {ecosystem}")


def test_real_pypi_known_vulnerable_version(real_index):
    m = Matcher(real_index)
    fs = m.match([Package("Jinja2", "2.10", "PyPI")])
    by_id = {f.vulnerability_id: f for f in fs}
    f = by_id["CVE-2019-10906"]
    assert "PYSEC-2019-217" in f.aliases
    assert f.fixed_versions == ("2.10.1",)
    fixed = m.match([Package("jinja2", "2.10.1", "PyPI")])
    assert "CVE-2019-10906" not in {x.vulnerability_id for x in fixed}


def test_real_pypi_record_with_cvss_vector(real_index):
    r = _first("PyPI", lambda r: r.get("severity") and not r.get("withdrawn") and any(
        e.get("fixed") and (e2.get("introduced") == "0")
        for a in r["affected"] for rg in a.get("ranges", []) if rg["type"] == "ECOSYSTEM"
        for e in rg["events"] for e2 in rg["events"]))
    aff = r["affected"][0]
    rng = next(rg for rg in aff["ranges"] if rg["type"] == "ECOSYSTEM")
    fix = next(e["fixed"] for e in rng["events"] if "fixed" in e)
    below = (aff.get("versions") or [None])[0]
    m = Matcher(real_index)
    cve = next((a for a in [r["id"], *r.get("aliases", [])] if a.startswith("CVE-")), r["id"])
    if below:
        fs = [f for f in m.match([Package(aff["package"]["name"], below, "PyPI")]) if f.vulnerability_id == cve]
        assert fs and fs[0].cvss_score is not None and fs[0].severity is not Severity.UNKNOWN
    at_fix = m.match([Package(aff["package"]["name"], fix, "PyPI")])
    assert cve not in {f.vulnerability_id for f in at_fix}


def test_real_debian_11_source_package(real_index):
    m = Matcher(real_index)
    vulnerable = Package("libssl1.1", "1.1.1k-1+deb11u1", "Debian:11", source_name="openssl")
    fs = {f.vulnerability_id: f for f in m.match([vulnerable])}
    assert "CVE-2022-0778" in fs  # DSA-5103-1
    assert "DSA-5103-1" in fs["CVE-2022-0778"].aliases
    assert fs["CVE-2022-0778"].fixed_versions == ("1.1.1k-1+deb11u2",)
    patched = Package("libssl1.1", "1.1.1k-1+deb11u2", "Debian:11", source_name="openssl")
    assert "CVE-2022-0778" not in {f.vulnerability_id for f in m.match([patched])}
    # the same source at the same version in Debian 10 is judged by Debian 10's records
    assert "CVE-2022-0778" not in {f.vulnerability_id for f in m.match(
        [Package("libssl1.1", "1.1.1k-1+deb11u2", "Debian:10", source_name="openssl")])}


def test_real_debian_every_dla_dsa_fixed_version_is_not_affected(real_index):
    """For every Debian 11 advisory: one below the fix is affected, the fix itself is not."""
    m = Matcher(real_index)
    checked = 0
    for r in zip_records("Debian"):
        for aff in r["affected"]:
            if aff["package"]["ecosystem"] != "Debian:11":
                continue
            fix = next(e["fixed"] for e in aff["ranges"][0]["events"] if "fixed" in e)
            name = aff["package"]["name"]
            primary = sorted(u for u in r.get("upstream", []) if u.startswith("CVE-")) or [r["id"]]
            at_fix = {f.vulnerability_id for f in m.match([Package(name, fix, "Debian:11", source_name=name)])}
            below = {f.vulnerability_id for f in m.match([Package(name, fix + "~", "Debian:11", source_name=name)])}
            assert primary[0] in below, (r["id"], name, fix)
            # another advisory may fix the same CVE later, so only check ones unique to this record
            if not any(o for o in primary if o in at_fix):
                checked += 1
    assert checked > 300


def test_real_alpine_v3_11_origin_package(real_index):
    m = Matcher(real_index)
    old = {f.vulnerability_id for f in m.match([Package("libcurl", "7.30.0-r0", "Alpine:v3.11", source_name="curl")])}
    assert "CVE-2014-0138" in old
    new = {f.vulnerability_id for f in m.match([Package("libcurl", "7.36.0-r0", "Alpine:v3.11", source_name="curl")])}
    assert "CVE-2014-0138" not in new
    assert new  # later curl CVEs still apply


def test_real_data_has_no_skipped_records(real_index):
    m = Matcher(real_index)
    for eco, name in [("Debian:11", "openssl"), ("Debian:10", "linux"), ("Alpine:v3.11", "openssl"), ("PyPI", "django")]:
        m.match([Package(name, "0.1", eco, source_name=name)])
    assert m.stats.skipped_records == {}
