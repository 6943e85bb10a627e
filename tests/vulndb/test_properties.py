"""Properties: importing and matching arbitrary OSV-shaped data never raises anything but
:class:`VulnDBError`; what is valid is stored and matched, what is not is named."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import zipfile
import zlib
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from vulnwatch.model import Package
from vulnwatch.vulndb.index import VulnIndex, index_name, pack
from vulnwatch.vulndb.interface import VulnDBError
from vulnwatch.vulndb.match import Matcher
from vulnwatch.vulndb.schema import RecordError, check_record, parse_json
from vulnwatch.vulndb.severity import Rating, rate, score_vector
from vulnwatch.vulndb.sync import import_path

from .strategies import AFFECTED, ANY_RECORD, CVSS_VECTORS, ECOSYSTEMS, JUNK, NAMES, RECORDS, VERSIONS

CHEAP = settings(max_examples=settings.default.max_examples * 2)
"""For properties that cost microseconds per example."""


def _is_valid(rec) -> bool:
    return check_record(rec) is None


# ---------------------------------------------------------------- validation and parsing

@CHEAP
@given(ANY_RECORD)
def test_check_record_answers_for_any_json(rec):
    why = check_record(rec)
    assert why is None or (isinstance(why, str) and why)
    if why is None:  # what the importer and the matcher then rely on
        assert isinstance(rec["id"], str) and rec["id"] and isinstance(rec["modified"], str)
        for aff in rec.get("affected") or ():
            assert isinstance(aff, dict)
            for rng in aff.get("ranges") or ():
                assert rng["events"] and all(len(ev) == 1 and isinstance(next(iter(ev.values())), str)
                                             for ev in rng["events"])


@CHEAP
@given(st.one_of(st.binary(max_size=64), JUNK.map(json.dumps).flatmap(
    lambda text: st.integers(0, len(text)).map(lambda cut: text[:cut]))))
def test_parse_json_raises_only_record_error(data):
    try:
        value = parse_json(data)
    except RecordError as e:
        assert e.reason
    else:
        assert check_record(value) is None or isinstance(check_record(value), str)


@CHEAP
@given(st.integers(1, 400), st.sampled_from(["[", "{\"a\":"]))
def test_deep_nesting_is_refused_never_a_recursion_error(levels, opener):
    closer = "]" if opener == "[" else "}"
    text = '{"id": "X-1", "modified": "m", "database_specific": {"d": ' + opener * levels + "1" + closer * levels + "}}"
    try:
        rec = parse_json(text)
    except RecordError as e:
        assert "nested deeper than 32 levels" in e.reason
        return
    why = check_record(rec)
    assert (why is None) == (levels <= 30), why


# ---------------------------------------------------------------- import

@settings(max_examples=settings.default.max_examples)
@given(st.lists(st.one_of(ANY_RECORD.map(json.dumps), st.binary(max_size=20)), min_size=1, max_size=6),
       st.booleans(), st.lists(st.tuples(ECOSYSTEMS, NAMES, VERSIONS), max_size=4))
def test_import_of_arbitrary_files_names_what_it_skips_and_matching_never_raises(files, as_zip, packages):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if as_zip:
            path = root / "all.zip"
            with zipfile.ZipFile(path, "w") as z:
                for n, data in enumerate(files):
                    z.writestr(f"R{n}.json", data)
        else:
            path = root / "osv"
            path.mkdir()
            for n, data in enumerate(files):
                (path / f"R{n}.json").write_bytes(data if isinstance(data, bytes) else data.encode())
        parsed = []
        for data in files:
            try:
                parsed.append(parse_json(data))
            except RecordError:
                parsed.append(RecordError("x"))
        valid = [r for r in parsed if not isinstance(r, RecordError) and _is_valid(r)]
        with VulnIndex(root / "osv.db") as db:
            try:
                report = import_path(db, path, source="test")
            except VulnDBError as e:
                assert e.code == "EmptyExport" and not valid
                return
            assert report.imported + report.withdrawn + len(report.skipped) == len(files)
            assert {w.split(" ")[0].rsplit("/", 1)[-1].rsplit(":", 1)[-1] for w, _ in report.skipped} == {
                f"R{n}.json" for n, r in enumerate(parsed) if isinstance(r, RecordError) or not _is_valid(r)}
            gone = {r["id"] for r in valid if r.get("withdrawn")}
            kept = {r["id"] for r in valid if not r.get("withdrawn")} - gone
            assert {r["id"] for r in db.iter_records()} == kept
            m = Matcher(db)
            pkgs = [Package(name, version, eco) for eco, name, version in packages]
            for rec in valid:  # every package a stored record names, at a version it lists
                for aff in rec.get("affected") or ():
                    pkg = aff.get("package")
                    if pkg and rec["id"] in kept:
                        for v in (aff.get("versions") or ["1.0"])[:2]:
                            pkgs.append(Package(pkg["name"], v, pkg["ecosystem"]))
            findings = m.match(pkgs)
            assert all(f.vulnerability_id for f in findings)
            assert not [why for why in m.stats.skipped_records.values() if "cannot be compiled" in why]


# ---------------------------------------------------------------- matching what an older index holds

def _store_raw(db_path: Path, rid: str, blob: bytes, rows: set[tuple[str, str]]) -> None:
    with sqlite3.connect(db_path) as c:
        c.execute("INSERT OR REPLACE INTO records (id, ecosystem, source, modified, withdrawn, data) "
                  "VALUES (?, '', 'old', NULL, NULL, ?)", (rid, blob))
        c.executemany("INSERT OR IGNORE INTO affected (ecosystem, name, record_id) VALUES (?, ?, ?)",
                      [(eco, name, rid) for eco, name in rows])


@settings(max_examples=settings.default.max_examples)
@given(st.lists(st.one_of(RECORDS, RECORDS, JUNK, st.binary(max_size=12)), min_size=1, max_size=5),
       st.lists(st.tuples(st.sampled_from(["PyPI", "Debian:11", "npm", "Alpine:v3.11", "Maven", "Go"]),
                          st.sampled_from(["demo", "Jinja2", "openssl"]), VERSIONS), min_size=1, max_size=4))
def test_matcher_never_raises_on_what_an_older_index_stored(stored, packages):
    # every package a stored record names (at the versions it lists), plus the drawn ones
    for rec in stored:
        if isinstance(rec, dict) and isinstance(rec.get("affected"), list):
            for aff in rec["affected"]:
                pkg = aff.get("package") if isinstance(aff, dict) else None
                if isinstance(pkg, dict) and isinstance(pkg.get("ecosystem"), str) and isinstance(pkg.get("name"), str):
                    versions = aff.get("versions") if isinstance(aff.get("versions"), list) else ["1.0"]
                    packages += [(pkg["ecosystem"], pkg["name"], v) for v in versions[:2] if isinstance(v, str)]
    rows = {(eco, index_name(eco, name)) for eco, name, _ in packages}   # every package asks for every record
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "osv.db"
        VulnIndex(db_path).close()
        records = {}
        for n, rec in enumerate(stored):
            rid = f"OLD-{n}"
            if isinstance(rec, bytes):
                blob = rec if n % 2 else zlib.compress(rec)
            else:
                if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                    rec = {**rec, "id": rid}
                blob = pack(rec)
                records[rid] = rec
            _store_raw(db_path, rid, blob, rows)
        with VulnIndex(db_path) as db:
            m = Matcher(db)
            pkgs = [Package(name, version, eco) for eco, name, version in packages]
            findings = m.match(pkgs)
            again = m.match(pkgs)                                     # from the caches
            assert again == findings
            skipped = m.stats.skipped_records
            assert all(isinstance(why, str) and why for why in skipped.values())
            assert not [why for why in skipped.values() if "cannot be compiled" in why]
            # a record that is valid, not skipped, and lists the installed version is found
            found: dict[tuple, set] = {}
            for f in findings:
                found.setdefault((f.package_name, f.package_version, f.ecosystem), set()).update(
                    {f.vulnerability_id, *f.aliases})
            checked = 0
            for rid, rec in records.items():
                if rid in skipped or not _is_valid(rec) or rec.get("withdrawn"):
                    continue
                for eco, name, version in packages:
                    if eco and any((aff.get("package") or {}).get("ecosystem") == eco
                           and index_name(eco, (aff.get("package") or {}).get("name", "")) == index_name(eco, name)
                           and version in (aff.get("versions") or ())
                           for aff in rec.get("affected") or ()):
                        if not any(f"record {rid} cannot be evaluated" in why
                                   for why in m.stats.skipped_packages.values()):
                            assert rid in found.get((name, version, eco), set()), (rid, rec)
                            checked += 1
            event("records checked to be found: " + ("some" if checked else "none"))


# ---------------------------------------------------------------- severity

@CHEAP
@given(st.one_of(RECORDS, JUNK), st.one_of(AFFECTED, JUNK, st.none()))
def test_rate_never_raises(record, affected):
    r = rate(record, affected)
    assert isinstance(r, Rating)
    assert r.score is None or 0.0 <= r.score <= 10.0


@CHEAP
@given(st.sampled_from(["CVSS_V3", "CVSS_V2", "CVSS_V4", "Ubuntu", "other"]), CVSS_VECTORS)
def test_score_vector_never_raises(kind, vector):
    r = score_vector(kind, vector)
    assert r is None or (0.0 <= r.score <= 10.0 and r.vector == vector)
