"""Ignore rules, VEX and the reasons of events, end to end: `vulnwatch run` on the bundled example
archive with real OSV records, a webhook sink posting to a real HTTP receiver, and `vulnwatch scan`
reports. Suppressed findings make no event and count nowhere but are shown in JSON, SARIF and
CycloneDX; a rule that expires or goes away brings its finding back in an event that says so;
a rebuild's event says the image changed, a data update's names the data's version and date."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR, OSV_OLDER_DIR

URLLIB3_HIGH = "CVE-2023-43804"        # urllib3 1.24.1, HIGH, aliases GHSA-v845-jxx5-vc9f
JINJA = "CVE-2019-10906"               # Jinja2 2.10
REQUESTS = "CVE-2018-18074"            # requests 2.19.1


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def zip_records(src: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as z:
        for p in sorted(src.glob("*.json")):
            z.write(p, p.name)
    return out


@pytest.fixture
def site(tmp_path, monkeypatch, receiver):
    """An archive registry, the example OSV data as local exports, a webhook to ``receiver``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    archive = tmp_path / "webapp.tar"
    shutil.copy(IMAGE_ARCHIVE, archive)
    data = tmp_path / "data"
    zip_records(OSV_DIR / "PyPI", data / "PyPI" / "all.zip")
    zip_records(OSV_DIR / "Debian", data / "Debian" / "all.zip")

    def write(ignore: str = "", older: bool = False) -> Path:
        if older:
            zip_records(OSV_OLDER_DIR / "PyPI", data / "PyPI" / "all.zip")
        cfg = tmp_path / "vulnwatch.yaml"
        cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {{path: {tmp_path / 'osv.db'}, imports: [{data / 'PyPI' / 'all.zip'}, {data / 'Debian' / 'all.zip'}]}}
registries:
  - name: local
    type: archive
    path: {archive}
notifications:
  - name: hook
    type: webhook
    url: {receiver.url}/events
{ignore}""")
        return cfg
    return tmp_path, write, archive


def events_of(receiver) -> list[dict]:
    out = [b["data"] for b in receiver.bodies("/events")]
    receiver.clear()
    return out


def ids(findings) -> set[str]:
    return {f["vulnerability_id"] for f in findings}


def at(monkeypatch, when: datetime) -> None:
    """The policy stage's clock (rule expiry) and the diff's, moved to ``when``."""
    import vulnwatch.diff
    import vulnwatch.policy._match

    monkeypatch.setattr(vulnwatch.policy._match, "utcnow", lambda: when)
    monkeypatch.setattr(vulnwatch.diff, "utcnow", lambda: when)


RULE = """ignore:
  rules:
    - id: GHSA-v845-jxx5-vc9f
      package: "pkg:pypi/urllib3*"
      reason: no proxy use, tracked in SEC-7
      expires: 2027-01-01
"""


def test_a_rule_suppresses_until_it_expires_then_the_finding_comes_back_saying_so(site, receiver, monkeypatch):
    tmp, write, _ = site
    cfg = write(RULE)
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output
    [ev] = events_of(receiver)
    assert ev["kind"] == "new_image" and URLLIB3_HIGH not in ids(ev["added"]) and len(ev["added"]) > 50
    assert ev["counts"]["HIGH"] == 0                               # the image's only HIGH is not counted
    assert [x["kind"] for x in ev["reasons"]] == ["new_image"]

    img = f"docker-archive:{IMAGE_ARCHIVE}"
    doc = json.loads(cli(cfg, "scan", img, "-f", "json").stdout)
    [s] = doc["suppressed"]
    assert s["vulnerability_id"] == URLLIB3_HIGH and URLLIB3_HIGH not in ids(doc["findings"])
    sup = s["suppression"]
    assert (sup["kind"], sup["reason"], sup["expires"]) == ("ignore", "no proxy use, tracked in SEC-7", "2027-01-01")
    line = cfg.read_text().splitlines().index("    - id: GHSA-v845-jxx5-vc9f") + 1
    assert sup["source"] == f"{cfg}:{line}" and doc["counts"]["HIGH"] == 0
    sarif = json.loads(cli(cfg, "scan", img, "-f", "sarif").stdout)["runs"][0]["results"]
    [suppressed] = [x for x in sarif if x.get("suppressions")]
    assert suppressed["ruleId"] == URLLIB3_HIGH and suppressed["suppressions"][0]["kind"] == "external"
    assert "no proxy use" in suppressed["suppressions"][0]["justification"]
    bom = json.loads(cli(cfg, "scan", img, "-f", "cyclonedx").stdout)
    [v] = [v for v in bom["vulnerabilities"] if "analysis" in v]
    assert v["id"] == URLLIB3_HIGH and "no proxy use" in v["analysis"]["detail"]
    table = cli(cfg, "scan", img).stdout
    assert "Suppressed (not counted): 1 finding" in table and "SUPPRESSED HIGH" in table
    assert cli(cfg, "scan", img, "--fail-on", "HIGH").exit_code == 0           # gates skip it
    assert cli(cfg, "scan", img, "--fail-on", "MEDIUM").exit_code == 1

    assert cli(cfg, "run").exit_code == 0 and events_of(receiver) == []       # nothing moved
    at(monkeypatch, datetime(2027, 1, 1, 0, 0, 1, tzinfo=timezone.utc))      # the rule has expired
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output
    [ev] = events_of(receiver)
    assert ev["kind"] == "findings_changed" and ids(ev["added"]) == {URLLIB3_HIGH} and not ev["fixed"]
    [why] = ev["reasons"]
    assert why["kind"] == "ignore_rule_expired" and "expired on 2027-01-01" in why["summary"]
    assert why["suppression"]["source"] == f"{cfg}:{line}" and ev["counts"]["HIGH"] == 1
    assert cli(cfg, "run").exit_code == 0 and events_of(receiver) == []


def test_trivyignore_suppresses_and_removing_the_line_brings_it_back(site, receiver):
    tmp, write, _ = site
    (tmp / ".trivyignore").write_text("# proxies unused\nGHSA-v845-jxx5-vc9f\nCVE-2018-25091 exp:2020-01-01\n")
    cfg = write(f"ignore:\n  files: [{tmp / '.trivyignore'}]\n")
    assert cli(cfg, "run").exit_code == 0
    [ev] = events_of(receiver)
    assert URLLIB3_HIGH not in ids(ev["added"]) and "CVE-2018-25091" in ids(ev["added"])    # expired line
    doc = json.loads(cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "-f", "json").stdout)
    assert [(s["vulnerability_id"], s["suppression"]["reason"], s["suppression"]["source"])
            for s in doc["suppressed"]] == [(URLLIB3_HIGH, "proxies unused", f"{tmp / '.trivyignore'}:2")]

    (tmp / ".trivyignore").write_text("# nothing ignored any more\n")
    assert cli(cfg, "run").exit_code == 0
    [ev] = events_of(receiver)
    assert ids(ev["added"]) == {URLLIB3_HIGH}
    assert [x["kind"] for x in ev["reasons"]] == ["ignore_rule_removed"]
    assert ".trivyignore:2" in ev["reasons"][0]["summary"]


def openvex(*statements) -> str:
    return json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/webapp",
                       "author": "Security <sec@example.com>", "timestamp": "2026-11-01T00:00:00Z",
                       "version": len(statements), "statements": list(statements)})


def test_openvex_and_cyclonedx_vex_suppress(site, receiver):
    tmp, write, _ = site
    jinja = {"vulnerability": {"name": JINJA}, "products": [{"@id": "pkg:pypi/jinja2@2.10"}],
             "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
             "impact_statement": "templates are never user-supplied", "timestamp": "2026-11-01T00:00:00Z"}
    (tmp / "app.openvex.json").write_text(openvex(jinja))
    (tmp / "app.cdx.json").write_text(json.dumps({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "components": [{"type": "library", "name": "requests", "bom-ref": "requests", "purl": "pkg:pypi/requests@2.19.1"}],
        "vulnerabilities": [{"id": REQUESTS, "analysis": {"state": "not_affected", "justification": "code_not_reachable",
                                                          "detail": "no redirects followed"},
                             "affects": [{"ref": "requests"}]}]}))
    cfg = write(f"ignore:\n  vex: [{tmp / 'app.openvex.json'}, {tmp / 'app.cdx.json'}]\n")
    assert cli(cfg, "run").exit_code == 0
    [ev] = events_of(receiver)
    assert not {JINJA, REQUESTS} & ids(ev["added"])
    bom = json.loads(cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "-f", "cyclonedx").stdout)
    analysis = {v["id"]: v["analysis"] for v in bom["vulnerabilities"] if "analysis" in v}
    assert analysis[JINJA]["state"] == "not_affected" and analysis[JINJA]["justification"] == "code_not_reachable"
    assert "templates are never user-supplied" in analysis[JINJA]["detail"]
    assert analysis[REQUESTS]["state"] == "not_affected" and "no redirects followed" in analysis[REQUESTS]["detail"]
    assert set(analysis) == {JINJA, REQUESTS}

    later = dict(jinja, status="under_investigation", timestamp="2026-12-01T00:00:00Z")   # withdrawn
    later.pop("justification"), later.pop("impact_statement")
    (tmp / "app.openvex.json").write_text(openvex(jinja, later))
    assert cli(cfg, "run").exit_code == 0
    [ev] = events_of(receiver)
    assert ids(ev["added"]) == {JINJA} and ev["reasons"][0]["kind"] == "ignore_rule_removed"
    assert "app.openvex.json" in ev["reasons"][0]["summary"]


def rebuilt(archive: Path, out: Path, whiteout: str) -> Path:
    """``archive`` with one more layer that deletes ``whiteout`` (same repository and tag)."""
    with tarfile.open(archive) as src:
        members = {m.name: src.extractfile(m).read() for m in src.getmembers() if m.isfile()}
    manifest = json.loads(members["manifest.json"])
    config = json.loads(members[manifest[0]["Config"]])
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        parent, name = whiteout.rsplit("/", 1)
        info = tarfile.TarInfo(f"{parent}/.wh.{name}")
        t.addfile(info, io.BytesIO(b""))
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config["rootfs"]["diff_ids"].append(f"sha256:{diff_id}")
    config.setdefault("history", []).append({"created_by": "rm -rf Jinja2"})
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest[0]["Config"] = config_name
    manifest[0]["Layers"].append(f"{diff_id}.tar")
    del members[json.loads(members["manifest.json"])[0]["Config"]]
    members.update({config_name: config_bytes, f"{diff_id}.tar": layer_bytes,
                    "manifest.json": json.dumps(manifest).encode()})
    with tarfile.open(out, "w") as dst:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


def test_a_data_update_names_the_data_and_a_rebuild_says_the_image_changed(site, receiver):
    tmp, write, archive = site
    cfg = write(older=True)
    assert cli(cfg, "run").exit_code == 0
    [ev] = events_of(receiver)
    assert ev["kind"] == "new_image" and "CVE-2023-32681" not in ids(ev["added"])

    zip_records(OSV_DIR / "PyPI", tmp / "data" / "PyPI" / "all.zip")       # the data moves on
    future = time.time() + 5
    os.utime(tmp / "data" / "PyPI" / "all.zip", (future, future))
    before = datetime.now(timezone.utc)
    assert cli(cfg, "run").exit_code == 0
    [ev] = events_of(receiver)
    assert ev["kind"] == "findings_changed" and {"CVE-2023-32681", "CVE-2023-45803"} <= ids(ev["added"])
    [why] = ev["reasons"]
    assert why["kind"] == "advisory_data_changed"
    [data] = why["data"]
    assert data["name"] == "PyPI" and data["kind"] == "advisory" and data["location"].endswith("PyPI/all.zip")
    stamp = datetime.fromtimestamp(future, timezone.utc)
    assert data["version"] == stamp.strftime("%a, %d %b %Y %H:%M:%S GMT")        # the export's date
    assert datetime.fromisoformat(data["updated_at"]) >= before                  # imported by this run
    assert f"version {data['version']}" in why["summary"] and "PyPI" in why["summary"]

    rebuilt(IMAGE_ARCHIVE, archive, "usr/local/lib/python3.9/site-packages/Jinja2-2.10.dist-info")
    assert cli(cfg, "run").exit_code == 0
    [ev] = events_of(receiver)
    assert ev["kind"] == "rebuild" and {JINJA, "CVE-2020-28493"} <= ids(ev["fixed"]) and not ev["added"]
    [why] = ev["reasons"]
    assert why["kind"] == "image_changed" and ev["previous_digest"][7:19] in why["summary"]
    assert ev["digest"][7:19] in why["summary"] and "1.0 rebuilt" in why["summary"]


def test_bad_ignore_files_and_vex_documents_are_clear_errors(site):
    tmp, write, _ = site
    (tmp / "bad.openvex.json").write_text('{\n  "@context": "https://openvex.dev/ns/v0.2.0",\n  "statements": [\n}\n')
    cfg = write(f"ignore:\n  vex: [{tmp / 'bad.openvex.json'}]\n")
    r = cli(cfg, "run")
    assert r.exit_code == 2 and f"{tmp / 'bad.openvex.json'}:4: not valid JSON" in r.output
    (tmp / "ignore.txt").write_text("CVE-2023-1\nCVE-2023-2 exp:tomorrow\n")
    cfg = write()
    r = cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--ignorefile", str(tmp / "ignore.txt"))
    assert r.exit_code == 2 and f"{tmp / 'ignore.txt'}:2: bad expiry 'exp:tomorrow'" in r.output
    r = cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--vex", str(tmp / "ignore.txt"))
    assert r.exit_code == 2 and "not a VEX document" in r.output


def test_check_config_reads_the_ignore_files(site):
    tmp, write, _ = site
    (tmp / "rules.yaml").write_text("rules:\n  - id: CVE-2023-1\n    reason: ok\n  - id: CVE-2023-2\n")
    cfg = write(f"ignore:\n  files: [{tmp / 'rules.yaml'}]\n  vex: [{tmp / 'missing.json'}]\n")
    r = cli(cfg, "check-config", "--format", "json")
    assert r.exit_code == 2 and json.loads(r.stdout)["problems"][0]["key"] == "ignore.vex[0]"
    cfg = write(f"ignore:\n  files: [{tmp / 'rules.yaml'}]\n")
    r = cli(cfg, "check-config", "--format", "json")
    [p] = json.loads(r.stdout)["problems"]
    assert r.exit_code == 2 and (p["file"], p["line"]) == (str(tmp / "rules.yaml"), 4) and "reason" in p["message"]


def test_the_lambda_path_names_the_data_in_its_reasons_too(site):
    """``Pipeline.collect`` (what the Lambda ``collect`` handler runs per work item) records the
    same reasons as a cycle: an advisory-data update names the export's version and date."""
    from vulnwatch.build import build_pipeline
    from vulnwatch.config import load_config

    tmp, write, _archive = site
    cfg_path = write(older=True)

    def collect_all():
        pipeline = build_pipeline(load_config(cfg_path))
        try:
            for item in pipeline.work_items():
                pipeline.collect(item)
            return [d.event for d in pipeline.store.deliveries(limit=100)]
        finally:
            pipeline.close()

    [first] = collect_all()
    assert first.kind.value == "new_image"
    zip_records(OSV_DIR / "PyPI", tmp / "data" / "PyPI" / "all.zip")        # the data moves on
    future = time.time() + 5
    os.utime(tmp / "data" / "PyPI" / "all.zip", (future, future))
    events = collect_all()
    [changed] = [e for e in events if e.id != first.id]
    [why] = changed.reasons
    assert why.kind.value == "advisory_data_changed"
    [data] = why.data
    assert data.name == "PyPI" and data.version == datetime.fromtimestamp(future, timezone.utc).strftime(
        "%a, %d %b %Y %H:%M:%S GMT")
