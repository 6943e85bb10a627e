"""The shipped offline example (``src/vulnwatch/examples``) is well-formed and guaranteed to
produce findings: every package it holds is named by an OSV record that affects its version,
and ``osv-older`` -> ``osv`` adds findings to the unchanged image.

Version ranges are evaluated here with python-debian and packaging (not with vulnwatch's own
matcher) so the data is checked independently; one test then runs the real scanner on it.
"""

from __future__ import annotations

import email.parser
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from debian.deb822 import Deb822
from debian.debian_support import Version as DebianVersion
from packaging.version import InvalidVersion, Version as PyPIVersion

from vulnwatch import examples

ROOT = Path(__file__).resolve().parents[2]
SHARED_OSV = Path("/work/shared/data/osv")
STATUS = "var/lib/dpkg/status"
SITE = "usr/local/lib/python3.9/site-packages/"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ------------------------------------------------------------------ reading the archive


def read_archive(path: Path) -> tuple[dict, dict, list[bytes]]:
    """(manifest.json entry, config, layer tars bottom first)."""
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        assert len(manifest) == 1, "one image in the archive"
        entry = manifest[0]
        config = json.loads(tar.extractfile(entry["Config"]).read())
        layers = [tar.extractfile(name).read() for name in entry["Layers"]]
    return entry, config, layers


def layer_files(layer: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {m.name.rstrip("/"): (tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()}


@pytest.fixture(scope="module")
def archive():
    return read_archive(examples.IMAGE_ARCHIVE)


@pytest.fixture(scope="module")
def final_files(archive) -> dict[str, bytes]:
    """The image's file system after applying the layers (whiteouts honoured)."""
    fs: dict[str, bytes] = {}
    for layer in archive[2]:
        for name, data in layer_files(layer).items():
            parent, _, base = name.rpartition("/")
            if base.startswith(".wh."):
                gone = f"{parent}/{base[4:]}" if parent else base[4:]
                fs = {k: v for k, v in fs.items() if k != gone and not k.startswith(gone + "/")}
            else:
                fs[name] = data
    return fs


def debian_packages(files: dict[str, bytes]) -> list[dict]:
    out = []
    for para in Deb822.iter_paragraphs(files[STATUS].decode()):
        source = para.get("Source", para["Package"]).split(" ")[0]
        out.append({"package": para["Package"], "source": source, "version": para["Version"], "fields": para})
    return out


def python_packages(files: dict[str, bytes]) -> dict[str, dict]:
    """dist-info dir -> {name (normalized), version}."""
    out = {}
    for path, data in files.items():
        if path.startswith(SITE) and path.endswith(".dist-info/METADATA"):
            msg = email.parser.BytesParser().parsebytes(data, headersonly=True)
            out[path.split("/")[-2]] = {"name": normalize(msg["Name"]), "version": msg["Version"]}
    return out


def load_records(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_bytes()) for p in sorted(folder.rglob("*.json"))}


# ----------------------------------------------------------- independent range evaluation


def _key(ecosystem: str, version: str):
    if version == "0":
        return (0,)
    return (1, DebianVersion(version) if ecosystem.startswith("Debian") else PyPIVersion(version))


def affects(record: dict, ecosystem: str, name: str, version: str) -> bool:
    for aff in record.get("affected", []):
        pkg = aff["package"]
        if pkg["ecosystem"] != ecosystem or (normalize(pkg["name"]) if ecosystem == "PyPI" else pkg["name"]) != name:
            continue
        if version in (aff.get("versions") or []):
            return True
        for rng in aff.get("ranges", []):
            if rng["type"] != "ECOSYSTEM":
                continue
            try:
                events = sorted(((_key(ecosystem, v), kind) for ev in rng["events"] for kind, v in ev.items()),
                                key=lambda e: (e[0], e[1] != "introduced"))
            except InvalidVersion:
                continue
            mine, vulnerable = _key(ecosystem, version), False
            for at, kind in events:
                if at > mine:
                    break
                vulnerable = kind == "introduced" or (kind == "last_affected" and at == mine)
            if vulnerable:
                return True
    return False


def names_package(record: dict, ecosystem: str, name: str) -> bool:
    return any(a["package"]["ecosystem"] == ecosystem
               and (normalize(a["package"]["name"]) if ecosystem == "PyPI" else a["package"]["name"]) == name
               for a in record.get("affected", []))


def test_range_evaluation_itself():
    rec = {"affected": [{"package": {"ecosystem": "Debian:11", "name": "openssl"},
                         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                                     {"fixed": "1.1.1n-0+deb11u4"}]}]}]}
    assert affects(rec, "Debian:11", "openssl", "1.1.1n-0+deb11u3")
    assert not affects(rec, "Debian:11", "openssl", "1.1.1n-0+deb11u4")
    assert not affects(rec, "Debian:10", "openssl", "1.1.1n-0+deb11u3")
    multi = {"affected": [{"package": {"ecosystem": "PyPI", "name": "urllib3"},
                           "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0.0"}, {"fixed": "2.0.6"},
                                                                       {"introduced": "0"}, {"fixed": "1.26.17"}]}]}]}
    assert affects(multi, "PyPI", "urllib3", "1.24.1")
    assert not affects(multi, "PyPI", "urllib3", "1.26.17")
    assert affects(multi, "PyPI", "urllib3", "2.0.5")
    assert not affects(multi, "PyPI", "urllib3", "2.0.6")


# ------------------------------------------------------------------------- the archive


def test_archive_is_a_docker_save_archive_with_matching_diff_ids(archive):
    entry, config, layers = archive
    assert entry["RepoTags"] == [examples.IMAGE_REFERENCE]
    assert config["os"] == "linux" and config["rootfs"]["type"] == "layers"
    diff_ids = config["rootfs"]["diff_ids"]
    assert len(diff_ids) == len(layers) == 3
    assert ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers] == diff_ids
    with tarfile.open(examples.IMAGE_ARCHIVE) as tar:
        config_bytes = tar.extractfile(entry["Config"]).read()
    assert entry["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    assert examples.IMAGE_ARCHIVE.stat().st_size <= 300 * 1024


def test_base_layer_is_debian_11_with_real_status_stanzas(archive, final_files):
    base = layer_files(archive[2][0])
    assert set(base) >= {"etc/os-release", STATUS}
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', base["etc/os-release"].decode(), re.M))
    assert os_release["ID"] == "debian" and os_release["VERSION_ID"] == "11"
    assert os_release["VERSION_CODENAME"] == "bullseye"
    pkgs = debian_packages(final_files)
    assert len(pkgs) >= 15
    for p in pkgs:
        for field in ("Package", "Status", "Priority", "Section", "Installed-Size", "Maintainer",
                      "Architecture", "Version", "Description"):
            assert p["fields"].get(field), f"{p['package']}: no {field}"
        assert p["fields"]["Status"] == "install ok installed"
    assert {"libssl1.1", "zlib1g", "libcurl4"} <= {p["package"] for p in pkgs}
    by_name = {p["package"]: p for p in pkgs}
    assert by_name["libssl1.1"]["source"] == "openssl"
    assert by_name["zlib1g"]["source"] == "zlib"


def test_app_layer_has_real_metadata_and_the_whiteout_removes_one(archive, final_files):
    app = python_packages(layer_files(archive[2][1]))
    assert {d["name"] for d in app.values()} >= {"jinja2", "urllib3", "requests"}
    for dist, meta in app.items():
        assert dist == f"{dist.split('-')[0]}-{meta['version']}.dist-info"
    whiteouts = [n for n in layer_files(archive[2][2]) if n.rpartition("/")[2].startswith(".wh.")]
    assert len(whiteouts) == 1
    removed = whiteouts[0].rpartition("/")[2][4:]
    assert removed in app
    assert removed not in python_packages(final_files)
    assert set(python_packages(final_files)) == set(app) - {removed}


# --------------------------------------------------------------------------- OSV records


@pytest.fixture(scope="module")
def osv():
    return load_records(examples.OSV_DIR)


def test_every_package_is_affected_by_at_least_one_record(archive, final_files, osv):
    for p in debian_packages(final_files):
        hits = [rid for rid, r in osv.items() if affects(r, "Debian:11", p["source"], p["version"])]
        assert hits, f"{p['package']} {p['version']} (source {p['source']}): no Debian:11 record affects it"
    # including the distribution the whiteout removes: without whiteouts it would be reported
    for dist, meta in python_packages(layer_files(archive[2][1])).items():
        hits = [rid for rid, r in osv.items() if affects(r, "PyPI", meta["name"], meta["version"])]
        assert hits, f"{dist}: no PyPI record affects it"


def test_records_are_only_about_the_image_and_well_formed(archive, final_files, osv):
    assert sorted(p.name for p in examples.OSV_DIR.iterdir()) == sorted(examples.OSV_ECOSYSTEMS)
    sources = {p["source"] for p in debian_packages(final_files)}
    dists = {m["name"] for m in python_packages(layer_files(archive[2][1])).values()}
    for path in examples.OSV_DIR.rglob("*.json"):
        record = osv[path.stem]
        assert record["id"] == path.stem
        eco = "Debian:11" if path.parent.name == "Debian" else "PyPI"
        assert any(names_package(record, eco, n) for n in (sources if eco == "Debian:11" else dists)), path.name
    size = sum(p.stat().st_size for p in examples.OSV_DIR.rglob("*"))
    assert size < 1 << 20


@pytest.mark.skipif(not SHARED_OSV.is_dir(), reason="shared OSV exports not on this machine")
def test_records_are_unchanged_copies_of_the_exports():
    for eco in examples.OSV_ECOSYSTEMS:
        with zipfile.ZipFile(SHARED_OSV / eco / "all.zip") as z:
            names = set(z.namelist())
            for path in (examples.OSV_DIR / eco).glob("*.json"):
                assert path.name in names
                assert path.read_bytes() == z.read(path.name), path.name


def test_older_generation_lacks_records_that_affect_the_final_image(final_files, osv):
    older = load_records(examples.OSV_OLDER_DIR)
    for path in examples.OSV_OLDER_DIR.rglob("*.json"):
        assert path.read_bytes() == (examples.OSV_DIR / path.relative_to(examples.OSV_OLDER_DIR)).read_bytes()
    dropped = set(osv) - set(older)
    assert set(older) < set(osv) and len(dropped) >= 2
    present = [("Debian:11", p["source"], p["version"]) for p in debian_packages(final_files)]
    present += [("PyPI", m["name"], m["version"]) for m in python_packages(final_files).values()]
    for rid in dropped:
        assert any(affects(osv[rid], *p) for p in present), f"{rid} affects nothing in the final image"
    assert {"Debian", "PyPI"} == {("Debian" if rid.startswith("DSA") else "PyPI") for rid in dropped}


# -------------------------------------------------------------------- the real scanner


def test_builtin_scanner_finds_more_after_the_newer_data(tmp_path):
    from vulnwatch.registries.archive import ArchiveRegistry
    from vulnwatch.scanners.builtin import BuiltinScanner
    from vulnwatch.vulndb.index import VulnIndex
    from vulnwatch.vulndb.sync import import_path

    index = VulnIndex(tmp_path / "osv.sqlite")
    registry = ArchiveRegistry("example", examples.IMAGE_ARCHIVE)
    repository, tag = examples.IMAGE_REFERENCE.split(":")
    [image] = list(registry.images(repository))
    assert image.tags == (tag,)

    def scan(folder: Path, previous=None):
        for eco in examples.OSV_ECOSYSTEMS:
            import_path(index, folder / eco, source=eco)
        return BuiltinScanner(registry, index).scan(image, previous)   # new scanner: fresh matcher cache

    first = scan(examples.OSV_OLDER_DIR)
    assert first.distro == "Debian:11"
    names = {p.name.lower() for p in first.packages}
    assert {"libssl1.1", "zlib1g", "jinja2", "urllib3"} <= names and "werkzeug" not in names
    assert {f.package_name.lower() for f in first.findings} >= {"libssl1.1", "zlib1g", "jinja2", "urllib3"}
    second = scan(examples.OSV_DIR, first)
    assert second.packages == first.packages
    new_ids = {f.vulnerability_id for f in second.findings} - {f.vulnerability_id for f in first.findings}
    dropped = set(load_records(examples.OSV_DIR)) - set(load_records(examples.OSV_OLDER_DIR))
    expected = set()
    for rid in dropped:
        record = json.loads(next(examples.OSV_DIR.rglob(f"{rid}.json")).read_bytes())
        expected |= {a for a in record.get("upstream", []) + record.get("aliases", []) if a.startswith("CVE-")}
    assert new_ids and new_ids <= expected | dropped


# ----------------------------------------------------------------------- regeneration


@pytest.mark.slow
def test_make_example_regenerates_the_same_bytes(tmp_path):
    if not SHARED_OSV.is_dir():
        pytest.skip("shared OSV exports not on this machine")
    wheels = tmp_path / "wheels"
    script = ROOT / "examples" / "make_example.py"
    spec = subprocess.run([sys.executable, "-c", f"import runpy; m = runpy.run_path({str(script)!r}); "
                           "print(' '.join('=='.join(n.split('-')[:2]) for n in m['WHEELS']))"],
                          capture_output=True, text=True, check=True).stdout.split()
    dl = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                         "-d", str(wheels), *spec], capture_output=True, text=True)
    if dl.returncode:
        pytest.skip(f"pip download failed (offline?): {dl.stderr[-300:]}")
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(script), "--wheels", str(wheels), "--out", str(out)],
                   check=True, capture_output=True)
    shipped = {p.relative_to(examples.EXAMPLE_DIR): p.read_bytes() for p in examples.EXAMPLE_DIR.rglob("*")
               if p.is_file() and p.suffix in (".tar", ".json")}
    made = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert made.keys() == shipped.keys()
    assert all(made[k] == shipped[k] for k in made), [str(k) for k in made if made[k] != shipped[k]]
