"""The format registry and the vulnwatch.scan/v1 JSON document."""

from __future__ import annotations

import json
from datetime import datetime

import jsonschema
import pytest

from vulnwatch.formats import FORMATS, FormatError, Formatter, TableFormatter, get_formatter
from vulnwatch.formats.json import JSON_SCHEMA, SCHEMA_ID
from vulnwatch.model import Finding, ScanState

from .conftest import DB_UPDATED_AT, DIGEST, FINDINGS, PACKAGES, SCANNED_AT, make_result


def test_every_format_is_registered_under_its_own_name():
    assert set(FORMATS) == {"table", "json", "sarif", "cyclonedx"}
    for name, formatter in FORMATS.items():
        assert isinstance(formatter, Formatter)
        assert formatter.name == name
        assert type(get_formatter(name)) is type(formatter)
    # the shared instances render directly (what `vulnwatch scan --format` calls)
    assert FORMATS["json"].render(make_result()).startswith("{")


def test_unknown_format_names_the_known_ones():
    with pytest.raises(FormatError) as e:
        get_formatter("spdx")
    msg = str(e.value)
    assert "'spdx'" in msg
    for name in FORMATS:
        assert name in msg


def test_table_options_are_passed_and_checked():
    fmt = get_formatter("table", width=80, color=True)
    assert isinstance(fmt, TableFormatter) and fmt.width == 80 and fmt.color
    with pytest.raises(FormatError, match="too narrow"):
        get_formatter("table", width=10)


def render(result, **kw):
    return json.loads(get_formatter("json").render(result, **kw))


def test_document_has_the_documented_shape_and_validates_against_its_schema(result):
    doc = render(result)
    jsonschema.Draft202012Validator(JSON_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert doc["schema"] == SCHEMA_ID == "vulnwatch.scan/v1"
    assert list(doc) == ["schema", "image", "distro", "scanner", "state", "scanned_at",
                         "vulnerability_source_updated_at", "packages", "findings", "counts", "coverage", "suppressed",
                         "notes"]
    assert doc["image"] == {"registry": "prod-ecr", "repository": "team/app", "digest": DIGEST,
                            "tags": ["1.4.2", "latest"], "pushed_at": "2024-05-01T18:02:00+00:00",
                            "media_type": "application/vnd.oci.image.manifest.v1+json",
                            "size_bytes": 48_213_334}
    assert doc["distro"] == "Debian:12" and doc["scanner"] == "builtin" and doc["state"] == "COMPLETE"
    assert datetime.fromisoformat(doc["scanned_at"]) == SCANNED_AT
    assert datetime.fromisoformat(doc["vulnerability_source_updated_at"]) == DB_UPDATED_AT
    assert doc["notes"] == ["advisory data is 3 hours old"]


def test_findings_round_trip_most_severe_first_with_counts(result):
    doc = render(result)
    back = [Finding.from_dict(d) for d in doc["findings"]]
    assert set(back) == set(FINDINGS) and len(back) == len(FINDINGS)
    sev = [f.severity for f in back]
    assert sev == sorted(sev, reverse=True)
    # within CRITICAL both are 9.8, within HIGH higher CVSS first
    highs = [f.cvss_score for f in back if f.severity.name == "HIGH"]
    assert highs == sorted(highs, reverse=True)
    assert doc["counts"] == {"CRITICAL": 2, "HIGH": 4, "MEDIUM": 1, "LOW": 1, "NEGLIGIBLE": 1, "UNKNOWN": 1}
    assert list(doc["counts"]) == ["CRITICAL", "HIGH", "MEDIUM", "LOW", "NEGLIGIBLE", "UNKNOWN"]
    minimist = next(d for d in doc["findings"] if d["vulnerability_id"] == "GHSA-vh95-rmgr-6w4m")
    assert minimist["aliases"] == ["CVE-2020-7598"] and minimist["fixed_versions"] == ["0.2.1", "1.2.3"]
    assert minimist["fixable"] is True
    temp = next(d for d in doc["findings"] if d["vulnerability_id"].startswith("TEMP-"))
    assert temp["cvss_score"] is None and temp["fixable"] is False and temp["severity"] == "UNKNOWN"


def test_packages_are_all_there_in_a_stable_order(result):
    doc = render(result)
    assert len(doc["packages"]) == len(PACKAGES)
    keys = [(p["ecosystem"], p["name"], p["version"], p["path"]) for p in doc["packages"]]
    assert keys == sorted(keys)
    jinja = next(p for p in doc["packages"] if p["name"] == "Jinja2")
    assert jinja["purl"] == "pkg:pypi/jinja2@2.10" and jinja["layer"].startswith("sha256:b2")
    ssl = next(p for p in doc["packages"] if p["name"] == "libssl3")
    assert ssl["source_name"] == "openssl" and ssl["source_version"] is None


def test_same_result_same_bytes_whatever_the_input_order(result):
    shuffled = make_result(findings=tuple(reversed(FINDINGS)), packages=tuple(reversed(PACKAGES)))
    fmt = get_formatter("json")
    assert fmt.render(result) == fmt.render(shuffled)


def test_sbom_only_keeps_the_inventory_and_drops_findings(result):
    doc = render(result, sbom_only=True)
    jsonschema.Draft202012Validator(JSON_SCHEMA).validate(doc)
    assert "findings" not in doc and "counts" not in doc
    assert len(doc["packages"]) == len(PACKAGES)


def test_unsupported_and_unknown_times_are_explicit():
    doc = render(make_result(state=ScanState.UNSUPPORTED, findings=(), packages=(),
                             vulnerability_source_updated_at=None, distro=None))
    jsonschema.Draft202012Validator(JSON_SCHEMA).validate(doc)
    assert doc["state"] == "UNSUPPORTED" and doc["findings"] == [] and doc["packages"] == []
    assert doc["vulnerability_source_updated_at"] is None and doc["distro"] is None
    assert doc["counts"]["CRITICAL"] == 0


def test_schema_rejects_a_document_that_breaks_the_contract(result):
    doc = render(result)
    doc["findings"][0]["severity"] = "SEVERE"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(JSON_SCHEMA).validate(doc)
