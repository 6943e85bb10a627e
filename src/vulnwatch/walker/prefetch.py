"""The layers of one image opened, fetched and inflated in a thread, ahead of the tar reader.

:class:`LayerPrefetch` walks the layers to read bottom first in one thread: for each it asks
the layer cache (waiting while another thread of this process reads the same layer, so a
layer shared by images scanned at once is read once), else opens the blob and decodes it
(:func:`~.source.decoded_chunks`: gzip, zstd or plain; with ``decode=False`` it hands out the
blob's bytes as read, for a reader that decodes them itself: :mod:`.forked`). The pieces go through one bounded
queue (``depth`` pieces of at most :data:`~.source.CHUNK_SIZE`), so memory stays bounded and
the layers reach the reader in order: the reader parses layer *i* while this thread inflates
the rest of it and opens and fetches the next blob, so the next blob's request and transfer
overlap the parse (registry latency is hidden). ISA-L/zlib release the GIL while they inflate,
but every block of output takes the GIL back, and while the reader runs Python code that costs
up to the interpreter's switch interval each time: measured on 2 cores, inflating and parsing
in two threads takes as long as doing both in one (bench/README.md).

Errors are raised in the reader's thread, at the layer they belong to. A layer the reader
finished early (the tar stream ended before the blob did) is closed and its remaining bytes
skipped, as when the reader closed the stream itself.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO, Protocol

from .source import CHUNK_SIZE, DECODE_ERRORS, Chunks, decoded_chunks, raw_chunks, read_head

if TYPE_CHECKING:  # pragma: no cover
    from .contents import LayerContents


class ClaimingCache(Protocol):
    """What the prefetcher needs of a layer cache (:class:`~vulnwatch.walker.cache.LayerCache`
    is one): the stored contents of a layer, or the claim to read it, and the claim's end."""

    def acquire(self, layer: str, chain_id: str, key: str, *,
                stop: threading.Event | None = None) -> "LayerContents | None": ...

    def release(self, chain_id: str, key: str) -> None: ...


__all__ = ["LayerPrefetch"]

DEFAULT_DEPTH = 8
"""Decoded pieces held between the threads at most (each at most ``CHUNK_SIZE`` bytes)."""

_CACHED, _EMPTY, _OPEN, _DATA, _END, _ERROR, _FINISHED = range(7)


class LayerPrefetch:
    """Reads ``jobs`` (``(index, digest, chain id or None)``, bottom first; a chain id means
    the layer may come from ``cache`` under ``key``) in one thread. :meth:`layer` hands out
    layer ``index``'s contents from the cache or its decoded chunks; :meth:`done` tells the
    thread the reader has finished with it; :meth:`release` ends the claim on a cached layer
    the reader has stored. Use as a context manager (``close`` stops the thread)."""

    def __init__(self, jobs: Sequence[tuple[int, str, str | None]], open_blob: Callable[[str], BinaryIO], *,
                 cache: ClaimingCache | None = None, key: str = "", depth: int = DEFAULT_DEPTH,
                 decode: bool = True) -> None:
        self._jobs = list(jobs)
        self._decode = decode   # False: hand out the blob's bytes as read (the forked child inflates)
        self._size = CHUNK_SIZE
        self._open_blob = open_blob
        self._cache = cache
        self._key = key
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._skip = -1                   # layers up to this index are finished by the reader
        self._claims: dict[int, str] = {}  # index -> chain id this reader must store, then release
        self._lock = threading.Lock()
        self._pending: tuple | None = None
        # in a copy of this context: the deadline in force here bounds the blob reads there too
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,), daemon=True,
                                        name="vulnwatch-layers")
        self._thread.start()

    # ------------------------------------------------------------------ the thread
    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        cache, key = self._cache, self._key
        for index, digest, chain in self._jobs:
            if self._stop.is_set():
                return
            try:
                if chain is not None and cache is not None:
                    contents = cache.acquire(digest, chain, key, stop=self._stop)
                    if contents is not None:
                        if not self._put((index, _CACHED, contents)):
                            return
                        continue
                    with self._lock:
                        self._claims[index] = chain
                    if self._stop.is_set():
                        self.release(index)
                        return
                stream = self._open_blob(digest)
                try:
                    head = read_head(stream)
                    if not head:
                        if not self._put((index, _EMPTY, None)):
                            return
                        continue
                    chunks = (decoded_chunks(digest, stream, head, self._size) if self._decode
                              else raw_chunks(stream, head, self._size))
                    if not self._put((index, _OPEN, None)):
                        return
                    try:
                        for pair in chunks:
                            if self._skip >= index:
                                break
                            if not self._put((index, _DATA, pair)):
                                return
                        else:
                            if not self._put((index, _END, None)):
                                return
                            continue
                    except DECODE_ERRORS as e:
                        # for the reader, if it still reads this layer (if it was done with it, what
                        # follows its tar stream does not matter, as if it had closed the stream);
                        # the blob is still read to its end and checked below
                        if self._skip < index and not self._put((index, _ERROR, e)):
                            return
                    # the tar stream ended before the blob did: read the rest without decoding it,
                    # so that the blob's size and digest are checked (a stream that verifies,
                    # like the registry's, raises at its end when they do not match)
                    while stream.read(self._size):
                        if self._stop.is_set():
                            return
                finally:
                    stream.close()
            except BaseException as e:  # raised again in the reader, at this layer (or the next)
                self._put((index, _ERROR, e))
                return
        self._put((len(self._jobs), _FINISHED, None))

    # ------------------------------------------------------------------ the reader's side
    def _get(self) -> tuple:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        while True:
            try:
                return self._queue.get(timeout=0.5)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("layer prefetch thread ended without an answer") from None

    def _next_of(self, index: int) -> tuple:
        while True:
            item = self._get()
            if item[0] >= index:
                return item
            # leftovers of a layer the reader finished early: a failure reading the rest of its
            # blob (its digest or size do not match) is that layer's failure; damage in what
            # follows its tar stream is not (that part is not read)
            if item[1] == _ERROR and not isinstance(item[2], DECODE_ERRORS):
                raise item[2]

    def finish(self) -> None:
        """Wait until the thread has read every blob to its end (a layer whose tar stream ended
        early is read on, undecoded, to check its blob) and raise what that found."""
        self._next_of(len(self._jobs))

    def layer(self, index: int) -> "tuple[LayerContents | None, Chunks | None]":
        """``(contents, None)`` for a layer found in the cache, ``(None, chunks)`` for one read
        from its blob, ``(None, None)`` for an empty blob. Raises what opening it raised."""
        item = self._next_of(index)
        if item[0] != index:  # pragma: no cover - the thread reads every job in order
            raise RuntimeError(f"layer {item[0]} arrived while waiting for layer {index}")
        kind = item[1]
        if kind == _CACHED:
            return item[2], None
        if kind == _EMPTY:
            return None, None
        if kind == _ERROR:
            raise item[2]
        return None, self._chunks(index)

    def _chunks(self, index: int) -> Iterator[tuple[bytes, int | None]]:
        while True:
            item = self._next_of(index)
            if item[0] != index:
                self._pending = item   # not ours (cannot happen before our end): keep it
                return
            kind = item[1]
            if kind == _DATA:
                yield item[2]
            elif kind == _END:
                return
            elif kind == _ERROR:
                raise item[2]

    def done(self, index: int) -> None:
        """The reader has finished layer ``index``: the rest of its blob is not needed."""
        if index > self._skip:
            self._skip = index

    def claimed(self, index: int) -> bool:
        """Whether layer ``index`` was read under a claim on its cache entry (store it, then
        :meth:`release`)."""
        with self._lock:
            return index in self._claims

    def release(self, index: int) -> None:
        """End the claim on layer ``index``'s cache entry (after storing it, or failing)."""
        with self._lock:
            chain = self._claims.pop(index, None)
        if chain is not None and self._cache is not None:
            self._cache.release(chain, self._key)

    def close(self) -> None:
        """Stop the thread and end every claim still held."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)   # a blob read in progress ends within its timeouts
        with self._lock:
            left = list(self._claims)
        for index in left:
            self.release(index)

    def __enter__(self) -> "LayerPrefetch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
