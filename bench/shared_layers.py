"""Benchmark: scanning many images that share base layers, through a real local registry.

Starts a real ``docker-registry`` on 127.0.0.1 and pushes ``--images`` images (default 50) into
5 repositories over 3 bases built from real Debian root filesystems (the test image builder's
cached tars, :mod:`tests.support.images`):

* ``bookworm``          the bookworm rootfs (one layer, ~57 MB gzip),
* ``bullseye``          the bullseye rootfs (one layer),
* ``bookworm-python``   the bookworm rootfs + the layer of old PyPI wheels (shares its bottom layer
                        with ``bookworm``),

each image its base plus one small layer of its own (a Python package and a ``package.json`` of
its own name and version). Blobs are pushed once per repository over the Registry v2 API
(monolithic upload, cross-repository mount), one manifest per image.

Then, timed, with the built-in scanner (``BuiltinScanner.scan``, an empty advisory index):

* **alone**: each image scanned by itself, cold: a new registry client and no layer cache;
* **shared, one at a time**: one scanner with a fresh layer cache, the images in turn;
* **shared, at once**: one scanner with a fresh layer cache, ``scan_many`` with 2 workers
  (a layer another worker is reading is waited for, then taken from the cache).

Every blob request the scanner makes is counted (``OCIRegistry.blob``). Target: with the shared
cache each layer is read once (reads == distinct layers), and the inventories are the ones the
images give alone.

    python bench/shared_layers.py [--images 50] [--cache DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.support.images import bench_cache_dir, build_app_image, build_debian_image  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REPOSITORIES = [f"team-{c}" for c in "abcde"]
SITE = "usr/lib/python3/dist-packages"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def app_layer(i: int) -> tuple[bytes, str]:
    """(gzip blob, diff id) of image ``i``'s own layer."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        files = {
            f"{SITE}/svc{i}-1.0.{i}.dist-info/METADATA": f"Name: svc{i}\nVersion: 1.0.{i}\n".encode(),
            f"srv/app{i}/package.json": json.dumps({"name": f"app{i}", "version": f"2.0.{i}"}).encode(),
        }
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, compresslevel=1, mtime=0), digest_of(tar)


class Pusher:
    """Blobs and manifests over the Registry v2 API; each blob uploaded once per repository
    (mounted from the first repository that has it)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=120)
        self.home: dict[str, str] = {}          # digest -> first repository holding it
        self.present: set[tuple[str, str]] = set()

    def blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        if (repo, digest) in self.present:
            return digest
        start = f"{self.url}/v2/{repo}/blobs/uploads/"
        home = self.home.get(digest)
        resp = self.client.post(start, params={"mount": digest, "from": home} if home else None)
        if resp.status_code != 201:           # 202: upload it
            assert resp.status_code == 202, resp.text
            location = httpx.URL(self.url).join(resp.headers["location"]).copy_add_param("digest", digest)
            put = self.client.put(location, content=data,
                                  headers={"Content-Type": "application/octet-stream"})
            assert put.status_code == 201, put.text
        self.home.setdefault(digest, repo)
        self.present.add((repo, digest))
        return digest

    def manifest(self, repo: str, tag: str, layers: list[bytes], diff_ids: list[str], i: int) -> None:
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"n": str(i)}},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
        entries = [{"mediaType": MEDIA_LAYER, "digest": self.blob(repo, b), "size": len(b)} for b in layers]
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                    "config": {"mediaType": MEDIA_CONFIG, "digest": self.blob(repo, config), "size": len(config)},
                    "layers": entries}
        resp = self.client.put(f"{self.url}/v2/{repo}/manifests/{tag}", content=json.dumps(manifest).encode(),
                               headers={"Content-Type": MEDIA_MANIFEST})
        assert resp.status_code == 201, resp.text

    def close(self) -> None:
        self.client.close()


def bases(cache: Path) -> dict[str, tuple[list[bytes], list[str]]]:
    """Base name -> (gzip layer blobs, diff ids), bottom first."""
    bookworm = build_debian_image(cache, "bookworm", cache_dir=cache)
    bullseye = build_debian_image(cache, "bullseye", cache_dir=cache)
    app = build_app_image(cache, "bookworm", cache_dir=cache)
    rootfs = Path(bookworm.layer_paths[0]).read_bytes()
    assert digest_of(rootfs) == digest_of(Path(app.layer_paths[0]).read_bytes()), "the two bookworm rootfs differ"
    return {
        "bookworm": ([rootfs], list(bookworm.diff_ids)),
        "bullseye": ([Path(bullseye.layer_paths[0]).read_bytes()], list(bullseye.diff_ids)),
        "bookworm-python": ([rootfs, Path(app.layer_paths[1]).read_bytes()], list(app.diff_ids[:2])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--cache", type=Path, default=bench_cache_dir())
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    base_layers = bases(args.cache)
    work = Path(tempfile.mkdtemp(prefix="vulnwatch-bench-shared-"))
    registry = start_registry(work / "registry")
    try:
        pusher = Pusher(registry.url)
        plan: list[tuple[str, str, str]] = []     # (repository, tag, base)
        names = list(base_layers)
        for i in range(args.images):
            base = names[i % len(names)]
            repo = REPOSITORIES[i % len(REPOSITORIES)]
            blobs, diff_ids = base_layers[base]
            own, own_diff = app_layer(i)
            pusher.manifest(repo, f"v{i}", [*blobs, own], [*diff_ids, own_diff], i)
            plan.append((repo, f"v{i}", base))
        pusher.close()
        print(f"{args.images} images in {len(REPOSITORIES)} repositories over {len(base_layers)} bases pushed "
              f"to {registry.host} (images and registry ready in {time.perf_counter() - t0:.0f} s)")
        measure(registry, plan, base_layers, work)
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


def measure(registry, plan, base_layers, work: Path) -> None:
    from vulnwatch.model import Image
    from vulnwatch.registries.oci import OCIRegistry
    from vulnwatch.scanners.builtin import BuiltinScanner
    from vulnwatch.vulndb.index import VulnIndex
    from vulnwatch.walker import LayerCache

    class CountingRegistry(OCIRegistry):
        reads: Counter = Counter()

        def blob(self, repository, digest, **kw):
            CountingRegistry.reads[digest] += 1
            return super().blob(repository, digest, **kw)

    index = VulnIndex(work / "osv.db")
    probe = OCIRegistry(registry.host, registry.url, insecure=True)
    images, layers_of = [], {}
    for repo, tag, _ in plan:
        digest, media_type, _ = probe.resolve(repo, tag)
        img = Image(registry=registry.host, repository=repo, digest=digest, tags=(tag,), media_type=media_type)
        images.append(img)
        layers_of[img.key] = [layer.digest for layer in probe.manifest(repo, digest).layers]
    probe.close()
    referenced = sum(len(v) for v in layers_of.values())
    distinct = {d for v in layers_of.values() for d in v}
    shared = {d for d in distinct if sum(d in v for v in layers_of.values()) > 1}
    compressed = {d: s for blobs, _ in base_layers.values() for d, s in ((digest_of(b), len(b)) for b in blobs)}

    def inventory(result) -> tuple:
        return tuple(sorted((p.name, p.version, p.ecosystem) for p in result.packages))

    # each image alone: a new client, no layer cache
    CountingRegistry.reads.clear()
    alone: dict = {}
    start = time.perf_counter()
    for img in images:
        reg = CountingRegistry(registry.host, registry.url, insecure=True)
        scanner = BuiltinScanner(reg, index)
        try:
            alone[img.key] = inventory(scanner.scan(img))
        finally:
            scanner.close()
    t_alone = time.perf_counter() - start
    reads_alone = sum(CountingRegistry.reads.values())

    def shared_run(concurrency: int) -> tuple[float, Counter, dict, LayerCache]:
        CountingRegistry.reads.clear()
        cache = LayerCache(Path(tempfile.mkdtemp(dir=work, prefix="layers-")))
        reg = CountingRegistry(registry.host, registry.url, insecure=True)
        scanner = BuiltinScanner(reg, index, layer_cache=cache, max_concurrency=concurrency)
        out = {}
        start = time.perf_counter()
        try:
            for img, result in scanner.scan_many(images, {}):
                if isinstance(result, Exception):
                    raise result
                out[img.key] = inventory(result)
        finally:
            scanner.close()
        return time.perf_counter() - start, Counter(CountingRegistry.reads), out, cache

    t_seq, reads_seq, inv_seq, cache_seq = shared_run(1)
    t_par, reads_par, inv_par, cache_par = shared_run(2)
    index.close()

    print(f"layers referenced by the {len(images)} manifests: {referenced} ({len(distinct)} distinct, "
          f"{len(shared)} shared by several images, {sum(compressed.get(d, 0) for d in shared) / 1e6:.0f} MB "
          f"compressed)")
    print(f"{'':38} {'time':>8} {'blob reads':>11} {'shared-layer reads':>19} {'per image':>10}")
    rows = [("each image alone (no layer cache)", t_alone, None),
            ("shared cache, one at a time", t_seq, reads_seq),
            ("shared cache, scan_many 2 workers", t_par, reads_par)]
    for name, secs, reads in rows:
        if reads is None:
            total, of_shared = reads_alone, sum(layers_of[i.key].count(d) for i in images for d in shared)
        else:
            total, of_shared = sum(reads.values()), sum(reads[d] for d in shared)
        print(f"  {name:<36} {secs:7.2f}s {total:>11} {of_shared:>19} {secs / len(images) * 1000:8.0f}ms")
    once_seq = all(reads_seq[d] == 1 for d in distinct) and sum(reads_seq.values()) == len(distinct)
    once_par = all(reads_par[d] == 1 for d in distinct) and sum(reads_par.values()) == len(distinct)
    same = alone == inv_seq == inv_par
    print(f"  layer cache: one at a time {cache_seq.stats.hits} hits / {cache_seq.stats.stores} stores; "
          f"2 workers {cache_par.stats.hits} hits / {cache_par.stats.stores} stores")
    print(f"each layer read once ({len(distinct)} reads for {referenced} layers referenced): "
          f"one at a time {'PASS' if once_seq else 'MISS'}, 2 workers {'PASS' if once_par else 'MISS'}")
    counts = sorted(len(v) for v in alone.values())
    print(f"inventories identical to scanning each image alone ({counts[0]}-{counts[-1]} packages an image): "
          f"{'PASS' if same else 'MISS'}")
    print(f"time, alone / shared: one at a time {t_alone / t_seq:.1f}x, 2 workers {t_alone / t_par:.1f}x")


if __name__ == "__main__":
    main()
