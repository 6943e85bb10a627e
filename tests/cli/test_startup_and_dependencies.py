"""What `vulnwatch` loads and what it declares: the dependencies are exactly what the code
imports, and the scan path (`scan --help`, a scan of the bundled archive) loads no AWS library
(boto3 and botocore cost about 0.3 s) and no SQLAlchemy (a scan stores nothing)."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import vulnwatch
from vulnwatch.examples import IMAGE_ARCHIVE

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(vulnwatch.__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(group: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in reqs}


def _imported_distributions(folder: Path, ours: set[str], skip: set[str] = frozenset()) -> set[str]:
    """Distributions of the third-party modules imported anywhere under ``folder`` (lazy imports
    too), leaving out its subfolders named in ``skip``."""
    dists = packages_distributions()
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        if path.relative_to(folder).parts[0] in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".", 1)[0]
                if top in sys.stdlib_module_names or top in ours:
                    continue
                assert top in dists, f"{path}: imports {top}, which no installed distribution provides"
                found |= {_norm(d) for d in dists[top]}
    return found


OPTIONAL = {"web": "web"}
"""Packages of src/vulnwatch whose imports an extra provides (``pip install 'vulnwatch[web]'``)."""


def test_runtime_dependencies_are_what_the_code_imports():
    package = ROOT / "src" / "vulnwatch"
    imported = _imported_distributions(package, {"vulnwatch"}, skip=set(OPTIONAL))
    declared = _declared()
    assert imported - declared == set(), "imported but not declared"          # packageurl-python was
    assert declared - imported == set(), "declared but never imported"        # python-debian was
    assert "python-debian" in _declared("test")                               # the tests read .deb metadata
    for folder, extra in OPTIONAL.items():
        needs = _imported_distributions(package / folder, {"vulnwatch"})
        assert needs - declared - _declared(extra) == set(), f"{folder}/ imports more than [{extra}] declares"


def _importtime(*args: str, cwd: Path) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CACHE_HOME": str(cwd / "cache"), "HOME": str(cwd)}
    env = {k: v for k, v in env.items() if not k.startswith("VULNWATCH_")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "from vulnwatch.cli.main import main; main()",
                           *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_the_scan_path_loads_no_aws_library(tmp_path):
    # a scan never uses the bundled example data on its own: give it the example's records
    examples = Path(IMAGE_ARCHIVE).parent / "osv"
    (tmp_path / "vulnwatch.yaml").write_text(f"vulndb: {{path: {tmp_path / 'osv.db'}, imports: "
                                            f"[{examples / 'Debian'}, {examples / 'PyPI'}]}}\n")
    help_modules = _importtime("scan", "--help", cwd=tmp_path)
    scan_modules = _importtime("scan", f"docker-archive:{IMAGE_ARCHIVE}", "-f", "json", "-q", cwd=tmp_path)
    assert "vulnwatch.scanners.builtin" in scan_modules and "vulnwatch.cli.scan" in help_modules
    for modules in (help_modules, scan_modules):
        assert not {m for m in modules if m.split(".")[0] in ("boto3", "botocore", "sqlalchemy")}
    assert "vulnwatch.config" not in help_modules and "vulnwatch.config" in scan_modules  # --help reads no config


def test_an_ecr_only_run_loads_no_http_client_and_no_other_kind(tmp_path, moto):
    """`vulnwatch run` of one ECR registry (ECR's own findings, no sinks) imports what it uses:
    the ECR registry and scanner and the SQL store, not the OCI registry (httpx, httpcore), the
    built-in scanner, any notifier, CycloneDX or DynamoDB; they cost a short cycle about as much
    as the cycle itself. Its clients are botocore's: boto3 is loaded for S3 only."""
    from tests.support.ecr import push_images

    push_images(moto.url, {"team/app": ["v1", "v2"]})
    (tmp_path / "vulnwatch.yaml").write_text(
        f"state: {{path: {tmp_path / 'state.db'}}}\n"
        f"registries:\n  - name: prod\n    type: ecr\n    region: us-east-1\n    endpoint_url: {moto.url}\n")
    modules = _importtime("run", "--no-deliver", "-q", cwd=tmp_path)
    assert {"vulnwatch.registries.ecr", "vulnwatch.scanners.ecr", "vulnwatch.store.sql", "botocore"} <= modules
    loaded = {m for m in modules if m.split(".")[0] in ("httpx", "httpcore", "cyclonedx", "boto3")
              or m.startswith(("vulnwatch.registries.oci", "vulnwatch.registries.archive", "vulnwatch.scanners.builtin",
                               "vulnwatch.store.dynamodb", "vulnwatch.policy.cyclonedx_vex"))
              or (m.startswith("vulnwatch.notify.") and m != "vulnwatch.notify.interface")}
    assert loaded == set()
    # nor what only the built-in scanner, the matcher or PostgreSQL need: the scanners' limits
    # load the walker's and catalogers' limits alone, the store's package index a constant of
    # the advisory data, a migration for PostgreSQL only its dialect when it runs there
    assert {"vulnwatch.walker.limits", "vulnwatch.catalogers.interface"} <= modules
    unneeded = {m for m in modules if m.startswith(("vulnwatch.walker.", "vulnwatch.catalogers.", "vulnwatch.vulndb.",
                                                    "sqlalchemy.dialects.postgresql"))}
    assert unneeded == {"vulnwatch.walker.limits", "vulnwatch.catalogers.interface", "vulnwatch.vulndb.interface"}
    assert not {"vulnwatch.formats.table", "vulnwatch.formats.json", "vulnwatch.formats.sarif", "rich.table"} & modules
    import sqlite3

    with sqlite3.connect(tmp_path / "state.db") as db:      # and it did the cycle: both images recorded
        assert db.execute("select count(*) from images").fetchone()[0] == 2


def test_an_inventory_loads_neither_advisory_data_nor_policy(tmp_path):
    """``scan --sbom`` matches nothing: the index, the matcher and the ignore/VEX readers stay unloaded
    (unless there are ignore files to check); a full scan loads them."""
    examples = Path(IMAGE_ARCHIVE).parent / "osv"
    (tmp_path / "vulnwatch.yaml").write_text(f"vulndb: {{path: {tmp_path / 'osv.db'}, imports: "
                                            f"[{examples / 'Debian'}, {examples / 'PyPI'}]}}\n")
    sbom = _importtime("scan", f"docker-archive:{IMAGE_ARCHIVE}", "--sbom", "-f", "json", "-q", cwd=tmp_path)
    full = _importtime("scan", f"docker-archive:{IMAGE_ARCHIVE}", "-f", "json", "-q", cwd=tmp_path)
    unused = {"vulnwatch.vulndb.index", "vulnwatch.vulndb.match", "vulnwatch.policy"}
    assert "vulnwatch.walker.tarstream" in sbom and not unused & sbom
    assert unused <= full
    (tmp_path / ".trivyignore").write_text("CVE-2023-0001\n")
    with_rules = _importtime("scan", f"docker-archive:{IMAGE_ARCHIVE}", "--sbom", "-f", "json", "-q", cwd=tmp_path)
    assert "vulnwatch.policy" in with_rules         # the file is still read (and refused when bad)


def test_a_registry_scan_loads_no_optional_import_of_the_http_client(tmp_path, app_image):
    """A ``scan`` of a registry image loads httpx and httpcore, not what they import only when it is
    installed: httpcore's trio support (our clients are synchronous), httpx's command-line client
    (click, pygments); ~40 ms of the scan's start. A program importing vulnwatch keeps them."""
    from tests.support.registry import start_registry

    registry = start_registry(tmp_path / "registry")
    try:
        registry.push(f"oci:{app_image.path}:{app_image.tag}", "app", "t")
        (tmp_path / "vulnwatch.yaml").write_text(f"vulndb: {{path: {tmp_path / 'osv.db'}}}\n")
        modules = _importtime("scan", f"{registry.host}/app:t", "--insecure", "--sbom", "--no-layer-cache",
                              "-f", "json", "-q", cwd=tmp_path)
    finally:
        registry.stop()
    assert {"httpx", "httpcore", "vulnwatch.registries.oci", "vulnwatch.walker.tarstream"} <= modules
    # (a refused import is still listed, with a few microseconds: what it would load is not)
    assert not {m for m in modules if m.startswith(("trio.", "httpx._main.")) or m.split(".")[0] in ("click", "pygments")}
    if importlib.util.find_spec("trio") is not None:     # installed here, so it was left out on purpose
        code = "import vulnwatch.cli.main, httpcore, trio, httpx._main"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(SRC)})

