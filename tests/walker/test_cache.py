"""The per-layer cache: a hit is exactly what reading the blob gives, shared layers are
not fetched again, damaged entries are rebuilt, a change of catalogers or limits misses."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest
import zstandard

from tests.catalogers.test_catalogers import STATUS, go_blob
from tests.support.images import layer_bytes, write_oci_layout
from vulnwatch.catalogers import all_catalogers
from vulnwatch.catalogers.dpkg import DpkgCataloger
from vulnwatch.catalogers.interface import CatalogContext, Cataloger, CatalogResult
from vulnwatch.catalogers.python import PythonCataloger
from vulnwatch.catalogers.plan import cache_key, catalog_image, catalog_layers
from vulnwatch.walker import (LayerCache, LayerContents, LayerError, LayerLimits, LayerStack, WalkedFile, WalkPlan,
                              walk_layers)
from vulnwatch.walker.cache import MAGIC, chain_ids, decode, default_directory, encode
from vulnwatch.model import Package
from vulnwatch.registries.archive import ArchiveRegistry
from vulnwatch.scanners.builtin import BuiltinScanner
from vulnwatch.vulndb.index import VulnIndex


class CustomDbCataloger(Cataloger):
    """Wants one exact path under ``lib/``: found only through a ``lib -> usr/lib`` alias."""

    name = "customdb"
    exact_paths = frozenset({"lib/custom/db"})

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        return CatalogResult(tuple(Package(line, "1", "custom", path=p)
                                   for p, d in files.items() for line in d.decode().split()))


def catalogers() -> list[Cataloger]:
    return all_catalogers() + [CustomDbCataloger()]


def meta(name: str, version: str) -> bytes:
    return f"Name: {name}\nVersion: {version}\n".encode()


SITE = "usr/lib/python3/dist-packages"
OS_RELEASE = b'ID=debian\nVERSION_ID="12"\n'
ELF = b"\x7fELF" + b"\0" * 60 + go_blob(
    "go1.20.1", "path\texample.com/app\nmod\texample.com/app\tv1.0.0\t\ndep\tgolang.org/x/text\tv0.3.7\th1:a=\n")

BASE = layer_bytes(lambda w: (
    w.file("usr/lib/os-release", OS_RELEASE),
    w.symlink("etc/os-release", "../usr/lib/os-release"),
    w.dir("usr/lib"), w.symlink("lib", "usr/lib"),
    w.file("var/lib/dpkg/status", STATUS),
    w.file(f"{SITE}/six-1.16.0.dist-info/METADATA", meta("six", "1.16.0")),
    w.file(f"{SITE}/gone-1.0.dist-info/METADATA", meta("gone", "1.0")),
    w.file("app/node_modules/m/package.json", json.dumps({"name": "m", "version": "0.0.8"}).encode()),
    w.file("app/node_modules/m/lib/x/package.json", json.dumps({"name": "x", "version": "1.0.0"}).encode()),
    w.file("usr/local/bin/app", ELF, mode=0o755),
    w.file("usr/local/bin/removed", ELF, mode=0o755),
))

SCENARIOS = {
    "whiteouts": [BASE, layer_bytes(lambda w: (
        w.whiteout(f"{SITE}/gone-1.0.dist-info"), w.whiteout("usr/local/bin/removed")))],
    "opaque-dir": [BASE, layer_bytes(lambda w: (
        w.opaque("app/node_modules/m"),
        w.file("app/node_modules/m/package.json", json.dumps({"name": "m", "version": "1.2.8"}).encode())))],
    # usr-merge symlink below, wanted file written above, through the link and at the real path
    "usr-merge-link-below": [BASE, layer_bytes(lambda w: (
        w.file("lib/custom/db", b"through-link", parents=False),
        w.file(f"{SITE}/new-2.0.dist-info/METADATA", meta("new", "2.0"))))],
    "usr-merge-real-path-above": [BASE, layer_bytes(lambda w: w.file("usr/lib/custom/db", b"real-path"))],
    # the file below, the symlink that makes it wanted above: not kept (it streamed past unwanted)
    "usr-merge-link-above": [
        layer_bytes(lambda w: (w.file("usr/lib/os-release", OS_RELEASE), w.file("usr/lib/custom/db", b"lower"))),
        layer_bytes(lambda w: (w.symlink("lib", "usr/lib"), w.symlink("etc/os-release", "../usr/lib/os-release"))),
        layer_bytes(lambda w: w.file("usr/lib/custom/db", b"rewritten-above"))],
    "replaced-by-dir-and-file": [BASE, layer_bytes(lambda w: (
        w.file("etc/os-release", b'ID=alpine\nVERSION_ID=3.19.1\n', parents=False),
        w.file("usr/local/bin/app", b"#!/bin/sh\n", mode=0o755)))],
    "hardlink-and-go-binary": [BASE, layer_bytes(lambda w: (
        w.file("opt/bin/tool", ELF, mode=0o755),
        w.file(f"{SITE}/h-1.0.dist-info/METADATA", meta("h", "1.0")),
        w.hardlink(f"{SITE}/hh-1.0.dist-info/METADATA", f"{SITE}/h-1.0.dist-info/METADATA")))],
}


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


class Blobs:
    """Blobs by digest, counting every open (what a registry would be asked for)."""

    def __init__(self, *raw_layers: bytes) -> None:
        self.by_digest: dict[str, bytes] = {}
        self.names: list[str] = []
        self.opened: list[str] = []
        for i, raw in enumerate(raw_layers):
            blob = gzip.compress(raw, mtime=0) if i % 2 == 0 else raw
            self.by_digest[digest(blob)] = blob
            self.names.append(digest(blob))

    def open(self, name: str) -> io.BytesIO:
        self.opened.append(name)
        return io.BytesIO(self.by_digest[name])

    def streams(self) -> list[tuple[str, io.BytesIO]]:
        return [(n, io.BytesIO(self.by_digest[n])) for n in self.names]


@pytest.fixture
def cache(tmp_path) -> LayerCache:
    return LayerCache(tmp_path / "layers")


# ------------------------------------------------------------------ equivalence

@pytest.mark.parametrize("name", list(SCENARIOS))
def test_cached_inventory_equals_uncached(name, cache):
    blobs = Blobs(*SCENARIOS[name])
    expected = catalog_image(blobs.streams(), catalogers())
    cold = catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    assert blobs.opened == blobs.names  # a cold cache reads every layer once
    blobs.opened.clear()
    warm = catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    assert blobs.opened == []           # a warm one reads none
    assert cold == expected and warm == expected
    assert cache.stats.hits == len(blobs.names) and cache.stats.stores == len(blobs.names)


def test_scenarios_mean_what_they_say(cache):
    def found(name):
        blobs = Blobs(*SCENARIOS[name])
        inv = catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
        catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)  # from the cache
        return {(p.ecosystem, p.name, p.version) for p in inv.packages}, inv

    pkgs, _ = found("whiteouts")
    assert ("PyPI", "six", "1.16.0") in pkgs and not any(n == "gone" for _, n, _ in pkgs)
    assert ("Go", "example.com/app", "v1.0.0") in pkgs
    pkgs, _ = found("opaque-dir")
    assert ("npm", "m", "1.2.8") in pkgs and not any(n in ("x",) or v == "0.0.8" for _, n, v in pkgs)
    pkgs, _ = found("usr-merge-link-below")
    assert ("custom", "through-link", "1") in pkgs and ("PyPI", "new", "2.0") in pkgs
    pkgs, _ = found("usr-merge-real-path-above")
    assert ("custom", "real-path", "1") in pkgs
    pkgs, inv = found("usr-merge-link-above")
    assert ("custom", "rewritten-above", "1") in pkgs and ("custom", "lower", "1") not in pkgs
    assert inv.ecosystem == "Debian:12"
    pkgs, inv = found("replaced-by-dir-and-file")
    go_paths = {p.path for p in inv.packages if p.ecosystem == "Go"}
    assert inv.ecosystem == "Alpine:v3.19" and go_paths == {"usr/local/bin/removed"}  # app is a script now
    _, inv = found("hardlink-and-go-binary")
    paths = {(p.ecosystem, p.path) for p in inv.packages}
    assert {("PyPI", f"{SITE}/h-1.0.dist-info/METADATA"), ("PyPI", f"{SITE}/hh-1.0.dist-info/METADATA"),
            ("Go", "opt/bin/tool")} <= paths


def test_read_then_merge_equals_walk():
    blobs = Blobs(*SCENARIOS["usr-merge-link-below"])
    want = lambda p: 1 << 20 if p in ("lib/custom/db", "etc/os-release") else None  # noqa: E731
    stack = LayerStack(WalkPlan(want))
    contents = [stack.add(n, s) for n, s in blobs.streams()]
    merged = LayerStack(WalkPlan(want))
    for c in contents:
        merged.apply(c)
    assert merged.result() == walk_layers(blobs.streams(), want) == stack.result()
    # only lower entries this layer replaces are recorded, not every path it writes
    assert all(len(c.replaced) < 5 for c in contents)


def test_same_layer_on_another_base_is_a_miss(cache):
    """An entry holds where files landed given the layers below: the chain id keys it."""
    top = layer_bytes(lambda w: w.file("usr/lib/custom/db", b"through-link"))  # wanted only as lib/custom/db
    with_link = Blobs(BASE, top)
    without = Blobs(layer_bytes(lambda w: w.file("etc/os-release", OS_RELEASE)), top)
    assert with_link.names[1] == without.names[1]  # the very same blob
    a = catalog_layers(with_link.names, with_link.open, catalogers(), cache=cache)
    b = catalog_layers(without.names, without.open, catalogers(), cache=cache)
    assert without.opened == without.names
    assert ("through-link", "1") in {(p.name, p.version) for p in a.packages}
    assert not any(p.ecosystem == "custom" for p in b.packages)
    assert b == catalog_image(without.streams(), catalogers())


def test_names_that_are_not_digests_are_never_cached(cache):
    streams = {"layer0": BASE}
    opened = []

    def open_blob(n):
        opened.append(n)
        return io.BytesIO(streams[n])

    for _ in range(2):
        catalog_layers(["layer0"], open_blob, catalogers(), cache=cache)
    assert opened == ["layer0", "layer0"] and cache.entries() == []


def test_progress_counts_cached_layers_too(cache):
    blobs = Blobs(*SCENARIOS["whiteouts"])
    for _ in range(2):
        seen = []
        catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache, progress=lambda d, t: seen.append((d, t)))
        assert seen == [(0, 2), (1, 2), (2, 2)]


# ------------------------------------------------------------------ invalidation

def test_cataloger_change_is_a_miss(cache):
    blobs = Blobs(*SCENARIOS["whiteouts"])
    only_dpkg = catalog_layers(blobs.names, blobs.open, [DpkgCataloger()], cache=cache)
    blobs.opened.clear()
    both = catalog_layers(blobs.names, blobs.open, [DpkgCataloger(), PythonCataloger()], cache=cache)
    assert blobs.opened == blobs.names
    assert not any(p.ecosystem == "PyPI" for p in only_dpkg.packages)
    assert any(p.ecosystem == "PyPI" for p in both.packages)

    class WiderDpkg(DpkgCataloger):
        exact_paths = DpkgCataloger.exact_paths | {"var/lib/dpkg/status.d/extra"}

    keys = {cache_key([DpkgCataloger()]), cache_key([WiderDpkg()]), cache_key([PythonCataloger(), DpkgCataloger()]),
            cache_key([DpkgCataloger(), PythonCataloger()]), cache_key([DpkgCataloger()], LayerLimits(max_file_size=10))}
    assert len(keys) == 5
    assert cache_key([DpkgCataloger()]) == cache_key([DpkgCataloger()], LayerLimits())


def test_limits_change_is_a_miss(cache):
    blobs = Blobs(*SCENARIOS["whiteouts"])
    catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    blobs.opened.clear()
    small = catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache,
                           limits=LayerLimits(max_file_size=10, oversize_is_error=False))
    assert blobs.opened == blobs.names
    assert any("over the 10-byte limit" in w for w in small.warnings)


def test_cross_layer_limits_still_apply_to_cached_layers(cache):
    blobs = Blobs(*SCENARIOS["whiteouts"])
    catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    key = cache_key(catalogers())
    c0 = cache.get(blobs.names[0], chain_ids(blobs.names)[0], key)
    assert c0 is not None and c0.entries > 5 and c0.uncompressed_bytes > 0
    # a layer read on top of cached ones counts their bytes
    stack = LayerStack(WalkPlan(lambda p: None), limits=LayerLimits(max_total_bytes=c0.uncompressed_bytes + 100))
    stack.apply(c0)
    with pytest.raises(LayerError) as e:
        stack.read(blobs.names[0], io.BytesIO(blobs.by_digest[blobs.names[0]]))
    assert e.value.code == "LayerTooLarge"
    stack = LayerStack(WalkPlan(lambda p: None), limits=LayerLimits(max_entries=c0.entries))
    stack.apply(c0)
    with pytest.raises(LayerError, match="max_tar_entries"):
        stack.apply(c0)


# ------------------------------------------------------------------ the files

@pytest.mark.parametrize("damage", ["garbage", "truncated", "magic", "other-key", "empty", "bit-flip"])
def test_damaged_entry_is_logged_deleted_and_rebuilt(damage, cache, caplog):
    blobs = Blobs(*SCENARIOS["whiteouts"])
    expected = catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    key = cache_key(catalogers())
    victim = cache.path_for(chain_ids(blobs.names)[0], key)
    good = victim.read_bytes()
    bad = {"garbage": b"\x00garbage" * 100, "truncated": good[: len(good) // 2], "magic": b"NOTMAGIC" + good[8:],
           "other-key": encode(LayerContents(blobs.names[0]), chain_id="sha256:other", key=key), "empty": b"",
           "bit-flip": good[:-20] + bytes([good[-20] ^ 0xFF]) + good[-19:]}[damage]
    victim.write_bytes(bad)
    blobs.opened.clear()
    with caplog.at_level(logging.WARNING, logger="vulnwatch.walker.cache"):
        again = catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    assert again == expected
    assert blobs.opened == blobs.names[:1]  # only the damaged layer is read again
    assert cache.stats.corrupt == 1
    assert any(str(victim) in r.getMessage() and blobs.names[0] in r.getMessage() for r in caplog.records)
    assert decode(victim.read_bytes(), layer=blobs.names[0], chain_id=chain_ids(blobs.names)[0], key=key)
    blobs.opened.clear()
    catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    assert blobs.opened == []


def test_file_is_self_describing_zstd_json_not_pickle(cache):
    contents = LayerContents("sha256:" + "a" * 64,
                             files={"etc/os-release": WalkedFile("etc/os-release", OS_RELEASE, "sha256:" + "a" * 64)},
                             executables={"bin/x": WalkedFile("bin/x", b"\xff Go", "sha256:" + "a" * 64, 0o755)},
                             symlinks={"lib": "usr/lib"}, replaced=("bin",), deletions=(("opt", True), ("srv/x", False)),
                             warnings=("w",), uncompressed_bytes=10, entries=3)
    path = cache.put(contents, "sha256:" + "b" * 64, "k")
    raw = path.read_bytes()
    assert raw.startswith(MAGIC)
    payload = zstandard.ZstdDecompressor().decompress(raw[len(MAGIC):])
    (hlen,) = struct.unpack(">I", payload[:4])
    header = json.loads(payload[4:4 + hlen])
    assert header["format"] == "vulnwatch-layer-contents" and header["version"] == 1
    assert header["files"] == [["etc/os-release", 0o644, len(OS_RELEASE)]]
    assert payload[4 + hlen:] == OS_RELEASE + b"\xff Go"
    assert cache.get(contents.layer, "sha256:" + "b" * 64, "k") == contents
    assert cache.get(contents.layer, "sha256:" + "b" * 64, "other") is None
    assert [p.name for p in cache.directory.iterdir()] == [path.name]  # no temporary file left


def test_eviction_drops_least_recently_used(tmp_path):
    cache = LayerCache(tmp_path / "c", max_bytes=10_000)
    big = lambda i: LayerContents(f"sha256:{i:064x}", files={"f": WalkedFile("f", os.urandom(3000), "x")})  # noqa: E731
    paths = []
    for i in range(3):
        paths.append(cache.put(big(i), f"chain{i}", "k"))
        os.utime(paths[-1], (time.time() - 100 + i, time.time() - 100 + i))
    assert cache.get(f"sha256:{0:064x}", "chain0", "k") is not None  # a hit makes entry 0 recent
    cache.put(big(3), "chain3", "k")
    assert not paths[1].exists() and paths[0].exists() and paths[2].exists()
    assert cache.size() <= 10_000 and cache.stats.evicted == 1
    # an entry larger than the whole cache is not stored
    assert LayerCache(tmp_path / "tiny", max_bytes=100).put(big(9), "c", "k") is None


def test_unwritable_directory_never_breaks_a_scan(tmp_path, caplog):
    (tmp_path / "file").write_text("not a directory")
    cache = LayerCache(tmp_path / "file" / "layers")
    blobs = Blobs(*SCENARIOS["whiteouts"])
    with caplog.at_level(logging.WARNING, logger="vulnwatch.walker.cache"):
        inv = catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    assert inv == catalog_image(blobs.streams(), catalogers())
    assert any("cannot store layer" in r.getMessage() for r in caplog.records)


def test_failed_layer_is_not_stored(cache):
    hostile = layer_bytes(lambda w: w.file("../../etc/passwd", b"x", parents=False))
    blobs = Blobs(BASE, hostile)
    with pytest.raises(LayerError):
        catalog_layers(blobs.names, blobs.open, catalogers(), cache=cache)
    assert len(cache.entries()) == 1  # the good base layer only


def test_default_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_directory() == tmp_path / "vulnwatch" / "layers"
    assert LayerCache().directory == tmp_path / "vulnwatch" / "layers"


# ------------------------------------------------------------------ through the scanner and a registry

class CountingRegistry(ArchiveRegistry):
    """A real archive registry that records every layer blob asked for (manifests are
    blobs in a layout, read through ``blob`` too: those are not recorded)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.blob_calls: list[str] = []
        self._reading_manifest = False

    def _raw_manifest(self, repository, digest):
        self._reading_manifest = True
        try:
            return super()._raw_manifest(repository, digest)
        finally:
            self._reading_manifest = False

    def blob(self, repository, digest, **kw):
        if not self._reading_manifest:
            self.blob_calls.append(digest)
        return super().blob(repository, digest, **kw)


def only_image(registry):
    return next(registry.images(next(registry.repositories())))


def test_second_image_sharing_base_layers_pulls_only_its_new_layer(tmp_path, cache):
    mid = layer_bytes(lambda w: w.file(f"{SITE}/mid-1.0.dist-info/METADATA", meta("mid", "1.0")))
    top_a = layer_bytes(lambda w: w.whiteout(f"{SITE}/gone-1.0.dist-info"))
    top_b = layer_bytes(lambda w: w.file("lib/custom/db", b"b-only", parents=False))
    a = write_oci_layout(tmp_path / "a", [BASE, mid, top_a])
    b = write_oci_layout(tmp_path / "b", [BASE, mid, top_b])
    index = VulnIndex(tmp_path / "osv.sqlite")
    reg_a, reg_b = CountingRegistry("a", a.path), CountingRegistry("b", b.path)
    digests_b = [layer.digest for layer in reg_b.manifest(only_image(reg_b).repository, b.manifest_digest).layers]
    try:
        inv_a = BuiltinScanner(reg_a, index, catalogers=catalogers(), layer_cache=cache).inventory(only_image(reg_a))
        assert len(reg_a.blob_calls) == 3
        progress = []
        scanner_b = BuiltinScanner(reg_b, index, catalogers=catalogers(), layer_cache=cache,
                                   layer_progress=lambda img, d, t: progress.append((d, t)))
        inv_b = scanner_b.inventory(only_image(reg_b))
        assert reg_b.blob_calls == digests_b[2:]  # base and mid came from the cache
        assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]
        uncached = BuiltinScanner(CountingRegistry("b", b.path), index, catalogers=catalogers())
        assert inv_b == uncached.inventory(only_image(reg_b))
        names_a = {p.name for p in inv_a.packages}
        names_b = {p.name for p in inv_b.packages}
        assert "gone" not in names_a and "gone" in names_b and "b-only" in names_b and "mid" in names_a & names_b
        scanner_b.inventory(only_image(reg_b))
        assert reg_b.blob_calls == digests_b[2:]  # third time: nothing pulled
    finally:
        index.close()


@pytest.mark.slow
def test_real_app_image_identical_with_cache(app_image, tmp_path):
    cache = LayerCache(tmp_path / "layers")
    with app_image.open_layers() as layers:
        expected = catalog_image(layers)
    assert len(expected.packages) > 80
    reg = CountingRegistry("app", app_image.path)
    index = VulnIndex(tmp_path / "osv.sqlite")
    try:
        scanner = BuiltinScanner(reg, index, layer_cache=cache)
        image = only_image(reg)
        cold = scanner.inventory(image)
        pulled = len(reg.blob_calls)
        warm = scanner.inventory(image)
        assert pulled == len(app_image.layer_paths) and len(reg.blob_calls) == pulled
        # the walker names layers by blob digest here and by diff id in open_layers()
        strip = lambda inv: sorted((p.ecosystem, p.name, p.version, p.path or "") for p in inv.packages)  # noqa: E731
        assert strip(cold) == strip(warm) == strip(expected)
        assert cold == warm and cold.distro == expected.distro
    finally:
        index.close()


# ------------------------------------------------------------------ images walked at once

class SlowBlobs(Blobs):
    """Blobs whose first layer takes a while to open (the time a big base takes to stream), so
    a second walk arrives while the first is still reading it; ``fail_first`` makes the first
    open of that layer fail (a registry error)."""

    def __init__(self, *raw_layers: bytes, fail_first: bool = False) -> None:
        super().__init__(*raw_layers)
        self.fail_first = fail_first
        self.started = threading.Event()
        self._lock = threading.Lock()

    def open(self, name: str) -> io.BytesIO:
        with self._lock:
            self.opened.append(name)
            first = name == self.names[0] and self.opened.count(name) == 1
        if first:
            self.started.set()
            time.sleep(0.3)
            if self.fail_first:
                raise OSError("registry went away")
        return io.BytesIO(self.by_digest[name])


def _two_walks_at_once(blobs: SlowBlobs, names_b: list[str], cache: LayerCache):
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(catalog_layers, blobs.names, blobs.open, catalogers(), cache=cache)
        assert blobs.started.wait(5)
        b = pool.submit(catalog_layers, names_b, blobs.open, catalogers(), cache=cache)
        return a, b


def test_images_walked_at_once_read_a_shared_layer_once(cache):
    top_b = layer_bytes(lambda w: w.file(f"{SITE}/bonly-1.0.dist-info/METADATA", meta("bonly", "1.0")))
    blobs = SlowBlobs(BASE, SCENARIOS["whiteouts"][1], top_b)
    names_a = blobs.names[:2]
    names_b = [blobs.names[0], blobs.names[2]]
    blobs.names = names_a
    a, b = _two_walks_at_once(blobs, names_b, cache)
    inv_a, inv_b = a.result(), b.result()
    assert blobs.opened.count(names_a[0]) == 1          # the base: read once, by the first walk
    assert sorted(blobs.opened) == sorted(set(names_a) | set(names_b))
    assert cache.stats.stores == 3
    fresh = Blobs(BASE, SCENARIOS["whiteouts"][1], top_b)
    assert inv_a == catalog_layers(fresh.names[:2], fresh.open, catalogers())
    assert inv_b == catalog_layers([fresh.names[0], fresh.names[2]], fresh.open, catalogers())
    assert "bonly" in {p.name for p in inv_b.packages} and "gone" not in {p.name for p in inv_a.packages}


def test_a_walk_waiting_for_a_failed_read_reads_the_layer_itself(cache):
    top_b = layer_bytes(lambda w: w.file(f"{SITE}/bonly-1.0.dist-info/METADATA", meta("bonly", "1.0")))
    blobs = SlowBlobs(BASE, top_b, fail_first=True)
    a, b = _two_walks_at_once(blobs, blobs.names, cache)
    with pytest.raises(OSError, match="registry went away"):
        a.result()
    inv_b = b.result()
    assert blobs.opened.count(blobs.names[0]) == 2      # the failed read, then the waiting walk's own
    assert "bonly" in {p.name for p in inv_b.packages}
    assert cache.stats.stores == 2
