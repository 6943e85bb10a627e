"""Benchmark: a steady ``vulnwatch run`` cycle over N images whose layers are all cached and whose
digests are all stored (issue 12's "cycle time for the built-in scanner with all layers cached").

A real ``docker-registry`` on 127.0.0.1 holds N small OCI manifests in 5 repositories, each
manifest referring to the same real base layers (the bookworm rootfs and the layer of old PyPI
wheels of :mod:`tests.support.images`) and a config blob of its own (so each manifest has its own
digest). How they get there (``--setup``):

* ``files`` (default): the base layers and the first manifest of each repository are pushed over
  the Registry v2 API; the other manifests are written straight into the registry's filesystem
  storage in the layout the pushed ones took there (``blobs/sha256/<ab>/<hex>/data``; per
  repository ``_layers/…/link`` for the config, ``_manifests/revisions/…/link`` and
  ``_manifests/tags/<tag>/{current,index/…}/link``), checked against what the push wrote, and
  the registry is restarted on that storage. It is the same registry serving them; 10,000
  manifests take seconds instead of half an hour.
* ``push``: every manifest over the API (PUT, from ``--push-workers`` threads on keep-alive
  connections).

The pipeline is the one ``vulnwatch run`` builds (``build.build_pipeline`` of a configuration file
naming the registry, SQLite state, a layer cache). A first cycle scans every image (the base
layers are read once, then taken from the layer cache) and records it; the timed steady cycle
then lists the registry, resolves each tag, sees each digest unchanged and records nothing new.
``--profile FILE`` runs the steady cycle under cProfile (in this process) and writes its stats.

    python bench/cycle_cached.py [--images 1000] [--setup files|push] [--profile FILE]

``bench/growth.py`` runs it per fleet size (``cycle(n)``) for its cycle column.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402

from shared_layers import MEDIA_CONFIG, MEDIA_LAYER, MEDIA_MANIFEST, REPOSITORIES, Pusher  # noqa: E402

V2 = Path("docker/registry/v2")


def base_layers(cache: Path) -> tuple[list[bytes], list[str]]:
    """(gzip blobs, diff ids) of the bookworm rootfs and the old-PyPI-wheels layer, bottom first."""
    from tests.support.images import build_app_image

    app = build_app_image(cache, "bookworm", cache_dir=cache)
    return [Path(p).read_bytes() for p in app.layer_paths[:2]], list(app.diff_ids[:2])


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_blobs(i: int, layers: list[tuple[str, int]], diff_ids: list[str]) -> tuple[bytes, bytes]:
    """(config bytes, manifest bytes) of image ``i`` over ``layers`` ((digest, size), bottom first)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"n": str(i)}},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config), "size": len(config)},
                "layers": [{"mediaType": MEDIA_LAYER, "digest": d, "size": s} for d, s in layers]}
    return config, json.dumps(manifest).encode()


def _link(path: Path, digest: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "link").write_text(digest)


def _blob(root: Path, data: bytes) -> str:
    digest = _digest(data)
    path = _blob_path(root, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def write_image(root: Path, repo: str, tag: str, config: bytes, manifest: bytes) -> str:
    """Image ``repo:tag`` written into the storage at ``root`` as ``docker-registry`` lays out a
    pushed one; its manifest digest."""
    config_digest, digest = _blob(root, config), _blob(root, manifest)
    r = root / V2 / "repositories" / repo
    _link(r / "_layers/sha256" / config_digest.split(":", 1)[1], config_digest)
    _link(r / "_manifests/revisions/sha256" / digest.split(":", 1)[1], digest)
    _link(r / "_manifests/tags" / tag / "index/sha256" / digest.split(":", 1)[1], digest)
    _link(r / "_manifests/tags" / tag / "current", digest)
    return digest


def _layout(root: Path, repo: str, tag: str) -> list[str]:
    """The files image ``repo:tag`` has in the storage at ``root``: its tag's, its revision's, its
    config's and both blobs (digests named ``M`` and ``C``); with what its links hold."""
    r = root / V2 / "repositories" / repo
    digest = (r / "_manifests/tags" / tag / "current/link").read_text()
    config = json.loads(_blob_path(root, digest).read_bytes())["config"]["digest"]
    files = [*(r / "_manifests/tags" / tag).rglob("*"), *(r / "_manifests/revisions").glob(f"*/{digest[7:]}/*"),
             *(r / "_layers").glob(f"*/{config[7:]}/*"), _blob_path(root, digest), _blob_path(root, config)]
    out = []
    for p in files:
        if p.is_file():
            name = str(p.relative_to(root)).replace(f"{digest[7:9]}/{digest[7:]}", "M").replace(
                f"{config[7:9]}/{config[7:]}", "C").replace(digest[7:], "M").replace(config[7:], "C").replace(f"/tags/{tag}/", "/tags/T/")
            text = p.read_bytes() if p.name == "link" else b""
            out.append(name + " " + text.decode().replace(digest, "M").replace(config, "C"))
    return sorted(out)


def _blob_path(root: Path, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return root / V2 / "blobs/sha256" / hexpart[:2] / hexpart / "data"


def populate(registry, n: int, blobs: list[bytes], diff_ids: list[str], *, setup: str = "files",
             workers: int = 8):
    """Put ``n`` images ``REPOSITORIES[i % 5]:v{i}`` into ``registry``; the registry serving them
    (restarted on the same storage for ``files``)."""
    from tests.support.registry import start_registry

    layers = [(_digest(b), len(b)) for b in blobs]
    pusher = Pusher(registry.url)
    first = min(n, len(REPOSITORIES)) if setup == "files" else n

    def push(i: int) -> None:
        repo = REPOSITORIES[i % len(REPOSITORIES)]
        config, manifest = image_blobs(i, layers, diff_ids)
        for b in blobs:
            pusher.blob(repo, b)
        pusher.blob(repo, config)
        resp = pusher.client.put(f"{registry.url}/v2/{repo}/manifests/v{i}", content=manifest,
                                 headers={"Content-Type": MEDIA_MANIFEST})
        assert resp.status_code == 201, resp.text

    for i in range(min(first, len(REPOSITORIES))):    # the base layers once per repository
        push(i)
    if first > len(REPOSITORIES):
        pusher.client.close()
        pusher.client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=workers,
                                                                      max_keepalive_connections=workers))
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(push, range(len(REPOSITORIES), first)))
    pusher.close()
    if setup != "files" or n <= first:
        return registry
    root = registry.rootdir
    registry.stop()
    for i in range(first, n):
        repo = REPOSITORIES[i % len(REPOSITORIES)]
        config, manifest = image_blobs(i, layers, diff_ids)
        write_image(root, repo, f"v{i}", config, manifest)
    for i, repo in enumerate(REPOSITORIES[:first]):   # the same files as the registry's own push
        if len(REPOSITORIES) + i < n:
            mine, pushed = _layout(root, repo, f"v{len(REPOSITORIES) + i}"), _layout(root, repo, f"v{i}")
            assert mine == pushed and len(mine) == 6, (mine, pushed)
    return start_registry(root.parent)


def cycle(n: int, cache: Path | None = None, *, setup: str = "files", profile: str | None = None) -> dict:
    """Fill a registry with ``n`` manifests, run a first cycle and a steady one; their timings
    (seconds) and counts."""
    from tests.support.images import bench_cache_dir
    from tests.support.registry import start_registry

    from vulnwatch.build import build_pipeline
    from vulnwatch.config import load_config

    cache = cache or bench_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    blobs, diff_ids = base_layers(cache)
    work = Path(tempfile.mkdtemp(prefix="vulnwatch-bench-cycle-"))
    registry = start_registry(work / "registry")
    try:
        t = time.perf_counter()
        registry = populate(registry, n, blobs, diff_ids, setup=setup)
        pushed = time.perf_counter() - t
        _spot_check(registry, n, blobs, diff_ids)
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
            profiler = _Profiler() if profile else None
            cpu = time.process_time()
            t = time.perf_counter()
            if profiler is not None:
                profiler.start()
            steady = pipeline.run_cycle(deliver=False)
            if profiler is not None:
                profiler.stop(profile)
            t_steady = time.perf_counter() - t
            cpu = time.process_time() - cpu
            assert not steady.failures, steady.failures[:3]
        finally:
            pipeline.close()
        return dict(kind="cycle", n=n, setup=setup, pushed=pushed, first_cycle=t_first, cycle=t_steady,
                    cycle_cpu=cpu, first_images=first.images, first_scanned=first.scanned,
                    images=steady.images, scanned=steady.scanned, events=len(steady.events),
                    load=os.getloadavg()[0])
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


class _Profiler:
    """cProfile in this thread and in every thread started while it runs (the pipeline's
    listing, scanning and per-watch threads), their stats merged into one file."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []

    def _thread(self, *_args) -> None:     # the first event of a new thread: profile it from here
        prof = cProfile.Profile()
        self.profiles.append(prof)
        prof.enable()

    def start(self) -> None:
        threading.setprofile(self._thread)
        self._thread()

    def stop(self, path: str) -> None:
        threading.setprofile(None)
        self.profiles[0].disable()
        stats = pstats.Stats(self.profiles[0])
        for prof in self.profiles[1:]:
            prof.create_stats()
            stats.add(prof)
        stats.dump_stats(path)


def _spot_check(registry, n: int, blobs: list[bytes], diff_ids: list[str]) -> None:
    """The registry lists all ``n`` tags and serves a sample of the manifests as written."""
    layers = [(_digest(b), len(b)) for b in blobs]
    with httpx.Client(base_url=registry.url, timeout=60) as c:
        tags = sum(len(c.get(f"/v2/{r}/tags/list").json()["tags"] or ()) for r in REPOSITORIES[:n])
        assert tags == n, (tags, n)
        for i in random.Random(n).sample(range(n), min(n, 20)):
            _, manifest = image_blobs(i, layers, diff_ids)
            resp = c.get(f"/v2/{REPOSITORIES[i % len(REPOSITORIES)]}/manifests/v{i}",
                         headers={"Accept": MEDIA_MANIFEST})
            assert resp.status_code == 200 and resp.content == manifest, (i, resp.status_code)
            assert resp.headers["docker-content-digest"] == _digest(manifest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--setup", choices=("files", "push"), default="files")
    ap.add_argument("--profile", default=None, help="write the steady cycle's cProfile stats here")
    args = ap.parse_args(argv)
    m = cycle(args.images, setup=args.setup, profile=args.profile)
    print(f"{m['n']:,} manifests in place in {m['pushed']:.1f} s ({m['setup']}); first cycle {m['first_cycle']:.2f} s "
          f"({m['first_scanned']:,} of {m['first_images']:,} scanned); steady cycle {m['cycle']:.2f} s "
          f"({m['scanned']:,} of {m['images']:,} scanned, {m['events']} events), "
          f"{m['cycle'] / m['n'] * 1000:.2f} ms per image, CPU {m['cycle_cpu'] / m['n'] * 1000:.2f} ms per image "
          f"(load {m['load']:.1f})")
    print("RESULT " + json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
