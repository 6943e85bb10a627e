"""Benchmark: re-match 10,000 stored inventories against the full shared OSV data.

Builds a temporary index from the three shared exports (PyPI, Debian, Alpine), makes
realistic inventories (variations of a real Debian package list -- this machine's dpkg
database, read as Debian 11 -- with source versions drawn from the Debian 11
advisories, plus PyPI packages at versions drawn from the PyPI records), then times
one cold :class:`Matcher` re-matching all of them on one core.

    python bench/rematch.py [--inventories 10000] [--data /work/shared/data/osv] [--seed 1]

Target: <= 10 s for 10,000 inventories.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from vulnwatch.model import Package
from vulnwatch.vulndb.index import VulnIndex
from vulnwatch.vulndb.match import Matcher
from vulnwatch.vulndb.sync import import_path


def system_packages() -> list[tuple[str, str, str, str]]:
    """(binary, version, source, source version) of this machine's dpkg database, if any."""
    if not shutil.which("dpkg-query"):
        return []
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${source:Package}\t${source:Version}\n"],
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and all(parts):
            rows.append(tuple(parts))
    return rows


def debian11_versions(data: Path) -> dict[str, list[str]]:
    """Source name -> fixed versions of its Debian 11 advisories."""
    out: dict[str, set[str]] = {}
    with zipfile.ZipFile(data / "Debian" / "all.zip") as z:
        for n in z.namelist():
            rec = json.loads(z.read(n))
            for aff in rec["affected"]:
                if aff["package"]["ecosystem"] != "Debian:11":
                    continue
                for rng in aff.get("ranges", []):
                    for ev in rng["events"]:
                        if "fixed" in ev:
                            out.setdefault(aff["package"]["name"], set()).add(ev["fixed"])
    return {k: sorted(v) for k, v in out.items()}


def pypi_pool(data: Path, rnd: random.Random, size: int = 400) -> list[tuple[str, list[str]]]:
    """(name, candidate versions) for a sample of PyPI packages that have records."""
    by_name: dict[str, set[str]] = {}
    with zipfile.ZipFile(data / "PyPI" / "all.zip") as z:
        for n in z.namelist():
            rec = json.loads(z.read(n))
            for aff in rec.get("affected", []):
                vs = aff.get("versions") or []
                by_name.setdefault(aff["package"]["name"], set()).update(vs[-5:])
    names = sorted(n for n, vs in by_name.items() if vs)
    rnd.shuffle(names)
    return [(n, sorted(by_name[n])[:6] + ["999.0"]) for n in names[:size]]


class Inventory(NamedTuple):
    """One synthetic image: its packages and its OS ecosystem."""

    packages: tuple[Package, ...]
    distro: str | None = None


def build_inventories(count: int, data: Path, seed: int) -> list[Inventory]:
    return list(iter_inventories(count, data, seed))


def iter_inventories(count: int, data: Path, seed: int) -> Iterator[Inventory]:
    """The inventories of ``build_inventories``, one at a time (only the shared package pool is held)."""
    rnd = random.Random(seed)
    fixes = debian11_versions(data)
    base = system_packages()
    if not base:  # no dpkg here: a synthetic list from the advisories' source names
        base = [(src, v[-1], src, v[-1]) for src, v in sorted(fixes.items())[:300]]
    pool: dict[tuple, Package] = {}

    def pkg(name, version, eco, source=None, source_version=None) -> Package:
        k = (name, version, eco, source, source_version)
        p = pool.get(k)
        if p is None:
            p = pool[k] = Package(name, version, eco, source_name=source, source_version=source_version)
        return p

    # per source: the versions an image may carry (below a fix, at a fix, the system's own)
    choices: dict[str, list[str]] = {}
    for _b, _v, src, sv in base:
        opts = [sv]
        for f in fixes.get(src, [])[-4:]:
            opts += [f, f + "~"]  # at the fix, and just below it
        choices[src] = opts
    pypi = pypi_pool(data, rnd)
    for _ in range(count):
        pkgs = []
        picked = {src: rnd.choice(opts) for src, opts in choices.items()}
        for b, v, src, _sv in base:
            if rnd.random() < 0.05:
                continue  # images differ a little in what they install
            sv = picked[src]
            pkgs.append(pkg(b, sv if b == src else v, "Debian:11", src, sv))
        for name, versions in rnd.sample(pypi, rnd.randint(10, 40)):
            pkgs.append(pkg(name, rnd.choice(versions), "PyPI"))
        yield Inventory(tuple(pkgs), "Debian:11")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inventories", type=int, default=10_000)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/osv"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=float, default=10.0, help="seconds allowed (exit 1 when slower)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = VulnIndex(Path(tmp) / "osv.db")
        t0 = time.perf_counter()
        records = sum(import_path(db, args.data / eco / "all.zip").imported for eco in ("PyPI", "Debian", "Alpine"))
        t_import = time.perf_counter() - t0

        t0 = time.perf_counter()
        inventories = build_inventories(args.inventories, args.data, args.seed)
        t_build = time.perf_counter() - t0
        packages = sum(len(i.packages) for i in inventories)

        matcher = Matcher(db)
        t0 = time.perf_counter()
        results = [matcher.match(inv.packages, inv.distro) for inv in inventories]
        t_match = time.perf_counter() - t0
        findings = sum(len(r) for r in results)
        db.close()

    print(f"import:    {records} records in {t_import:.2f} s ({records / t_import:,.0f} records/s)")
    print(f"build:     {len(inventories)} inventories, {packages:,} packages in {t_build:.2f} s")
    print(f"re-match:  {t_match:.2f} s  ({len(inventories) / t_match:,.0f} inventories/s, "
          f"{packages / t_match:,.0f} packages/s); {findings:,} findings, "
          f"{findings / len(inventories):.1f} per inventory")
    print(f"           {len(matcher._hits):,} distinct (ecosystem, name, version) evaluated; "
          f"skipped records: {len(matcher.stats.skipped_records)}, "
          f"skipped packages: {len(matcher.stats.skipped_packages)}")
    ok = t_match <= args.budget
    print(f"budget:    {args.budget:.1f} s -> {'OK' if ok else 'TOO SLOW'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
