#!/usr/bin/env python3
"""Regenerate the offline example shipped in ``src/vulnwatch/examples/``.

Writes, deterministically (fixed mtimes, sorted members, no compression):

- ``image.tar``: a ``docker save``-style archive of ``example/webapp:1.0`` with three layers
  (Debian 11 base metadata, old Python wheels' dist-info, a whiteout removing Werkzeug);
- ``osv/{Debian,PyPI}/*.json``: the OSV records, unchanged, that name a package of the image
  (Debian records by SOURCE package for ``Debian:11``, PyPI records by normalized name);
- ``osv-older/...``: the same minus a few of the newest records that affect the image, so
  importing ``osv-older`` and then ``osv`` makes findings appear in an unchanged image;
- ``enrichment/cve5/*.json`` and ``enrichment/kev/known_exploited_vulnerabilities.json``: the
  CVE JSON 5 records (unchanged) and the KEV catalog entries of the CVEs those records name
  for the image's versions, from ``/work/shared/data/enrichment`` (``--enrichment-data``).

Inputs: ``examples/bullseye/{os-release,status}`` (checked in; see ``examples/README.md``),
the OSV exports in ``/work/shared/data/osv/{Debian,PyPI}/all.zip`` (``--osv-data``), and
the wheels below, fetched with ``pip download`` (or taken from ``--wheels DIR``) and checked
against their sha256.

Usage: ``python examples/make_example.py [--osv-data DIR] [--wheels DIR] [--out DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from debian.debian_support import Version as DebianVersion
from packaging.version import InvalidVersion, Version as PyPIVersion

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "src" / "vulnwatch" / "examples"
DEFAULT_OSV_DATA = Path("/work/shared/data/osv")
DEFAULT_ENRICHMENT_DATA = Path("/work/shared/data/enrichment")

IMAGE_REPOSITORY = "example/webapp"
IMAGE_TAG = "1.0"
DEBIAN_ECOSYSTEM = "Debian:11"
SITE_PACKAGES = "usr/local/lib/python3.9/site-packages"

CREATED = "2023-03-01T00:00:00Z"
"""Image creation time written in the config and history (fixed: the archive is reproducible)."""
MTIME = int(datetime(2023, 3, 1, tzinfo=timezone.utc).timestamp())
"""mtime of every tar member."""

WHEELS = {
    "Jinja2-2.10-py2.py3-none-any.whl": "74c935a1b8bb9a3947c50a54766a969d4846290e1e788ea44c1392163723c3bd",
    "urllib3-1.24.1-py2.py3-none-any.whl": "61bf29cada3fc2fbefad4fdf059ea4bd1b4a86d2b6d15e1c7c0b582b9752fe39",
    "requests-2.19.1-py2.py3-none-any.whl": "63b52e3c866428a224f97cab011de738c36aec0185aa91cfacd418b5d58911d1",
    "Werkzeug-0.14.1-py2.py3-none-any.whl": "d5da73735293558eb1651ee2fddc4d0dedcfa06538b8813a2e20011583c9e49b",
}
"""The PyPI wheels whose dist-info goes into the app layer: file name -> sha256."""
DIST_INFO_FILES = ("METADATA", "WHEEL", "top_level.txt", "LICENSE.txt")
"""Files copied, byte for byte, from each wheel's ``*.dist-info/`` (RECORD is left out: it
lists module files the example does not carry)."""

REMOVED_DIST = "Werkzeug-0.14.1.dist-info"
"""The dist-info the third layer deletes with a whiteout (``pip uninstall -y Werkzeug``)."""

OLDER_DROPS = 3
"""How many records ``osv-older`` lacks: the newest affecting record of each of the
OLDER_DROPS packages whose newest affecting advisory was published last."""

HISTORY = (
    "ADD rootfs: Debian 11 (bullseye) package metadata",
    "RUN pip install Jinja2==2.10 urllib3==1.24.1 requests==2.19.1 Werkzeug==0.14.1",
    "RUN pip uninstall -y Werkzeug",
)
"""``created_by`` of each layer, bottom first."""


# ------------------------------------------------------------------------- tars


def _info(name: str, size: int = 0, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar: parent directories first, then ``files`` in sorted order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    tar.addfile(_info(d + "/", directory=True))
            tar.addfile(_info(path, len(files[path])), io.BytesIO(files[path]))
    return buf.getvalue()


def docker_archive(layers: list[bytes]) -> bytes:
    """A ``docker save`` archive (the layout ``skopeo copy ... docker-archive:`` writes):
    ``manifest.json``, ``repositories``, ``<config sha256>.json``, ``<diff id>.tar``."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["python3", "-m", "http.server", "8000"],
            "WorkingDir": "/srv",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": step} for step in HISTORY],
    }
    config_bytes = json.dumps(config, indent=2, sort_keys=True).encode() + b"\n"
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_names = [d.split(":", 1)[1] + ".tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": [f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"], "Layers": layer_names}]
    repositories = {IMAGE_REPOSITORY: {IMAGE_TAG: diff_ids[-1].split(":", 1)[1]}}
    members = {
        config_name: config_bytes,
        **dict(zip(layer_names, layers)),
        "manifest.json": json.dumps(manifest, indent=2).encode() + b"\n",
        "repositories": json.dumps(repositories, indent=2).encode() + b"\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            tar.addfile(_info(name, len(members[name])), io.BytesIO(members[name]))
    return buf.getvalue()


# ---------------------------------------------------------------------- inputs


def fetch_wheels(wheel_dir: Path | None, tmp: Path) -> dict[str, Path]:
    """The pinned wheels, from ``wheel_dir`` or ``pip download``; each checked against its sha256."""
    if wheel_dir is None:
        wheel_dir = tmp / "wheels"
        specs = ["==".join(name.split("-")[:2]) for name in WHEELS]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-q", "-d", str(wheel_dir), *specs], check=True)
    out = {}
    for name, sha in WHEELS.items():
        path = wheel_dir / name
        if not path.is_file():
            sys.exit(f"{path}: missing; run without --wheels to pip download it")
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            sys.exit(f"{path}: sha256 differs from the pinned {sha}; delete it and download again")
        out[name] = path
    return out


def python_files(wheels: dict[str, Path]) -> dict[str, bytes]:
    """The dist-info files of the app layer, path in the image -> bytes."""
    files: dict[str, bytes] = {}
    for name, path in wheels.items():
        with zipfile.ZipFile(path) as z:
            dist = "-".join(name.split("-")[:2]) + ".dist-info"
            for member in DIST_INFO_FILES:
                if f"{dist}/{member}" in z.namelist():
                    files[f"{SITE_PACKAGES}/{dist}/{member}"] = z.read(f"{dist}/{member}")
            files[f"{SITE_PACKAGES}/{dist}/INSTALLER"] = b"pip\n"
    return files


def dpkg_packages(status: str) -> list[dict[str, str]]:
    """``{name, version, source}`` of each stanza of a dpkg status file (no continuation lines)."""
    out = []
    for stanza in status.strip().split("\n\n"):
        fields = {key: value.strip() for key, _, value in
                  (line.partition(":") for line in stanza.splitlines() if not line.startswith(" "))}
        source = fields.get("Source", fields["Package"]).split(" ")[0]
        out.append({"name": fields["Package"], "version": fields["Version"], "source": source})
    return out


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def metadata_packages(files: dict[str, bytes]) -> dict[str, dict[str, str]]:
    """dist-info directory name -> ``{name, version}`` read from its METADATA."""
    out = {}
    for path, data in files.items():
        if path.endswith("/METADATA"):
            headers = dict(re.findall(r"^(Name|Version): (.+)$", data.decode("utf-8").split("\n\n")[0], re.M))
            out[path.split("/")[-2]] = {"name": normalize(headers["Name"]), "version": headers["Version"]}
    return out


# ------------------------------------------------------------------- OSV records


def _sort_key(ecosystem: str, version: str):
    if version == "0":
        return (0,)
    if ecosystem.startswith("Debian"):
        return (1, DebianVersion(version))
    return (1, PyPIVersion(version))


def affects(record: dict, ecosystem: str, name: str, version: str) -> bool:
    """Whether an OSV record says ``name`` at ``version`` is affected (ECOSYSTEM ranges and
    explicit ``versions``; GIT ranges are ignored)."""
    for affected in record.get("affected", []):
        pkg = affected.get("package", {})
        if pkg.get("ecosystem") != ecosystem:
            continue
        pkg_name = pkg.get("name", "")
        if (normalize(pkg_name) if ecosystem == "PyPI" else pkg_name) != name:
            continue
        if version in (affected.get("versions") or []):
            return True
        mine = _sort_key(ecosystem, version)
        for rng in affected.get("ranges", []):
            if rng.get("type") != "ECOSYSTEM":
                continue
            try:
                events = sorted(((_sort_key(ecosystem, v), kind) for e in rng["events"] for kind, v in e.items()),
                                key=lambda ev: (ev[0], ev[1] != "introduced"))
            except InvalidVersion:
                continue
            vulnerable = False
            for at, kind in events:
                if at > mine:
                    break
                if kind == "introduced":
                    vulnerable = True
                elif kind == "fixed" or (kind == "last_affected" and at < mine):
                    vulnerable = False
            if vulnerable:
                return True
    return False


def published(record: dict) -> datetime:
    """``published`` (or ``modified``) as an aware datetime; the exports mix ``T...Z`` and ``' ...+00:00'``."""
    return datetime.fromisoformat(record.get("published") or record["modified"])


def select_records(osv_data: Path, ecosystem: str, zip_name: str, names: set[str]) -> dict[str, bytes]:
    """Records of ``osv_data/zip_name/all.zip`` with an ``affected`` entry for ``ecosystem`` and a
    package in ``names``: file name -> the record's bytes, unchanged."""
    out = {}
    with zipfile.ZipFile(osv_data / zip_name / "all.zip") as z:
        for member in sorted(z.namelist()):
            raw = z.read(member)
            record = json.loads(raw)
            for affected in record.get("affected", []):
                pkg = affected.get("package", {})
                name = normalize(pkg.get("name", "")) if ecosystem == "PyPI" else pkg.get("name")
                if pkg.get("ecosystem") == ecosystem and name in names:
                    out[f"{record['id']}.json"] = raw
                    break
    return out


def older_drops(records: dict[str, dict], present: list[tuple[str, str, str]]) -> list[str]:
    """Record ids left out of ``osv-older``: for the OLDER_DROPS packages (by OSV name) whose
    newest advisory affecting the image was published last, that newest advisory."""
    newest: dict[tuple[str, str], tuple[datetime, str]] = {}
    for rid, record in records.items():
        for ecosystem, name, version in present:
            if affects(record, ecosystem, name, version):
                key = (ecosystem, name)
                candidate = (published(record), rid)
                if key not in newest or candidate > newest[key]:
                    newest[key] = candidate
    ranked = sorted(newest.values(), reverse=True)
    drops: list[str] = []
    for _, rid in ranked:
        if rid not in drops:
            drops.append(rid)
        if len(drops) == OLDER_DROPS:
            break
    return drops


def demo_cves(records: dict[str, dict], present: list[tuple[str, str, str]]) -> list[str]:
    """The CVE ids (record ids, aliases, Debian's ``upstream``) of the records affecting the image."""
    cves = set()
    for record in records.values():
        if any(affects(record, *p) for p in present):
            for vid in [record["id"], *record.get("aliases", []), *record.get("upstream", [])]:
                if vid.startswith("CVE-"):
                    cves.add(vid)
    return sorted(cves)


def write_enrichment(enrichment_data: Path, cves: list[str], out: Path) -> tuple[int, int]:
    """``out/cve5/<CVE>.json``: each CVE JSON 5 record of ``cves`` in the shared record set,
    unchanged; ``out/kev/known_exploited_vulnerabilities.json``: the KEV catalog cut to ``cves``
    (its other fields kept, ``count`` updated). Returns (records, KEV entries)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "cve5").mkdir(parents=True)
    (out / "kev").mkdir()
    wanted = set(cves)
    written = 0
    with zipfile.ZipFile(enrichment_data / "cve" / "cve-json5.zip") as z:
        for member in sorted(z.namelist()):
            stem = member.rsplit("/", 1)[-1].removesuffix(".json")
            if member.endswith(".json") and stem in wanted:
                (out / "cve5" / f"{stem}.json").write_bytes(z.read(member))
                written += 1
    kev = json.loads((enrichment_data / "kev" / "known_exploited_vulnerabilities.json").read_bytes())
    kev["vulnerabilities"] = [v for v in kev["vulnerabilities"] if v["cveID"] in wanted]
    kev["count"] = len(kev["vulnerabilities"])
    (out / "kev" / "known_exploited_vulnerabilities.json").write_text(json.dumps(kev, indent=2) + "\n")
    return written, kev["count"]


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--osv-data", type=Path, default=DEFAULT_OSV_DATA,
                        help="folder holding Debian/all.zip and PyPI/all.zip (OSV exports)")
    parser.add_argument("--enrichment-data", type=Path, default=DEFAULT_ENRICHMENT_DATA,
                        help="folder holding cve/cve-json5.zip and kev/known_exploited_vulnerabilities.json")
    parser.add_argument("--wheels", type=Path, help="folder with the pinned wheels (default: pip download)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write image.tar, osv/, osv-older/")
    args = parser.parse_args(argv)

    os_release = (HERE / "bullseye" / "os-release").read_bytes()
    status = (HERE / "bullseye" / "status").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        py_files = python_files(fetch_wheels(args.wheels, Path(tmp)))

    base = layer_tar({"etc/os-release": os_release, "var/lib/dpkg/status": status})
    app = layer_tar(py_files)
    removal = layer_tar({f"{SITE_PACKAGES}/.wh.{REMOVED_DIST}": b""})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "image.tar").write_bytes(docker_archive([base, app, removal]))

    debs = dpkg_packages(status.decode())
    dists = metadata_packages(py_files)
    debian = select_records(args.osv_data, DEBIAN_ECOSYSTEM, "Debian", {d["source"] for d in debs})
    pypi = select_records(args.osv_data, "PyPI", "PyPI", {d["name"] for d in dists.values()})

    present = sorted({(DEBIAN_ECOSYSTEM, d["source"], d["version"]) for d in debs}
                     | {("PyPI", d["name"], d["version"]) for k, d in dists.items() if k != REMOVED_DIST})
    parsed = {name[:-5]: json.loads(raw) for name, raw in {**debian, **pypi}.items()}
    drops = older_drops(parsed, present)

    for folder, skip in (("osv", set()), ("osv-older", set(drops))):
        root = args.out / folder
        if root.exists():
            shutil.rmtree(root)
        for sub, records in (("Debian", debian), ("PyPI", pypi)):
            (root / sub).mkdir(parents=True)
            for name, raw in records.items():
                if name[:-5] not in skip:
                    (root / sub / name).write_bytes(raw)

    cves = demo_cves(parsed, present)
    n_cve5, n_kev = write_enrichment(args.enrichment_data, cves, args.out / "enrichment")

    print(f"{args.out / 'image.tar'}: {IMAGE_REPOSITORY}:{IMAGE_TAG}, {len(debs)} Debian packages, "
          f"{len(dists)} Python distributions ({REMOVED_DIST} removed by a whiteout)")
    print(f"{args.out / 'osv'}: {len(debian)} Debian:11 + {len(pypi)} PyPI records; "
          f"osv-older lacks {', '.join(drops)}")
    print(f"{args.out / 'enrichment'}: {n_cve5} CVE JSON 5 records and {n_kev} KEV entries "
          f"of the image's {len(cves)} CVEs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
