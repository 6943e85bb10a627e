"""Benchmark: how the store-side costs grow with the fleet (issue 12's growth curve).

For each fleet size and each state store (SQLite, PostgreSQL), one new process runs what
``bench/rematch_stored.py`` measures — storing N new inventories (synthetic, from the real package
sets of ``bench/rematch.py``), the first re-match (every inventory fingerprinted), a re-match with
nothing moved, and a mass move (the full Debian data, which moves nearly every image, with every
event written) — and reports its peak RSS and the store's size per image. The curve is printed
with its slope between consecutive sizes (log-log: 1.0 is linear); nothing may grow faster than
linearly, and peak RSS must stay bounded (its slope well under 1: streamed, not loaded whole).

The cycle column is a steady ``vulnwatch run`` cycle of the built-in scanner over N images of a
real local registry whose layers are all cached and whose digests are all stored
(``bench/cycle_cached.py``, its own process per size, SQLite state; the same for either store
column, printed with the SQLite rows). It is measured up to ``--cycle-max`` images (default 10,000:
the manifests are written into the registry's storage in seconds, but the first cycle that scans
and stores each image once takes ~8 ms an image here, a quarter of an hour at 100,000; run that
point alone with ``cycle_cached.py --images 100000`` and ``--load`` its ``RESULT`` line).

    python bench/growth.py [--sizes 1000,10000,100000] [--backends sqlite,postgresql] [--cycle-max 10000]
                           [--save rows.jsonl] [--load rows.jsonl ...]

``--save`` keeps each measured row (one JSON line); ``--load`` prints the curve from saved rows
(and measures only what they lack), so a long point can run in a process of its own:
``python bench/growth.py --child --inventories 100000 > row.txt`` prints its ``RESULT`` row.
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
            ("updated", "mass move", "s"), ("rss_mb", "peak RSS", "MB"), ("bytes_per_image", "store/image", "KB"),
            ("cycle", "cached cycle", "s")]


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


def _run(cmd: list[str], what: str) -> dict | None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        print(f"{what}: failed\n{out.stderr[-2000:]}")
        return None
    print(f"  measured {what}", file=sys.stderr, flush=True)
    return json.loads(line[len("RESULT "):])


def _load(paths: list[str]) -> list[dict]:
    """Saved rows: JSON lines, or ``RESULT`` lines of a child's output."""
    rows = []
    for p in paths:
        for ln in Path(p).read_text().splitlines():
            ln = ln.removeprefix("RESULT ").strip()
            if ln.startswith("{"):
                row = json.loads(ln)
                if "cycle" in row and "stored" not in row:
                    row["kind"] = "cycle"
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--cycle-max", type=int, default=10_000)
    ap.add_argument("--save", default=None)
    ap.add_argument("--load", nargs="*", default=[])
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    loaded = _load(args.load)
    have = {(r.get("backend", "sqlite" if r.get("kind") != "cycle" else None), r["n"], r.get("kind", "store"))
            for r in loaded}
    saved = open(args.save, "a") if args.save else None

    def keep(row: dict | None) -> dict | None:
        if row is not None and saved is not None:
            saved.write(json.dumps(row) + "\n")
            saved.flush()
        return row

    cluster = None
    results: dict[str, list[dict]] = {}
    cycles: dict[int, float] = {}
    cycle_cpu: dict[int, float] = {}
    for r in loaded:
        if r.get("kind") == "cycle":
            cycles[r["n"]] = r["cycle"]
            if r.get("cycle_cpu"):
                cycle_cpu[r["n"]] = r["cycle_cpu"]
        else:
            results.setdefault(r.get("backend", "sqlite"), []).append(r)
    try:
        for n in sizes:
            if n <= args.cycle_max and n not in cycles:
                row = keep(_run([sys.executable, str(Path(__file__).with_name("cycle_cached.py")), "--images", str(n)],
                                f"cached cycle {n:,}"))
                if row is not None:
                    cycles[n] = row["cycle"]
        for backend in backends:
            for n in sizes:
                if (backend, n, "store") in have:
                    continue
                extra = []
                if backend == "postgresql":
                    if cluster is None:
                        from tests.support.postgres import PostgresCluster

                        cluster = PostgresCluster.start()
                    extra = ["--store", cluster.create_schema()]
                row = _run([sys.executable, __file__, "--child", "--inventories", str(n), *extra], f"{backend} {n:,}")
                if row is not None:
                    row["backend"] = backend
                    results.setdefault(backend, []).append(keep(row))
    finally:
        if cluster is not None:
            cluster.stop()
        if saved is not None:
            saved.close()
    for backend, rows in results.items():
        rows.sort(key=lambda r: r["n"])
        for r in rows:
            r["cycle"] = cycles.get(r["n"], -1.0) if backend == "sqlite" else -1.0

    ok = True
    for backend, rows in results.items():
        print(f"\n{backend}: per fleet size (seconds unless marked)")
        print("  " + f"{'images':>9}" + "".join(f"{title + ' ' + unit:>20}" for _, title, unit in _COLUMNS))
        for r in rows:
            print("  " + f"{r['n']:>9,}" + "".join(f"{r[k]:>20.2f}" if r[k] >= 0 else f"{'-':>20}"
                                                 for k, _, _ in _COLUMNS))
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
    shown = {r["n"] for r in results.get("sqlite", ())}
    if any(n not in shown for n in cycles):     # cycle points without a store row: their own curve
        points = sorted(cycles.items())
        print("\ncached cycle (SQLite state) per fleet size: "
              + ", ".join(f"{n:,}: {c:.2f} s ({c / n * 1000:.2f} ms an image"
                          + (f", CPU {cycle_cpu[n]:.2f} s" if n in cycle_cpu else "") + ")" for n, c in points))
        for (n1, c1), (n2, c2) in zip(points, points[1:]):
            s = math.log(c2 / c1) / math.log(n2 / n1)
            ok &= s <= 1.15
            cpu = (f", its CPU {math.log(cycle_cpu[n2] / cycle_cpu[n1]) / math.log(n2 / n1):.2f}"
                   if n1 in cycle_cpu and n2 in cycle_cpu else "")
            print(f"  slope {n1:,} -> {n2:,}: cached cycle {s:.2f}{'' if s <= 1.15 else ' (!)'}{cpu}")
    unmeasured = [n for n in sizes if n not in cycles]
    if unmeasured:
        print(f"\ncached cycle not measured at {', '.join(f'{n:,}' for n in unmeasured)} images (above --cycle-max "
              f"{args.cycle_max:,}, or not loaded: the first cycle, which scans and stores every image once, takes "
              "~8 ms an image here; run cycle_cached.py for that size alone and --load its RESULT line)")
    print("\nnothing grows faster than linearly (slope <= 1.15), peak RSS bounded (slope <= 0.5), "
          f"store size per image flat: {'PASS' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.argv.remove("--child")
        sys.exit(child(sys.argv[1:]))
    sys.exit(main())
