"""Version comparators against the real tools (dpkg, rpm) and hand-picked rules; the ecosystems' published
test vectors are in test_versions_vectors.py."""

from __future__ import annotations

import functools
import random
import re
import shutil
import subprocess

import pytest
from packaging.version import Version

from vulnwatch.vulndb.interface import UnsupportedEcosystem, VersionError
from vulnwatch.vulndb.versions import comparator_for
from vulnwatch.vulndb.versions.apk import apk_compare, apk_validate
from vulnwatch.vulndb.versions.dpkg import dpkg_key
from vulnwatch.vulndb.versions.rpm import rpm_compare

from .conftest import zip_records

SIGN = {-1: "<", 0: "=", 1: ">"}


# ---------------------------------------------------------------- registry

@pytest.mark.parametrize("ecosystem,scheme", [
    ("Debian:12", "dpkg"), ("Debian", "dpkg"), ("Ubuntu:22.04:LTS", "dpkg"), ("Alpine:v3.19", "apk"),
    ("Red Hat", "rpm"), ("AlmaLinux:9", "rpm"), ("Rocky Linux:8", "rpm"), ("openSUSE:Leap 15.5", "rpm"),
    ("PyPI", "pep440"), ("npm", "semver"), ("Go", "go"), ("crates.io", "semver"), ("Maven", "maven"),
])
def test_comparator_for_picks_the_family(ecosystem, scheme):
    assert comparator_for(ecosystem).name == scheme


def test_unknown_ecosystem_is_a_clear_error():
    with pytest.raises(UnsupportedEcosystem, match="'Hackage'"):
        comparator_for("Hackage")


@pytest.mark.parametrize("ecosystem,version", [
    ("Debian:11", ""), ("Debian:11", "a:1.0"), ("Debian:11", "1.0-"), ("Debian:11", "1 0"),
    ("PyPI", ""), ("PyPI", "1.0 final"), ("PyPI", "1.0\x00"), ("npm", "1.x.y"), ("crates.io", "1.2.3-"), ("npm", "1.2.3-."), ("Alpine:v3.18", "1.0-foo"),
    ("Red Hat", "x:1.0"), ("Maven", ""),
])
def test_invalid_versions_raise_version_error_naming_version_and_ecosystem(ecosystem, version):
    with pytest.raises(VersionError) as exc:
        comparator_for(ecosystem).key(version)
    assert repr(version) in str(exc.value)
    assert exc.value.version == version


# ---------------------------------------------------------------- dpkg

def _debian_versions() -> list[str]:
    versions = set()
    for rec in zip_records("Debian"):
        for aff in rec["affected"]:
            for rng in aff.get("ranges", []):
                for ev in rng["events"]:
                    versions.update(v for v in ev.values() if v != "0")
    return sorted(versions)


DPKG_HAND = [
    ("1.0", "1.0"), ("1.0", "1.0-0"), ("1:1.0", "2.0"), ("1.0~rc1", "1.0"), ("1.0~~", "1.0~"),
    ("1.0~", "1.0"), ("1.0", "1.0a"), ("1.0a", "1.0+"), ("1.0+", "1.0."), ("1.0-1", "1.0-1~bpo1"),
    ("2.30-1+deb11u1", "2.30-1+deb11u2"), ("1.2.3-1", "1.2.3-1.1"), ("1.0.0", "1.0"), ("01", "1"),
    ("1.0-a", "1.0-A"), ("0:1.0", "1.0"), ("1.0-1ubuntu0.1", "1.0-1"), ("7.74.0-1.3+deb11u7", "7.74.0-1.3+deb11u10"),
    ("1.1.1n-0+deb11u4", "1.1.1n-0+deb11u5"), ("2.2.4-1", "2.2.4-1+b1"), ("1.0+dfsg", "1.0~dfsg"),
    ("1.0-1-1", "1.0-1-2"), ("1.0-1-2", "1.0-1"), ("9.9", "10.0"), ("1.", "1"),
]


@pytest.fixture(scope="module")
def debian_versions():
    return _debian_versions()


def test_dpkg_matches_libdpkg_on_every_debian_version(debian_versions):
    """Sort every version in the Debian export, then let Debian's own Dpkg::Version
    (one perl process) check each neighbouring pair and a random sample."""
    if not shutil.which("perl") or subprocess.run(["perl", "-MDpkg::Version", "-e", "1"]).returncode:
        pytest.skip("perl Dpkg::Version (libdpkg-perl) not installed")
    ordered = sorted(debian_versions, key=dpkg_key)
    rnd = random.Random(7)
    pairs = list(zip(ordered, ordered[1:]))
    pairs += [tuple(rnd.sample(debian_versions, 2)) for _ in range(2000)]
    pairs += DPKG_HAND
    expected = [SIGN[(dpkg_key(a) > dpkg_key(b)) - (dpkg_key(a) < dpkg_key(b))] for a, b in pairs]
    script = ("use Dpkg::Version; while (<STDIN>) { chomp; my ($a, $b) = split / /; "
              "my $r = version_compare($a, $b); print(($r < 0 ? '<' : $r > 0 ? '>' : '='), \"\\n\"); }")
    out = subprocess.run(["perl", "-e", script], input="".join(f"{a} {b}\n" for a, b in pairs),
                         capture_output=True, text=True, check=True).stdout.split()
    wrong = [(a, e, b, got) for (a, b), e, got in zip(pairs, expected, out) if e != got]
    assert len(out) == len(pairs)
    assert not wrong, wrong[:20]


def test_dpkg_matches_the_dpkg_binary(debian_versions):
    """A few hundred pairs through the real ``dpkg --compare-versions``, in one shell."""
    if not shutil.which("dpkg"):
        pytest.skip("dpkg not installed")
    ordered = sorted(debian_versions, key=dpkg_key)
    rnd = random.Random(11)
    pairs = DPKG_HAND + [(b, a) for a, b in DPKG_HAND]
    for _ in range(150):
        i = rnd.randrange(len(ordered) - 1)
        pairs.append((ordered[i], ordered[i + 1]))
        pairs.append(tuple(rnd.sample(ordered, 2)))
    lines = []
    for a, b in pairs:
        lines.append(f"if dpkg --compare-versions '{a}' lt '{b}'; then echo '<'; "
                     f"elif dpkg --compare-versions '{a}' eq '{b}'; then echo '='; else echo '>'; fi")
    out = subprocess.run(["sh", "-c", "\n".join(lines)], capture_output=True, text=True).stdout.split()
    expected = [SIGN[comparator_for("Debian").compare(a, b)] for a, b in pairs]
    assert len(out) == len(pairs)
    wrong = [(a, e, b, got) for (a, b), e, got in zip(pairs, expected, out) if e != got]
    assert not wrong, wrong[:20]


def test_dpkg_tilde_and_epoch_rules():
    cmp = comparator_for("Debian:11").compare
    assert cmp("1.0~beta1", "1.0") == -1
    assert cmp("1.0~beta1~1", "1.0~beta1") == -1
    assert cmp("1:0.1", "9.9") == 1
    assert cmp("1.0-1", "1.0-1") == 0
    assert cmp("1.0", "1.0-0") == 0
    assert cmp("1.0a", "1.0+") == -1  # letters sort before non-letters


# ---------------------------------------------------------------- apk

# apk-tools' own version.data of three generations: test_versions_vectors.py.


def test_apk_suffix_order_and_revision():
    chain = ["1.1_alpha", "1.1_alpha2", "1.1_beta", "1.1_pre", "1.1_rc1", "1.1", "1.1-r1",
             "1.1_cvs", "1.1_svn", "1.1_git", "1.1_hg", "1.1_p1", "1.1a", "1.1.1"]
    for older, newer in zip(chain, chain[1:]):
        assert apk_compare(older, newer) == -1, (older, newer)
    assert sorted(reversed(chain), key=comparator_for("Alpine:v3.11").key) == chain


def test_apk_zero_component_quirk_is_reproduced():
    # apk-tools reads a ".0" component through its leading-zero path, which skips the
    # suffix check: "1.0_rc1" sorts AFTER "1.0" there, and so it does here.
    assert apk_compare("1.0_rc1", "1.0") == 1
    assert apk_compare("1.1_rc1", "1.1") == -1


def test_apk_validation():
    assert apk_validate("1.2.3_rc1-r4")
    assert not apk_validate("1.0-foo")
    assert not apk_validate("1.0_bogus")


# apk-tools generations, from the rules in apk-tools' documentation (apk-package(5): "number
# {.number}...{letter}{_suffix{number}}...{~hash}{-r#}", suffix order alpha beta pre rc <none>
# cvs svn git hg p, "~hash" lower-case hex of the commit) and its change log (2.12.12:
# "version: fix leading zero stripping"; 3.0: rewritten lexer, numbers with a leading zero
# compare as strings, commit hashes). Our own vectors: a op b for old 2.x / 2.12.12+ / 3.
APK_GENERATIONS = [
    # a, b, apk-tools < 2.12.12, 2.12.12 .. 2.14, 3
    ("2.0_rc3", "2.0", ">", "<", "<"),  # the leading-zero fix: a pre-release before its release
    ("4.0_p1", "4.0", ">", ">", ">"),
    ("1.0.1", "1.0", ">", ">", ">"),
    ("1.01", "1.1", "<", "<", "<"),
    ("1.001", "1.01", "<", "<", "<"),
    ("1.00", "1.0", "<", "<", ">"),  # 3: "00" and "0" compare as strings, the longer after
    ("1.10", "1.9", ">", ">", ">"),
    ("1.0-r1", "1.0", ">", ">", ">"),
]
APK3_ONLY = [
    ("1.2.3~abc", ">", "1.2.3"),  # a hash after the version makes it newer than none ...
    ("1.2.3~abc", "<", "1.2.3_p1"),  # ... but a suffix comes first
    ("1.2.3~abc", "<", "1.2.3~abd"),  # hashes compare as strings
    ("1.2.3~ab", "<", "1.2.3~abc"),
    ("1.2.3~abc-r1", ">", "1.2.3~abc-r0"),
    ("1.2.3~abc-r0", ">", "1.2.3-r5"),  # the hash comes before the revision
    ("1.05", "<", "1.1"), ("1.10", ">", "1.09"),
    ("1.2a", ">", "1.2"), ("1.2a", "<", "1.2.1"),
]


@pytest.mark.parametrize("a,b,old,fixed,v3", APK_GENERATIONS)
def test_apk_tools_generations(a, b, old, fixed, v3):
    from vulnwatch.vulndb.versions.apk import apk3_compare
    inverse = {"<": ">", ">": "<", "=": "="}
    for got, want in [(apk_compare(a, b), old), (apk_compare(a, b, zero_fix=True), fixed), (apk3_compare(a, b), v3)]:
        assert SIGN[got] == want, (a, b)
    assert SIGN[apk3_compare(b, a)] == inverse[v3]
    # and as comparator_for picks them by release
    assert SIGN[comparator_for("Alpine:v3.11").compare(a, b)] == old
    assert SIGN[comparator_for("Alpine:v3.19").compare(a, b)] == fixed
    assert SIGN[comparator_for("Alpine:v3.23").compare(a, b)] == v3


@pytest.mark.parametrize("line", APK3_ONLY)
def test_apk3_hash_and_string_rules(line):
    a, op, b = line
    scheme = comparator_for("Alpine:v3.23")
    assert SIGN[scheme.compare(a, b)] == op
    assert SIGN[scheme.compare(b, a)] == {"<": ">", ">": "<", "=": "="}[op]


def test_apk_release_picks_the_apk_tools_generation():
    assert [comparator_for(e).name for e in ("Alpine:v3.3", "Alpine:v3.17", "Alpine:v3.18", "Alpine:v3.22",
                                             "Alpine:v3.23", "Alpine:v3.24", "Alpine", "Wolfi", "Chainguard")] == [
        "apk-2.12", "apk-2.12", "apk", "apk", "apk3", "apk3", "apk", "apk", "apk"]


def test_apk3_validation():
    from vulnwatch.vulndb.versions.apk import apk3_validate
    assert apk3_validate("1.0_pre1~ab12-r3") and not apk_validate("1.0_pre1~ab12-r3")  # hashes are new in 3
    for bad in ("1.0a1", "1.0-r1-r2", "1.0-r", "1.0~", "1.0~XYZ", "1.0~ab_p1", ".1", "1..2", "1.0_foo", ""):
        assert not apk3_validate(bad), bad
        with pytest.raises(VersionError, match=re.escape(repr(bad))):
            comparator_for("Alpine:v3.23").key(bad)
    assert apk_validate("1.0a1") and apk_validate("1.0-r1-r2")  # apk-tools 2 took these


def test_every_alpine_bound_in_the_export_is_a_valid_apk_version():
    bad = set()
    for rec in zip_records("Alpine"):
        for aff in rec["affected"]:
            for rng in aff["ranges"]:
                for ev in rng["events"]:
                    for v in ev.values():
                        if v != "0" and not apk_validate(v):
                            bad.add((rec["id"], v))
    assert len(bad) < 10, sorted(bad)[:20]


# ---------------------------------------------------------------- rpm

RPM_PAIRS = [
    ("1.0", "1.0"), ("1.0", "2.0"), ("2.0.1", "2.0"), ("2.0.1a", "2.0.1"), ("5.5p1", "5.5p10"),
    ("10xyz", "10.1xyz"), ("xyz10", "xyz10.1"), ("xyz.4", "8"), ("1.0aa", "1.0a"), ("1.0~rc1", "1.0"),
    ("1.0~rc1", "1.0~rc2"), ("1.0~rc1~git123", "1.0~rc1"), ("1.0^", "1.0"), ("1.0^git1", "1.0^git2"),
    ("1.0^git1", "1.01"), ("1.0^20160101", "1.0.1"), ("1.0~rc1^git1", "1.0~rc1"), ("1_0", "1.0"),
    ("1.0010", "1.9"), ("1.05", "1.5"), ("b", "a"), ("a+", "a_"), ("+a", "_a"), ("1a", "1.a"),
    ("1:1.0-1", "2.0-1"), ("0:1.0-1", "1.0-1"), ("1.0-1", "1.0-2"), ("1.0-1.el8", "1.0-1.el8_2"),
    ("2.17-326.el7", "2.17-326.el7_9.3"), ("1.1.1k-7.el8_6", "1.1.1k-12.el8_9"), ("3.6.8-51.el8_8.2", "3.6.8-51.el8"),
    ("4.18.0-425.3.1.el8", "4.18.0-425.13.1.el8_7"), ("1.0-1", "1.0"), ("7.61.1-22.el8", "7.61.1-22.el8_6.3"),
]


def test_rpm_matches_the_rpm_binary():
    if not shutil.which("rpm"):
        pytest.skip("rpm not installed (apt-get install rpm)")
    lua = " ".join(f'print(rpm.vercmp("{a}", "{b}") .. " ")' for a, b in RPM_PAIRS)
    out = subprocess.run(["rpm", "--eval", "%{lua: " + lua + "}"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert len(out) == len(RPM_PAIRS)
    got = [rpm_compare(a, b) for a, b in RPM_PAIRS]
    assert got == [int(x) for x in out], [(p, g, int(x)) for p, g, x in zip(RPM_PAIRS, got, out) if g != int(x)]


def test_rpm_known_vectors_without_the_binary():
    assert rpm_compare("1.0~rc1", "1.0") == -1
    assert rpm_compare("1.0^git1", "1.0") == 1
    assert rpm_compare("1.0^git1", "1.0.1") == -1
    assert rpm_compare("1:1.0", "2.0") == 1
    assert rpm_compare("5.5p1", "5.5p10") == -1


# ---------------------------------------------------------------- PEP 440

def test_pep440_agrees_with_packaging_on_the_pypi_export():
    versions = set()
    for rec in zip_records("PyPI"):
        for aff in rec["affected"]:
            versions.update(aff.get("versions", []))
    scheme = comparator_for("PyPI")
    valid, legacy = [], []
    for v in versions:
        try:
            Version(v)
        except Exception:
            legacy.append(v)  # pre-PEP 440 versions PyPI still serves: ordered, not refused
            continue
        valid.append(v)
    assert len(valid) > 1000 and len(legacy) > 50
    assert sorted(valid, key=scheme.key) == sorted(valid, key=Version)
    # every legacy version sorts before every PEP 440 one, as packaging.LegacyVersion did
    assert max(scheme.key(v) for v in legacy) < min(scheme.key(v) for v in valid)
    assert scheme.compare("not-a-version!", "0.0.1") == -1
    assert scheme.compare("1.0rc1", "1.0") == -1
    assert scheme.compare("1.0.post1", "1.0") == 1
    assert scheme.compare("1.0", "1.0.0") == 0


# ---------------------------------------------------------------- semver

def test_semver_precedence_from_the_spec():
    chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"]
    scheme = comparator_for("npm")
    for older, newer in zip(chain, chain[1:]):
        assert scheme.compare(older, newer) == -1, (older, newer)
    assert scheme.compare("1.0.0+build.1", "1.0.0+build.2") == 0


def test_go_versions_leading_v_and_incompatible():
    go = comparator_for("Go")
    assert go.compare("v1.2.3", "1.2.3") == 0
    assert go.compare("v2.0.0+incompatible", "v2.0.0") == 0
    assert go.compare("v0.0.0-20210101000000-abcdef123456", "v0.0.1") == -1
    assert go.compare("v1.10.0", "v1.9.9") == 1


# ---------------------------------------------------------------- Maven

# Maven's ComparableVersionTest (3.9 and 4), in full: test_versions_vectors.py.


def test_cmp_to_key_comparators_sort_like_their_compare():
    for eco, versions in [("Alpine:v3.11", ["1.0-r1", "1.0_rc1", "1.0", "0.9", "1.0_p1"]),
                          ("Red Hat", ["1.0-1", "1:0.5-1", "1.0~rc1-1", "1.0-2"])]:
        scheme = comparator_for(eco)
        assert sorted(versions, key=scheme.key) == sorted(versions, key=functools.cmp_to_key(scheme.compare))
