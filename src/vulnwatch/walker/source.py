"""A layer blob as its uncompressed tar stream: gzip, zstd or plain, sniffed from the first bytes
(media types are not trusted), read in bounded chunks with the byte and ratio limits enforced on
the uncompressed side."""

from __future__ import annotations

import io
import zlib
from typing import IO, Iterator

import zstandard

try:  # ISA-L inflates about twice as fast as zlib; same API, same checks (CRC, length)
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _inflate = zlib
_INFLATE_ERRORS = (zlib.error,) if _inflate is zlib else (zlib.error, _inflate.error)

from .limits import LayerError, LayerLimits

DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zstandard.ZstdError, *_INFLATE_ERRORS)
"""What decoding a damaged blob raises (:class:`LayerSource` turns these into a LayerError)."""

__all__ = ["CHUNK_SIZE", "ChunkStream", "Chunks", "DECODE_ERRORS", "LayerSource", "decoded_chunks", "open_layer",
           "raw_chunks", "read_head"]


class _CountingReader(io.RawIOBase):
    """Counts bytes read from a binary stream (the compressed side)."""

    def __init__(self, raw: IO[bytes], prefix: bytes = b"") -> None:
        self._raw = raw
        self._prefix = prefix
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = len(b)
        if self._prefix:
            chunk = self._prefix[:n]
            self._prefix = self._prefix[len(chunk):]
        else:
            chunk = self._raw.read(n)
        if not chunk:
            return 0
        b[: len(chunk)] = chunk
        self.count += len(chunk)
        return len(chunk)


CHUNK_SIZE = 1 << 20
"""Compressed bytes read from the blob at a time, and most uncompressed bytes produced at
a time: bodies nobody wants are skipped in chunks this large."""


Chunks = Iterator[tuple[bytes, "int | None"]]
"""Pieces of a layer's uncompressed tar stream, each with the compressed bytes consumed so far
(None for an uncompressed layer)."""


def decoded_chunks(layer: str, stream: IO[bytes], head: bytes, size: int = CHUNK_SIZE) -> Chunks:
    """The uncompressed pieces of a blob whose first bytes are ``head`` (gzip, zstd or plain,
    sniffed). Unsupported compressions raise :class:`LayerError` here; damage raises
    ``OSError``/``EOFError``/the decompressor's error while iterating. Safe to run in another
    thread than the one reading the tar stream (:mod:`.prefetch`). ``size``: the most bytes
    read or produced at a time."""
    if head.startswith(b"\x1f\x8b"):
        return _gunzip(stream, head, size)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return _unzstd(stream, head, size)
    if head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ"):
        raise LayerError(layer, "bzip2/xz compressed layers are not supported (OCI layers are tar, gzip or zstd)",
                         code="LayerUnsupported")
    return _raw(stream, head, size)  # uncompressed tar (the tar reader checks)


def raw_chunks(stream: IO[bytes], head: bytes, size: int = CHUNK_SIZE) -> Chunks:
    """A blob's bytes as read, undecoded (``head`` first), each with None: for a reader that
    decodes them itself (:func:`decoded_chunks` over :class:`ChunkStream`)."""
    return _raw(stream, head, size)


class ChunkStream:
    """A binary stream (``read``) over an iterator of byte pieces: a blob handed over in pieces,
    read back as a stream by :func:`decoded_chunks`. What the iterator raises, ``read`` raises."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._rest = b""
        self._view = memoryview(b"")

    def read(self, n: int = -1) -> bytes:
        if not self._view:
            self._rest = next(self._pieces, b"")
            self._view = memoryview(self._rest)
            if not self._rest:
                return b""
        if n < 0 or n >= len(self._view):
            out = self._rest if len(self._view) == len(self._rest) else bytes(self._view)
            self._view = memoryview(b"")
            self._rest = b""
            return out
        out = bytes(self._view[:n])
        self._view = self._view[n:]
        return out


def _gunzip(stream: IO[bytes], data: bytes, size: int) -> Chunks:
    # members one after another (multi-member gzip), zero padding between them allowed
    # (as gzip.GzipFile); zlib checks each member's CRC and length
    total_in = len(data)
    inflater = None
    last_full = False
    while True:
        if inflater is None:
            data = data.lstrip(b"\0")
            while len(data) < 2:
                more = stream.read(size)
                if not more:
                    if data:
                        raise OSError(f"trailing garbage after the last gzip member ({data!r})")
                    return
                total_in += len(more)
                data = (data + more).lstrip(b"\0")
            if not data.startswith(b"\x1f\x8b"):
                raise OSError(f"not a gzip member after the previous one (starts {data[:4]!r})")
            inflater = _inflate.decompressobj(16 + zlib.MAX_WBITS)
        if not data and not last_full:
            data = stream.read(size)
            if not data:
                out = inflater.flush()
                if out:
                    yield out, total_in
                if not inflater.eof:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
                return
            total_in += len(data)
        out = inflater.decompress(data, size)
        last_full = len(out) >= size
        if inflater.eof:
            data = inflater.unused_data
            inflater = None
            last_full = False
        else:
            data = inflater.unconsumed_tail
        if out:
            yield out, total_in - len(data)


def _unzstd(stream: IO[bytes], head: bytes, size: int) -> Chunks:
    counting = _CountingReader(stream, head)
    reader = zstandard.ZstdDecompressor().stream_reader(counting, read_across_frames=True)
    while True:
        out = reader.read(size)
        if not out:
            return
        yield out, counting.count


def _raw(stream: IO[bytes], head: bytes, size: int) -> Chunks:
    yield head, None
    while True:
        out = stream.read(size)
        if not out:
            return
        yield out, None


class LayerSource:
    """A layer blob as chunks of its uncompressed tar stream (``next_chunk``), enforcing
    the limits on the uncompressed side: total bytes and the compression ratio.

    ``chunks`` are the decoded pieces (:func:`decoded_chunks`, here or from a prefetch thread)."""

    def __init__(self, layer: str, chunks: Chunks, limits: LayerLimits, total_before: int) -> None:
        self._layer = layer
        self._limits = limits
        self._total_before = total_before
        self.count = 0
        """Uncompressed bytes produced so far."""
        self.compressed: int | None = None
        """Compressed bytes consumed so far (None for an uncompressed layer)."""
        self.current_path: str | None = None
        """The tar entry being read, for error messages."""
        self._chunks = chunks

    def next_chunk(self) -> bytes:
        """The next piece of the uncompressed stream; b"" at its end. Raises LayerError."""
        try:
            chunk, compressed = next(self._chunks, (b"", None))
        except DECODE_ERRORS as e:
            raise LayerError(self._layer, f"cannot decompress ({e}); the blob is damaged or not a layer",
                             path=self.current_path, code="LayerCorrupt") from e
        if not chunk:
            return b""
        self.compressed = compressed
        self.count += len(chunk)
        lim = self._limits
        if self._total_before + self.count > lim.max_total_bytes:
            raise LayerError(self._layer, f"image exceeds {lim.max_total_bytes} uncompressed bytes "
                             "(limits.max_image_bytes); raise the limit if the image is genuine",
                             path=self.current_path, code="LayerTooLarge")
        if self.compressed is not None and self.count >= lim.ratio_min_bytes:
            ratio = self.count / max(1, self.compressed)
            if ratio > lim.max_ratio:
                raise LayerError(self._layer, f"compression ratio {ratio:.0f}:1 exceeds {lim.max_ratio:.0f}:1 "
                                 "(possible decompression bomb; limits.max_compression_ratio)",
                                 path=self.current_path, code="LayerBomb")
        return chunk


def open_layer(layer: str, stream: IO[bytes], limits: LayerLimits, total_before: int) -> LayerSource | None:
    """Sniff compression and return the uncompressed chunks, or None for an empty blob."""
    head = read_head(stream)
    if not head:
        return None
    return LayerSource(layer, decoded_chunks(layer, stream, head), limits, total_before)


def read_head(stream: IO[bytes]) -> bytes:
    """The first bytes of a blob, enough to sniff its compression (b"" for an empty blob)."""
    head = b""
    while len(head) < 6:
        more = stream.read(6 - len(head))
        if not more:
            break
        head += more
    return head
