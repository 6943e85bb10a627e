"""Poisoned OSV records: refused on import (named, the rest imported), skipped by the matcher
when an older index already holds them, and never a traceback out of ``severity.rate``."""

from __future__ import annotations

import copy
import json
import sqlite3
import zipfile
import zlib
from pathlib import Path

import pytest

from vulnwatch.model import Package, Severity
from vulnwatch.vulndb import schema, severity
from vulnwatch.vulndb.index import VulnIndex, pack
from vulnwatch.vulndb.interface import VulnDBError
from vulnwatch.vulndb.match import Matcher
from vulnwatch.vulndb.severity import UNKNOWN, rate, score_vector
from vulnwatch.vulndb.sync import import_path, validate_record


def good(rid="GOOD-1", name="demo", fixed="2.0", **extra):
    r = {"id": rid, "modified": "2024-01-01T00:00:00Z", "summary": f"{rid} summary",
         "affected": [{"package": {"ecosystem": "PyPI", "name": name},
                       "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}
    r.update(extra)
    return r


def _with(rid, path, value):
    """A good record with one place (a tuple of keys and indexes) set to ``value``."""
    r = good(rid)
    node = r
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return r


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# name -> (JSON text, the words the reason must contain)
POISONED = {
    "P-SUMMARY": (json.dumps(_with("P-SUMMARY", ("summary",), 5)), "summary: Input should be a valid string"),
    "P-DETAILS": (json.dumps(_with("P-DETAILS", ("details",), ["a", "b"])), "details: Input should be a valid string"),
    "P-UPSTREAM": (json.dumps(_with("P-UPSTREAM", ("upstream",), 5)), "upstream: Input should be a valid list"),
    "P-MODIFIED": (json.dumps(_with("P-MODIFIED", ("modified",), {"a": 1})), "modified: Input should be a valid string"),
    "P-BIGVERSION": (json.dumps(_with("P-BIGVERSION", ("affected", 0, "ranges", 0, "events", 1, "fixed"), "1" * 100_000)),
                     "affected[0].ranges[0].events[1].fixed: String should have at most 256 characters"),
    "P-DEEP": ('{"id": "P-DEEP", "modified": "2024-01-01T00:00:00Z", "database_specific": {"x": '
               + deep(100_000) + "}}", "nested deeper than 32 levels"),
    "P-DEEP40": ('{"id": "P-DEEP40", "modified": "2024-01-01T00:00:00Z", "database_specific": {"x": '
                 + deep(40) + "}}", "database_specific.x[0][0]"),
    "P-SURROGATE": ('{"id": "P-SURROGATE", "modified": "2024-01-01T00:00:00Z", "summary": "\\ud800"}', "not valid JSON"),
    "P-BIGINT": ('{"id": "P-BIGINT", "modified": "2024-01-01T00:00:00Z", "database_specific": {"n": '
                 + "9" * 5000 + "}}", "not valid JSON"),
    "P-EVENT": (json.dumps(_with("P-EVENT", ("affected", 0, "ranges", 0, "events", 1), {"fixed": "1", "limit": "2"})),
                "exactly one of introduced/fixed/last_affected/limit"),
    "P-AFFECTED": (json.dumps(_with("P-AFFECTED", ("affected",), {"package": "x"})), "affected: Input should be a valid list"),
    "P-REFERENCES": (json.dumps(_with("P-REFERENCES", ("references",), [{"type": "WEB", "url": 7}])),
                     "references[0].url: Input should be a valid string"),
    "P-SEVERITY": (json.dumps(_with("P-SEVERITY", ("severity",), [{"type": "CVSS_V3"}])), "severity[0].score: Field required"),
    "P-ALIASES": (json.dumps(_with("P-ALIASES", ("aliases",), [["CVE-1"]])), "aliases[0]: Input should be a valid string"),
    "P-VERSIONS": (json.dumps(_with("P-VERSIONS", ("affected", 0, "versions"), ["1.0", 2])),
                   "affected[0].versions[1]: Input should be a valid string"),
    "P-ECOSPECIFIC": (json.dumps(_with("P-ECOSPECIFIC", ("affected", 0, "ecosystem_specific"), "high")),
                      "affected[0].ecosystem_specific: Input should be a valid dictionary"),
    "P-LIST": (json.dumps(_with("P-LIST", ("related",), ["R-1"] * (schema.MAX_ITEMS + 1))),
               f"related: {schema.MAX_ITEMS + 1} items (at most {schema.MAX_ITEMS})"),
    "P-HUGE": (json.dumps(_with("P-HUGE", ("details",), "x" * (schema.MAX_RECORD_BYTES + 1))),
               f"larger than {schema.MAX_RECORD_BYTES} bytes"),
    "P-NOMODIFIED": (json.dumps({"id": "P-NOMODIFIED", "affected": []}), "modified: Field required"),
    "P-NOTOBJECT": ("[1, 2]", "not a JSON object"),
}


def _write_folder(folder: Path, texts: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.json").write_text(text)
    return folder


def _write_zip(path: Path, texts: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in texts.items():
            z.writestr(f"{name}.json", text)
    return path


@pytest.fixture
def db(tmp_path):
    index = VulnIndex(tmp_path / "osv.db")
    yield index
    index.close()


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_each_poisoned_record_is_skipped_and_named_the_rest_imported(db, tmp_path, layout):
    texts = {name: text for name, (text, _) in POISONED.items()}
    texts |= {"GOOD-1": json.dumps(good("GOOD-1")), "GOOD-2": json.dumps(good("GOOD-2", name="other"))}
    path = _write_folder(tmp_path / "osv", texts) if layout == "folder" else _write_zip(tmp_path / "all.zip", texts)
    report = import_path(db, path, source="PyPI")
    assert report.imported == 2
    assert db.record_ids_for("PyPI", "demo") == ["GOOD-1"] and db.record_ids_for("PyPI", "other") == ["GOOD-2"]
    assert len(report.skipped) == len(POISONED)
    for name, (_, words) in POISONED.items():
        what, why = next((w, r) for w, r in report.skipped if f"{name}.json" in w)
        assert words in why, (name, why)
        assert db.record(name) is None
    # the record id is named next to the file when it could be read
    assert any(w.endswith("P-SUMMARY.json (P-SUMMARY)") for w, _ in report.skipped)


def test_poisoned_record_does_not_roll_back_an_earlier_import(db, tmp_path):
    import_path(db, _write_folder(tmp_path / "a", {"GOOD-1": json.dumps(good("GOOD-1"))}), source="PyPI")
    report = import_path(db, _write_folder(tmp_path / "b", {
        "GOOD-2": json.dumps(good("GOOD-2")), "P-MODIFIED": POISONED["P-MODIFIED"][0]}), source="PyPI")
    assert report.imported == 1 and report.removed == 1       # GOOD-1 is gone from the export, replaced
    assert db.record_ids_for("PyPI", "demo") == ["GOOD-2"]


def test_only_poisoned_records_leave_the_index_unchanged(db, tmp_path):
    import_path(db, _write_folder(tmp_path / "a", {"GOOD-1": json.dumps(good("GOOD-1"))}), source="PyPI")
    with pytest.raises(VulnDBError, match="no valid OSV records.*P-DEEP.json: nested deeper"):
        import_path(db, _write_folder(tmp_path / "b", {"P-DEEP": POISONED["P-DEEP"][0]}), source="PyPI")
    assert db.record_ids_for("PyPI", "demo") == ["GOOD-1"]


def test_zip_member_larger_than_the_bound_is_not_read(db, tmp_path):
    path = tmp_path / "all.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("GOOD-1.json", json.dumps(good("GOOD-1")))
        z.writestr("BOMB.json", b" " * (schema.MAX_RECORD_BYTES + 10))   # compresses to a few KB
    report = import_path(db, path, source="PyPI")
    assert report.imported == 1
    assert report.skipped == (("all.zip:BOMB.json", f"{schema.MAX_RECORD_BYTES + 10} bytes, larger than "
                                                     f"{schema.MAX_RECORD_BYTES} bytes"),)


def test_unknown_fields_and_nulls_the_schema_allows_are_accepted(db, tmp_path):
    r = good("GOOD-1", aliases=None, severity=None, references=None, schema_version="1.7.0",
             some_future_field={"nested": [1, 2.5, True, None]})
    r["affected"][0]["ranges"][0]["x_extra"] = "kept"
    assert validate_record(r) is None
    assert import_path(db, _write_folder(tmp_path / "a", {"GOOD-1": json.dumps(r)}), source="PyPI").imported == 1
    assert db.record("GOOD-1")["some_future_field"] == {"nested": [1, 2.5, True, None]}


def test_bounds_are_what_the_constants_say():
    at_limit = good("A", fixed="1" * schema.MAX_VERSION_LENGTH)
    assert validate_record(at_limit) is None
    assert "at most 256 characters" in validate_record(good("A", fixed="1" * (schema.MAX_VERSION_LENGTH + 1)))
    ok: object = 1
    for _ in range(schema.MAX_DEPTH - 2):      # record (level 1) > database_specific (2) > 30 arrays
        ok = [ok]
    assert validate_record(good("A", database_specific={"x": ok})) is None
    assert "nested deeper than 32 levels" in validate_record(good("A", database_specific={"x": [ok]}))
    assert "at most 256 characters" in validate_record(good("A" * 257))
    assert "summary: String should have at most 8192" in validate_record(good("A", summary="s" * 9000))
    assert validate_record(good("A", details="d" * schema.MAX_TEXT_LENGTH)) is None
    assert validate_record(good("A", details="d" * (schema.MAX_TEXT_LENGTH + 1))).startswith("details: a string of")


def test_the_real_exports_are_valid_records():
    # every record of the shared data passes (the bounds leave a margin over real data)
    from .conftest import zip_records
    for eco in ("Debian", "PyPI", "Alpine", "Go"):
        bad = [(r.get("id"), why) for r in zip_records(eco) if (why := validate_record(r))]
        assert bad == [], eco


# ---------------------------------------------------------------- an index written by an older vulnwatch

def _store_raw(index: VulnIndex, rid: str, blob: bytes, ecosystem="PyPI", name="demo") -> None:
    """Write a row as an older vulnwatch (no validation) could have."""
    with sqlite3.connect(index.path) as c:
        c.execute("INSERT OR REPLACE INTO records (id, ecosystem, source, modified, withdrawn, data) "
                  "VALUES (?, 'PyPI', 'PyPI', NULL, NULL, ?)", (rid, blob))
        c.execute("INSERT OR IGNORE INTO affected (ecosystem, name, record_id) VALUES (?, ?, ?)",
                  (ecosystem, name, rid))


def _old_index_poison() -> dict[str, bytes]:
    out = {}
    for name in ("P-SUMMARY", "P-DETAILS", "P-UPSTREAM", "P-MODIFIED", "P-BIGVERSION", "P-EVENT", "P-AFFECTED",
                 "P-REFERENCES", "P-VERSIONS"):
        out[name] = pack(json.loads(POISONED[name][0]))
    out["P-DEEPOLD"] = zlib.compress(('{"id": "P-DEEPOLD", "modified": "x", "database_specific": '
                                      + deep(5000) + "}").encode())
    out["P-SURROGATEOLD"] = pack({**good("P-SURROGATEOLD"), "summary": "\ud800"})   # json.dumps escapes it
    out["P-NOTZLIB"] = b"garbage"
    out["P-NOTJSON"] = zlib.compress(b"{not json")
    out["P-LIST"] = zlib.compress(b"[1]")
    ranges = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1" * 5000}]}]
    out["P-BIGVERSION2"] = pack({**good("P-BIGVERSION2"), "affected": [
        {"package": {"ecosystem": "PyPI", "name": "demo"}, "ranges": ranges}]})
    return out


def test_matcher_skips_malformed_stored_records_and_names_them(db, tmp_path):
    import_path(db, _write_folder(tmp_path / "a", {"GOOD-1": json.dumps(good("GOOD-1"))}), source="PyPI")
    poison = _old_index_poison()
    for rid, blob in poison.items():
        _store_raw(db, rid, blob)
    m = Matcher(db)
    found = m.match([Package("demo", "1.0", "PyPI")])
    assert [f.vulnerability_id for f in found] == ["GOOD-1"]
    skipped = m.stats.skipped_records
    assert set(skipped) == set(poison)
    assert "summary: Input should be a valid string" in skipped["P-SUMMARY"]
    assert "nested deeper than 32 levels" in skipped["P-DEEPOLD"]
    assert "not valid JSON" in skipped["P-SURROGATEOLD"]
    assert "not zlib-compressed" in skipped["P-NOTZLIB"]
    assert "'P-NOTJSON' in the index cannot be read" in skipped["P-NOTJSON"]
    assert "not a JSON object" in skipped["P-LIST"]
    assert "at most 256 characters" in skipped["P-BIGVERSION2"]
    # and again, from the caches, without raising either
    assert [f.vulnerability_id for f in m.match([Package("demo", "1.5", "PyPI")])] == ["GOOD-1"]


def test_matcher_survives_a_comparator_that_fails_unexpectedly(db, tmp_path, monkeypatch):
    from vulnwatch.vulndb import match as match_mod

    import_path(db, _write_folder(tmp_path / "a", {
        "GOOD-1": json.dumps(good("GOOD-1")), "ODD-1": json.dumps(good("ODD-1", fixed="3.boom"))}), source="PyPI")

    class Exploding(type(match_mod.comparator_for("PyPI"))):
        def key(self, version):
            if "boom" in version:
                raise ZeroDivisionError("comparator bug")
            return super().key(version)

    monkeypatch.setattr(match_mod, "comparator_for", lambda eco: Exploding())
    m = Matcher(db)
    assert [f.vulnerability_id for f in m.match([Package("demo", "1.0", "PyPI")])] == ["GOOD-1"]
    assert "comparator failed (ZeroDivisionError: comparator bug)" in m.stats.skipped_records["ODD-1"]
    # an installed version the comparator fails on skips that package only
    assert m.match([Package("demo", "9.boom", "PyPI")]) == []
    assert "ZeroDivisionError" in m.stats.skipped_packages["PyPI/demo@9.boom"]


def test_matcher_skips_a_package_whose_version_is_absurdly_long(db, tmp_path):
    import_path(db, _write_folder(tmp_path / "a", {"GOOD-1": json.dumps(good("GOOD-1"))}), source="PyPI")
    m = Matcher(db)
    assert m.match([Package("demo", "1" * 100_000, "PyPI")]) == []
    (key, why), = m.stats.skipped_packages.items()
    assert key.startswith("PyPI/demo@111") and len(key) < 120 and "longer than 256 characters" in why


def test_an_unreadable_index_is_a_vulndb_error(tmp_path):
    index = VulnIndex(tmp_path / "osv.db")
    m = Matcher(index)
    index.close()
    with pytest.raises(VulnDBError):
        m.match([Package("demo", "1.0", "PyPI")])


# ---------------------------------------------------------------- severity on odd input

@pytest.mark.parametrize("kind,vector", [
    ("CVSS_V3", "CVSS:3.1/AV:N"),                              # incomplete: cvss refuses it
    ("CVSS_V3", "CVSS:9.9/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
    ("CVSS_V4", "CVSS:4.0/AV:X"),
    ("CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:Q"),
    ("CVSS_V3", ""),
    ("CVSS_V3", "é/\x00"),
    ("CVSS_V3", "CVSS:3.1/" + "AV:N/" * 10_000),
    ("Ubuntu", "high"),
])
def test_score_vector_refuses_bad_vectors(kind, vector):
    assert score_vector(kind, vector) is None


@pytest.fixture(autouse=True)
def _fresh_score_cache():
    """score_vector caches per vector: a test that swaps the cvss package must not see (or
    leave behind) results of the real one."""
    severity.score_vector.cache_clear()
    yield
    severity.score_vector.cache_clear()


@pytest.mark.parametrize("error", [ZeroDivisionError("x"), RecursionError(), AttributeError("y"), IndexError()])
def test_score_vector_survives_unexpected_cvss_failures(monkeypatch, error):
    def boom(vector):
        raise error

    monkeypatch.setattr(severity.cvss, "CVSS3", boom)
    record = {"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
                           {"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}]}
    assert score_vector("CVSS_V3", record["severity"][0]["score"]) is None
    assert rate(record) == severity.Rating(Severity.HIGH, 7.5, "AV:N/AC:L/Au:N/C:P/I:P/A:P")   # the next vector


def test_score_vector_refuses_scores_outside_0_to_10(monkeypatch):
    class Fake:
        def __init__(self, v):
            pass

        def scores(self):
            return (float("nan"),)

        def severities(self):
            return ("High",)

    monkeypatch.setattr(severity.cvss, "CVSS3", Fake)
    assert score_vector("CVSS_V3", "CVSS:3.1/whatever") is None


@pytest.mark.parametrize("record,affected", [
    ({"severity": 5}, None), ({"severity": [5, None, "x"]}, {"severity": {"a": 1}}),
    ({"database_specific": ["HIGH"]}, {"ecosystem_specific": "HIGH"}),
    ({"severity": [{"type": ["CVSS_V3"], "score": "CVSS:3.1/AV:N"}]}, []), ([], "x"), (None, None),
    ({"database_specific": {"severity": 7}}, {"database_specific": {"severity": None}}),
])
def test_rate_never_raises_on_odd_input(record, affected):
    assert rate(record, affected) == UNKNOWN


def test_rate_still_reads_what_is_usable_next_to_junk():
    assert rate({"severity": [7, {"type": "CVSS_V3"}],
                 "database_specific": {"severity": "MODERATE"}}, {"severity": "junk"}).severity is Severity.MEDIUM
