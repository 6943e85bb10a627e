"""Version comparators against their ecosystems' own published test vectors.

The files in ``data/versions/`` are those vectors, extracted from the upstream test suites
(each file's header names the repository, path and commit): apk-tools' ``version.data`` of
three generations, rpm's ``rpmvercmp.at``, Maven's ``ComparableVersionTest`` (3.9 and 4),
packaging's ``test_version.py`` and node-semver's comparison and equality fixtures.

A line is ``a OP b`` or a chain ``a < b < c = d`` (every earlier version against every later
one: ``<`` when a ``<`` lies between them, else ``=``); a version with spaces is a JSON
string; ``#`` starts a comment. apk-tools' files also hold ``version`` / ``!version``
(valid / invalid) lines and fuzzy-match lines (``~``), which are not orderings.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from vulnwatch.vulndb.interface import VersionError
from vulnwatch.vulndb.versions import comparator_for
from vulnwatch.vulndb.versions.apk import apk3_compare, apk3_validate, apk_compare, apk_validate
from vulnwatch.vulndb.versions.maven import maven_compare
from vulnwatch.vulndb.versions.rpm import rpm_compare

DATA = Path(__file__).parent / "data" / "versions"
SIGN = {-1: "<", 0: "=", 1: ">"}
INVERSE = {"<": ">", ">": "<", "=": "="}
ORDER_OPS = {"<", ">", "="}
FUZZY_OPS = {"~", "<~", ">~", "!~"}
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


@dataclass(frozen=True)
class Vector:
    file: str
    line: int
    a: str
    op: str  # "<", ">", "=", a fuzzy op, or "valid" / "invalid" (b is then "")
    b: str
    note: str  # the line's trailing comment

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.a!r} {self.op} {self.b!r}"


def _strip_comment(line: str) -> tuple[str, str]:
    # "#" starts a comment outside JSON strings
    in_str = esc = False
    for i, c in enumerate(line):
        if in_str:
            esc, in_str = (False, in_str) if esc else (c == "\\", c != '"')
        elif c == '"':
            in_str = True
        elif c == "#":
            return line[:i], line[i + 1:].strip()
    return line, ""


def read_vectors(name: str) -> list[Vector]:
    out = []
    for n, raw in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
        body, note = _strip_comment(raw)
        tokens = [json.loads(t) if t.startswith('"') else t for t in _TOKEN.findall(body)]
        if not tokens:
            continue
        if len(tokens) == 1:  # apk-tools: a version that must (not) be valid
            v = tokens[0]
            out.append(Vector(name, n, v[1:], "invalid", "", note) if v.startswith("!")
                       else Vector(name, n, v, "valid", "", note))
            continue
        versions, ops = tokens[0::2], tokens[1::2]
        assert len(versions) == len(ops) + 1, (name, n, raw)
        if len(ops) == 1:
            out.append(Vector(name, n, versions[0], ops[0], versions[1], note))
            continue
        assert set(ops) <= {"<", "="}, (name, n, raw)
        for i in range(len(versions)):
            for j in range(i + 1, len(versions)):
                out.append(Vector(name, n, versions[i], "<" if "<" in ops[i:j] else "=", versions[j], note))
    return out


def _cases(*names: str, kinds=ORDER_OPS):
    vectors = [v for name in names for v in read_vectors(name) if v.op in kinds]
    return pytest.mark.parametrize("v", vectors, ids=[f"{v.file}:{v.line}:{v.a}{v.op}{v.b}" for v in vectors])


def _check(compare, v: Vector) -> None:
    assert SIGN[compare(v.a, v.b)] == v.op, str(v)
    assert SIGN[compare(v.b, v.a)] == INVERSE[v.op], str(v)


# ---------------------------------------------------------------- apk-tools

# file -> (the generation's ordering, its validator, a release whose comparator is that generation)
APK_FILES = {
    "apk-tools-2.12.11.data": (apk_compare, apk_validate, "Alpine:v3.17"),
    "apk-tools-2.14.10.data": (lambda a, b: apk_compare(a, b, zero_fix=True), apk_validate, "Alpine:v3.19"),
    "apk-tools-3.data": (apk3_compare, apk3_validate, "Alpine:v3.23"),
}


@_cases(*APK_FILES)
def test_apk_tools_version_data_orders(v):
    compare, validate, release = APK_FILES[v.file]
    _check(compare, v)  # `apk version -t` orders even invalid versions ("1.0bc", "23_foo")
    scheme = comparator_for(release)
    if validate(v.a) and validate(v.b):
        _check(scheme.compare, v)
    else:  # refused as a package version only where apk-tools itself calls it invalid
        bad = v.a if not validate(v.a) else v.b
        with pytest.raises(VersionError):
            scheme.key(bad)


@_cases(*APK_FILES, kinds={"valid", "invalid"})
def test_apk_tools_version_data_validity(v):
    _compare, validate, release = APK_FILES[v.file]
    assert validate(v.a) == (v.op == "valid"), str(v)
    scheme = comparator_for(release)
    if v.op == "valid":
        scheme.key(v.a)
    else:
        with pytest.raises(VersionError):
            scheme.key(v.a)


def test_apk_tools_vector_counts():
    counts = {name: sum(1 for v in read_vectors(name) if v.op in ORDER_OPS) for name in APK_FILES}
    assert counts == {"apk-tools-2.12.11.data": 729, "apk-tools-2.14.10.data": 733, "apk-tools-3.data": 738}
    fuzzy = [v for v in read_vectors("apk-tools-3.data") if v.op in FUZZY_OPS]
    assert len(fuzzy) == 16  # fuzzy (prefix) matches: a dependency operator, not an ordering


# ---------------------------------------------------------------- rpm

@_cases("rpmvercmp.data")
def test_rpmvercmp_vectors(v):
    _check(rpm_compare, v)
    _check(comparator_for("Red Hat").compare, v)


def test_rpmvercmp_vectors_hold_for_the_rpm_binary():
    """The data file says what rpm says: the installed rpm's rpm.vercmp gives every result."""
    if not shutil.which("rpm"):
        pytest.skip("rpm not installed (apt-get install rpm)")
    vectors = read_vectors("rpmvercmp.data")
    lua = " ".join(f'print(rpm.vercmp("{v.a}", "{v.b}") .. " ")' for v in vectors)
    out = subprocess.run(["rpm", "--eval", "%{lua: " + lua + "}"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert [SIGN[int(x)] for x in out] == [v.op for v in vectors]


# ---------------------------------------------------------------- Maven

# Where Maven 4's ComparableVersion changed Maven 3.9's order (non-ASCII digits are no longer
# digits; MNG-7714): the comparator follows Maven 3.9, as OSV's Maven ranges do. Maven 3.9's
# results, which the installed maven-artifact gives too (checked below).
MAVEN_4_CHANGES = {
    ("1", "\u0668"): "<", ("\u0668", "1"): ">",  # 3.9: "٨" is 8 (and so still < 9, as Maven 4 has it)
    ("1.0.final-redhat", "1.0-sp1-redhat"): ">", ("1.0.final-redhat", "1.0-sp-1-redhat"): ">",
    ("1.0.final-redhat", "1.0-sp.1-redhat"): ">",
}


@_cases("maven-3.9.data", "maven-4.data")
def test_maven_comparable_version_test_vectors(v):
    if v.file == "maven-4.data" and (v.a, v.b) in MAVEN_4_CHANGES:
        v = Vector(v.file, v.line, v.a, MAVEN_4_CHANGES[v.a, v.b], v.b, "Maven 3.9")
    _check(maven_compare, v)
    _check(comparator_for("Maven").compare, v)


def test_maven_4_changes_are_what_maven_3_9_orders():
    changed = [v for v in read_vectors("maven-4.data") if (v.a, v.b) in MAVEN_4_CHANGES]
    assert len(changed) == len(MAVEN_4_CHANGES)
    assert all(MAVEN_4_CHANGES[v.a, v.b] != v.op for v in changed)
    jar = Path("/usr/share/maven/lib/maven-artifact-3.x.jar")
    if not shutil.which("java") or not jar.exists():
        pytest.skip("java and Maven (maven-artifact) not installed")
    for (a, b), op in MAVEN_4_CHANGES.items():
        out = subprocess.run(["java", "-cp", str(jar), "org.apache.maven.artifact.versioning.ComparableVersion",
                              a, b], capture_output=True, text=True, check=True, timeout=60).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("   "))
        assert line.strip() == f"{a} {'==' if op == '=' else op} {b}", line


# ---------------------------------------------------------------- PEP 440

@_cases("pep440.data")
def test_packaging_version_vectors(v):
    _check(comparator_for("PyPI").compare, v)


# ---------------------------------------------------------------- semver

@_cases("node-semver.data")
def test_node_semver_fixtures(v):
    _check(comparator_for("npm").compare, v)
    if v.note != "loose":  # strict semver: every SEMVER-range comparator orders these too
        _check(comparator_for("crates.io").compare, v)


def test_vector_counts():
    """How many orderings each published suite gives (the report quotes these)."""
    counts = {name: sum(1 for v in read_vectors(name) if v.op in ORDER_OPS)
              for name in ("rpmvercmp.data", "maven-3.9.data", "maven-4.data", "pep440.data", "node-semver.data")}
    assert counts["rpmvercmp.data"] == 103
    assert all(n > 30 for n in counts.values()), counts
