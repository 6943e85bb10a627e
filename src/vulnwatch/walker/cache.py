"""Per-layer cache of what the walker keeps, so shared layers are pulled and read once.

Images built on the same base share their lower layers. :func:`walk_cached` looks
each layer up in a :class:`LayerCache` before fetching its blob: a hit is applied
from disk (the blob is never requested), a miss is streamed once, applied and stored.

What one layer contributes (:class:`~vulnwatch.walker.contents.LayerContents`) depends on the
layers below it: their symlinks decide where a path lands (``lib/x`` written through
``lib -> usr/lib`` is ``usr/lib/x``) and under which spellings it is wanted. An entry
is therefore keyed by the layer's *chain id* (the OCI ``ChainID`` idea: the digest of
the layer together with every layer below it), which makes a hit exactly what reading
the blob would give. The price: the same layer on top of a different base is read
again (``COPY --link`` rebases); layers shared from the bottom up, the common case,
are read once.

Each entry is also keyed by an opaque ``key`` the caller gives: whatever, besides the layers,
decides what is kept (the catalogers hash their declarations, the walker limits and the
vulnwatch version into it: :func:`vulnwatch.catalogers.plan.cache_key`), so a change of those is
a miss, never a stale inventory. This file format's version is part of every entry's name.

File format (one file per entry, ``<sha256(chain id, key)>.vwl``)::

    b"VWLAYER\\0"                 magic (8 bytes)
    zstd frame (with checksum) of:
        u32 big-endian            length of the header
        header                    JSON, ASCII: format, version, layer, chain_id, key,
                                  files/executables as [path, mode, length], symlinks,
                                  replaced, deletions, warnings, byte and entry counts
        data                      the kept bytes, files then executables, in header order

Entries are written atomically (temporary file + rename). An unreadable or damaged
entry is logged, deleted and treated as a miss (the layer is read again and stored).
When the directory grows past ``max_bytes`` the least recently used entries (oldest
modification time; a hit touches its file) are deleted. Nothing here is pickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import zstandard

from .contents import LayerContents, WalkedFile, WalkPlan, WalkResult
from .limits import LayerLimits
from .overlay import LayerStack
from .forked import can_fork, walk_forked
from .prefetch import LayerPrefetch

log = logging.getLogger(__name__)

MAGIC = b"VWLAYER\0"
"""First bytes of every cache file."""
FORMAT = "vulnwatch-layer-contents"
"""``format`` field of the header."""
FORMAT_VERSION = 1
"""Bump when the file format or the meaning of LayerContents changes (old entries become misses)."""
SUFFIX = ".vwl"
"""File name ending of cache entries."""
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
"""Default size bound of a cache directory (1 GiB)."""
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_HEADER_LEN = struct.Struct(">I")
_STALE_TMP_SECONDS = 3600

LayerProgress = Callable[[int, int], None]
"""``progress(layers_done, layers_total)``, called before each layer and once at the end."""


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/vulnwatch/layers`` (``~/.cache/vulnwatch/layers`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vulnwatch" / "layers"


def is_digest(name: str) -> bool:
    """Whether a layer name is a content digest (``sha256:<hex>``): only those are cached,
    since only they identify the same bytes in every image."""
    return bool(_DIGEST.match(name))


def chain_ids(layers: Sequence[str]) -> list[str]:
    """Chain id of each layer, bottom first: the first layer's digest, then
    ``sha256(chain id below + " " + digest)``; equal only when the layer and every
    layer below it are equal."""
    out: list[str] = []
    for digest in layers:
        if not out:
            out.append(digest)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {digest}".encode()).hexdigest())
    return out


# ---------------------------------------------------------------- file format

class CorruptEntry(ValueError):
    """A cache file that cannot be decoded (damaged, truncated, other format or key)."""


def encode(contents: LayerContents, *, chain_id: str, key: str) -> bytes:
    """The bytes of a cache file holding ``contents`` (see the module docstring)."""
    files = list(contents.files.values())
    execs = list(contents.executables.values())
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "layer": contents.layer,
        "chain_id": chain_id,
        "key": key,
        "files": [[f.path, f.mode, len(f.data)] for f in files],
        "executables": [[f.path, f.mode, len(f.data)] for f in execs],
        "symlinks": [[p, t] for p, t in contents.symlinks.items()],
        "replaced": list(contents.replaced),
        "deletions": [[p, bool(o)] for p, o in contents.deletions],
        "warnings": list(contents.warnings),
        "uncompressed_bytes": contents.uncompressed_bytes,
        "entries": contents.entries,
    }
    head = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    payload = b"".join([_HEADER_LEN.pack(len(head)), head, *(f.data for f in files), *(f.data for f in execs)])
    return MAGIC + zstandard.ZstdCompressor(level=3, write_checksum=True).compress(payload)


def decode(blob: bytes, *, layer: str, chain_id: str, key: str) -> LayerContents:
    """Inverse of :func:`encode`, checking that the entry is the one asked for.
    Raises :class:`CorruptEntry`."""
    if not blob.startswith(MAGIC):
        raise CorruptEntry("not a vulnwatch layer cache file (bad magic)")
    try:
        payload = zstandard.ZstdDecompressor().decompress(blob[len(MAGIC):])
    except zstandard.ZstdError as e:
        raise CorruptEntry(f"cannot decompress ({e})") from None
    try:
        (hlen,) = _HEADER_LEN.unpack_from(payload)
        header = json.loads(payload[4:4 + hlen].decode("ascii"))
        if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
            raise CorruptEntry(f"format {header.get('format')!r} version {header.get('version')!r}, "
                               f"expected {FORMAT!r} version {FORMAT_VERSION}")
        if header["layer"] != layer or header["chain_id"] != chain_id or header["key"] != key:
            raise CorruptEntry("entry is for another layer, chain or cataloger key")
        pos = 4 + hlen

        def take(rows: list) -> dict[str, WalkedFile]:
            nonlocal pos
            out: dict[str, WalkedFile] = {}
            for path, mode, length in rows:
                if not isinstance(path, str) or not isinstance(mode, int) or not isinstance(length, int) \
                        or length < 0 or pos + length > len(payload):
                    raise CorruptEntry(f"bad file record for {path!r}")
                out[path] = WalkedFile(path, payload[pos:pos + length], layer, mode)
                pos += length
            return out

        files = take(header["files"])
        execs = take(header["executables"])
        if pos != len(payload):
            raise CorruptEntry(f"{len(payload) - pos} bytes of data not described by the header")
        return LayerContents(
            layer,
            files=files,
            executables=execs,
            symlinks={str(p): str(t) for p, t in header["symlinks"]},
            replaced=tuple(str(p) for p in header["replaced"]),
            deletions=tuple((str(p), bool(o)) for p, o in header["deletions"]),
            warnings=tuple(str(w) for w in header["warnings"]),
            uncompressed_bytes=int(header["uncompressed_bytes"]),
            entries=int(header["entries"]),
        )
    except CorruptEntry:
        raise
    except (KeyError, TypeError, ValueError, struct.error, UnicodeDecodeError) as e:
        raise CorruptEntry(f"damaged header ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------- the cache

@dataclasses.dataclass
class CacheStats:
    """Counters since the cache was opened (for logs and tests)."""

    hits: int = 0
    """Entries found and applied."""
    misses: int = 0
    """Lookups that found nothing usable (including corrupt entries)."""
    stores: int = 0
    """Entries written."""
    corrupt: int = 0
    """Entries found damaged, deleted and treated as misses."""
    evicted: int = 0
    """Entries deleted to stay under ``max_bytes``."""


class LayerCache:
    """A directory of :class:`~vulnwatch.walker.contents.LayerContents`, one file per (chain id,
    cataloger key). Safe to share between threads and processes (atomic renames; a file
    vanishing under a reader is a miss). Never raises for cache trouble: problems are
    logged and the layer is read from the registry instead.

    ``directory`` defaults to :func:`default_directory`; ``max_bytes`` bounds its size
    (least recently used entries go first; an entry larger than that is not stored).
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._reading: dict[Path, threading.Event] = {}   # entries a thread of this process is reading

    def __repr__(self) -> str:
        return f"LayerCache({str(self.directory)!r}, max_bytes={self.max_bytes})"

    def path_for(self, chain_id: str, key: str) -> Path:
        """Where the entry for a layer (by chain id) under a cataloger key lives."""
        name = hashlib.sha256(f"{FORMAT_VERSION}\0{key}\0{chain_id}".encode()).hexdigest()
        return self.directory / f"{name}{SUFFIX}"

    def get(self, layer: str, chain_id: str, key: str) -> LayerContents | None:
        """The stored contents of ``layer`` (whose chain id is ``chain_id``) for ``key``,
        or None. A damaged entry is logged, deleted and reported as None."""
        path = self.path_for(chain_id, key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            self._count("misses")
            return None
        except OSError as e:
            log.warning("layer cache: cannot read %s for layer %s (%s); reading the layer instead", path, layer, e)
            self._count("misses")
            return None
        try:
            contents = decode(blob, layer=layer, chain_id=chain_id, key=key)
        except CorruptEntry as e:
            log.warning("layer cache: %s for layer %s is unusable (%s); deleting it, the layer is read again",
                        path, layer, e)
            self._count("corrupt")
            self._count("misses")
            _unlink(path)
            return None
        try:
            os.utime(path)  # least recently used goes first
        except OSError:
            pass
        self._count("hits")
        return contents

    def acquire(self, layer: str, chain_id: str, key: str, *,
                stop: threading.Event | None = None) -> LayerContents | None:
        """:meth:`get`, waiting while another thread of this process reads the same layer (so
        images scanned at once that share a layer read it once): the stored contents, or None,
        and then the caller holds the claim to read the layer itself and must :meth:`release`
        it (after :meth:`put`, or on failure). Returns None unclaimed when ``stop`` is set."""
        path = self.path_for(chain_id, key)
        while True:
            contents = self.get(layer, chain_id, key)
            if contents is not None:
                return contents
            with self._lock:
                reading = self._reading.get(path)
                if reading is None:
                    self._reading[path] = threading.Event()
                    return None
            while not reading.wait(0.1):
                if stop is not None and stop.is_set():
                    return None
            # the other reader finished: stored (a hit now) or failed (read it here)

    def release(self, chain_id: str, key: str) -> None:
        """End the claim :meth:`acquire` gave on a layer; threads waiting for it look again."""
        with self._lock:
            reading = self._reading.pop(self.path_for(chain_id, key), None)
        if reading is not None:
            reading.set()

    def put(self, contents: LayerContents, chain_id: str, key: str) -> Path | None:
        """Store ``contents`` atomically; returns the file written, or None when it was
        not stored (too large, or the directory is not writable: logged)."""
        blob = encode(contents, chain_id=chain_id, key=key)
        if len(blob) > self.max_bytes:
            log.info("layer cache: contents of layer %s (%d bytes) exceed max_bytes=%d; not stored",
                     contents.layer, len(blob), self.max_bytes)
            return None
        path = self.path_for(chain_id, key)
        tmp: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.directory)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
            tmp = None
        except OSError as e:
            log.warning("layer cache: cannot store layer %s in %s (%s); continuing without caching it",
                        contents.layer, self.directory, e)
            return None
        finally:
            if tmp is not None:
                _unlink(Path(tmp))
        self._count("stores")
        self.evict()
        return path

    def entries(self) -> list[tuple[Path, float, int]]:
        """``(path, mtime, size)`` of every entry, least recently used first."""
        out = []
        try:
            it = list(os.scandir(self.directory))
        except OSError:
            return []
        now = time.time()
        for e in it:
            try:
                st = e.stat()
            except OSError:
                continue
            if e.name.startswith(".tmp-"):
                if now - st.st_mtime > _STALE_TMP_SECONDS:  # left by a killed writer
                    _unlink(Path(e.path))
                continue
            if e.name.endswith(SUFFIX):
                out.append((Path(e.path), st.st_mtime, st.st_size))
        out.sort(key=lambda t: (t[1], t[0].name))
        return out

    def size(self) -> int:
        """Bytes held by the entries."""
        return sum(s for _, _, s in self.entries())

    def evict(self) -> int:
        """Delete least recently used entries until the directory holds at most
        ``max_bytes``; returns how many were deleted."""
        entries = self.entries()
        total = sum(s for _, _, s in entries)
        deleted = 0
        for path, _, size in entries:
            if total <= self.max_bytes:
                break
            if _unlink(path):
                deleted += 1
            total -= size
        if deleted:
            self._count("evicted", deleted)
            log.debug("layer cache: evicted %d entries from %s", deleted, self.directory)
        return deleted

    def clear(self) -> None:
        """Delete every entry."""
        for path, _, _ in self.entries():
            _unlink(path)

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats, what, getattr(self.stats, what) + n)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- walking with the cache

def walk_cached(layers: Sequence[str], open_blob: Callable[[str], BinaryIO], plan: WalkPlan, *, key: str = "",
                limits: LayerLimits | None = None, cache: LayerCache | None = None,
                progress: LayerProgress | None = None, fork: bool | None = None) -> WalkResult:
    """Walk an image given its layer digests, bottom first, and ``open_blob(digest)`` (a stream,
    closed here after reading). With a ``cache``, layers found in it under ``key`` are not
    opened at all and layers read are stored (a layer another thread of this process is reading
    is waited for, then taken from the cache); without one every blob is opened once. Blobs are
    opened, fetched and inflated one after another in a thread (:mod:`.prefetch`), a bounded
    number of chunks ahead of the tar reader; layers are still applied bottom first. The tar
    reader (with the inflate: this process then only fetches and hashes) runs in a forked child
    process (:mod:`.forked`: a second core) when ``fork`` is True,
    or when it is None and :func:`.forked.can_fork` (one thread in the process); the result is
    the same either way. Names that are not digests are never cached. Raises
    :class:`~vulnwatch.walker.limits.LayerError` and whatever ``open_blob`` raises."""
    stack = LayerStack(plan, limits=limits)
    chains = chain_ids(layers)
    total = len(layers)
    jobs: list[tuple[int, str, str | None]] = []
    cacheable = cache is not None
    for i, (digest, chain_id) in enumerate(zip(layers, chains)):
        cacheable = cacheable and is_digest(digest)  # a chain with a non-digest name below is not
        jobs.append((i, digest, chain_id if cacheable else None))
    if fork or (fork is None and layers and can_fork()):
        return walk_forked(layers, open_blob, plan, jobs, chains, key=key, limits=limits, cache=cache,
                           progress=progress)
    # blobs are opened and inflated in a thread, ahead of the tar reader here
    with LayerPrefetch(jobs, open_blob, cache=cache, key=key) as ahead:
        for i, (digest, chain_id) in enumerate(zip(layers, chains)):
            if progress:
                progress(i, total)
            contents, chunks = ahead.layer(i)
            if contents is None:
                contents = stack.read_chunks(digest, chunks)
                ahead.done(i)
                if ahead.claimed(i) and cache is not None:
                    cache.put(contents, chain_id, key)
                    ahead.release(i)
            stack.apply(contents)
        ahead.finish()
    if progress:
        progress(total, total)
    return stack.result()
