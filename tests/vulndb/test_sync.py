"""Import from disk, download with conditional GET from a real local HTTP server, status/staleness."""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
import zipfile
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from vulnwatch.vulndb.index import VulnIndex, index_name
from vulnwatch.vulndb.interface import VulnDBError
from vulnwatch.vulndb.sync import export_url, import_path, stale, status, update

from .conftest import osv_zip


def _record(rid, eco="PyPI", name="demo", **extra):
    r = {"id": rid, "modified": "2024-01-01T00:00:00Z",
         "affected": [{"package": {"ecosystem": eco, "name": name},
                       "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}]}]}
    r.update(extra)
    return r


def _zip(path: Path, records: dict[str, object]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, rec in records.items():
            z.writestr(name, rec if isinstance(rec, str) else json.dumps(rec))
    return path


@pytest.fixture
def db(tmp_path):
    index = VulnIndex(tmp_path / "osv.db")
    yield index
    index.close()


# ---------------------------------------------------------------- import_path

def test_import_real_zip_counts_and_source(db):
    report = import_path(db, osv_zip("Alpine"))
    assert report.source == "Alpine"
    with zipfile.ZipFile(osv_zip("Alpine")) as z:
        assert report.imported == len(z.namelist())
    assert report.skipped == () and report.withdrawn == 0
    assert db.count("Alpine") == report.imported
    assert "Alpine:v3.11" in db.ecosystems()
    assert "ALPINE-CVE-2014-0138" in db.record_ids_for("Alpine:v3.11", "curl")


def test_import_pypi_drops_withdrawn(db):
    with zipfile.ZipFile(osv_zip("PyPI")) as z:
        withdrawn = [n for n in z.namelist() if json.loads(z.read(n)).get("withdrawn")]
    report = import_path(db, osv_zip("PyPI"))
    assert report.withdrawn == len(withdrawn) > 0
    assert db.record(withdrawn[0][:-5]) is None


def test_invalid_records_are_skipped_and_named(db, tmp_path):
    path = _zip(tmp_path / "all.zip", {
        "GOOD-1.json": _record("GOOD-1"),
        "BROKEN.json": "{not json",
        "NOID.json": {"affected": []},
        "BADEVENT-1.json": _record("BADEVENT-1", affected=[{"package": {"ecosystem": "PyPI", "name": "x"},
                                                            "ranges": [{"type": "ECOSYSTEM",
                                                                        "events": [{"introduced": "0", "fixed": "1"}]}]}]),
    })
    report = import_path(db, path, source="PyPI")
    assert report.imported == 1
    labels = dict(report.skipped)
    assert any("BROKEN.json" in k for k in labels)
    assert any("NOID.json" in k for k in labels)
    bad = next(v for k, v in labels.items() if "BADEVENT-1" in k)
    assert "introduced/fixed/last_affected/limit" in bad


def test_import_directory_and_replace_removes_vanished_records(db, tmp_path):
    folder = tmp_path / "osv"
    (folder / "sub").mkdir(parents=True)
    (folder / "A-1.json").write_text(json.dumps(_record("A-1")))
    (folder / "sub" / "A-2.json").write_text(json.dumps(_record("A-2", name="Other_Pkg")))
    first = import_path(db, folder)
    assert first.source == "PyPI" and first.imported == 2
    assert db.record_ids_for("PyPI", "other-pkg") == ["A-2"]
    (folder / "sub" / "A-2.json").unlink()
    (folder / "A-3.json").write_text(json.dumps(_record("A-3", withdrawn="2024-05-01T00:00:00Z")))
    second = import_path(db, folder)
    assert (second.imported, second.removed, second.withdrawn) == (1, 1, 1)
    assert db.record("A-2") is None and db.record_ids_for("PyPI", "other-pkg") == []
    assert db.count() == 1


def test_failed_import_leaves_the_index_unchanged(db, tmp_path):
    import_path(db, _zip(tmp_path / "one.zip", {"A-1.json": _record("A-1")}), source="PyPI")
    with pytest.raises(VulnDBError, match="missing.zip: no such file"):
        import_path(db, tmp_path / "missing.zip")
    (tmp_path / "garbage.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(VulnDBError, match="garbage.zip: no valid OSV records"):
        import_path(db, tmp_path / "garbage.zip", source="PyPI")
    with pytest.raises(RuntimeError):
        with db.writer("PyPI", "x") as w:
            w.add(_record("B-1"))
            w.finish()  # committed: B-1 is in
            raise RuntimeError("after commit")
    with pytest.raises(RuntimeError):
        with db.writer("PyPI", "x") as w:
            w.add(_record("C-1"))
            raise RuntimeError("before commit")
    assert db.record("C-1") is None and db.record("B-1") is not None
    import_path(db, _zip(tmp_path / "one.zip", {"A-1.json": _record("A-1")}), source="PyPI")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VulnDBError, match="no valid OSV records"):
        import_path(db, tmp_path / "empty")
    assert db.count() == 1


def test_name_normalisation():
    assert index_name("PyPI", "Zope.Interface__X") == "zope-interface-x"
    assert index_name("Debian:11", "Foo") == "Foo"
    assert index_name("NuGet", "Newtonsoft.Json") == "newtonsoft.json"


# ---------------------------------------------------------------- update over HTTP

class _ExportServer:
    """Serves <root>/<Ecosystem>/all.zip with ETag / Last-Modified and honours conditional GETs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[dict[str, str]] = []
        self.use_etag = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                server.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                rel = self.path.lstrip("/").replace("%20", " ")
                f = server.root / rel
                if not f.is_file():
                    self.send_response(404)
                    self.end_headers()
                    return
                data = f.read_bytes()
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                mtime = email.utils.formatdate(f.stat().st_mtime, usegmt=True)
                inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
                if (server.use_etag and inm == etag) or (not server.use_etag and ims == mtime):
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                if server.use_etag:
                    self.send_header("ETag", etag)
                self.send_header("Last-Modified", mtime)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def export_server(tmp_path):
    root = tmp_path / "www"
    for eco in ("PyPI", "Alpine"):
        (root / eco).mkdir(parents=True)
        (root / eco / "all.zip").write_bytes(osv_zip(eco).read_bytes())
    server = _ExportServer(root)
    yield server
    server.close()


def test_update_downloads_then_304_unchanged(db, export_server):
    first = update(db, ["PyPI", "Alpine"], base_url=export_server.url)
    assert [r.changed for r in first] == [True, True]
    assert first[0].report.imported > 2000 and first[0].url == f"{export_server.url}/PyPI/all.zip"
    pypi = db.source("PyPI")
    assert pypi.etag and pypi.location == first[0].url
    assert "if-none-match" not in export_server.requests[0]

    second = update(db, ["PyPI"], base_url=export_server.url)
    assert second[0].changed is False and second[0].report is None
    assert export_server.requests[-1]["if-none-match"] == pypi.etag
    assert db.source("PyPI").imported_at >= pypi.imported_at
    assert db.count("PyPI") == first[0].report.imported
    assert not list(Path(db.path).parent.glob(".osv-*"))  # temp downloads cleaned up


def test_update_changed_export_is_reimported(db, export_server, tmp_path):
    update(db, ["Alpine"], base_url=export_server.url)
    _zip(export_server.root / "Alpine" / "all.zip",
         {"ALPINE-X-1.json": _record("ALPINE-X-1", eco="Alpine:v3.19", name="musl")})
    result, = update(db, ["Alpine"], base_url=export_server.url)
    assert result.changed and result.report.imported == 1 and result.report.removed > 2000
    assert db.count("Alpine") == 1


def test_update_uses_if_modified_since_without_etag(db, export_server):
    export_server.use_etag = False
    update(db, ["Alpine"], base_url=export_server.url)
    result, = update(db, ["Alpine"], base_url=export_server.url, client=httpx.Client())
    assert result.changed is False
    assert "if-modified-since" in export_server.requests[-1]


def test_update_http_error_names_the_url(db, export_server):
    with pytest.raises(VulnDBError) as exc:
        update(db, ["NoSuchEcosystem"], base_url=export_server.url)
    assert "NoSuchEcosystem/all.zip" in str(exc.value) and "404" in str(exc.value)


def test_update_network_error_names_the_url(db):
    with pytest.raises(VulnDBError, match=r"127\.0\.0\.1:9/PyPI/all\.zip"):
        update(db, ["PyPI"], base_url="http://127.0.0.1:9", client=httpx.Client(timeout=2))


def test_export_url_quotes_ecosystem():
    assert export_url("Rocky Linux", "https://x/") == "https://x/Rocky%20Linux/all.zip"


# ---------------------------------------------------------------- status

def test_status_and_stale(db, tmp_path):
    import_path(db, _zip(tmp_path / "all.zip", {"A-1.json": _record("A-1")}), source="PyPI")
    s, = status(db)
    assert s.ecosystem == "PyPI" and s.records == 1 and s.age < timedelta(minutes=1)
    later = datetime.now(timezone.utc) + timedelta(days=2)
    assert stale(db, timedelta(days=1), now=later) == ["PyPI"]
    assert stale(db, timedelta(days=1)) == []
    assert stale(db, timedelta(days=1), ecosystems=["PyPI", "Debian"]) == ["Debian"]
    assert status(db.path)[0].records == 1  # a path works too


def test_a_folder_published_by_swapping_a_link_is_imported_whole(db, tmp_path):
    """`vulndb.imports` naming a symbolic link that a publisher swaps atomically to a new folder
    (the usual way to publish a folder): each import reads one folder whole, the old or the new,
    never a file list of one read through the other (that once failed a run with 'No such file')."""
    import os
    import time

    from vulnwatch.vulndb.sync import import_changed

    variants = []
    for v in range(2):
        folder = tmp_path / f"v{v}"
        folder.mkdir()
        for i in range(150):
            (folder / f"V{v}-{i}.json").write_text(json.dumps(_record(f"V{v}-{i}")))
        variants.append({f"V{v}-{i}" for i in range(150)})
    link = tmp_path / "osv"
    link.symlink_to(tmp_path / "v0")
    stop = threading.Event()

    def swap():
        n = 0
        while not stop.is_set():
            n += 1
            tmp = tmp_path / "osv.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(tmp_path / f"v{n % 2}")
            os.replace(tmp, link)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for round_ in range(15):
            later = time.time() + 10 + round_ * 10      # newer than the last import: read again
            for v in range(2):
                for p in [tmp_path / f"v{v}", *(tmp_path / f"v{v}").iterdir()]:
                    os.utime(p, (later, later))
            [report] = import_changed(db, [link])
            ids = set(db.record_ids_for("PyPI", "demo"))
            assert ids in variants, f"round {round_}: a mix of both folders ({len(ids)} records)"
    finally:
        stop.set()
        swapper.join()


def test_an_export_is_imported_once_though_its_files_are_dated_ahead_of_the_clock(db, tmp_path):
    """Imported when it changed, not at every start: an export whose files carry a time ahead of
    the clock (copied from a machine whose clock runs fast) was imported again by every process
    that opened the index, each stamping the same data with a new import time."""
    import os
    import time

    from vulnwatch.vulndb.sync import import_changed

    folder = tmp_path / "osv"
    folder.mkdir()
    (folder / "A-1.json").write_text(json.dumps(_record("A-1")))
    later = time.time() + 30
    for p in (folder, folder / "A-1.json"):
        os.utime(p, (later, later))
    assert len(import_changed(db, [folder])) == 1
    assert import_changed(db, [folder]) == []                  # nothing changed since
    (folder / "A-2.json").write_text(json.dumps(_record("A-2")))
    os.utime(folder / "A-2.json", (later + 5, later + 5))
    assert len(import_changed(db, [folder])) == 1              # a newer file: imported again
    assert set(db.record_ids_for("PyPI", "demo")) == {"A-1", "A-2"}


def test_processes_starting_together_import_a_changed_export_once(tmp_path):
    """Two processes opening the same index at once (a `run` beside a `watch`) and finding the
    same export changed: one imports it, the other waits and finds it imported."""
    import subprocess
    import sys

    folder = tmp_path / "osv"
    folder.mkdir()
    for i in range(300):
        (folder / f"B-{i}.json").write_text(json.dumps(_record(f"B-{i}")))
    script = ("import sys; from vulnwatch.vulndb.index import VulnIndex; "
              "from vulnwatch.vulndb.sync import import_changed; "
              "print(len(import_changed(VulnIndex(sys.argv[1]), [__import__('pathlib').Path(sys.argv[2])])))")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "index.db"), str(folder)],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    imported = sorted(int(p.communicate(timeout=60)[0]) for p in procs)
    assert imported == [0, 0, 1]
