"""Benchmark: the dashboard's fleet overview on a store of 10,000 images with history.

Fills an SQLite state store with synthetic images (3 registries, 200 teams, 20-40 findings
each from a pool of 600 advisories, 8 scans per image spread over 90 days, one image in ten
rebuilt so that its old digest is superseded, a change event per scan and a delivery per
event). The rows are written in bulk with the store's own encoders (``commit_scan`` cannot
backdate a scan, and would take minutes for 80,000 of them). Then ``vulnwatch serve``'s app
runs under uvicorn on 127.0.0.1 and each route is timed over HTTP, median of ``--runs``.

    python bench/web_overview.py [--images 10000] [--runs 15] [--db PATH]

Target: the overview (``/api/v1/images`` and the HTML page ``/``, page 1, 50 rows) answers in
< 300 ms. Fleet-wide aggregates (fleet trend, remediation) are cached by the app until the
store's data changes: they are timed cold (first request) and warm.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from vulnwatch.config import Config  # noqa: E402
from vulnwatch.model import (Event, EventKind, Finding, Image, Severity, findings_signature,  # noqa: E402
                             severity_counts, stable_id, utcnow)
from vulnwatch.store.sql import (SQLStore, _dumps, _finding_json, deliveries_t, events_t,  # noqa: E402
                                 images_t, scan_history_t, snapshots_t, tag_history_t)
from vulnwatch.web.app import create_app  # noqa: E402

TARGET_MS = 300.0
SEV_WEIGHTS = [(Severity.CRITICAL, 3), (Severity.HIGH, 12), (Severity.MEDIUM, 30), (Severity.LOW, 20),
               (Severity.NEGLIGIBLE, 5), (Severity.UNKNOWN, 30)]


def advisories(n: int, rng: random.Random) -> list[Finding]:
    sevs = [s for s, w in SEV_WEIGHTS for _ in range(w)]
    out = []
    for i in range(n):
        eco, pkg = (("Debian:12", f"lib{i % 90}") if i % 3 else ("PyPI", f"py-{i % 40}"))
        fixed = (f"1.{i % 7}.{i % 11 + 1}",) if i % 4 else ()
        out.append(Finding(vulnerability_id=f"CVE-2024-{10000 + i}", package_name=pkg, package_version="1.0.0",
                           severity=rng.choice(sevs), ecosystem=eco, fixed_versions=fixed,
                           cvss_score=round(rng.uniform(2, 10), 1), title=f"synthetic advisory {i} in {pkg}",
                           links=(f"https://example.invalid/advisory/{i}",), scanner="builtin"))
    return out


def fill(store_path: Path, n_images: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    pool = advisories(600, rng)
    store = SQLStore.from_path(store_path)        # creates the schema (migrations)
    now = utcnow()
    start = now - timedelta(days=90)
    images, snaps, hist, tags, events, deliveries = [], [], [], [], [], []
    registries = ["prod", "staging", "ecr-eu"]
    for i in range(n_images):
        reg = registries[i % 3]
        repo = f"team-{i % 200}/svc-{i}"
        rebuilt = i % 10 == 0
        digests = [f"sha256:{i:08x}{'a' * 56}"] + ([f"sha256:{i:08x}{'b' * 56}"] if rebuilt else [])
        base = rng.sample(pool, rng.randint(20, 40))
        t = start + timedelta(minutes=rng.randint(0, 600))
        for d_i, digest in enumerate(digests):
            current = d_i == len(digests) - 1
            findings = base if d_i == 0 else base[5:]            # the rebuild fixed five
            scans = 8 if not rebuilt else 4
            prev = None
            for k in range(scans):
                t += timedelta(hours=rng.randint(20, 120) if not rebuilt or k else 1)
                t = min(t, now - timedelta(minutes=1))
                f_now = tuple(findings[:len(findings) - max(0, 3 - k)])     # findings appear over time
                counts = severity_counts(f_now)
                hist.append(dict(registry=reg, repository=repo, digest=digest, tags=_dumps(["v1"]),
                                 scanner="builtin", scanned_at=t, recorded_at=t, state="COMPLETE",
                                 counts=_dumps(counts), finding_keys=_dumps(sorted(list(f.key) for f in f_now))))
                kind = EventKind.NEW_IMAGE if prev is None else EventKind.FINDINGS_CHANGED
                added = f_now if prev is None else tuple(f for f in f_now if f not in prev)
                if added or prev is None:
                    ev = Event(id=stable_id(reg, repo, digest, k), kind=kind,
                               image=Image(reg, repo, digest, ("v1",)), scanner="builtin", occurred_at=t,
                               added=added, counts=counts, previous_counts=severity_counts(prev or ()))
                    events.append(dict(id=ev.id, kind=ev.kind.value, registry=reg, repository=repo, digest=digest,
                                       body=_dumps(ev.to_dict()), created_at=t))
                    deliveries.append(dict(event_id=ev.id, sink="hook", status=rng.choice(
                        ["delivered"] * 18 + ["pending", "dead"]), attempts=1, created_at=t))
                prev = f_now
            images.append(dict(registry=reg, repository=repo, digest=digest, tags=_dumps(["v1"] if current else []),
                               updated_at=t, last_checked_at=now if current else t,
                               last_error="synthetic pull failure" if i % 97 == 0 else None))
            snaps.append(dict(registry=reg, repository=repo, digest=digest, scanner="builtin", scanned_at=t,
                              recorded_at=t, state="COMPLETE",
                              findings="[" + ",".join(_finding_json(f) for f in f_now) + "]",
                              packages='{"v":2,"fields":[],"rows":[]}', findings_signature=findings_signature(f_now),
                              distro="Debian:12", notes=_dumps(["python: a METADATA file was skipped"]
                                                              if i % 50 == 0 else []),
                              counts=_dumps(severity_counts(f_now))))
            tags.append(dict(registry=reg, repository=repo, tag="v1", digest=digest, first_seen=t - timedelta(hours=1)
                             if d_i else start, last_seen=t))
    with store._engine.begin() as conn:
        for table, rows in ((images_t, images), (snapshots_t, snaps), (scan_history_t, hist),
                            (tag_history_t, tags), (events_t, events), (deliveries_t, deliveries)):
            for j in range(0, len(rows), 5000):
                conn.execute(table.insert(), rows[j:j + 5000])
    store.close()
    return {"images": len(images), "history": len(hist), "events": len(events), "deliveries": len(deliveries)}


def serve(app) -> tuple[uvicorn.Server, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


def timed(client: httpx.Client, path: str, runs: int) -> tuple[float, float, list[float], int]:
    times = []
    size = 0
    first = None
    for k in range(runs):
        t0 = time.perf_counter()
        r = client.get(path)
        dt = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        size = len(r.content)
        if first is None:
            first = dt
        times.append(dt)
    return first, statistics.median(times), times, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--db", type=Path, default=None, help="keep the store here (default: a temp dir)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="vulnwatch-web-bench-")
    db = args.db or Path(tmp.name) / "state.db"
    if db.exists():
        db.unlink()
    t0 = time.perf_counter()
    counts = fill(db, args.images)
    print(f"store: {counts['images']:,} images ({args.images:,} tagged + superseded digests), "
          f"{counts['history']:,} scans, {counts['events']:,} events, {counts['deliveries']:,} deliveries; "
          f"{db.stat().st_size / 1e6:.0f} MB SQLite; filled in {time.perf_counter() - t0:.1f} s")
    cfg = Config.model_validate({"state": {"path": str(db)}})
    app = create_app(cfg)
    server, url = serve(app)
    some = json.loads(httpx.get(url + "/api/v1/images", timeout=60).content)["items"][0]
    routes = [
        ("overview API, page 1 (sort severity)", "/api/v1/images", True),
        ("overview HTML page 1", "/", True),
        ("overview API, sort=total asc", "/api/v1/images?sort=total&order=asc", True),
        ("overview API, q=svc-99 filter", "/api/v1/images?q=svc-99", True),
        ("overview API, severity=CRITICAL", "/api/v1/images?severity=CRITICAL", True),
        ("overview API, page 150", "/api/v1/images?page=150", True),
        ("overview HTML, registry=prod sort=repository", "/?registry=prod&sort=repository&order=asc", True),
        ("fleet trend API", "/api/v1/fleet/trend", False),
        ("image page HTML", some["image"]["url"], False),
        ("vulnerability API (CVE-2024-10010)", "/api/v1/vulnerabilities/CVE-2024-10010", False),
        ("remediation API", "/api/v1/remediation", False),
        ("events HTML", "/events", False),
        ("metrics", "/metrics", False),
    ]
    print(f"median of {args.runs} requests over HTTP (uvicorn, one process); 'first' is the cold request")
    print(f"  {'route':48} {'first':>9} {'median':>9} {'max':>9} {'bytes':>9}")
    ok = True
    with httpx.Client(base_url=url, timeout=120) as client:
        for label, path, target in routes:
            first, median, times, size = timed(client, path, args.runs)
            verdict = ""
            if target:
                passed = median < TARGET_MS
                ok &= passed
                verdict = f"  target < {TARGET_MS:.0f} ms: {'PASS' if passed else 'MISS'}"
            print(f"  {label:48} {first:7.1f}ms {median:7.1f}ms {max(times):7.1f}ms {size:9,}{verdict}")
    server.should_exit = True
    app.state.store.close()
    print(f"overview target (< {TARGET_MS:.0f} ms for API and HTML on {args.images:,} images): {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
