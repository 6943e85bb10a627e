"""Benchmark: how the store-side costs grow with the fleet (issue 12's growth curve).

For each fleet size and each state store (SQLite, PostgreSQL), one new process runs what
``bench/rematch_stored.py`` measures — storing N new inventories (synthetic, from the real package
sets of ``bench/rematch.py``), the first re-match (every inventory fingerprinted), a re-match with
nothing moved, and a mass move (the full Debian data, which moves nearly every image, with every
event written) — and reports its peak RSS and the store's size per image. The curve is printed
with its slope between consecutive sizes (log-log: 1.0 is linear); nothing may grow faster than
linearly, and peak RSS must stay bounded (its slope well under 1: streamed, not loaded whole).

    python bench/growth.py [--sizes 1000,10000,100000] [--backends sqlite,postgresql]

Not measured here: the cycle time of the built-in scanner with all layers cached (see
``bench/shared_layers.py`` for the layer cache).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_COLUMNS = [("stored", "store N", "s"), ("first", "first re-match", "s"), ("full", "nothing moved", "s"),
            ("updated", "mass move", "s"), ("rss_mb", "peak RSS", "MB"), ("bytes_per_image", "store/image", "KB")]


def _store_bytes(url: str | None, tmp: str) -> int:
    if url is None:
        return sum(p.stat().st_size for p in Path(tmp).glob("state.db*"))
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'")).scalar())
    finally:
        engine.dispose()


def child(argv: list[str]) -> int:
    import rematch_stored

    args = rematch_stored.arguments(argparse.ArgumentParser()).parse_args(argv)
    m = rematch_stored.measure(args)
    m["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m["bytes_per_image"] = _store_bytes(args.store, m["tmp"]) / m["n"] / 1024
    print("RESULT " + json.dumps(m))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    cluster = None
    results: dict[str, list[dict]] = {}
    try:
        for backend in backends:
            for n in sizes:
                extra = []
                if backend == "postgresql":
                    if cluster is None:
                        from tests.support.postgres import PostgresCluster

                        cluster = PostgresCluster.start()
                    extra = ["--store", cluster.create_schema()]
                out = subprocess.run([sys.executable, __file__, "--child", "--inventories", str(n), *extra],
                                     capture_output=True, text=True)
                line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if line is None:
                    print(f"{backend} {n:,}: failed\n{out.stderr[-2000:]}")
                    continue
                results.setdefault(backend, []).append(json.loads(line[len("RESULT "):]))
                print(f"  measured {backend} {n:,}", file=sys.stderr, flush=True)
    finally:
        if cluster is not None:
            cluster.stop()

    ok = True
    for backend, rows in results.items():
        print(f"\n{backend}: per fleet size (seconds unless marked)")
        print("  " + f"{'images':>9}" + "".join(f"{title + ' ' + unit:>20}" for _, title, unit in _COLUMNS))
        for r in rows:
            print("  " + f"{r['n']:>9,}" + "".join(f"{r[k]:>20.2f}" for k, _, _ in _COLUMNS))
        for a, b in zip(rows, rows[1:]):
            grow = math.log(b["n"] / a["n"])
            slopes = []
            for k, title, _ in _COLUMNS:
                if a[k] <= 0.005 or b[k] <= 0.005:       # too small to measure: no slope
                    slopes.append(f"{title} -")
                    continue
                s = math.log(b[k] / a[k]) / grow
                limit = 0.5 if k == "rss_mb" else 0.0 if k == "bytes_per_image" else 1.15
                fine = s <= limit + (0.15 if k == "bytes_per_image" else 0)
                ok &= fine
                slopes.append(f"{title} {s:.2f}{'' if fine else ' (!)'}")
            print(f"  slope {a['n']:,} -> {b['n']:,}: " + ", ".join(slopes))
    print("\nnothing grows faster than linearly (slope <= 1.15), peak RSS bounded (slope <= 0.5), "
          f"store size per image flat: {'PASS' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.argv.remove("--child")
        sys.exit(child(sys.argv[1:]))
    sys.exit(main())
