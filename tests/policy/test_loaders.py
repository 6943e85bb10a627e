"""The ignore-file and VEX readers: what they accept, what they refuse (naming file and line), and
that no input makes anything but PolicyError escape (property tests)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vulnwatch.model import Finding, Image, ScanResult
from vulnwatch.policy import LOADERS, Policy, PolicyError, load_file, load_text, purl_matches

IMG = Image("prod", "team/app", "sha256:" + "ab" * 32, ("1.0",))
NOW = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)


def finding(vid="CVE-2023-0001", name="openssl", version="3.0.11-1~deb12u2", aliases=(),
            purl="pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"):
    return Finding(vid, name, version, ecosystem="Debian:12", aliases=aliases, purl=purl)


def apply(rules, *findings, image=IMG, now=NOW):
    res = Policy(rules).apply(ScanResult(image, "builtin", NOW, findings=tuple(findings)), now)
    return [f.vulnerability_id for f in res.findings], [f.vulnerability_id for f in res.suppressed]


# --- .trivyignore ---------------------------------------------------------------------------

def test_trivyignore_ids_comments_and_expiry():
    rules = load_text("# accepted until the upgrade\nCVE-2023-0001 exp:2027-01-01\n\n"
                      "GHSA-xxxx-yyyy-zzzz  # inline reason\nCVE-2020-9 exp:2026-12-02\n", ".trivyignore")
    assert [(r.ids, r.reason, r.expires, r.source) for r in rules] == [
        (("CVE-2023-0001",), "accepted until the upgrade", date(2027, 1, 1), ".trivyignore:2"),
        (("GHSA-XXXX-YYYY-ZZZZ",), "inline reason", None, ".trivyignore:4"),
        (("CVE-2020-9",), "listed in .trivyignore", date(2026, 12, 2), ".trivyignore:5")]
    kept, suppressed = apply(rules, finding(), finding("CVE-2099-1", aliases=("GHSA-xxxx-yyyy-zzzz",)),
                             finding("CVE-2020-9"))
    assert suppressed == ["CVE-2023-0001", "CVE-2099-1"]     # by id, and by alias
    assert kept == ["CVE-2020-9"]                              # expired at the start of its day


@pytest.mark.parametrize("text,line,words", [
    ("CVE-1\nCVE-2 exp:2027-13-01\n", 2, "bad expiry"),
    ("CVE-1 something\n", 1, "unexpected"),
    ("\n\n'CVE-1'\n", 3, "not a vulnerability id"),
])
def test_trivyignore_errors_name_file_and_line(text, line, words):
    with pytest.raises(PolicyError) as e:
        load_text(text, "ci/.trivyignore")
    assert e.value.line == line and str(e.value).startswith(f"ci/.trivyignore:{line}: ") and words in str(e.value)


# --- rules YAML -----------------------------------------------------------------------------

def test_rules_file_by_alias_purl_glob_repository_and_expiry():
    rules = load_text("rules:\n"
                      "  - id: [GHSA-AAAA]\n    reason: alias\n"
                      "  - package: 'pkg:deb/debian/openssl*'\n    repository: 'prod/team/*'\n    reason: glob\n"
                      "  - id: CVE-2023-0003\n    reason: old\n    expires: 2026-01-01\n", "ignore.yaml")
    assert [r.source for r in rules] == ["ignore.yaml:2", "ignore.yaml:4", "ignore.yaml:7"]
    kept, suppressed = apply(rules, finding("CVE-1", name="zlib", purl="pkg:deb/debian/zlib1g@1", aliases=("GHSA-aaaa",)),
                             finding("CVE-2"), finding("CVE-2023-0003", name="zlib", purl="pkg:deb/debian/zlib1g@1"))
    assert suppressed == ["CVE-1", "CVE-2"] and kept == ["CVE-2023-0003"]
    other = Image("prod", "else/app", "sha256:" + "cd" * 32)
    assert apply(rules, finding("CVE-2"), image=other) == (["CVE-2"], [])     # repository glob


def test_trivy_yaml_form():
    rules = load_text("vulnerabilities:\n  - id: CVE-2023-0001\n    purls: ['pkg:deb/debian/openssl']\n"
                      "    statement: fine\n    expired_at: 2027-01-01\n", ".trivyignore.yaml")
    assert rules[0].reason == "fine" and rules[0].expires == date(2027, 1, 1)
    assert apply(rules, finding()) == ([], ["CVE-2023-0001"])


@pytest.mark.parametrize("text,line,words", [
    ("rules:\n  - id: CVE-1\n", 2, "needs a reason"),
    ("rules:\n  - reason: x\n", 2, "needs an id or a package"),
    ("rules:\n  - id: CVE-1\n    reason: x\n    expires: soon\n", 4, "not a date"),
    ("rules:\n  - id: CVE-1\n    reson: x\n", 3, "unknown key 'reson'"),
    ("rules:\n  - id: [CVE-1\n", 3, "not valid YAML"),
    ("rules:\n  - package: 'pkg:nothing'\n    reason: x\n", 2, "not a purl"),
])
def test_rules_errors_name_file_and_line(text, line, words):
    with pytest.raises(PolicyError) as e:
        load_text(text, "ignore.yaml")
    assert e.value.line == line and words in str(e.value) and str(e.value).startswith("ignore.yaml:")


# --- OpenVEX --------------------------------------------------------------------------------

def openvex(*statements):
    return json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex-1",
                       "author": "sec", "timestamp": "2026-11-01T00:00:00Z", "version": 1,
                       "statements": list(statements)})


def test_openvex_not_affected_fixed_and_later_statements_win():
    doc = openvex(
        {"vulnerability": {"name": "CVE-2023-0001", "aliases": ["GHSA-1"]},
         "products": [{"@id": "pkg:deb/debian/openssl@3.0.11-1~deb12u2"}], "status": "not_affected",
         "justification": "vulnerable_code_not_in_execute_path", "impact_statement": "TLS server unused"},
        {"vulnerability": {"name": "CVE-2023-0002"}, "products": [{"@id": "pkg:deb/debian/openssl"}],
         "status": "fixed"},
        {"vulnerability": {"name": "CVE-2023-0003"}, "products": [{"@id": "pkg:deb/debian/openssl"}],
         "status": "not_affected", "justification": "component_not_present", "timestamp": "2026-01-01T00:00:00Z"},
        {"vulnerability": {"name": "CVE-2023-0003"}, "products": [{"@id": "pkg:deb/debian/openssl"}],
         "status": "under_investigation", "timestamp": "2026-02-01T00:00:00Z"},
        {"vulnerability": {"name": "CVE-2023-0004"},
         "products": [{"@id": "pkg:oci/app@sha256%3A" + "ab" * 32, "subcomponents": [{"@id": "pkg:deb/debian/openssl"}]}],
         "status": "not_affected", "justification": "inline_mitigations_already_exist"},
        {"vulnerability": {"name": "CVE-2023-0005"}, "products": [{"@id": "pkg:deb/debian/openssl@9.9"}],
         "status": "not_affected", "justification": "component_not_present"})
    rules = load_text(doc, "app.openvex.json")
    kept, suppressed = apply(rules, finding(), finding("CVE-2023-0002"), finding("CVE-2023-0003"),
                             finding("CVE-2023-0004"), finding("CVE-2023-0005"))
    assert suppressed == ["CVE-2023-0001", "CVE-2023-0002", "CVE-2023-0004"]
    assert kept == ["CVE-2023-0003", "CVE-2023-0005"]      # withdrawn later; another version
    res = Policy(rules).apply(ScanResult(IMG, "builtin", NOW, findings=(finding(),)), NOW)
    s = res.suppressed[0].suppression
    assert (s.kind, s.status, s.justification, s.reason, s.source) == (
        "vex", "not_affected", "vulnerable_code_not_in_execute_path", "TLS server unused", "app.openvex.json#statements[0]")
    other = Image("prod", "team/app", "sha256:" + "ef" * 32)     # the image purl names another digest
    assert apply(rules, finding("CVE-2023-0004"), image=other) == (["CVE-2023-0004"], [])


@pytest.mark.parametrize("statement,words", [
    ({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a"}], "status": "not_affected"},
     "needs a justification or an impact_statement"),
    ({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a"}], "status": "gone"}, "status 'gone'"),
    ({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a"}], "status": "not_affected",
      "justification": "trust_me"}, "justification 'trust_me'"),
    ({"vulnerability": {}, "products": [], "status": "fixed"}, "needs a \"name\""),
    ({"vulnerability": {"name": "CVE-1"}, "products": [], "status": "fixed"}, "non-empty list"),
])
def test_openvex_errors_name_the_file_and_statement(statement, words):
    with pytest.raises(PolicyError) as e:
        load_text(openvex(statement), "bad.openvex.json")
    assert str(e.value).startswith("bad.openvex.json: statements[0]") and words in str(e.value)


def test_bad_json_names_the_line(tmp_path):
    p = tmp_path / "v.json"
    p.write_text('{\n  "@context": "https://openvex.dev/ns/v0.2.0",\n  "statements": [\n}\n')
    with pytest.raises(PolicyError) as e:
        load_file(p, kind="vex")
    assert e.value.line == 4 and str(e.value).startswith(f"{p}:4: not valid JSON")
    with pytest.raises(PolicyError, match="not a VEX document"):
        load_text("CVE-1\n", "x.txt", kind="vex")
    with pytest.raises(PolicyError, match="cannot read it"):
        load_file(tmp_path / "missing.json")


# --- CycloneDX VEX --------------------------------------------------------------------------

def cdx(*vulns, components=()):
    return json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
                       "metadata": {"component": {"type": "container", "name": "app", "bom-ref": "image"}},
                       "components": list(components), "vulnerabilities": list(vulns)})


def test_cyclonedx_vex_states_refs_and_bom_links():
    doc = cdx({"id": "CVE-2023-0001", "analysis": {"state": "not_affected", "justification": "code_not_reachable",
                                                   "detail": "not called"},
               "affects": [{"ref": "comp-openssl"}]},
              {"id": "CVE-2023-0002", "analysis": {"state": "false_positive"},
               "affects": [{"ref": "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#pkg:deb/debian/openssl"}]},
              {"id": "CVE-2023-0003", "analysis": {"state": "exploitable"}, "affects": [{"ref": "comp-openssl"}]},
              {"id": "CVE-2023-0004", "references": [{"id": "GHSA-4", "source": {"name": "GitHub"}}],
               "analysis": {"state": "resolved"}, "affects": [{"ref": "image"}]},
              {"id": "CVE-2023-0005", "affects": [{"ref": "comp-openssl"}]},
              components=[{"type": "library", "name": "openssl", "bom-ref": "comp-openssl",
                           "purl": "pkg:deb/debian/openssl@3.0.11-1~deb12u2"}])
    rules = load_text(doc, "app.cdx.json")
    kept, suppressed = apply(rules, finding(), finding("CVE-2023-0002"), finding("CVE-2023-0003"),
                             finding("CVE-X", aliases=("GHSA-4",)), finding("CVE-2023-0005"))
    assert suppressed == ["CVE-2023-0001", "CVE-2023-0002", "CVE-X"] and kept == ["CVE-2023-0003", "CVE-2023-0005"]
    s = rules[0].suppression()
    assert (s.status, s.justification, s.reason) == ("not_affected", "code_not_reachable", "not called")


@pytest.mark.parametrize("vuln,words", [
    ({"id": "CVE-1", "analysis": {"state": "not_affected"}, "affects": [{"ref": "pkg:npm/a@1"}]},
     "needs a justification or a detail"),
    ({"id": "CVE-1", "analysis": {"state": "maybe"}, "affects": [{"ref": "pkg:npm/a@1"}]}, "analysis.state 'maybe'"),
    ({"id": "CVE-1", "analysis": {"state": "resolved"}, "affects": [{"ref": "nowhere"}]}, "names no component"),
    ({"id": "CVE-1", "analysis": {"state": "resolved"}}, "\"affects\""),
])
def test_cyclonedx_vex_errors(vuln, words):
    with pytest.raises(PolicyError) as e:
        load_text(cdx(vuln), "bad.cdx.json")
    assert str(e.value).startswith("bad.cdx.json: vulnerabilities[0]") and words in str(e.value)


# --- purls ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,expected", [
    ("pkg:deb/debian/openssl", True), ("pkg:deb/debian/openssl@3.0.11-1~deb12u2", True),
    ("pkg:deb/debian/openssl@3.0.11-1~deb12u3", False), ("pkg:deb/debian/openssl?arch=amd64", True),
    ("pkg:deb/debian/openssl?arch=arm64", False), ("pkg:deb/debian/openssl*", True), ("pkg:deb/debian/libssl*", False),
    ("pkg:deb/ubuntu/openssl", False), ("openssl", True), ("open*", True), ("zlib", False),
])
def test_purl_patterns(pattern, expected):
    assert purl_matches(pattern, "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
                        "openssl") is expected


# --- properties: nothing but PolicyError escapes --------------------------------------------

_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                            lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
                                st.sampled_from(["@context", "statements", "vulnerability", "name", "products",
                                                 "@id", "status", "justification", "subcomponents", "aliases",
                                                 "bomFormat", "vulnerabilities", "id", "analysis", "state",
                                                 "affects", "ref", "components", "bom-ref", "purl", "detail",
                                                 "impact_statement", "timestamp", "metadata", "component"]),
                                kids, max_size=5), max_leaves=20)
_statuses = st.sampled_from(["not_affected", "fixed", "affected", "under_investigation", "resolved",
                             "false_positive", "CycloneDX", "https://openvex.dev/ns/v0.2.0", "pkg:npm/a@1",
                             "component_not_present", "code_not_reachable", "x"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json_values, st.dictionaries(st.sampled_from(["@context", "statements", "bomFormat",
                                                                 "vulnerabilities", "components", "metadata"]),
                                               st.one_of(_statuses, _json_values), max_size=4)),
       st.sampled_from(sorted(LOADERS)))
def test_no_document_makes_anything_but_policy_error_escape(doc, fmt):
    try:
        rules = LOADERS[fmt]().load(json.dumps(doc), "doc.json")
    except PolicyError as e:
        assert str(e).startswith("doc.json")
        return
    Policy(rules).apply(ScanResult(IMG, "builtin", NOW, findings=(finding(),)), NOW)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200) | st.text(
    alphabet="rules:-id packagereason expires2027-01-0#\n []{}'\"*:", max_size=200), st.sampled_from(sorted(LOADERS)))
def test_no_text_makes_anything_but_policy_error_escape(text, fmt):
    try:
        rules = LOADERS[fmt]().load(text, "f")
    except PolicyError as e:
        assert str(e).startswith("f")
        return
    Policy(rules).apply(ScanResult(IMG, "builtin", NOW, findings=(finding(),)), NOW)
