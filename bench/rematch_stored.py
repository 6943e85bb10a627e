"""Benchmark: re-match 10,000 inventories *stored in the state store* against the full data.

`bench/rematch.py` times the matcher alone on inventories held in memory. This one measures
what `vulnwatch db update` / `db import` actually does: the inventories are snapshots in the
SQLite state store (written by the pipeline's own `commit_scan`), and `Pipeline.rematch` streams
them back, matches them against the shared OSV data (PyPI, Debian, Alpine) and decides per image
whether its findings moved; moved images are diffed and written with their events.

Three runs, in one process: against the data the inventories were matched on (95 % of the
Debian advisories); after an update to the full data, which moves nearly every image (the worst
case: each moved image is diffed and written); and again against the full data with the stored
findings current, which is the target: re-matching 10,000 stored inventories against the full
data.

    python bench/rematch_stored.py [--inventories 10000] [--data /work/shared/data/osv]

Target: <= 10 s for 10,000 inventories on one core.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rematch as inventories_bench  # noqa: E402  (the same realistic inventories)

from vulnwatch.model import Image, ScanResult, utcnow  # noqa: E402
from vulnwatch.pipeline import Pipeline  # noqa: E402
from vulnwatch.scanners import ScanResources  # noqa: E402
from vulnwatch.store.interface import ScanCommit  # noqa: E402
from vulnwatch.store.sql import SQLStore  # noqa: E402
from vulnwatch.vulndb.index import VulnIndex  # noqa: E402
from vulnwatch.vulndb.match import Matcher  # noqa: E402
from vulnwatch.vulndb.sync import import_path  # noqa: E402


def arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of this benchmark (``bench/growth.py`` takes them too)."""
    ap.add_argument("--inventories", type=int, default=10_000)
    ap.add_argument("--data", type=Path, default=next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "data" / "osv",
                                     Path("/work/shared/data/osv")) if p.exists()), Path("data/osv")))
    ap.add_argument("--moved-share", type=int, default=20, help="hold back the Debian records of 1 in N "
                                                                 "source packages in the first import")
    ap.add_argument("--store", default=None, help="state store URL (default: SQLite in a temp folder)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0])).parse_args(argv)
    m = measure(args)
    n, scale = m["n"], m["n"] / 10_000

    def line(what: str, took: float, target: float, extra: str = "") -> None:
        goal = target * scale
        print(f"  {what:<52} {took:7.2f} s   target <= {goal:5.2f} s  {'PASS' if took <= goal else 'MISS'}"
              + (f"   {extra}" if extra else ""))

    print(f"{n:,} stored inventories ({m['packages']:,} packages; built in {m['build']:.1f} s, matched in "
          f"{m['matched']:.1f} s); targets scaled from 10,000 by {scale:g}")
    line(f"storing {n:,} new inventories (commit_scans, 200/tx)", m["stored"], 10.0,
         f"{m['stored'] / n * 1000:.2f} ms per image")
    line("an update that touches 50 records", m["touched"], 0.2, f"{m['small_moved']:,} images moved")
    line("the full data, nothing moved", m["full"], 1.0)
    line(f"an update that moves {m['moved'] * 100 // n} % of the images", m["updated"], 10.0,
         f"{m['moved']:,} moved, {m['added']:,} findings added, {m['written']:,} events in the outbox; "
         f"{m['updated'] / max(1, m['moved']) * 1000:.2f} ms per moved image")
    print(f"  (no target) first re-match, no marker (every inventory fingerprinted): {m['first']:6.2f} s")
    return 0


def measure(args: argparse.Namespace) -> dict:
    """Build, store and re-match ``args.inventories`` inventories; the timings (seconds) and counts."""
    tmp = Path(tempfile.mkdtemp(prefix="vulnwatch-rematch-"))
    index = VulnIndex(tmp / "osv.db")

    # First import: everything but a few Debian records (they arrive with the "update").
    held = tmp / "debian-older"
    held.mkdir()
    kept = 0
    with zipfile.ZipFile(args.data / "Debian" / "all.zip") as z:
        for i, name in enumerate(sorted(z.namelist())):
            if i % args.moved_share:
                (held / name).write_bytes(z.read(name))
                kept += 1
    import_path(index, held, source="Debian")
    for eco in ("PyPI", "Alpine"):
        import_path(index, args.data / eco / "all.zip")

    store = SQLStore.from_url(args.store) if args.store else SQLStore.from_path(tmp / "state.db")
    matcher = Matcher(index)
    # Streamed: each batch of 200 is built, matched and stored before the next is built, so memory
    # holds one batch (and the shared package pool), whatever the fleet size.
    build = matched = stored = 0.0
    packages = 0
    invs = inventories_bench.iter_inventories(args.inventories, args.data, 1)
    i = 0
    while True:
        t = time.perf_counter()
        batch = list(itertools.islice(invs, 200))
        build += time.perf_counter() - t
        if not batch:
            break
        t = time.perf_counter()
        results = []
        for inv in batch:
            img = Image("bench", f"repo{i % 50}", "sha256:%064x" % i, (f"t{i}",))
            i += 1
            found = tuple(matcher.match(inv.packages, inv.distro))    # as the built-in scanner records it
            results.append(ScanResult(img, "builtin", utcnow(), findings=found, packages=inv.packages,
                                      distro=inv.distro, coverage=matcher.coverage(inv.packages, inv.distro)))
            packages += len(inv.packages)
        matched += time.perf_counter() - t
        t = time.perf_counter()
        store.commit_scans([ScanCommit(r) for r in results])   # as a cycle records them: 200 a batch
        stored += time.perf_counter() - t
    del results, batch
    pipeline = Pipeline(store, [], resources=ScanResources(lambda: index))

    t = time.perf_counter()        # no marker yet: every inventory is fingerprinted
    events = pipeline.rematch()
    first = time.perf_counter() - t
    assert not events, f"nothing changed, yet {len(events)} events"

    small = tmp / "debian-50"                                              # an update of 50 records
    small.mkdir()
    with zipfile.ZipFile(args.data / "Debian" / "all.zip") as z:
        names = [nm for i, nm in enumerate(sorted(z.namelist())) if not i % args.moved_share]
        for nm in names[:: max(1, len(names) // 50)][:50]:
            (small / nm).write_bytes(z.read(nm))
    import_path(index, small, source="Debian", replace=False)
    t = time.perf_counter()
    events = pipeline.rematch()
    touched = time.perf_counter() - t
    small_moved = len(events)

    import_path(index, args.data / "Debian" / "all.zip", source="Debian")    # the update: full data now
    t = time.perf_counter()
    moved = added = 0
    for e in pipeline.rematch_events():            # as a large fleet's caller takes them: not held
        moved += 1
        added += len(e.added)
    updated = time.perf_counter() - t
    with store._engine.connect() as conn:          # every event is in the outbox
        written = conn.exec_driver_sql("SELECT count(*) FROM events").scalar()

    t = time.perf_counter()                                                 # full data, nothing moved
    again = pipeline.rematch()
    full = time.perf_counter() - t
    assert not again

    store.close()
    return dict(n=args.inventories, packages=packages, build=build, matched=matched, stored=stored,
                first=first, touched=touched, small_moved=small_moved, full=full, updated=updated,
                moved=moved, added=added, written=written, tmp=str(tmp))

if __name__ == "__main__":
    sys.exit(main())
