"""Benchmark: what enrichment (CVE JSON 5, NVD, KEV, EPSS) costs on `scan` and on re-matching
10,000 stored inventories, against the same run without enrichment, printed side by side.

Two advisory indexes with the full shared OSV data (PyPI, Debian, Alpine): one plain, one with
every enrichment source imported at realistic size: the real KEV catalog and CVE JSON 5 records,
an NVD API 2.0 file with a CVSS v3.1 metric for every CVE the OSV data names, and an EPSS CSV
with a score for each of them plus filler up to 250,000 rows (FIRST's file has ~270,000).

- scan: the bundled example image, scanned end to end by the built-in scanner (best of 15; the
  scans with and without enrichment alternate, so both see the same process state);
- re-match: 10,000 realistic inventories (bench/rematch.py's) stored with `commit_scan`, then
  `Pipeline.rematch` with nothing moved, best of 3 (alternating as well); the store's re-match marker is cleared before
  each run, so every inventory is fingerprinted against the data (what a re-match after an
  enrichment update does: enrichment can move any finding, so it logs "anything may have moved").

    python bench/enrichment.py [--inventories 10000] [--data /work/shared/data/osv]

Target: enrichment adds at most 10 % to both.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rematch as inventories_bench  # noqa: E402  (the same realistic inventories)

from vulnwatch.examples import IMAGE_ARCHIVE  # noqa: E402
from vulnwatch.model import Image, ScanResult, utcnow  # noqa: E402
from vulnwatch.pipeline import _REMATCHED, Pipeline  # noqa: E402
from vulnwatch.registries.archive import ArchiveRegistry  # noqa: E402
from vulnwatch.scanners import ScanResources  # noqa: E402
from vulnwatch.scanners.builtin import BuiltinScanner  # noqa: E402
from vulnwatch.store.sql import SQLStore  # noqa: E402
from vulnwatch.vulndb.index import VulnIndex  # noqa: E402
from vulnwatch.vulndb.match import Matcher  # noqa: E402
from vulnwatch.vulndb.sync import import_enrichment, import_path  # noqa: E402

SHARED = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data"))
               if p.exists()), Path("/work/shared/data"))


def cves_of(data: Path) -> list[str]:
    out: set[str] = set()
    for eco in ("PyPI", "Debian", "Alpine"):
        with zipfile.ZipFile(data / eco / "all.zip") as z:
            for name in z.namelist():
                r = json.loads(z.read(name))
                out |= {x for x in [r["id"], *(r.get("aliases") or ()), *(r.get("upstream") or ())]
                        if x.startswith("CVE-")}
    return sorted(out)


def write_enrichment(tmp: Path, cves: list[str]) -> list[Path]:
    rnd = random.Random(7)
    vectors = ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H",
               "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H"]
    nvd = {"format": "NVD_CVE", "version": "2.0", "timestamp": "2024-10-01T00:00:00.000", "vulnerabilities": [
        {"cve": {"id": c, "metrics": {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary",
                                                         "cvssData": {"vectorString": rnd.choice(vectors)}}]}}}
        for c in cves]}
    (tmp / "nvd.json").write_text(json.dumps(nvd))
    lines = ["#model_version:v2023.03.01,score_date:2024-10-01T00:00:00+0000", "cve,epss,percentile"]
    lines += [f"{c},{rnd.random() ** 4:.5f},{rnd.random():.5f}" for c in cves]
    lines += [f"CVE-2030-{n},{rnd.random() ** 4:.5f},{rnd.random():.5f}" for n in range(250_000 - len(cves))]
    (tmp / "epss.csv").write_text("\n".join(lines) + "\n")
    return [SHARED / "enrichment" / "kev" / "known_exploited_vulnerabilities.json",
            SHARED / "enrichment" / "cve" / "cve-json5.zip", tmp / "nvd.json", tmp / "epss.csv"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inventories", type=int, default=10_000)
    ap.add_argument("--data", type=Path, default=SHARED / "osv")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="vulnwatch-enrich-"))
    plain_path, rich_path = tmp / "plain.db", tmp / "enriched.db"
    with VulnIndex(plain_path) as index:
        for eco in ("PyPI", "Debian", "Alpine"):
            import_path(index, args.data / eco / "all.zip")
    shutil.copy(plain_path, rich_path)
    cves = cves_of(args.data)
    t = time.perf_counter()
    with VulnIndex(rich_path) as index:
        sizes = {r.source: r.records for r in (import_enrichment(index, p) for p in write_enrichment(tmp, cves))}
    imported = time.perf_counter() - t
    print(f"enrichment imported in {imported:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))

    invs = inventories_bench.build_inventories(args.inventories, args.data, 1)
    packages = sum(len(inv.packages) for inv in invs)
    rows = {}
    # the scans of both indexes alternate (same process state for both: the 10,000 inventories
    # are already in memory), best of 15 each
    registry = ArchiveRegistry("example", IMAGE_ARCHIVE)
    image = next(iter(registry.images(next(iter(registry.repositories())))))
    indexes = {label: VulnIndex(path) for label, path in (("without enrichment", plain_path),
                                                          ("with enrichment", rich_path))}
    scans: dict[str, list[float]] = {label: [] for label in indexes}
    for i in range(15):
        for label in (list(indexes) if i % 2 else list(indexes)[::-1]):
            t = time.perf_counter()
            BuiltinScanner(registry, indexes[label], max_concurrency=1).scan(image)
            scans[label].append(time.perf_counter() - t)
    found_of, stores, pipelines = {}, {}, {}
    for label, index in indexes.items():
        found = BuiltinScanner(registry, index, max_concurrency=1).scan(image).findings
        found_of[label] = (len(found), sum(f.severity.name == "UNKNOWN" for f in found))
        store = stores[label] = SQLStore.from_path(tmp / f"state-{index.path.stem}.db")
        matcher = Matcher(index)
        for i, inv in enumerate(invs):
            img = Image("bench", f"repo{i % 50}", "sha256:%064x" % i, (f"t{i}",))
            store.commit_scan(ScanResult(img, "builtin", utcnow(), findings=tuple(matcher.match(inv.packages, inv.distro)),
                                         packages=inv.packages, distro=inv.distro), [])
        pipelines[label] = Pipeline(store, [], resources=ScanResources(lambda index=index: index))
    rematches: dict[str, list[float]] = {label: [] for label in indexes}
    for i in range(3):                          # alternating too, best of 3 each
        for label in (list(indexes) if i % 2 else list(indexes)[::-1]):
            stores[label].set_marker(_REMATCHED, "")     # no marker: every inventory is fingerprinted
            t = time.perf_counter()
            events = pipelines[label].rematch()
            rematches[label].append(time.perf_counter() - t)
            assert not events, f"{label}: nothing moved, yet {len(events)} events"
    for label, index in indexes.items():
        rows[label] = (min(scans[label]), min(rematches[label]), *found_of[label])
        stores[label].close()
        index.close()
    registry.close()

    print(f"example image scan (best of 15, alternating) and re-match of {args.inventories:,} stored inventories "
          f"({packages:,} packages; best of 3, nothing moved):")
    for label, (scan_s, rematch_s, n, unknown) in rows.items():
        print(f"  {label:<20} scan {scan_s * 1000:7.1f} ms ({n} findings, {unknown} UNKNOWN)   "
              f"re-match {rematch_s:6.2f} s")
    (s0, r0, *_), (s1, r1, *_) = rows.values()
    print(f"  enrichment costs: scan {100 * (s1 / s0 - 1):+.1f} %, re-match {100 * (r1 / r0 - 1):+.1f} %  "
          f"(target <= +10 %: {'PASS' if s1 <= 1.1 * s0 and r1 <= 1.1 * r0 else 'MISS'})")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
