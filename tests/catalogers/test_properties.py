"""Properties of the catalogers' parsers: on any file content they return packages and
warnings, or raise :class:`CatalogError`; never anything else. Every package they return
can be stored (UTF-8 encodable strings, a name and a version)."""

from __future__ import annotations

import io
import json
import sqlite3
import struct
import warnings
import zipfile
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vulnwatch.catalogers import (ApkCataloger, CatalogContext, CatalogError, CatalogResult, Distro,
                                  DpkgCataloger)
from vulnwatch.catalogers.golang import BUILDINFO_MAGIC, GoBinaryCataloger, parse_buildinfo
from vulnwatch.catalogers import java
from vulnwatch.catalogers.java import JavaArchiveCataloger
from vulnwatch.catalogers.npm import NpmCataloger
from vulnwatch.catalogers.python import PythonCataloger
from vulnwatch.catalogers.rpm import RpmCataloger

# the explicit examples and the 4,300-digit documents are big, their reprs not needed; the java
# reducer copies an archive's duplicate entry names into its reduced zip, which zipfile notes
pytestmark = [pytest.mark.filterwarnings("ignore:Generating overly large repr"),
              pytest.mark.filterwarnings("ignore:Duplicate name")]

CTX = st.sampled_from([CatalogContext(), CatalogContext(distro=Distro("debian", "12", "Debian:12")),
                       CatalogContext(distro=Distro("alpine", "3.19.1", "Alpine:v3.19")),
                       CatalogContext(distro=Distro("rocky", "9.3", "Rocky Linux:9"))])
CHEAP = settings(max_examples=settings.default.max_examples * 2)


def run(cataloger, files, context, *, versioned: bool = True) -> CatalogResult | None:
    """catalog(), checked: a result whose packages can be stored, or a CatalogError.
    ``versioned``: every package has a non-empty version (the Go reader may give an empty
    one for a damaged module line, which then matches nothing)."""
    try:
        result = cataloger.catalog(files, context)
    except CatalogError as e:
        assert str(e).startswith(f"{cataloger.name}: ")
        return None
    assert isinstance(result, CatalogResult)
    assert all(isinstance(w, str) and w for w in result.warnings)
    for p in result.packages:
        assert isinstance(p.name, str) and p.name and isinstance(p.version, str)
        assert p.version or not versioned
        for value in (p.name, p.version, p.purl, p.source_name, p.source_version, p.ecosystem):
            if value is not None:
                value.encode("utf-8")        # storable: no lone surrogates
    return result


# ---------------------------------------------------------------- deb822: dpkg status, apk installed

FIELD_NAMES = st.sampled_from(["Package", "Version", "Status", "Source", "Architecture", "P", "V", "o", "A",
                               "Description"]) | st.text(max_size=6)
FIELD_VALUES = st.sampled_from(["install ok installed", "deinstall ok config-files", "openssl (3.0.11-1)",
                                "1.2.3-1", "amd64", "x", " ", "a (", "(1)"]) | st.text(max_size=12)
LINES = st.one_of(st.tuples(FIELD_NAMES, FIELD_VALUES).map(lambda kv: f"{kv[0]}: {kv[1]}"),
                  st.text(max_size=10).map(lambda t: " " + t), st.just(""), st.text(max_size=12))
DEB822 = st.one_of(st.lists(LINES, max_size=12).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
                   st.binary(max_size=64))


@CHEAP
@given(st.dictionaries(st.sampled_from(["var/lib/dpkg/status", "var/lib/dpkg/status.d/base",
                                        "var/lib/dpkg/status.d/x"]), DEB822, min_size=1), CTX)
def test_dpkg_status_never_crashes(files, ctx):
    run(DpkgCataloger(), files, ctx)


@CHEAP
@given(st.lists(st.tuples(st.from_regex(r"\A[a-z0-9][a-z0-9+.-]{0,8}\Z"), st.from_regex(r"\A[0-9][0-9a-z.+~-]{0,8}\Z")),
                min_size=1, max_size=5, unique_by=lambda t: t), CTX)
def test_dpkg_installed_stanzas_are_all_found(pkgs, ctx):
    text = "\n\n".join(f"Package: {n}\nStatus: install ok installed\nVersion: {v}\nArchitecture: amd64" for n, v in pkgs)
    result = run(DpkgCataloger(), {"var/lib/dpkg/status": text.encode()}, ctx)
    assert [(p.name, p.version) for p in result.packages] == pkgs and result.warnings == ()


@CHEAP
@given(st.dictionaries(st.sampled_from(["lib/apk/db/installed", "usr/lib/apk/db/installed"]), DEB822, min_size=1),
       CTX)
def test_apk_installed_never_crashes(files, ctx):
    run(ApkCataloger(), files, ctx)


# ---------------------------------------------------------------- python METADATA

@CHEAP
@given(st.dictionaries(st.sampled_from(["a/x-1.dist-info/METADATA", "b/y.egg-info/PKG-INFO", "c/z.egg-info"]),
                       st.one_of(st.lists(st.one_of(
                           st.tuples(st.sampled_from(["Name", "Version", "Summary"]) | st.text(max_size=5),
                                     st.text(max_size=10)).map(lambda kv: f"{kv[0]}: {kv[1]}"),
                           st.text(max_size=10)), max_size=8).map(lambda ls: "\n".join(ls).encode("utf-8",
                                                                                                "surrogatepass")),
                                 st.binary(max_size=40)), min_size=1))
def test_python_metadata_never_crashes(files):
    run(PythonCataloger(), files, CatalogContext())


# ---------------------------------------------------------------- npm package.json

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=6)
PACKAGE_JSON = st.one_of(
    st.fixed_dictionaries({"name": st.text(max_size=8) | JSON_VALUES, "version": st.text(max_size=8) | JSON_VALUES},
                          optional={"dependencies": JSON_VALUES}).map(json.dumps),
    st.text(alphabet="0123456789", min_size=4300, max_size=4400).map(lambda d: '{"name": "x", "version": ' + d + "}"),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.sampled_from(['{"name": "\\ud800", "version": "1"}', '{"name": "a", "version": "\\udfff1"}']),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
).map(lambda text: text.encode("utf-8", "surrogatepass"))


@CHEAP
@example({"package.json": b"[" * 5000 + b"]" * 5000})                                 # was RecursionError
@example({"package.json": b'{"name": "\\ud800", "version": "1"}'})                  # was UnicodeEncodeError
@given(st.dictionaries(st.sampled_from(["package.json", "app/node_modules/a/package.json",
                                        "app/node_modules/@s/b/package.json"]), PACKAGE_JSON, min_size=1))
def test_npm_package_json_never_crashes(files):
    run(NpmCataloger(), files, CatalogContext())


# ---------------------------------------------------------------- go build info

def _uvarint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


GO_BLOBS = st.builds(
    lambda flags, version, mod, cut, lie: (BUILDINFO_MAGIC + bytes([8, flags]) + b"\0" * 16
                                          + _uvarint(len(version) + lie) + version + _uvarint(len(mod)) + mod)[:cut],
    st.sampled_from([0, 2, 3]), st.binary(max_size=12) | st.just(b"go1.21.3"),
    st.lists(st.sampled_from([b"mod\tex.com/a\tv1.0.0\t", b"dep\tx\tv1\th1:=", b"=>\ty\tv2\th1:=", b"path\tp"])
             | st.binary(max_size=10), max_size=5).map(b"\n".join),
    st.integers(0, 200), st.sampled_from([0, 0, 1, 1000, 2 ** 40]))


@CHEAP
@given(st.one_of(GO_BLOBS, st.binary(max_size=80), st.binary(max_size=80).map(lambda b: BUILDINFO_MAGIC + b)))
def test_go_build_info_never_crashes(blob):
    run(GoBinaryCataloger(), {"usr/bin/app": blob}, CatalogContext(), versioned=False)
    try:
        parse_buildinfo(blob)
    except ValueError:   # the documented failure, which catalog() turns into a warning
        pass


ELF_HEADERS = st.builds(
    lambda cls, order, fields, pad, blob: (b"\x7fELF" + bytes([cls, order]) + b"\0" * 10
                                          + struct.pack(("<" if order == 1 else ">") + "HHIQQQIHHHHHH", *fields)
                                          + pad + blob),
    st.sampled_from([1, 2, 3]), st.sampled_from([1, 2]),
    st.tuples(*[st.integers(0, 0xFFFF)] * 2, st.integers(0, 2 ** 32 - 1), *[st.integers(0, 2 ** 20)] * 3,
              st.integers(0, 2 ** 32 - 1), *[st.integers(0, 80)] * 6),
    st.binary(max_size=200), GO_BLOBS)


@CHEAP
@given(st.one_of(ELF_HEADERS, st.binary(max_size=100).map(lambda b: b"\x7fELF" + b)))
def test_go_reading_executables_never_crashes(data):
    c = GoBinaryCataloger()
    kept = c.read_executable("usr/bin/app", io.BytesIO(data), len(data))
    assert kept is None or isinstance(kept, bytes)
    if kept is not None:
        run(c, {"usr/bin/app": kept}, CatalogContext(), versioned=False)


# ---------------------------------------------------------------- rpm

def _header(tags) -> bytes:
    index, store = b"", b""
    for tag, typ, value in tags:
        index += struct.pack(">iiii", tag, typ, len(store), 1)
        store += value
    return struct.pack(">ii", len(tags), len(store)) + index + store


RPM_HEADERS = st.lists(st.tuples(st.sampled_from([1000, 1001, 1002, 1003, 1022, 1044, 7]),
                                 st.sampled_from([4, 6, 8, 9, 3]),
                                 st.one_of(st.text(max_size=8).map(lambda t: t.encode("utf-8", "surrogatepass") + b"\0"),
                                           st.binary(max_size=6))), max_size=6).map(_header)
SQL_VALUES = st.one_of(RPM_HEADERS, st.binary(max_size=20), st.none(), st.integers(-2 ** 63, 2 ** 63 - 1),
                       st.floats(allow_nan=False), st.text(max_size=8))


def _rpmdb(rows, table_sql) -> bytes:
    con = sqlite3.connect(":memory:")
    try:
        con.execute(table_sql)
        for row in rows:
            try:
                con.execute("INSERT INTO Packages (hnum, blob) VALUES (?, ?)", row)
            except sqlite3.IntegrityError:  # a non-integer or repeated INTEGER PRIMARY KEY
                pass
        con.commit()
        return con.serialize()
    finally:
        con.close()


RPMDBS = st.builds(_rpmdb, st.lists(st.tuples(SQL_VALUES, SQL_VALUES), max_size=4),
                   st.sampled_from(["CREATE TABLE Packages (hnum, blob)",
                                    "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)",
                                    "CREATE TABLE Other (x); CREATE TABLE Packages (hnum TEXT, blob TEXT)".split("; ")[1]]))


@st.composite
def damaged(draw, base):
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


@settings(max_examples=settings.default.max_examples)
@example(_rpmdb([(1, -1), (2, None), (3, "text"), (4, 2.5)], "CREATE TABLE Packages (hnum, blob)"),
         CatalogContext())                                   # were ValueError and TypeError from bytes(blob)
@given(st.one_of(RPMDBS, damaged(RPMDBS), st.binary(max_size=40).map(lambda b: b"SQLite format 3\0" + b)), CTX)
def test_rpmdb_never_crashes(data, ctx):
    run(RpmCataloger(), {"var/lib/rpm/rpmdb.sqlite": data}, ctx)


# ---------------------------------------------------------------- java manifest / pom.properties

PROPERTIES = st.lists(st.one_of(
    st.tuples(st.sampled_from(["groupId", "artifactId", "version", "#c", "!x"]) | st.text(max_size=5),
              st.sampled_from(["=", ":", " = ", " "]), st.text(max_size=8)).map("".join),
    st.text(max_size=10)), max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass"))
MANIFEST = st.lists(st.one_of(
    st.tuples(st.sampled_from(["Implementation-Version", "Bundle-Version", "Bundle-SymbolicName",
                               "Implementation-Vendor-Id", "Specification-Version"]) | st.text(max_size=5),
              st.text(max_size=10)).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.text(max_size=8).map(lambda t: " " + t)), max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8",
                                                                                                 "surrogatepass"))


def _zip(entries, compress) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate entry names are part of the junk
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
            for name, data in entries:
                z.writestr(name, data)
    return buf.getvalue()


ENTRY_NAMES = st.sampled_from(["META-INF/maven/g/a/pom.properties", "META-INF/MANIFEST.MF", "x.txt",
                               "WEB-INF/lib/inner-1.0.jar"])
ARCHIVES = st.recursive(
    st.builds(_zip, st.lists(st.tuples(ENTRY_NAMES, st.one_of(PROPERTIES, MANIFEST, st.binary(max_size=20))),
                             max_size=4), st.booleans()),
    lambda inner: st.builds(_zip, st.lists(st.tuples(st.sampled_from(["WEB-INF/lib/a-1.jar", "BOOT-INF/lib/b.war"]),
                                                     inner), max_size=2), st.booleans()),
    max_leaves=3)


def _corrupt_deflate(name: str, inner: bytes) -> bytes:
    """An archive whose one deflated entry has an invalid deflate stream (block type 3)."""
    data = bytearray(_zip([(name, inner)], True))
    nlen, xlen = struct.unpack_from("<HH", data, 26)
    data[30 + nlen + xlen] = 0xFF
    return bytes(data)


def _encrypted(name: str, inner: bytes) -> bytes:
    """An archive whose one entry says it is encrypted (flag bit 0 in both headers)."""
    data = bytearray(_zip([(name, inner)], False))
    data[6] |= 1
    central = data.rindex(b"PK\x01\x02")
    data[central + 8] |= 1
    return bytes(data)


@settings(max_examples=settings.default.max_examples)
@example(_corrupt_deflate("WEB-INF/lib/a-1.jar", b"x" * 300), "app/x.jar")   # was zlib.error from catalog()
@example(_corrupt_deflate("META-INF/MANIFEST.MF", b"Implementation-Version: 1\n" * 20), "app/x.jar")
@example(_encrypted("META-INF/MANIFEST.MF", b"Implementation-Version: 1\n"), "app/x.jar")  # was RuntimeError
@given(st.one_of(ARCHIVES, damaged(ARCHIVES), st.binary(max_size=30)), st.sampled_from(["app/x.jar", "lib/y-2.0.war"]))
def test_java_archives_never_crash(data, path):
    c = JavaArchiveCataloger()
    run(c, {path: data}, CatalogContext())
    for reduced in (c.reduce(path, io.BytesIO(data), len(data)), _reduce_stream_or_marker(data)):
        assert isinstance(reduced, bytes)
        run(c, {path: reduced}, CatalogContext())


def _reduce_stream_or_marker(data: bytes) -> bytes:
    """What reduce() keeps of the same bytes when it takes the forward-only path that
    archives over WHOLE_LIMIT (16 MB) take."""
    with mock.patch.object(java, "WHOLE_LIMIT", -1):
        return JavaArchiveCataloger().reduce("x.jar", io.BytesIO(data), len(data))
