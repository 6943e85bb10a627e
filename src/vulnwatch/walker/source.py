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

__all__ = ["CHUNK_SIZE", "LayerSource", "open_layer"]


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


class LayerSource:
    """A layer blob as chunks of its uncompressed tar stream (``next_chunk``), enforcing
    the limits on the uncompressed side: total bytes and the compression ratio."""

    def __init__(self, layer: str, stream: IO[bytes], head: bytes, limits: LayerLimits,
                 total_before: int) -> None:
        self._layer = layer
        self._limits = limits
        self._total_before = total_before
        self.count = 0
        """Uncompressed bytes produced so far."""
        self.compressed: int | None = None
        """Compressed bytes consumed so far (None for an uncompressed layer)."""
        self.current_path: str | None = None
        """The tar entry being read, for error messages."""
        if head.startswith(b"\x1f\x8b"):
            self.compressed = 0
            self._chunks = self._gunzip(stream, head)
        elif head.startswith(b"\x28\xb5\x2f\xfd"):
            self.compressed = 0
            self._chunks = self._unzstd(stream, head)
        elif head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ"):
            raise LayerError(layer, "bzip2/xz compressed layers are not supported (OCI layers are tar, gzip or zstd)",
                             code="LayerUnsupported")
        else:
            self._chunks = self._raw(stream, head)  # uncompressed tar (the tar reader checks)

    def _gunzip(self, stream: IO[bytes], data: bytes) -> Iterator[bytes]:
        # members one after another (multi-member gzip), zero padding between them allowed
        # (as gzip.GzipFile); zlib checks each member's CRC and length
        total_in = len(data)
        inflater = None
        last_full = False
        while True:
            if inflater is None:
                data = data.lstrip(b"\0")
                while len(data) < 2:
                    more = stream.read(CHUNK_SIZE)
                    if not more:
                        if data:
                            raise OSError(f"trailing garbage after the last gzip member ({data!r})")
                        self.compressed = total_in
                        return
                    total_in += len(more)
                    data = (data + more).lstrip(b"\0")
                if not data.startswith(b"\x1f\x8b"):
                    raise OSError(f"not a gzip member after the previous one (starts {data[:4]!r})")
                inflater = _inflate.decompressobj(16 + zlib.MAX_WBITS)
            if not data and not last_full:
                data = stream.read(CHUNK_SIZE)
                if not data:
                    out = inflater.flush()
                    if out:
                        yield out
                    if not inflater.eof:
                        raise EOFError("compressed file ended before the end-of-stream marker was reached")
                    return
                total_in += len(data)
            out = inflater.decompress(data, CHUNK_SIZE)
            last_full = len(out) >= CHUNK_SIZE
            if inflater.eof:
                data = inflater.unused_data
                inflater = None
                last_full = False
            else:
                data = inflater.unconsumed_tail
            self.compressed = total_in - len(data)
            if out:
                yield out

    def _unzstd(self, stream: IO[bytes], head: bytes) -> Iterator[bytes]:
        counting = _CountingReader(stream, head)
        reader = zstandard.ZstdDecompressor().stream_reader(counting, read_across_frames=True)
        while True:
            out = reader.read(CHUNK_SIZE)
            self.compressed = counting.count
            if not out:
                return
            yield out

    def _raw(self, stream: IO[bytes], head: bytes) -> Iterator[bytes]:
        yield head
        while True:
            out = stream.read(CHUNK_SIZE)
            if not out:
                return
            yield out

    def next_chunk(self) -> bytes:
        """The next piece of the uncompressed stream; b"" at its end. Raises LayerError."""
        try:
            chunk = next(self._chunks, b"")
        except (OSError, EOFError, zstandard.ZstdError, *_INFLATE_ERRORS) as e:
            raise LayerError(self._layer, f"cannot decompress ({e}); the blob is damaged or not a layer",
                             path=self.current_path, code="LayerCorrupt") from e
        if not chunk:
            return b""
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
    head = b""
    while len(head) < 6:
        more = stream.read(6 - len(head))
        if not more:
            break
        head += more
    if not head:
        return None
    return LayerSource(layer, stream, head, limits, total_before)
