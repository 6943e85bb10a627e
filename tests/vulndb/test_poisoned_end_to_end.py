"""End to end: the real shared Debian and PyPI exports with poisoned records mixed in (an
``all.zip`` and a folder of ``*.json``), imported through the CLI; then ``vulnwatch scan`` and
``vulnwatch run`` of the bundled example image finish normally with findings, also after
poison was written straight into the index the way an older vulnwatch could have stored it."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
import zlib

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE
from vulnwatch.vulndb.index import VulnIndex

from .conftest import osv_zip



def _poison(prefix: str, ecosystem: str, name: str) -> dict[str, tuple[str, str]]:
    """One record of each poisoned kind, all naming a package of the example image:
    id -> (JSON text, what the skip reason must say)."""
    def rec(rid, **extra):
        r = {"id": rid, "modified": "2024-01-01T00:00:00Z",
             "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                           "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}]}]}
        r.update(extra)
        return r

    big = rec(f"{prefix}-5")
    big["affected"][0]["ranges"][0]["events"][1]["fixed"] = "1" * 100_000
    deep = json.dumps(rec(f"{prefix}-6"))[:-1] + ', "database_specific": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    return {
        f"{prefix}-1": (json.dumps(rec(f"{prefix}-1", summary=5)), "summary: Input should be a valid string"),
        f"{prefix}-2": (json.dumps(rec(f"{prefix}-2", details=["a"])), "details: Input should be a valid string"),
        f"{prefix}-3": (json.dumps(rec(f"{prefix}-3", upstream=5)), "upstream: Input should be a valid list"),
        f"{prefix}-4": (json.dumps(rec(f"{prefix}-4", modified={"a": 1})), "modified: Input should be a valid string"),
        f"{prefix}-5": (json.dumps(big), "fixed: String should have at most 256 characters"),
        f"{prefix}-6": (deep, "nested deeper than 32 levels"),
    }


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    archive = tmp_path / "webapp.tar"
    shutil.copy(IMAGE_ARCHIVE, archive)
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {{path: {tmp_path / 'osv.db'}}}
registries:
  - name: local
    type: archive
    path: {archive}
notifications:
  - name: out
    type: console
""")
    return tmp_path, cfg


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def _real_ids(ecosystem: str) -> set[str]:
    with zipfile.ZipFile(osv_zip(ecosystem)) as z:
        records = [json.loads(z.read(n)) for n in z.namelist()]
    return {r["id"] for r in records if not r.get("withdrawn")}


def test_poisoned_exports_import_the_rest_and_scans_and_runs_go_on(env):
    tmp, cfg = env
    debian_poison = _poison("DSA-9999", "Debian:11", "openssl")
    pypi_poison = _poison("PYSEC-9999", "PyPI", "jinja2")

    # Debian: the real all.zip with the poison added, as Debian/all.zip
    (tmp / "Debian").mkdir()
    debian_zip = tmp / "Debian" / "all.zip"
    with zipfile.ZipFile(osv_zip("Debian")) as src, zipfile.ZipFile(debian_zip, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
        for rid, (text, _) in debian_poison.items():
            out.writestr(f"{rid}.json", text)
    # PyPI: a folder of *.json, the real records and the poison
    pypi_dir = tmp / "pypi-osv"
    pypi_dir.mkdir()
    with zipfile.ZipFile(osv_zip("PyPI")) as src:
        src.extractall(pypi_dir)
    for rid, (text, _) in pypi_poison.items():
        (pypi_dir / f"{rid}.json").write_text(text)

    r = cli(cfg, "db", "import", str(debian_zip), str(pypi_dir), "--no-rematch")
    assert r.exit_code == 0, r.output
    assert "6 invalid skipped" in r.stdout and r.stdout.count("6 invalid skipped") == 2
    for rid, (_, why) in {**debian_poison, **pypi_poison}.items():
        line = next(line for line in r.stderr.splitlines() if f"{rid}.json" in line)
        assert why in line, line

    with VulnIndex(tmp / "osv.db") as db:                      # every valid record is there, no poison
        assert {rec["id"] for rec in db.iter_records("Debian")} == _real_ids("Debian")
        assert {rec["id"] for rec in db.iter_records(f"local:{pypi_dir}")} == _real_ids("PyPI")

    def scan():
        r = cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--format", "json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        ids = {f["vulnerability_id"] for f in out["findings"]}
        assert "CVE-2019-10906" in ids                          # Jinja2 2.10, from the real PyPI data
        assert any(f["package_name"] in ("openssl", "libssl1.1") for f in out["findings"])   # real Debian data
        assert not any(i.startswith(("DSA-9999", "PYSEC-9999")) for f in out["findings"]
                       for i in (f["vulnerability_id"], *f["aliases"]))
        return out

    scan()
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output
    assert "1 images selected, 1 scanned" in r.stdout

    # an index written by an older vulnwatch may already hold the poison: it is skipped, not fatal
    with sqlite3.connect(tmp / "osv.db") as c:
        for poison, eco, name in ((debian_poison, "Debian:11", "openssl"), (pypi_poison, "PyPI", "jinja2")):
            for rid, (text, _) in poison.items():
                blob = zlib.compress(text.encode())             # as pack() stores a record
                c.execute("INSERT OR REPLACE INTO records (id, ecosystem, source, modified, withdrawn, data) "
                          "VALUES (?, ?, 'old', NULL, NULL, ?)", (rid, eco.split(":")[0], blob))
                c.execute("INSERT OR IGNORE INTO affected VALUES (?, ?, ?)", (eco, name, rid))
    before = scan()
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output
    assert "1 images selected, 1 scanned" in r.stdout
    assert before["findings"]
