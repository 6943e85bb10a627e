"""CycloneDX 1.6 JSON: valid per cyclonedx-python-lib's strict validator; components, ratings, affects."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from vulnwatch.formats import get_formatter

from .conftest import DIGEST, FINDINGS, PACKAGES, make_result


def render(result, **kw) -> tuple[str, dict]:
    text = get_formatter("cyclonedx").render(result, **kw)
    return text, json.loads(text)


def assert_valid(text: str) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, str(error)


@pytest.mark.parametrize("which", ["result", "ecr_result", "unsupported_result"])
@pytest.mark.parametrize("sbom_only", [False, True])
def test_valid_cyclonedx_1_6(which, sbom_only, request):
    text, bom = render(request.getfixturevalue(which), sbom_only=sbom_only)
    assert_valid(text)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"


def test_the_validator_catches_a_broken_bom(result):
    _, bom = render(result)
    bom["vulnerabilities"][0]["ratings"][0]["severity"] = "severe"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None


def test_image_is_the_metadata_component(result):
    _, bom = render(result)
    image = bom["metadata"]["component"]
    assert image["type"] == "container" and image["name"] == "team/app" and image["version"] == DIGEST
    tags = [p["value"] for p in image["properties"] if p["name"] == "vulnwatch:image:tag"]
    assert tags == ["1.4.2", "latest"]
    assert bom["metadata"]["timestamp"].startswith("2024-05-02T09:30:15")
    assert bom["metadata"]["tools"]["components"][0]["name"] == "vulnwatch"
    root = next(d for d in bom["dependencies"] if d["ref"] == image["bom-ref"])
    assert len(root["dependsOn"]) == len(bom["components"])


def test_one_component_per_package_with_purl_and_unique_bom_ref(result):
    _, bom = render(result)
    libs = [c for c in bom["components"] if c["type"] == "library"]
    assert len(libs) == len(PACKAGES)
    refs = [c["bom-ref"] for c in libs]
    assert len(set(refs)) == len(refs)
    canonical = sorted(PackageURL.from_string(p.purl).to_string() for p in PACKAGES)
    assert sorted(c["purl"] for c in libs) == canonical
    minimists = [c for c in libs if c["name"] == "minimist"]
    assert {c["bom-ref"] for c in minimists} == {"pkg:npm/minimist@1.2.0", "pkg:npm/minimist@1.2.0#2"}
    paths = {p["value"] for c in minimists for p in c["properties"] if p["name"] == "vulnwatch:package:path"}
    assert paths == {"srv/web/node_modules/minimist/package.json",
                     "srv/web/node_modules/mkdirp/node_modules/minimist/package.json"}
    zlib = next(c for c in libs if c["name"] == "zlib1g")
    assert PackageURL.from_string(zlib["purl"]) == PackageURL(
        "deb", "debian", "zlib1g", "1:1.2.13.dfsg-1", {"arch": "amd64", "distro": "debian-12"})
    (os_component,) = [c for c in bom["components"] if c["type"] == "operating-system"]
    assert os_component["name"] == "debian" and os_component["version"] == "12"


def test_vulnerabilities_with_source_ratings_affects_and_recommendation(result):
    _, bom = render(result)
    vulns = bom["vulnerabilities"]
    assert len(vulns) == len(FINDINGS)
    components = {c["bom-ref"]: c for c in bom["components"]}
    by_id = {v["id"]: v for v in vulns}
    for v in vulns:
        (target,) = v["affects"]
        assert target["ref"] in components
    assert by_id["CVE-2019-10906"]["source"]["name"] == "NVD"
    assert by_id["GHSA-vh95-rmgr-6w4m"]["source"]["name"] == "OSV"
    assert by_id["TEMP-0290435-0B57B5"]["source"]["name"] == "OSV"

    jinja = by_id["CVE-2019-10906"]
    assert components[jinja["affects"][0]["ref"]]["name"] == "Jinja2"
    (rating,) = jinja["ratings"]
    assert rating == {"method": "CVSSv31", "score": 8.6, "severity": "high",
                      "vector": "AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N"}
    assert jinja["recommendation"] == "Upgrade to 2.10.1"
    assert {r["id"] for r in jinja["references"]} == {"GHSA-462w-v97r-4m45", "PYSEC-2019-217"}

    assert by_id["CVE-2018-18074"]["ratings"][0]["method"] == "CVSSv3"      # CVSS:3.0 vector
    assert by_id["CVE-2024-0727"]["ratings"][0]["method"] == "CVSSv4"       # CVSS:4.0 vector
    assert by_id["CVE-2024-0727"]["ratings"][0]["severity"] == "low"
    assert by_id["GHSA-vh95-rmgr-6w4m"]["recommendation"] == "Upgrade to 0.2.1 or 1.2.3"
    assert by_id["CVE-2011-3374"]["ratings"] == [{"severity": "info"}]    # NEGLIGIBLE, no CVSS
    assert by_id["TEMP-0290435-0B57B5"]["ratings"] == [{"severity": "unknown"}]
    for vid in ("CVE-2023-45853", "CVE-2023-31484", "TEMP-0290435-0B57B5"):  # no fix known
        assert "recommendation" not in by_id[vid]
    lodash = by_id["CVE-2020-8203"]
    assert [a["url"] for a in lodash["advisories"]][0] == "https://github.com/advisories/GHSA-p6mc-m468-83gw"


def test_sbom_only_has_no_vulnerabilities(result):
    _, bom = render(result, sbom_only=True)
    assert not bom.get("vulnerabilities")
    assert len([c for c in bom["components"] if c["type"] == "library"]) == len(PACKAGES)


def test_findings_without_an_inventory_get_their_own_components(ecr_result):
    _, bom = render(ecr_result)
    components = {c["bom-ref"]: c for c in bom["components"]}
    assert {c["name"] for c in components.values()} == {"zlib", "perl", "perl-base"}
    assert len(bom["vulnerabilities"]) == 3
    perl_targets = {components[v["affects"][0]["ref"]]["name"] for v in bom["vulnerabilities"]
                    if v["id"] == "CVE-2023-31484"}
    assert perl_targets == {"perl", "perl-base"}
    zlib = next(c for c in components.values() if c["name"] == "zlib")
    assert zlib["purl"].startswith("pkg:deb/debian/zlib@")


def test_same_result_same_document(result):
    first, _ = render(result)
    again, _ = render(make_result())
    assert first == again
    other, _ = render(make_result(scanned_at=make_result().scanned_at.replace(hour=10)))
    assert json.loads(other)["serialNumber"] != json.loads(first)["serialNumber"]


def test_an_unparsable_purl_does_not_lose_the_package(result):
    from vulnwatch.model import Package
    broken = Package(name="weird", version="1.0", ecosystem="PyPI", purl="not a purl")
    text, bom = render(make_result(packages=PACKAGES + (broken,)))
    assert_valid(text)
    weird = next(c for c in bom["components"] if c["name"] == "weird")
    assert "purl" not in weird
    assert {"name": "vulnwatch:package:invalid-purl", "value": "not a purl"} in weird["properties"]
