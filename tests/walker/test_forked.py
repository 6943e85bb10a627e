"""The tar walk in a forked child (walker/forked.py): the same results and the same errors as the
walk in one process, a damaged or mismatching blob named, a child that dies reported."""

from __future__ import annotations

import gzip
import io
import os
import threading
import zlib

import pytest

from tests.support.images import layer_bytes, write_oci_layout
from tests.walker.test_cache import (BASE, ELF, SCENARIOS, SITE, Blobs, CountingRegistry, catalogers, digest, meta,
                                     only_image)
from vulnwatch.catalogers.plan import CatalogPlan, catalog_image
from vulnwatch.registries._manifest import VerifyingReader
from vulnwatch.registries.interface import RegistryError
from vulnwatch.scanners.builtin import BuiltinScanner
from vulnwatch.scanners.interface import ScanError
from vulnwatch.walker import LayerCache, LayerError, WalkPlan, walk_cached
from vulnwatch.walker import forked


def plan() -> WalkPlan:
    return CatalogPlan(catalogers()).walk


def walk(names, open_blob, *, fork: bool, walk_plan: WalkPlan | None = None, **kw):
    return walk_cached(names, open_blob, walk_plan or plan(), fork=fork, **kw)


def failure(names, open_blob, *, fork: bool, walk_plan: WalkPlan | None = None, **kw) -> BaseException:
    with pytest.raises(Exception) as info:
        walk(names, open_blob, fork=fork, walk_plan=walk_plan, **kw)
    return info.value


# ------------------------------------------------------------------ same results

@pytest.mark.parametrize("name", list(SCENARIOS))
def test_forked_walk_equals_the_walk_in_one_process(name):
    blobs = Blobs(*SCENARIOS[name])
    serial = walk(blobs.names, blobs.open, fork=False)
    assert walk(blobs.names, blobs.open, fork=True) == serial
    assert CatalogPlan(catalogers()).catalog(serial) == catalog_image(blobs.streams(), catalogers())


def test_cached_layers_below_and_above_read_ones(tmp_path):
    """Layers from the cache are applied in the child too: the layers it reads on top of them
    land where the cached symlinks say (lib -> usr/lib), as in one process."""
    cache = LayerCache(tmp_path / "layers")
    top = layer_bytes(lambda w: (w.file("lib/custom/db", b"through-link", parents=False),
                                 w.file(f"{SITE}/new-2.0.dist-info/METADATA", meta("new", "2.0"))))
    base_only = Blobs(BASE)
    walk(base_only.names, base_only.open, fork=True, cache=cache, key="k")   # stores the base
    assert cache.stats.stores == 1
    blobs = Blobs(BASE, top, SCENARIOS["whiteouts"][1])
    forked_result = walk(blobs.names, blobs.open, fork=True, cache=cache, key="k")
    assert blobs.opened == blobs.names[1:]                                  # the base came from the cache
    assert cache.stats.stores == 3
    assert forked_result == walk(blobs.names, blobs.open, fork=False)
    assert "lib/custom/db" in forked_result.files or "usr/lib/custom/db" in forked_result.files
    again = Blobs(BASE, top, SCENARIOS["whiteouts"][1])
    assert walk(again.names, again.open, fork=True, cache=cache, key="k") == forked_result
    assert again.opened == []                                               # all three cached now


def test_empty_blob_and_uncompressed_layers():
    blobs = Blobs(BASE, layer_bytes(lambda w: w.file(f"{SITE}/u-1.0.dist-info/METADATA", meta("u", "1.0"))))
    blobs.by_digest["sha256:" + "0" * 64] = b""
    blobs.names.insert(1, "sha256:" + "0" * 64)
    assert walk(blobs.names, blobs.open, fork=True) == walk(blobs.names, blobs.open, fork=False)


def test_large_layer_many_slots_and_executables():
    """A layer much larger than the shared ring (8 x 1 MiB), with kept executables between bulk."""
    bulk = os.urandom(3 << 20)
    raw = layer_bytes(lambda w: (
        w.file("usr/lib/os-release", b'ID=debian\nVERSION_ID="12"\n'),
        *(w.file(f"data/blob{i}", bulk) for i in range(4)),
        w.file("usr/local/bin/app", ELF, mode=0o755),
        w.file(f"{SITE}/big-1.0.dist-info/METADATA", meta("big", "1.0"))))
    blobs = Blobs(raw, SCENARIOS["whiteouts"][0])
    result = walk(blobs.names, blobs.open, fork=True)
    assert result == walk(blobs.names, blobs.open, fork=False)
    assert "usr/local/bin/app" in result.executables


def test_progress_is_reported_for_every_layer():
    blobs = Blobs(*SCENARIOS["whiteouts"])
    seen = []
    walk(blobs.names, blobs.open, fork=True, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 2), (1, 2), (2, 2)]


@pytest.mark.slow
def test_real_app_image_same_inventory_forked_and_not(app_image, tmp_path):
    reg = CountingRegistry("app", app_image.path)
    image = only_image(reg)
    layers = [layer.digest for layer in reg.manifest(image.repository, image.digest).layers]
    p = CatalogPlan()
    forked_walk = walk_cached(layers, lambda d: reg.blob(image.repository, d), p.walk, fork=True)
    one_process = walk_cached(layers, lambda d: reg.blob(image.repository, d), p.walk, fork=False)
    assert forked_walk == one_process
    assert len(p.catalog(forked_walk).packages) > 80


# ------------------------------------------------------------------ same errors

def corrupt_gzip(raw: bytes) -> bytes:
    """``raw`` gzipped, then damaged in the middle so that inflating it fails there."""
    good = gzip.compress(raw, mtime=0)
    for at in range(len(good) // 2, len(good) - 64, 97):
        blob = good[:at] + bytes(b ^ 0x5A for b in good[at:at + 16]) + good[at + 16:]
        try:
            zlib.decompressobj(31).decompress(blob[:at + 4096])
        except zlib.error:
            return blob
    raise AssertionError("no damage found that inflating detects")


def text_layer(n: int) -> bytes:
    """Compressible files (deflate codes them with Huffman tables: damage is detected)."""
    return layer_bytes(lambda w: (*(w.file(f"data/f{i}", (f"line {i} of a text file\n" * 20_000).encode())
                                   for i in range(n)), w.file("var/lib/dpkg/status", b"Package: x\n")))


def test_corrupt_layer_same_error_naming_layer_and_entry():
    blobs = Blobs(BASE)
    bad = corrupt_gzip(text_layer(10))
    blobs.by_digest[digest(bad)] = bad
    blobs.names.append(digest(bad))
    one = failure(blobs.names, blobs.open, fork=False)
    two = failure(blobs.names, blobs.open, fork=True)
    assert isinstance(two, LayerError) and type(one) is type(two)
    assert str(two) == str(one) and two.code == one.code == "LayerCorrupt" and two.layer == digest(bad)
    assert digest(bad) in str(two) and "cannot decompress" in str(two) and "'data/f" in str(two)


def test_truncated_layer_same_error():
    raw = layer_bytes(lambda w: (*(w.file(f"data/f{i}", os.urandom(100_000)) for i in range(5)),))
    blobs = Blobs(BASE)
    cut = gzip.compress(raw, mtime=0)[:-20_000]
    blobs.by_digest[digest(cut)] = cut
    blobs.names.append(digest(cut))
    one, two = failure(blobs.names, blobs.open, fork=False), failure(blobs.names, blobs.open, fork=True)
    assert str(two) == str(one) and isinstance(two, LayerError) and two.code == "LayerCorrupt"


def test_not_a_tar_same_error():
    blobs = Blobs(BASE)
    junk = gzip.compress(b"this is not a tar archive " * 100, mtime=0)
    blobs.by_digest[digest(junk)] = junk
    blobs.names.append(digest(junk))
    one, two = failure(blobs.names, blobs.open, fork=False), failure(blobs.names, blobs.open, fork=True)
    assert str(two) == str(one) and "not a tar archive" in str(two)


def test_failure_in_a_lower_layer_wins_over_one_above():
    """The walk reports what a one-layer-at-a-time walk would: the lowest layer's failure."""
    blobs = Blobs(BASE)
    bad = corrupt_gzip(text_layer(8))
    blobs.by_digest[digest(bad)] = bad
    blobs.names.append(digest(bad))
    blobs.names.append("sha256:" + "f" * 64)               # opening this one fails (unknown blob)
    one, two = failure(blobs.names, blobs.open, fork=False), failure(blobs.names, blobs.open, fork=True)
    assert isinstance(two, LayerError) and str(two) == str(one)


def verifying(blobs: Blobs, *, wrong: str | None = None):
    """``open_blob`` through the registries' digest-checking reader (``wrong``: a layer served
    with other bytes than its digest says, same size)."""

    def open_blob(name: str):
        data = blobs.by_digest[name]
        if name == wrong:
            data = data[:-1] + bytes([data[-1] ^ 0x01])
        chunks = iter([data[i:i + 65536] for i in range(0, len(data), 65536)])
        return io.BufferedReader(VerifyingReader(chunks, name, expected_size=len(data),
                                                 where={"registry": "test", "repository": "app",
                                                        "reference": name}), buffer_size=1 << 16)
    return open_blob


@pytest.mark.parametrize("fork", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_digest_mismatch_detected_after_the_tar_ends(fork, compressed):
    """The bytes after the tar's end-of-archive are never parsed, yet a blob that does not match
    its digest is refused: the rest of the blob is read, undecoded, to its end."""
    tar = layer_bytes(lambda w: w.file(f"{SITE}/t-1.0.dist-info/METADATA", meta("t", "1.0")))
    tail = tar + os.urandom(3 << 20)         # data after the end-of-archive blocks, inside the blob
    blobs = Blobs(BASE)
    blob = gzip.compress(tail, mtime=0) if compressed else tail
    blobs.by_digest[digest(blob)] = blob
    blobs.names.append(digest(blob))
    good = walk(blobs.names, verifying(blobs), fork=fork)
    assert good == walk(blobs.names, blobs.open, fork=not fork)
    err = failure(blobs.names, verifying(blobs, wrong=digest(blob)), fork=fork)
    assert isinstance(err, RegistryError) and "does not match its digest" in str(err) and digest(blob) in str(err)


@pytest.mark.parametrize("fork", [False, True])
def test_digest_mismatch_of_a_lower_layer(fork):
    blobs = Blobs(*SCENARIOS["whiteouts"])
    err = failure(blobs.names, verifying(blobs, wrong=blobs.names[0]), fork=fork)
    assert isinstance(err, RegistryError) and blobs.names[0] in str(err)


def test_scan_of_a_corrupt_layer_names_image_and_layer(tmp_path):
    bad = corrupt_gzip(text_layer(6))
    layout = write_oci_layout(tmp_path / "img", [BASE, bad], compression="none")  # bad: already "gzip"
    reg = CountingRegistry("corrupt", layout.path)
    image = only_image(reg)
    with pytest.raises(ScanError) as info:
        BuiltinScanner(reg, None, catalogers=catalogers()).inventory(image)
    text = str(info.value)
    assert text.startswith(f"{image}: layer {digest(bad)}") and info.value.code == "LayerCorrupt"
    assert "damaged" in text


# ------------------------------------------------------------------ the child

def test_an_exception_in_the_child_comes_back_as_itself():
    p = plan()

    def exploding(path, stream, size):
        raise ValueError(f"cannot read {path}")
    boom = WalkPlan(p.wants, exploding, p.reducer_for)
    blobs = Blobs(*SCENARIOS["whiteouts"])
    one, two = (failure(blobs.names, blobs.open, fork=f, walk_plan=boom) for f in (False, True))
    assert type(two) is ValueError and str(two) == str(one) == "cannot read usr/local/bin/app"


def test_a_child_that_dies_is_a_layer_error_naming_the_layer():
    parent = os.getpid()
    p = plan()

    def dying(path, stream, size):
        if os.getpid() != parent:
            os._exit(9)          # as if killed (out of memory)
        return p.executable_reader(path, stream, size)
    blobs = Blobs(*SCENARIOS["whiteouts"])
    err = failure(blobs.names, blobs.open, fork=True, walk_plan=WalkPlan(p.wants, dying, p.reducer_for))
    assert isinstance(err, LayerError) and err.layer == blobs.names[0]
    assert "ended unexpectedly" in str(err) and forked.ENV_SWITCH in str(err)


def test_no_child_is_left_behind():
    blobs = Blobs(*SCENARIOS["whiteouts"])
    walk(blobs.names, blobs.open, fork=True)
    failure(blobs.names + ["sha256:" + "e" * 64], blobs.open, fork=True)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_fork_only_when_the_process_has_one_thread(monkeypatch):
    monkeypatch.delenv(forked.ENV_SWITCH, raising=False)
    assert forked.can_fork() == (threading.active_count() == 1)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not forked.can_fork()
    finally:
        stop.set()
        t.join()
    monkeypatch.setenv(forked.ENV_SWITCH, "0")
    assert not forked.can_fork()


def test_walk_chooses_the_fork_by_itself_when_it_can(monkeypatch):
    calls = []
    real = forked.walk_forked
    monkeypatch.setattr("vulnwatch.walker.cache.walk_forked", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr("vulnwatch.walker.cache.can_fork", lambda: True)
    blobs = Blobs(*SCENARIOS["whiteouts"])
    walk_cached(blobs.names, blobs.open, plan())
    assert calls == [1]
    monkeypatch.setattr("vulnwatch.walker.cache.can_fork", lambda: False)
    walk_cached(blobs.names, blobs.open, plan())
    assert calls == [1]


# ------------------------------------------------------------------ the child inflates

def test_this_process_hands_the_child_the_blobs_bytes_undecoded(monkeypatch):
    """This process only fetches (and verifies) the blobs; the child inflates them: decoding
    here is refused, and the forked walk still equals the walk in one process (gzip, zstd and
    plain layers, multi-member gzip)."""
    import zstandard

    from vulnwatch.walker import prefetch
    raw = [BASE, SCENARIOS["whiteouts"][1], layer_bytes(lambda w: (w.file(f"{SITE}/z-1.0.dist-info/METADATA",
                                                                            meta("z", "1.0")),))]
    blobs = Blobs(*raw)
    zst = zstandard.ZstdCompressor().compress(raw[2])
    two_members = gzip.compress(raw[1][:3000], mtime=0) + gzip.compress(raw[1][3000:], mtime=0)
    blobs.names = [blobs.names[0], digest(two_members), digest(zst)]
    blobs.by_digest.update({digest(zst): zst, digest(two_members): two_members})
    serial = walk(blobs.names, blobs.open, fork=False)

    def refused(*a, **kw):
        raise AssertionError("this process decoded a blob")
    monkeypatch.setattr(prefetch, "decoded_chunks", refused)
    assert walk(blobs.names, blobs.open, fork=True) == serial


def test_unsupported_compression_same_error():
    import bz2
    blobs = Blobs(BASE)
    bad = bz2.compress(text_layer(3))
    blobs.by_digest[digest(bad)] = bad
    blobs.names.append(digest(bad))
    one, two = failure(blobs.names, blobs.open, fork=False), failure(blobs.names, blobs.open, fork=True)
    assert type(two) is type(one) is LayerError and str(two) == str(one)
    assert two.code == one.code == "LayerUnsupported" and two.layer == digest(bad)


def test_chunk_stream_reads_pieces_as_a_stream():
    from vulnwatch.walker.source import ChunkStream
    s = ChunkStream(iter([b"abcdef", b"g", b"hij"]))
    assert [s.read(4), s.read(4), s.read(4), s.read(10), s.read(3), s.read(3)] == \
        [b"abcd", b"ef", b"g", b"hij", b"", b""]

    def failing():
        yield b"xy"
        raise OSError("connection reset")
    s = ChunkStream(failing())
    assert s.read(-1) == b"xy"
    with pytest.raises(OSError, match="connection reset"):
        s.read(5)
