"""End to end with our own scanner: the bundled example archive (real package metadata) and
real OSV records; `vulnwatch run`, continuous re-matching after a data import, `vulnwatch scan`."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR, OSV_OLDER_DIR


# records that are in osv/ but not in osv-older/ (see examples/README.md)
NEWER = {"CVE-2023-32681",   # requests, PYSEC-2023-74
         "CVE-2023-45803",   # urllib3, PYSEC-2023-212
         "CVE-2023-23916"}   # curl, DSA-5365-1


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
    return tmp_path, cfg, archive


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def test_run_then_data_update_rematches_stored_inventory_without_the_registry(env):
    tmp, cfg, archive = env
    r = cli(cfg, "db", "import", str(OSV_OLDER_DIR / "Debian"), str(OSV_OLDER_DIR / "PyPI"))
    assert r.exit_code == 0, r.output
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output
    assert "1 images selected, 1 scanned, 1 change events" in r.stdout
    assert "[vulnwatch] example/webapp:1.0" in r.stderr and "new image" in r.stderr
    assert not NEWER & set(r.stderr.split())

    r = cli(cfg, "run")                                        # same data, same image: silence
    assert "0 change events" in r.stdout and "[vulnwatch]" not in r.stderr

    archive.unlink()                                           # the registry is gone: re-matching must not need it
    r = cli(cfg, "db", "import", str(OSV_DIR / "Debian"), str(OSV_DIR / "PyPI"))
    assert r.exit_code == 0, r.output
    assert "re-matched stored inventories: 1 change events" in r.stdout
    assert "findings changed" in r.stdout
    added = {line.split()[2] for line in r.stderr.splitlines() if line.startswith("  new ")}
    assert added == NEWER
    events = json.loads(cli(cfg, "events", "--format", "json").stdout)
    assert [e["kind"] for e in events] == ["findings_changed", "new_image"]
    assert all(e["status"] == "delivered" for e in events)

    import sqlite3
    with sqlite3.connect(tmp / "state.db") as db:
        history = db.execute("select count(*) from scan_history").fetchone()[0]
    r = cli(cfg, "db", "import", str(OSV_DIR / "Debian"), str(OSV_DIR / "PyPI"))   # same data again
    assert "re-matched stored inventories: 0 change events" in r.stdout
    with sqlite3.connect(tmp / "state.db") as db:                                   # nothing rewritten
        assert db.execute("select count(*) from scan_history").fetchone()[0] == history


def test_whiteout_deleted_package_is_not_reported(env):
    tmp, cfg, _ = env
    cli(cfg, "db", "import", str(OSV_DIR / "PyPI"), str(OSV_DIR / "Debian"))
    r = cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    names = {p["name"] for p in out["packages"]}
    assert {"Jinja2", "urllib3", "requests", "openssl", "libssl1.1"} <= names
    assert "Werkzeug" not in names                             # deleted by the third layer's whiteout
    assert out["distro"] == "Debian:11"
    ids = {f["vulnerability_id"] for f in out["findings"]}
    assert "CVE-2019-10906" in ids                             # Jinja2 2.10
    jinja = [f for f in out["findings"] if f["vulnerability_id"] == "CVE-2019-10906"][0]
    assert jinja["fixed_versions"] == ["2.10.1"] and jinja["package_version"] == "2.10"


def test_scan_filters_and_exit_codes(env):
    tmp, cfg, _ = env
    cli(cfg, "db", "import", str(OSV_DIR / "PyPI"), str(OSV_DIR / "Debian"))
    img = f"docker-archive:{IMAGE_ARCHIVE}"
    all_ = json.loads(cli(cfg, "scan", img, "--format", "json").stdout)["findings"]
    high = json.loads(cli(cfg, "scan", img, "--format", "json", "--severity", "HIGH").stdout)["findings"]
    assert 0 < len(high) < len(all_) and all(f["severity"] in ("HIGH", "CRITICAL") for f in high)
    fixed = json.loads(cli(cfg, "scan", img, "--format", "json", "--ignore-unfixed").stdout)["findings"]
    assert all(f["fixed_versions"] for f in fixed)
    assert cli(cfg, "scan", img, "--fail-on", "HIGH", "--exit-code", "7").exit_code == 7
    has_critical = any(f["severity"] == "CRITICAL" for f in all_)
    assert cli(cfg, "scan", img, "--fail-on", "CRITICAL", "--exit-code", "7").exit_code == (7 if has_critical else 0)
    assert cli(cfg, "scan", img, "--fail-on", "HIGH", "--ignore-unfixed", "--severity", "CRITICAL",
               "--exit-code", "7").exit_code == (7 if any(f["severity"] == "CRITICAL" and f["fixed_versions"]
                                                          for f in all_) else 0)
    sbom = cli(cfg, "scan", img, "--sbom", "--format", "cyclonedx")
    assert sbom.exit_code == 0
    bom = json.loads(sbom.stdout)
    assert bom["specVersion"] == "1.6" and not bom.get("vulnerabilities")
    assert any(c.get("purl", "").startswith("pkg:pypi/jinja2@2.10") for c in bom["components"])
    vex = json.loads(cli(cfg, "scan", img, "--format", "cyclonedx").stdout)
    refs = {c["bom-ref"] for c in vex["components"]}
    assert vex["vulnerabilities"] and all(a["ref"] in refs for v in vex["vulnerabilities"] for a in v["affects"])
    sarif = json.loads(cli(cfg, "scan", img, "--format", "sarif").stdout)
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == len(all_)


def test_scan_bad_inputs_are_named(env, tmp_path):
    _, cfg, _ = env
    r = cli(cfg, "scan", f"docker-archive:{tmp_path / 'nope.tar'}")
    assert r.exit_code == 3 and "nope.tar" in r.stderr           # 3: could not scan (1 is "findings found")
    broken = tmp_path / "broken.tar"
    broken.write_bytes(IMAGE_ARCHIVE.read_bytes()[:20000])
    r = cli(cfg, "scan", f"docker-archive:{broken}")
    assert r.exit_code == 3 and "broken.tar" in r.stderr
    r = cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--format", "xml")
    assert r.exit_code == 2 and "xml" in r.stderr


def test_one_broken_image_never_stops_the_others(env, tmp_path):
    _, cfg, archive = env
    broken = tmp_path / "broken.tar"
    broken.write_bytes(IMAGE_ARCHIVE.read_bytes()[:60000])
    cfg.write_text(cfg.read_text().replace("notifications:", f"""  - name: broken
    type: archive
    path: {broken}
notifications:"""))
    cli(cfg, "db", "import", str(OSV_DIR / "PyPI"), str(OSV_DIR / "Debian"))   # every ecosystem the image needs
    r = cli(cfg, "run", "--format", "json")
    out = json.loads(r.stdout)
    assert r.exit_code == 1
    assert out["scanned"] == 1 and len(out["failures"]) == 1
    assert "broken" in out["failures"][0]["target"]


def _hostile_layout(dir_):
    """An OCI layout whose only layer holds a `../` name (a path-traversal attempt)."""
    import io
    import tarfile

    from tests.support.images import write_oci_layout

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"root:x:0:0::/root:/bin/sh\n"
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return write_oci_layout(dir_, [buf.getvalue()])


def test_hostile_layer_is_a_clear_per_image_error_and_the_run_goes_on(env, tmp_path):
    _, cfg, _ = env
    layout = _hostile_layout(tmp_path / "hostile")
    cfg.write_text(cfg.read_text().replace("notifications:", f"""  - name: evil
    type: archive
    path: {layout.path}
notifications:"""))
    cli(cfg, "db", "import", str(OSV_DIR / "PyPI"), str(OSV_DIR / "Debian"))   # every ecosystem the image needs
    r = cli(cfg, "run", "--format", "json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["scanned"] == 1
    [failure] = out["failures"]
    assert failure["target"].startswith("evil/") and failure["code"] == "LayerHostile"
    assert "../../etc/passwd" in failure["error"]
    status = json.loads(cli(cfg, "status", "--format", "json").stdout)      # recorded per image
    errors = {s["registry"]: s["last_error"] for s in status}
    assert errors["local"] is None and "../../etc/passwd" in errors["evil"]


def test_scan_oci_layout_directory(env, tmp_path):
    import subprocess

    _, cfg, _ = env
    cli(cfg, "db", "import", str(OSV_DIR / "PyPI"), str(OSV_DIR / "Debian"))   # every ecosystem the image needs
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{IMAGE_ARCHIVE}", f"oci:{layout}:1.0"],
                   check=True)
    r = cli(cfg, "scan", f"oci:{layout}:1.0", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {"Jinja2", "urllib3"} <= {p["name"] for p in out["packages"]}
    assert any(f["vulnerability_id"] == "CVE-2019-10906" for f in out["findings"])


def test_scan_fills_the_layer_cache_unless_told_not_to(env):
    tmp, cfg, _ = env
    layers = tmp / "cache" / "vulnwatch" / "layers"
    r = cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--sbom", "--format", "json", "--no-layer-cache")
    assert r.exit_code == 0 and not (layers.exists() and any(layers.rglob("*.*")))
    first = json.loads(cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--sbom", "--format", "json").stdout)
    assert len([p for p in layers.rglob("*") if p.is_file()]) == 3                # one entry per layer
    again = json.loads(cli(cfg, "scan", f"docker-archive:{IMAGE_ARCHIVE}", "--sbom", "--format", "json").stdout)
    assert again["packages"] == first["packages"]


def test_unchanged_images_are_stamped_not_rewritten(env):
    import sqlite3

    tmp, cfg, _ = env
    cli(cfg, "db", "import", str(OSV_DIR / "PyPI"), str(OSV_DIR / "Debian"))   # every ecosystem the image needs
    assert cli(cfg, "run").exit_code == 0
    first = json.loads(cli(cfg, "status", "--format", "json").stdout)[0]
    assert cli(cfg, "run").exit_code == 0
    second = json.loads(cli(cfg, "status", "--format", "json").stdout)[0]
    with sqlite3.connect(tmp / "state.db") as db:
        assert db.execute("select count(*) from scan_history").fetchone()[0] == 1
    assert second["last_scanned_at"] == first["last_scanned_at"]
    assert second["last_checked_at"] > first["last_checked_at"]


def test_db_update_downloads_only_what_changed_then_rematches(env, tmp_path):
    """`vulnwatch db update` against a real HTTP server laid out like OSV's bucket."""
    import threading
    import zipfile
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    tmp, cfg, _ = env
    bucket = tmp_path / "bucket"
    for eco in ("Debian", "PyPI"):
        (bucket / eco).mkdir(parents=True)
        with zipfile.ZipFile(bucket / eco / "all.zip", "w") as z:
            for f in sorted((OSV_OLDER_DIR / eco).glob("*.json")):
                z.write(f, f.name)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(bucket)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg.write_text(cfg.read_text().replace(
            "vulndb: {path:", f"vulndb: {{base_url: 'http://127.0.0.1:{server.server_address[1]}', path:"))
        r = cli(cfg, "db", "update", "Debian", "PyPI")
        assert r.exit_code == 0, r.output
        for eco in ("Debian", "PyPI"):
            n = len(list((OSV_OLDER_DIR / eco).glob("*.json")))
            assert f"{eco}: {n} records imported" in r.stdout
        assert cli(cfg, "run").exit_code == 0                         # the image, matched on older data
        r = cli(cfg, "db", "update", "Debian", "PyPI")
        assert "Debian: unchanged" in r.stdout and "PyPI: unchanged" in r.stdout   # conditional GET
        import os
        for eco in ("Debian", "PyPI"):                                # the exports move on
            with zipfile.ZipFile(bucket / eco / "all.zip", "w") as z:
                for f in sorted((OSV_DIR / eco).glob("*.json")):
                    z.write(f, f.name)
            later = (bucket / eco / "all.zip").stat().st_mtime + 60   # Last-Modified has 1 s resolution
            os.utime(bucket / eco / "all.zip", (later, later))
        r = cli(cfg, "db", "update")                                  # the ecosystems the inventories need
        assert r.exit_code == 0, r.output
        assert "re-matched stored inventories: 1 change events" in r.stdout
        added = {line.split()[2] for line in r.stderr.splitlines() if line.startswith("  new ")}
        assert added == NEWER
        status = cli(cfg, "db", "status")
        assert "Debian" in status.stdout and "PyPI" in status.stdout
    finally:
        server.shutdown()
        server.server_close()


def test_the_same_cycle_on_postgresql(env, pg_cluster):
    """`state.url` on a real PostgreSQL server: run, re-match after an import, events."""
    tmp, cfg, _ = env
    url = pg_cluster.create_schema()
    cfg.write_text(cfg.read_text().replace(f"state: {{path: {tmp / 'state.db'}}}", f"state: {{url: '{url}'}}"))
    assert cli(cfg, "db", "import", str(OSV_OLDER_DIR / "Debian"), str(OSV_OLDER_DIR / "PyPI")).exit_code == 0
    r = cli(cfg, "run")
    assert r.exit_code == 0 and "1 change events" in r.stdout, r.output
    r = cli(cfg, "db", "import", str(OSV_DIR / "Debian"), str(OSV_DIR / "PyPI"))
    assert "re-matched stored inventories: 1 change events" in r.stdout
    events = json.loads(cli(cfg, "events", "--format", "json").stdout)
    assert [e["kind"] for e in events] == ["findings_changed", "new_image"]
    assert not (tmp / "state.db").exists()
