"""Benchmark: a steady ``vulnwatch run`` cycle over N images whose layers are all cached and whose
digests are all stored (issue 12's "cycle time for the built-in scanner with all layers cached").

Starts a real ``docker-registry`` on 127.0.0.1 and pushes N small OCI manifests over the Registry v2
API into 5 repositories, each manifest referring to the same real base layers (the bookworm rootfs
and the layer of old PyPI wheels of :mod:`tests.support.images`, pushed once per repository) and a
config blob of its own (so each manifest has its own digest). The pipeline is the one ``vulnwatch
run`` builds (``build.build_pipeline`` of a configuration file naming the registry, SQLite state, a
layer cache). A first cycle scans every image (the base layers are read once, then taken from the
layer cache) and records it; the timed steady cycle then lists the registry, resolves each tag,
sees each digest unchanged and records nothing new.

    python bench/cycle_cached.py [--images 1000]

``bench/growth.py`` runs it per fleet size (``cycle(n)``) for its cycle column.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from shared_layers import REPOSITORIES, Pusher, bases  # noqa: E402


def cycle(n: int, cache: Path | None = None) -> dict:
    """Push ``n`` manifests, run a first cycle and a steady one; their timings (seconds) and counts."""
    from tests.support.images import bench_cache_dir
    from tests.support.registry import start_registry

    from vulnwatch.build import build_pipeline
    from vulnwatch.config import load_config

    cache = cache or bench_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    blobs, diff_ids = bases(cache)["bookworm-python"]
    work = Path(tempfile.mkdtemp(prefix="vulnwatch-bench-cycle-"))
    registry = start_registry(work / "registry")
    try:
        t = time.perf_counter()
        pusher = Pusher(registry.url)
        for i in range(n):
            pusher.manifest(REPOSITORIES[i % len(REPOSITORIES)], f"v{i}", blobs, diff_ids, i)
        pusher.close()
        pushed = time.perf_counter() - t
        cfg_path = work / "vulnwatch.yaml"
        cfg_path.write_text(json.dumps({
            "state": {"path": str(work / "state.db")},
            "vulndb": {"path": str(work / "osv.db"), "auto_update": False},
            "layer_cache": {"path": str(work / "layers")},
            "registries": [{"name": "local", "type": "oci", "url": registry.url, "insecure": True}],
            "notifications": [{"name": "console", "type": "console"}],
        }))
        pipeline = build_pipeline(load_config(cfg_path))
        try:
            t = time.perf_counter()
            first = pipeline.run_cycle(deliver=False)
            t_first = time.perf_counter() - t
            assert not first.failures, first.failures[:3]
            t = time.perf_counter()
            steady = pipeline.run_cycle(deliver=False)
            t_steady = time.perf_counter() - t
            assert not steady.failures, steady.failures[:3]
        finally:
            pipeline.close()
        return dict(kind="cycle", n=n, pushed=pushed, first_cycle=t_first, cycle=t_steady, first_images=first.images,
                    first_scanned=first.scanned, images=steady.images, scanned=steady.scanned,
                    events=len(steady.events))
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    args = ap.parse_args(argv)
    m = cycle(args.images)
    print(f"{m['n']:,} manifests pushed in {m['pushed']:.1f} s; first cycle {m['first_cycle']:.2f} s "
          f"({m['first_scanned']:,} of {m['first_images']:,} scanned); steady cycle {m['cycle']:.2f} s "
          f"({m['scanned']:,} of {m['images']:,} scanned, {m['events']} events), "
          f"{m['cycle'] / m['n'] * 1000:.2f} ms per image")
    print("RESULT " + json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
