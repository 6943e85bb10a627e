"""Coverage end to end through `run`: an Alpine 3.17 image against data up to Alpine v3.11 is
stored with missing coverage (`status` says so, table and JSON); when data for Alpine:v3.17 is
imported, the next `run` re-matches it (same digest, no pull) and a real HTTP receiver gets a
"coverage" CloudEvent beside the findings event; a sink whose route takes only coverage events
gets only that one, a sink that does not want them gets none; `status` then says complete."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.notify.webhook import TYPE_PREFIX

from ..registries.synthetic import write_image

INSTALLED = b"""C:Q1abc=
P:musl
V:1.2.3-r5
o:musl

C:Q1def=
P:busybox
V:1.35.0-r31
o:busybox

"""


def _record(rid: str, release: str, package: str, fixed: str) -> dict:
    return {"schema_version": "1.6.0", "id": rid, "modified": "2026-11-01T00:00:00Z", "published": "2026-10-01T00:00:00Z",
            "summary": f"test advisory for {package}", "severity": [{"type": "CVSS_V3",
            "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": f"Alpine:{release}", "name": package},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}


def _alpine_fleet(tmp_path, monkeypatch, sinks: str, old_records: dict[str, dict]):
    """An Alpine 3.17 image archive, a config watching it with ``sinks`` (YAML list items) and
    the data folder ``osv-old`` of ``old_records`` (file stem -> OSV record) as its import."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    old = tmp_path / "osv-old"
    old.mkdir()
    for stem, record in old_records.items():
        (old / f"{stem}.json").write_text(json.dumps(record))
    layout = tmp_path / "alpine"
    write_image(layout, "3.17", {"etc/os-release": b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.17.5\n',
                                 "lib/apk/db/installed": INSTALLED})
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {{path: {tmp_path / 'osv.db'}, auto_update: false, ecosystems: [], enrichment: [],
          base_url: 'http://127.0.0.1:9', imports: [{old}]}}
registries:
  - {{name: local, type: archive, path: {layout}}}
notifications:
{sinks}""")
    return cfg


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def test_coverage_event_through_run_to_real_receivers(tmp_path, monkeypatch, receiver):
    sinks = (f"  - {{name: all, type: webhook, url: '{receiver.url}/all'}}\n"
             f"  - {{name: coverage, type: webhook, url: '{receiver.url}/coverage', kinds: [coverage], "
             f"min_severity: CRITICAL}}\n"
             f"  - {{name: findings, type: webhook, url: '{receiver.url}/findings', kinds: [new_image, findings_changed]}}\n")
    cfg = _alpine_fleet(tmp_path, monkeypatch, sinks,
                        {"CVE-2099-1001": _record("CVE-2099-1001", "v3.11", "musl", "1.1.24-r3")})
    new = tmp_path / "osv-new"
    new.mkdir()
    (new / "CVE-2099-1002.json").write_text(json.dumps(_record("CVE-2099-1002", "v3.17", "busybox", "1.35.0-r32")))
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output
    assert "advisory data does not cover Alpine:v3.17" in r.output            # said per image
    assert receiver.bodies() == []                                            # a clean new image: no event
    r = cli(cfg, "status")
    assert "missing: no advisory data for Alpine:v3.17; 2 packages not judged" in " ".join(r.stdout.split())
    [st] = json.loads(cli(cfg, "status", "--format", "json").stdout)
    assert st["coverage"]["state"] == "missing" and st["coverage"]["missing"] == ["Alpine:v3.17"]
    assert {u["name"] for u in st["coverage"]["unjudged"]} == {"musl", "busybox"} and st["kev"] == 0

    assert cli(cfg, "db", "import", str(new), "--no-rematch").exit_code == 0
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output
    assert "coverage changed: coverage missing -> complete: advisory data now covers Alpine:v3.17" in r.output
    kinds = sorted(b["type"] for b in receiver.bodies("/all"))
    assert kinds == [TYPE_PREFIX + "coverage", TYPE_PREFIX + "findings_changed"]
    [cov] = [b for b in receiver.bodies("/coverage")]                      # min_severity does not drop it
    data = cov["data"]
    assert data["kind"] == "coverage" and data["added"] == [] and data["fixed"] == []
    assert data["previous_coverage"]["state"] == "missing" and data["coverage"]["state"] == "complete"
    assert data["coverage"]["missing"] == [] and data["previous_coverage"]["missing"] == ["Alpine:v3.17"]
    [why] = data["reasons"]
    assert why["kind"] == "advisory_data_changed" and "advisory data now covers Alpine:v3.17" in why["summary"]
    [found] = [b["data"] for b in receiver.bodies("/findings")]             # no coverage event here
    assert found["kind"] == "findings_changed" and [f["vulnerability_id"] for f in found["added"]] == ["CVE-2099-1002"]
    [st] = json.loads(cli(cfg, "status", "--format", "json").stdout)
    assert st["coverage"] == {"state": "complete", "missing": [], "unjudged": 0}

    r = cli(cfg, "run")                                                      # nothing moved: no event again
    assert r.exit_code == 0 and len(receiver.bodies("/all")) == 2


def test_coverage_event_from_a_rematch_when_no_finding_moves(tmp_path, monkeypatch, receiver):
    """`db import` of data for Alpine:v3.17 naming none of the image's packages: no finding moves,
    yet the stored inventory is re-matched (its coverage said Alpine:v3.17 had no data) and the
    coverage event reaches the receiver; importing more of the same makes none."""
    cfg = _alpine_fleet(tmp_path, monkeypatch, f"  - {{name: all, type: webhook, url: '{receiver.url}/all'}}\n",
                        {"CVE-2099-1001": _record("CVE-2099-1001", "v3.11", "musl", "1.1.24-r3")})
    new, more = tmp_path / "osv-new", tmp_path / "osv-more"
    for d in (new, more):
        d.mkdir()
    (new / "CVE-2099-2001.json").write_text(json.dumps(_record("CVE-2099-2001", "v3.17", "openssl", "3.0.9-r0")))
    (more / "CVE-2099-2002.json").write_text(json.dumps(_record("CVE-2099-2002", "v3.17", "curl", "8.0.0-r0")))
    assert cli(cfg, "run").exit_code == 0 and receiver.bodies() == []
    r = cli(cfg, "db", "import", str(new), "--format", "json")
    assert r.exit_code == 0, r.output
    [ev] = [e["event"] for e in json.loads(r.stdout)["events"]]
    assert ev["kind"] == "coverage" and ev["added"] == []
    [body] = receiver.bodies("/all")
    assert body["type"] == TYPE_PREFIX + "coverage" and body["data"]["id"] == ev["id"]
    assert body["data"]["coverage"]["state"] == "complete"
    assert cli(cfg, "db", "import", str(more), "--format", "json").exit_code == 0
    assert len(receiver.bodies("/all")) == 1                  # still covered: no second event
    assert cli(cfg, "run").exit_code == 0 and len(receiver.bodies("/all")) == 1
