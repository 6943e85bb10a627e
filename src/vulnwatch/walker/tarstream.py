"""A small, strict, forward-only reader of tar streams (what image layers are).

:class:`TarStreamReader` walks the 512-byte headers of an uncompressed tar stream
that it pulls, chunk by chunk, from a callable (the layer walker hands it the output
of the decompressor). It yields one :class:`TarEntry` per member; the member's body
can be read through :meth:`TarEntry.open` (a bounded stream) while the entry is the
current one, and whatever is not read is skipped in whole chunks when the walk moves
on. Nothing is ever seeked or buffered beyond one chunk.

Formats: v7, ustar (``prefix`` field), GNU (long names and link names ``L``/``K``,
old sparse files ``S``), PAX (per-entry ``x`` headers: ``path``, ``linkpath``, ``size``;
global ``g`` headers are skipped, as the container runtimes do), numbers in octal or
base-256. The reading rules follow Go's ``archive/tar`` (what Docker and containerd
extract layers with): links, directories, devices and fifos have no body whatever
their size field says; a GNU long name beats a PAX path; a lone zero block followed
by data is an error; the end is two zero blocks or the end of the stream.

Strict: a header whose checksum (unsigned or signed, as tar writers differ) does not
match, a malformed number or PAX record, metadata headers over 1 MiB, or a stream that
ends inside a header or body raise :class:`TarFormatError` naming the entry number and
the byte offset of its header.
"""

from __future__ import annotations

import enum
import io
import zlib
from collections.abc import Callable, Iterator

BLOCK_SIZE = 512
"""Tar's block size: headers are one block, bodies are padded to whole blocks."""
MAX_METADATA_SIZE = 1 << 20
"""Largest body of a metadata header (GNU long name/link, PAX) that is read (as Go)."""

_ZERO_BLOCK = bytes(BLOCK_SIZE)
_LOW_BYTES = bytes(range(128))
_USTAR_MAGIC = b"ustar\x00"


class EntryType(enum.Enum):
    """What a tar member is."""

    FILE = "file"
    """Regular file (typeflags ``0``, NUL and ``7``)."""
    HARDLINK = "hardlink"
    """Hard link to an earlier member named by ``linkname`` (``1``); no body."""
    SYMLINK = "symlink"
    """Symbolic link to ``linkname`` (``2``); no body."""
    CHAR = "char"
    """Character device (``3``); no body."""
    BLOCK = "block"
    """Block device (``4``); no body."""
    DIRECTORY = "directory"
    """Directory (``5``, or a NUL typeflag with a name ending in ``/``); no body."""
    FIFO = "fifo"
    """Named pipe (``6``); no body."""
    SPARSE = "sparse"
    """GNU sparse file (``S``, or PAX ``GNU.sparse.*`` keys). The body is the stored
    data (and, for PAX sparse 1.0, the sparse map), not the file's content: it is
    skipped, never expanded."""
    OTHER = "other"
    """Any other typeflag (GNU dumpdir ``D``, volume labels, vendor types); its body
    (``size`` bytes) is skipped."""


_TYPES: dict[bytes, EntryType] = {
    b"0": EntryType.FILE, b"\0": EntryType.FILE, b"7": EntryType.FILE,
    b"1": EntryType.HARDLINK, b"2": EntryType.SYMLINK, b"3": EntryType.CHAR, b"4": EntryType.BLOCK,
    b"5": EntryType.DIRECTORY, b"6": EntryType.FIFO, b"S": EntryType.SPARSE,
}
_NO_BODY = frozenset({EntryType.HARDLINK, EntryType.SYMLINK, EntryType.CHAR, EntryType.BLOCK,
                      EntryType.DIRECTORY, EntryType.FIFO})


class TarFormatError(Exception):
    """The stream is not a well-formed tar: names the entry (counted from 1) and the byte
    offset of its header in the uncompressed stream. ``truncated`` tells an early end
    of the stream from damaged content; ``name`` is the member's name when the damage is
    in its body (its header was read), else None."""

    def __init__(self, message: str, *, number: int, offset: int, truncated: bool = False,
                 name: str | None = None) -> None:
        super().__init__(f"tar entry #{number} (header at byte {offset}): {message}")
        self.number = number
        self.offset = offset
        self.truncated = truncated
        self.name = name


class TarEntry:
    """One member of the archive, with the GNU/PAX metadata headers before it applied."""

    __slots__ = ("name", "type", "size", "mode", "linkname", "number", "offset", "_reader")

    def __init__(self, name: str, type: EntryType, size: int, mode: int, linkname: str,
                 number: int, offset: int, reader: "TarStreamReader") -> None:
        self.name = name
        """Member name as written (not normalised: may start with ``./`` or ``/``, end with ``/``)."""
        self.type = type
        """What the member is."""
        self.size = size
        """Size field (after PAX ``size``). Only ``FILE``, ``SPARSE`` and ``OTHER`` have a body."""
        self.mode = mode
        """The mode field as written (permission bits, sometimes with file-type bits)."""
        self.linkname = linkname
        """Target of a hard link or symlink ('' otherwise)."""
        self.number = number
        """Position of the member in the archive, counted from 1 (metadata headers not counted)."""
        self.offset = offset
        """Byte offset of the member's first header (metadata included) in the uncompressed stream."""
        self._reader = reader

    def open(self) -> "TarBody":
        """The member's body as a bounded, forward-only stream; valid until the walk moves
        on to the next member. Members without a body read as empty. Open it once: a
        second stream for the same member cannot be read after the first was."""
        return TarBody(self._reader, self)

    def __repr__(self) -> str:
        return (f"TarEntry(name={self.name!r}, type={self.type.value}, size={self.size}, mode={self.mode:o}, "
                f"linkname={self.linkname!r}, number={self.number})")


class TarBody(io.RawIOBase):
    """The body of the current member: ``read`` never goes past it; ``seek`` moves only
    forward (``seekable()`` is False); reading after the walk moved on raises ValueError."""

    def __init__(self, reader: "TarStreamReader", entry: TarEntry) -> None:
        self._reader = reader
        self._entry = entry
        self._size = 0 if entry.type in _NO_BODY else entry.size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed tar body")
        if self._reader._current is not self._entry or self._reader._body_pos != self._pos:
            raise ValueError(f"the body of tar entry #{self._entry.number} ({self._entry.name!r}) is no "
                             "longer available: read it before moving to the next entry")

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        remaining = self._size - self._pos
        if size is None or size < 0 or size > remaining:
            size = remaining
        if size == 0:
            return b""
        data = self._reader._read(size)
        self._pos += len(data)
        self._reader._body_pos = self._pos
        if len(data) < size:
            raise self._reader._error(self._entry.number, self._entry.offset,
                                      f"the stream ends inside the body of {self._entry.name!r}", truncated=True,
                                      name=self._entry.name)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Forward only: moving back raises io.UnsupportedOperation."""
        self._check()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < self._pos:
            raise io.UnsupportedOperation("tar bodies are read forward only")
        target = min(target, self._size)
        if target > self._pos:
            if not self._reader._skip(target - self._pos):
                raise self._reader._error(self._entry.number, self._entry.offset,
                                          f"the stream ends inside the body of {self._entry.name!r}",
                                          truncated=True, name=self._entry.name)
            self._pos = target
            self._reader._body_pos = target
        return self._pos


def _cstr(field: bytes) -> bytes:
    i = field.find(b"\0")
    return field if i < 0 else field[:i]


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _number(field: bytes, what: str) -> int:
    """A numeric header field: octal (NUL/space padded) or base-256 (first byte 0x80/0xff)."""
    first = field[0]
    if first & 0x80:
        if first == 0xFF:
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(bytes([first & 0x7F]) + field[1:], "big")
    digits = field.strip(b" \0")  # as Go: NUL/space padding on either side, digits only
    if not digits:
        return 0
    if not digits.isdigit():
        raise ValueError(f"bad {what} field {field!r}")
    return int(digits, 8)  # ValueError on 8 or 9


def _checksum_ok(header: bytes) -> bool:
    # Byte sum via adler32 (its low half is 1 + sum mod 65521; 256 bytes sum to at most
    # 65280, so two halves are exact): 6x faster than sum() on bytes.
    total = (zlib.adler32(header[:256]) & 0xFFFF) + (zlib.adler32(header[256:]) & 0xFFFF) - 2
    field = header[148:156]
    unsigned = total - sum(field) + 8 * 32  # the checksum field counts as spaces
    try:
        stored = _number(field, "checksum")
    except ValueError:
        return False
    if stored == unsigned:
        return True
    # old writers summed signed chars: every byte >= 128 counts 256 less
    high = len(header[:148].translate(None, _LOW_BYTES)) + len(header[156:].translate(None, _LOW_BYTES))
    return stored == unsigned - 256 * high


def parse_pax_records(data: bytes) -> dict[str, str]:
    """PAX extended header body (``"<len> <key>=<value>\\n"`` records) -> key: value.
    Stops at NUL padding. Raises ValueError on a malformed record."""
    out: dict[str, str] = {}
    pos = 0
    end = len(data)
    while pos < end and data[pos] != 0:
        space = data.find(b" ", pos, pos + 20)
        if space < 0 or not data[pos:space].isdigit():
            raise ValueError(f"malformed PAX record at byte {pos} of the extended header")
        length = int(data[pos:space])
        record_end = pos + length
        if length <= space - pos + 1 or record_end > end or data[record_end - 1] != 0x0A:
            raise ValueError(f"malformed PAX record at byte {pos} of the extended header")
        key, eq, value = data[space + 1: record_end - 1].partition(b"=")
        if not eq or not key:
            raise ValueError(f"malformed PAX record at byte {pos} of the extended header")
        out[_decode(key)] = _decode(value)
        pos = record_end
    return out


class TarStreamReader:
    """Iterate over the members of the tar stream that ``next_chunk`` produces.

    ``next_chunk()`` returns the next piece of the uncompressed stream, of any size, and
    ``b""`` at its end; exceptions it raises pass through unchanged. Iterating yields
    :class:`TarEntry` objects; after each one, the unread part of its body is skipped.
    Raises :class:`TarFormatError`.
    """

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next_chunk = next_chunk
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._current: TarEntry | None = None
        self._body_pos = 0

    @property
    def offset(self) -> int:
        """Bytes of the uncompressed stream consumed so far."""
        return self._base + self._pos

    # -- buffer

    def _read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, fewer only at the end of the stream."""
        buf, pos = self._buf, self._pos
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts = [buf[pos:]]
        need = end - len(buf)
        self._base += len(buf)
        while True:
            chunk = self._next_chunk()
            if not chunk:
                self._buf, self._pos = b"", 0
                return b"".join(parts)
            if len(chunk) >= need:
                parts.append(chunk[:need])
                self._buf, self._pos = chunk, need
                return b"".join(parts)
            parts.append(chunk)
            need -= len(chunk)
            self._base += len(chunk)

    def _skip(self, n: int) -> bool:
        """Move ``n`` bytes forward; False if the stream ends first."""
        end = self._pos + n
        if end <= len(self._buf):
            self._pos = end
            return True
        need = end - len(self._buf)
        self._base += len(self._buf)
        self._buf, self._pos = b"", 0
        while True:
            chunk = self._next_chunk()
            if not chunk:
                return False
            if len(chunk) >= need:
                self._buf, self._pos = chunk, need
                return True
            need -= len(chunk)
            self._base += len(chunk)

    @staticmethod
    def _error(number: int, offset: int, message: str, *, truncated: bool = False,
               name: str | None = None) -> TarFormatError:
        return TarFormatError(message, number=number, offset=offset, truncated=truncated, name=name)

    # -- walk

    def __iter__(self) -> Iterator[TarEntry]:
        number = 0
        pax: dict[str, str] | None = None
        long_name: bytes | None = None
        long_link: bytes | None = None
        entry_offset = -1  # first header of the current member (metadata included)
        while True:
            offset = self._base + self._pos
            if entry_offset < 0:
                entry_offset = offset
            header = self._read(BLOCK_SIZE)
            if len(header) < BLOCK_SIZE:
                if not header and pax is None and long_name is None and long_link is None:
                    if offset == 0:
                        raise self._error(1, 0, "the stream is empty, not a tar archive")
                    return  # end of stream without end-of-archive blocks: accepted, as tar does
                raise self._error(number + 1, entry_offset, "the stream ends inside a header", truncated=True)
            if header == _ZERO_BLOCK:
                second = self._read(BLOCK_SIZE)
                if not second.strip(b"\0"):
                    return  # end-of-archive
                raise self._error(number + 1, offset, "a lone zero block followed by data (damaged archive)")
            if not _checksum_ok(header):
                raise self._error(number + 1, offset, f"header checksum mismatch (stored {header[148:156]!r}); "
                                  "the data is damaged or not a tar archive")
            flag = header[156:157]
            try:
                size = _number(header[124:136], "size")
                if size < 0:
                    raise ValueError(f"negative size {size}")
                if flag in b"xgLK":
                    # metadata header: its body describes the next member
                    if size > MAX_METADATA_SIZE:
                        raise ValueError(f"{flag.decode()!r} metadata header of {size} bytes (over "
                                         f"{MAX_METADATA_SIZE}; hostile or damaged)")
                    body = self._read(size)
                    if len(body) < size or not self._skip(-size % BLOCK_SIZE):
                        raise self._error(number + 1, entry_offset, "the stream ends inside a metadata header",
                                          truncated=True)
                    if flag == b"x":
                        pax = parse_pax_records(body)
                    elif flag == b"L":
                        long_name = _cstr(body)
                    elif flag == b"K":
                        long_link = _cstr(body)
                    # 'g' (global PAX): skipped, as Go's archive/tar (Docker, containerd) does
                    continue
                mode = _number(header[100:108], "mode")
            except ValueError as e:
                raise self._error(number + 1, offset, str(e)) from None
            etype = _TYPES.get(flag, EntryType.OTHER)
            if long_name is not None:
                name = _decode(long_name)
            elif pax is not None and "path" in pax:
                name = pax["path"]
            else:
                raw = _cstr(header[:100])
                if header[257:263] == _USTAR_MAGIC:
                    prefix = _cstr(header[345:500])
                    if prefix:
                        raw = prefix + b"/" + raw
                name = _decode(raw)
            if long_link is not None:
                linkname = _decode(long_link)
            elif pax is not None and "linkpath" in pax:
                linkname = pax["linkpath"]
            else:
                linkname = _decode(_cstr(header[157:257]))
            if pax is not None:
                if "size" in pax:
                    if not pax["size"].isdigit():
                        raise self._error(number + 1, entry_offset, f"bad PAX size {pax['size']!r}")
                    size = int(pax["size"])
                if any(k.startswith("GNU.sparse.") for k in pax):
                    etype = EntryType.SPARSE
                    if "GNU.sparse.name" in pax and long_name is None:
                        name = pax["GNU.sparse.name"]
            if etype is EntryType.FILE and flag == b"\0" and name.endswith("/"):
                etype = EntryType.DIRECTORY
            elif etype is EntryType.SPARSE and flag == b"S" and header[482]:
                # old GNU sparse: more sparse map blocks follow the header
                while True:
                    ext = self._read(BLOCK_SIZE)
                    if len(ext) < BLOCK_SIZE:
                        raise self._error(number + 1, entry_offset, "the stream ends inside a sparse map",
                                          truncated=True)
                    if not ext[504]:
                        break
            number += 1
            entry = TarEntry(name, etype, size, mode, linkname, number, entry_offset, self)
            pax = long_name = long_link = None
            entry_offset = -1
            body_size = 0 if etype in _NO_BODY else size
            self._current = entry
            self._body_pos = 0
            yield entry
            self._current = None
            if not self._skip(body_size - self._body_pos + (-body_size % BLOCK_SIZE)):
                raise self._error(number, entry.offset, f"the stream ends inside the body of {name!r}",
                                  truncated=True, name=name)
