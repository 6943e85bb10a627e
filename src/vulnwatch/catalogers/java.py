"""Java: archives (``*.jar``, ``*.war``, ``*.ear``, ``*.jpi``, ``*.hpi``).

Each ``META-INF/maven/<group>/<artifact>/pom.properties`` is a package; an archive
without one falls back to ``META-INF/MANIFEST.MF`` and its file name. Archives nested
in archives (``WEB-INF/lib/*.jar``, Spring Boot ``BOOT-INF/lib``) are read too, up to
a depth limit.

Archives are *reduced* as the layer walker streams past them (:meth:`JavaArchiveCataloger.reduce`):
only the entries cataloging needs (``pom.properties``, ``MANIFEST.MF``, nested archives,
themselves reduced) are kept, as a small stored zip that :meth:`catalog` reads like the
original. An archive up to :data:`WHOLE_LIMIT` is read whole and reduced with ``zipfile``; a
larger one is read forward only, by its local file headers (data descriptors and zip64
included), so memory does not grow with the archive's size.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO

from ..model import Package
from .interface import CatalogContext, Cataloger, CatalogLimitError, CatalogLimits, CatalogResult
from .purl import purl

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear", ".jpi", ".hpi")
MAX_DEPTH = 3
MAX_NESTED_SIZE = 128 * 1024 * 1024
WHOLE_LIMIT = 16 * 1024 * 1024
"""Archives up to this size are reduced from memory (``zipfile``); larger ones as a stream."""
MAX_KEPT_ENTRY = 1024 * 1024
"""``pom.properties`` / ``MANIFEST.MF`` larger than this are not kept."""
_CHUNK = 64 * 1024


def _kept(name: str) -> bool:
    return (name == "META-INF/MANIFEST.MF"
            or (name.startswith("META-INF/maven/") and name.endswith("/pom.properties")))


_ENTRY_ERRORS = (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, zlib.error, RuntimeError, EOFError)
"""What ``ZipFile.read`` of one entry can raise on a damaged archive: a bad CRC or header,
corrupt deflate data (``zlib.error``), truncated data (``EOFError``), an unsupported
method (``NotImplementedError``), an encrypted entry (``RuntimeError``)."""

_UNREADABLE = b"vulnwatch-unreadable:"
"""What :meth:`JavaArchiveCataloger.reduce` keeps of an archive it cannot read (with the reason)."""


class _Unreadable(Exception):
    """The archive cannot be read forward only (or is not a zip)."""


class _Budget:
    """What reading one top-level archive may cost, nested archives included
    (:class:`~vulnwatch.catalogers.interface.CatalogLimits`: members, inflated bytes, the ratio
    of a member, and a member that inflates past its declared size). A breach raises
    :class:`CatalogLimitError` naming the archive and the member."""

    def __init__(self, limits: CatalogLimits, path: str) -> None:
        self.limits = limits
        self.path = path
        self.members = 0
        self.inflated = 0

    def _fail(self, message: str, key: str) -> CatalogLimitError:
        return CatalogLimitError("java", self.path, message, key=key)

    def member(self, name: str, n: int = 1) -> None:
        self.members += n
        if self.members > self.limits.zip_max_members:
            raise self._fail(f"more than {self.limits.zip_max_members} zip entries (nested archives included; "
                             f"at {name!r})", "limits.zip_max_members")

    def declared(self, name: str, usize: int, csize: int) -> None:
        """Refuse a member by its header before inflating it: a ratio no real file has, or more
        than the archive's inflation budget has left."""
        lim = self.limits
        if usize >= lim.zip_ratio_min_bytes and usize / max(1, csize) > lim.zip_max_ratio:
            raise self._fail(f"zip member {name!r} declares {usize} bytes from {csize} compressed, a ratio of "
                             f"{usize / max(1, csize):.0f}:1 over {lim.zip_max_ratio:.0f}:1 (a zip bomb)",
                             "limits.zip_max_ratio")
        if self.inflated + usize > lim.zip_max_inflated_bytes:
            raise self._fail(f"zip member {name!r} would inflate the archive past {lim.zip_max_inflated_bytes} "
                             "bytes (nested archives included)", "limits.zip_max_inflated_bytes")

    def inflate(self, name: str, produced: int, consumed: int, total_out: int, declared: int | None) -> None:
        """Count ``produced`` bytes just inflated from ``name`` (``total_out`` so far of
        ``consumed`` compressed bytes; ``declared``: the size its header states, if it states one)."""
        lim = self.limits
        self.inflated += produced
        if declared is not None and total_out > declared:
            raise self._fail(f"zip member {name!r} declares {declared} bytes but inflates to more (a lying "
                             "header)", "the member's declared size")
        if total_out >= lim.zip_ratio_min_bytes and total_out / max(1, consumed) > lim.zip_max_ratio:
            raise self._fail(f"zip member {name!r} inflates {consumed} compressed bytes to {total_out}, a ratio "
                             f"over {lim.zip_max_ratio:.0f}:1 (a zip bomb)", "limits.zip_max_ratio")
        if self.inflated > lim.zip_max_inflated_bytes:
            raise self._fail(f"more than {lim.zip_max_inflated_bytes} bytes inflated (nested archives included; "
                             f"at {name!r})", "limits.zip_max_inflated_bytes")


def _read_member(zf: zipfile.ZipFile, data: bytes, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    """A member's bytes. ``zipfile`` would stop a member at the size the central directory
    declares (and then fail its CRC, silently skipping it): a deflated member is inflated here
    from its own compressed bytes, at most one byte past its declared size, so that a lying
    header is refused as such."""
    at = info.header_offset
    if (info.compress_type != zipfile.ZIP_DEFLATED or data[at:at + 4] != b"PK\x03\x04"
            or at + 30 > len(data) or info.flag_bits & 0x01):
        return zf.read(info)
    nlen, xlen = struct.unpack_from("<HH", data, at + 26)
    start = at + 30 + nlen + xlen
    out = zlib.decompressobj(-15).decompress(data[start:start + info.compress_size], info.file_size + 1)
    if len(out) > info.file_size:
        raise budget._fail(f"zip member {info.filename!r} declares {info.file_size} bytes but inflates to more "
                           "(a lying header)", "the member's declared size")
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 or size for {info.filename!r}")
    return out


def _central_count(data: bytes) -> int | None:
    """The entry count an archive's end-of-central-directory record states (None: not found)."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if at < 0 or at + 22 > len(data):
        return None
    return struct.unpack_from("<H", data, at + 10)[0]


def _write_reduced(entries: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def reduce_bytes(data: bytes, depth: int = 0, budget: _Budget | None = None) -> bytes:
    """The reduced form of an archive held in memory (random access through ``zipfile``, which
    stops at each member's declared size and checks its CRC)."""
    budget = budget or _Budget(CatalogLimits(), "archive")
    stated = _central_count(data)
    if stated is not None:
        budget.member("(central directory)", stated)
        budget.members -= stated     # counted again, one by one, below
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _Unreadable(str(e)) from None
    max_depth = budget.limits.zip_max_depth
    entries: list[tuple[str, bytes]] = []
    for info in infos:
        name = info.filename
        budget.member(name)
        try:
            if _kept(name) and info.file_size <= MAX_KEPT_ENTRY:
                budget.declared(name, info.file_size, info.compress_size)
                got = _read_member(zf, data, info, budget)
                budget.inflate(name, len(got), info.compress_size, len(got), info.file_size)
                entries.append((name, got))
            elif (name.endswith(ARCHIVE_SUFFIXES) and depth + 1 < max_depth
                  and 0 < info.file_size <= MAX_NESTED_SIZE):
                budget.declared(name, info.file_size, info.compress_size)
                nested = _read_member(zf, data, info, budget)
                budget.inflate(name, len(nested), info.compress_size, len(nested), info.file_size)
                try:
                    entries.append((name, reduce_bytes(nested, depth + 1, budget)))
                except _Unreadable:
                    continue  # not an archive after all: catalog() would skip it too
                finally:
                    del nested
        except _ENTRY_ERRORS:
            continue
    return _write_reduced(entries)


class _Forward:
    """A forward-only byte source over ``stream`` (at most ``size`` bytes), with push-back."""

    def __init__(self, stream: IO[bytes], size: int | None) -> None:
        self._stream = stream
        self._left = size
        self._back = b""

    def read(self, n: int) -> bytes:
        out = b""
        if self._back:
            out, self._back = self._back[:n], self._back[n:]
            n -= len(out)
        while n > 0:
            want = n if self._left is None else min(n, self._left)
            if want <= 0:
                break
            chunk = self._stream.read(want)
            if not chunk:
                break
            if self._left is not None:
                self._left -= len(chunk)
            out += chunk
            n -= len(chunk)
        return out

    def exactly(self, n: int) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise _Unreadable("archive ends inside an entry")
        return data

    def skip(self, n: int) -> None:
        while n > 0:
            got = self.read(min(n, _CHUNK))
            if not got:
                raise _Unreadable("archive ends inside an entry")
            n -= len(got)

    def unread(self, data: bytes) -> None:
        self._back = data + self._back


class _EntryReader(io.RawIOBase):
    """One entry's uncompressed bytes, read forward from the archive (stored or deflated;
    ``csize`` None means "until the deflate stream ends", for data-descriptor entries)."""

    def __init__(self, src: _Forward, method: int, csize: int | None, *, name: str = "",
                 budget: _Budget | None = None, declared: int | None = None) -> None:
        super().__init__()
        self._src = src
        self._left = csize
        self._inflater = zlib.decompressobj(-15) if method == 8 else None
        self._pending = b""
        self.ended = False
        self._name = name
        self._budget = budget
        self._declared = declared
        self._consumed = 0
        self._produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._pending and not self.ended:
            tail = self._inflater.unconsumed_tail if self._inflater is not None else b""
            if tail:
                raw = tail
            else:
                want = _CHUNK if self._left is None else min(_CHUNK, self._left)
                raw = self._src.read(want) if want > 0 else b""
                if self._left is not None:
                    self._left -= len(raw)
                self._consumed += len(raw)
            if self._inflater is None:
                if not raw:
                    self.ended = True
                self._pending = raw
                self._produced += len(raw)
                if self._budget is not None and raw:
                    self._budget.inflate(self._name, len(raw), self._consumed, self._produced, self._declared)
                continue
            if not raw and self._left is None:
                raise _Unreadable("archive ends inside a deflated entry")
            # at most a chunk out per call: a bomb never lands in memory at once
            self._pending = self._inflater.decompress(raw, _CHUNK) if raw else self._inflater.flush()
            self._produced += len(self._pending)
            if self._budget is not None and self._pending:
                self._budget.inflate(self._name, len(self._pending),
                                     self._consumed - len(self._inflater.unconsumed_tail), self._produced,
                                     self._declared)
            if self._inflater.eof:
                if self._left is None and self._inflater.unused_data:
                    self._src.unread(self._inflater.unused_data)   # the bytes after this entry
                self.ended = True
            elif not raw:
                raise _Unreadable("deflated entry is truncated")
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def read_up_to(self, n: int) -> bytes:
        parts, total = [], 0
        while total < n:
            chunk = self.read(min(_CHUNK, n - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        return b"".join(parts)

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass
        if self._left:  # a deflate stream that ended before its stated size: skip the rest
            self._src.skip(self._left)
            self._left = 0


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4:i + 4 + size]
        if tag == 1:
            j = 0
            if usize == 0xFFFFFFFF and j + 8 <= len(body):
                usize = struct.unpack_from("<Q", body, j)[0]
                j += 8
            if csize == 0xFFFFFFFF and j + 8 <= len(body):
                csize = struct.unpack_from("<Q", body, j)[0]
            return usize, csize
        i += 4 + size
    return usize, csize


def reduce_stream(stream: IO[bytes], size: int | None, depth: int = 0, budget: _Budget | None = None) -> bytes:
    """The reduced form of an archive read forward only, by its local file headers."""
    budget = budget or _Budget(CatalogLimits(), "archive")
    max_depth = budget.limits.zip_max_depth
    src = _Forward(stream, size)
    entries: list[tuple[str, bytes]] = []
    first = True
    while True:
        sig = src.read(4)
        if sig != b"PK\x03\x04":
            if first:
                raise _Unreadable("not a zip archive")
            break  # the central directory (or the end): every entry has been seen
        first = False
        (_ver, flags, method, _t, _d, _crc, csize, usize, nlen, xlen) = struct.unpack("<HHHHHIIIHH",
                                                                                    src.exactly(26))
        name = src.exactly(nlen).decode("utf-8" if flags & 0x800 else "cp437", "replace")
        budget.member(name)
        extra = src.exactly(xlen)
        zip64 = csize == 0xFFFFFFFF or usize == 0xFFFFFFFF
        if zip64:
            usize, csize = _zip64_sizes(extra, usize, csize)
        descriptor = bool(flags & 0x08)
        if flags & 0x01:
            raise _Unreadable(f"{name}: encrypted entry")
        known = not descriptor or csize > 0
        if method not in (0, 8) and not known:
            raise _Unreadable(f"{name}: compression method {method} with a data descriptor")
        if method == 0 and not known:
            raise _Unreadable(f"{name}: stored entry with a data descriptor")
        wanted = _kept(name) or (name.endswith(ARCHIVE_SUFFIXES) and depth + 1 < max_depth)
        if method not in (0, 8):
            src.skip(csize)
        elif not wanted and known:
            src.skip(csize)
        else:
            if known and usize:
                budget.declared(name, usize, csize)
            reader = _EntryReader(src, method, csize if known else None, name=name, budget=budget,
                                  declared=usize if known else None)
            if _kept(name):
                data = reader.read_up_to(MAX_KEPT_ENTRY + 1)
                if len(data) <= MAX_KEPT_ENTRY:
                    entries.append((name, data))
            elif wanted:
                entry_size = usize if (known and usize) else None
                try:
                    if entry_size is not None and entry_size <= WHOLE_LIMIT:
                        entries.append((name, reduce_bytes(reader.read_up_to(entry_size), depth + 1, budget)))
                    else:
                        entries.append((name, reduce_stream(reader, entry_size, depth + 1, budget)))
                except _Unreadable:
                    pass  # not an archive after all
            reader.drain()
        if descriptor:
            head = src.exactly(4)
            if head != b"PK\x07\x08":
                src.unread(head)
            src.exactly(4 + (16 if zip64 else 8))
    return _write_reduced(entries)

_FILENAME_RE = re.compile(r"^(?P<name>.+?)-(?P<version>\d[\w.+-]*)$")


def _properties(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _manifest(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if line.startswith(" ") and last:
            out[last] += line[1:]
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip()
            out.setdefault(last, value.strip())
    return out


class JavaArchiveCataloger(Cataloger):
    """Maven coordinates of Java archives; name is ``groupId:artifactId`` as OSV's Maven ecosystem spells it."""

    name = "java"
    version = 2
    """Bumped when what :meth:`reduce` keeps changes (the layer cache key includes it)."""
    suffixes = ARCHIVE_SUFFIXES
    max_file_size = 256 * 1024 * 1024
    reduces = True

    def reduce(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        """A small stored zip holding only what :meth:`catalog` reads of the archive, within
        :attr:`limits` (a zip bomb raises :class:`CatalogLimitError`, failing the image)."""
        budget = _Budget(self.limits, path)
        try:
            if size <= WHOLE_LIMIT:
                return reduce_bytes(stream.read(size), 0, budget)
            return reduce_stream(stream, size, 0, budget)
        except (_Unreadable, zlib.error, struct.error) as e:
            # keep a marker: catalog() then reports the archive as unreadable, naming it
            return _UNREADABLE + str(e).encode()[:200]

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        packages: list[Package] = []
        warnings: list[str] = []
        for path in sorted(files):
            self._archive(path, files[path], path, context.layer_of.get(path), 0, packages, warnings)
        return CatalogResult(tuple(packages), tuple(warnings))

    def _archive(self, label: str, data: bytes, path: str, layer: str | None, depth: int,
                 packages: list[Package], warnings: list[str]) -> None:
        if data.startswith(_UNREADABLE):
            reason = data[len(_UNREADABLE):].decode("utf-8", "replace")
            warnings.append(f"java: {label}: not a readable zip archive ({reason}); skipped")
            return
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            warnings.append(f"java: {label}: not a readable zip archive ({e}); skipped")
            return
        found = False
        for entry in names:
            if entry.startswith("META-INF/maven/") and entry.endswith("/pom.properties"):
                try:
                    props = _properties(zf.read(entry).decode("utf-8", "replace"))
                except _ENTRY_ERRORS as e:
                    warnings.append(f"java: {label}!{entry}: unreadable ({e})")
                    continue
                g, a, v = props.get("groupId"), props.get("artifactId"), props.get("version")
                if g and a and v:
                    packages.append(self._package(g, a, v, path, layer))
                    found = True
        if not found:
            pkg = self._from_manifest(zf, label, path, layer)
            if pkg:
                packages.append(pkg)
        if depth + 1 >= self.limits.zip_max_depth:
            return
        for info in zf.infolist():
            if info.filename.endswith(ARCHIVE_SUFFIXES) and 0 < info.file_size <= MAX_NESTED_SIZE:
                try:
                    nested = zf.read(info)
                except _ENTRY_ERRORS as e:
                    warnings.append(f"java: {label}!{info.filename}: unreadable ({e})")
                    continue
                self._archive(f"{label}!{info.filename}", nested, path, layer, depth + 1, packages, warnings)

    def _from_manifest(self, zf: zipfile.ZipFile, label: str, path: str, layer: str | None) -> Package | None:
        try:
            mf = _manifest(zf.read("META-INF/MANIFEST.MF").decode("utf-8", "replace"))
        except KeyError:
            mf = {}
        except _ENTRY_ERRORS:
            mf = {}
        stem = label.rpartition("/")[2].rpartition("!")[2].rsplit(".", 1)[0]
        m = _FILENAME_RE.match(stem)
        artifact = m.group("name") if m else stem
        version = (mf.get("Implementation-Version") or mf.get("Bundle-Version") or mf.get("Specification-Version")
                   or (m.group("version") if m else None))
        if not version:
            return None
        group = mf.get("Implementation-Vendor-Id") or ""
        if not group:
            bsn = mf.get("Bundle-SymbolicName", "").split(";")[0].strip()
            if "." in bsn:
                group = bsn.rsplit(".", 1)[0] if bsn.endswith("." + artifact) else bsn
        return self._package(group or artifact, artifact, version, path, layer)

    @staticmethod
    def _package(group: str, artifact: str, version: str, path: str, layer: str | None) -> Package:
        return Package(name=f"{group}:{artifact}", version=version, ecosystem="Maven",
                       purl=purl("maven", artifact, version, namespace=group), path=path, layer=layer)
