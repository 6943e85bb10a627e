"""Coverage: a scan says what the advisory data could not judge, and never passes silently.

Real data: the shared OSV exports stop at Debian 11 and Alpine v3.11, so a Debian 12 image (the
built bookworm app image) and an Alpine 3.17 image report missing coverage and exit 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE

from ..registries.synthetic import write_image

OSV = Path("/work/shared/data/osv")
EXAMPLE_OSV = Path(IMAGE_ARCHIVE).parent / "osv"


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))     # the default state store: not the user's
    path = tmp_path / "vulnwatch.yaml"
    path.write_text(f"vulndb: {{path: {tmp_path / 'osv.db'}, base_url: 'http://127.0.0.1:9', enrichment: []}}\n")
    return path


def test_debian_12_against_data_up_to_debian_11_is_missing_coverage(cfg, app_image):
    cfg.write_text(cfg.read_text().replace("enrichment: []", "enrichment: [], auto_update: false"))
    for eco in ("Debian", "PyPI"):
        if (OSV / eco / "all.zip").exists():
            assert cli(cfg, "db", "import", str(OSV / eco / "all.zip"), "--no-rematch").exit_code == 0
    target = f"oci:{app_image.path}:{app_image.tag}"
    r = cli(cfg, "scan", target, "--format", "json")
    assert r.exit_code == 4, r.output
    cov = json.loads(r.stdout)["coverage"]
    assert cov["state"] == "missing" and {"Debian:12", "npm"} <= set(cov["missing"])   # no npm data either
    debian = next(e for e in cov["ecosystems"] if e["ecosystem"] == "Debian:12")
    assert debian["present"] is False and debian["packages"] > 50
    assert any(u["ecosystem"].startswith("Debian") and "no advisory data for Debian:12" in u["reason"]
               for u in cov["unjudged"])
    assert "Debian:12" in r.stderr and "--allow-missing-data" in r.stderr
    pypi = next(e for e in cov["ecosystems"] if e["ecosystem"] == "PyPI")
    assert pypi["present"] and pypi["records"] > 2000 and pypi["age_days"] is not None
    ok = cli(cfg, "scan", target, "--format", "json", "--allow-missing-data")
    assert ok.exit_code == 0 and "Debian:12" in json.loads(ok.stdout)["coverage"]["missing"]
    table = cli(cfg, "scan", target, "--allow-missing-data")
    assert "Debian:12: NO ADVISORY DATA" in table.stdout


APK_INSTALLED = b"""C:Q1abc=
P:musl
V:1.2.3-r5
o:musl

C:Q1def=
P:busybox
V:1.35.0-r31
o:busybox

"""


def test_alpine_3_17_against_data_up_to_v3_11_is_missing_coverage(cfg, tmp_path):
    if not (OSV / "Alpine" / "all.zip").exists():
        pytest.skip("no shared Alpine export")
    assert cli(cfg, "db", "import", str(OSV / "Alpine" / "all.zip"), "--no-rematch").exit_code == 0
    layout = tmp_path / "alpine"
    write_image(layout, "3.17", {"etc/os-release": b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.17.5\n',
                                 "lib/apk/db/installed": APK_INSTALLED})
    r = cli(cfg, "scan", f"oci:{layout}:3.17", "--format", "sarif")
    assert r.exit_code == 4
    run = json.loads(r.stdout)["runs"][0]
    assert run["properties"]["coverage"]["missing"] == ["Alpine:v3.17"]
    assert any("Alpine:v3.17" in n["message"]["text"] for n in run["invocations"][0]["toolExecutionNotifications"])
    bom = json.loads(cli(cfg, "scan", f"oci:{layout}:3.17", "--format", "cyclonedx").stdout)
    props = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert props["vulnwatch:coverage"] == "missing"


def test_no_data_at_all_offline_fails_naming_db_import(cfg):
    r = cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}")
    assert r.exit_code == 3
    assert "no advisory data for Debian, PyPI" in r.stderr and "vulnwatch db import" in r.stderr


def test_a_scan_without_config_never_uses_the_bundled_example_data(tmp_path, monkeypatch):
    """Fresh home, no config: the example records are not the database (the demo `run` has its
    own index), so the scan tries the configured source and, offline, says what to do."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VULNWATCH_CONFIG", "")
    r = CliRunner().invoke(app, ["scan", f"docker-archive:{IMAGE_ARCHIVE}"], catch_exceptions=False)
    assert r.exit_code == 3 and "vulnwatch db import" in r.stderr
    assert not (tmp_path / "cache" / "vulnwatch" / "example-osv.db").exists()


def test_complete_coverage_with_the_data_the_image_needs(cfg):
    assert cli(cfg, "db", "import", str(EXAMPLE_OSV / "Debian"), str(EXAMPLE_OSV / "PyPI"),
               "--no-rematch").exit_code == 0
    r = cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--format", "json")
    assert r.exit_code == 0
    cov = json.loads(r.stdout)["coverage"]
    assert cov["state"] == "complete" and {e["ecosystem"] for e in cov["ecosystems"]} == {"Debian:11", "PyPI"}


def test_run_reports_missing_coverage_per_image(cfg, tmp_path):
    archive = tmp_path / "webapp.tar"
    archive.write_bytes(Path(IMAGE_ARCHIVE).read_bytes())
    cfg.write_text(cfg.read_text().replace("enrichment: []", "enrichment: [], auto_update: false")
                   + f"state: {{path: {tmp_path / 'state.db'}}}\n"
                   f"registries: [{{name: local, type: archive, path: {archive}}}]\n"
                   "notifications: [{name: out, type: console}]\n")
    assert cli(cfg, "db", "import", str(EXAMPLE_OSV / "PyPI"), "--no-rematch").exit_code == 0
    r = cli(cfg, "run", "--format", "json")
    assert "advisory data does not cover Debian:11" in r.output
