"""Go: modules compiled into executables, from the build info Go 1.18+ embeds
(the ``\\xff Go buildinf:`` blob: Go version + ``runtime/debug`` module info).

``wants`` is by exec bit, not by path: the walker offers each executable as a
forward-only stream (:meth:`GoBinaryCataloger.read_executable`), and only the small
build info blob is kept. Reading follows Go's ``debug/buildinfo``, without reading the
whole binary:

1. the first 4 bytes decide: anything but ELF is None at once (scripts, other formats);
2. the ELF header (first 52/64 bytes) and the program header table (and the section
   header table and its name table, when they come before the data, as in binaries
   linked by Go's own linker) are read;
3. the blob is where the Go linker puts it: the start of the ``.go.buildinfo`` section
   when its name could be read, else near the start of the writable ``PT_LOAD``
   segment (the data segment). The reader skips forward to it in
   :data:`WINDOW`-sized reads it discards, then searches :data:`WINDOW` bytes at a time
   for the 16-byte aligned magic and stops at the first one. When the section table
   is at the end of the file (binaries linked by an external linker, e.g. Debian's
   Go packages), ``.go.buildinfo`` can lie past the first 64 KB of the segment, so
   the writable segments are searched on, window by window, until the magic is found.
   When the ELF header or program header table is unusable (damaged, or minimal
   hand-made files), only the first :data:`WINDOW` bytes are searched.

Memory per file is O(:data:`WINDOW`) plus the blob, whatever the binary's size; the
walker skips the part of the file left unread.
Mach-O and PE executables are not read (Linux images hold ELF).
"""

from __future__ import annotations

import ast
import io
import re
import shlex
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from ..model import Package
from .interface import CatalogContext, Cataloger, CatalogResult
from .purl import purl

BUILDINFO_MAGIC = b"\xff Go buildinf:"
OLD_FORMAT = b"GO-BUILDINFO-PRE-1.18"
"""What :meth:`read_executable` keeps for Go < 1.18 binaries (pointer-based format, not read)."""
EXECUTABLE_MAGICS = (b"\x7fELF",)
MAX_BUILDINFO = 4 * 1024 * 1024
"""Largest build info blob accepted (header + version + module text)."""
WINDOW = 64 * 1024
"""Bytes read (and held) at a time while skipping to and searching for the build info."""

_ALIGN = 16
_HEADER_SIZE = 32  # magic (14) + pointer size (1) + flags (1) + 16 bytes
_FLAG_INLINE_STRINGS = 0x2  # Go >= 1.18: version and module info follow the header inline
_PT_LOAD, _PF_X, _PF_W = 1, 0x1, 0x2
_SHT_NOBITS = 8
# by ELF class (1: 32-bit, 2: 64-bit); the leading byte-order character is added per file
_EHDR = {1: "HHIIIIIHHHHHH", 2: "HHIQQQIHHHHHH"}  # the header after e_ident
_PHDR = {1: "IIIIIIII", 2: "IIQQQQQQ"}
_SHDR = {1: "IIIIIIIIII", 2: "IIQQQQIIQQ"}


class _Truncated(ValueError):
    """The data ends before the blob does (read more, or give up at end of file)."""


def _uvarint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise _Truncated("truncated varint")
        if shift > 63:
            raise ValueError("varint too long")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _blob_at(data: bytes | bytearray, i: int) -> bytes:
    """The blob whose magic is at ``data[i]`` (or :data:`OLD_FORMAT`). Raises
    :class:`_Truncated` when ``data`` ends too early, ValueError when it is damaged."""
    if len(data) < i + _HEADER_SIZE:
        raise _Truncated("truncated build info header")
    if not data[i + 15] & _FLAG_INLINE_STRINGS:
        return OLD_FORMAT
    n, pos = _uvarint(data, i + _HEADER_SIZE)
    pos += n
    if pos - i > MAX_BUILDINFO:
        raise ValueError("build info version string too long")
    n, pos = _uvarint(data, pos)
    end = pos + n
    if end - i > MAX_BUILDINFO:
        raise ValueError("build info too long")
    if end > len(data):
        raise _Truncated("truncated build info")
    return bytes(data[i:end])


def extract_buildinfo(data: bytes) -> bytes | None:
    """The build info blob (header + inline version and module strings) of a Go binary,
    :data:`OLD_FORMAT` for a pre-1.18 binary, None when ``data`` is not a Go binary.
    ``data`` is the whole file (the first 16-byte aligned magic counts)."""
    start = 0
    while True:
        i = data.find(BUILDINFO_MAGIC, start)
        if i < 0:
            return None
        if i % _ALIGN == 0 and len(data) >= i + _HEADER_SIZE:
            break
        start = i + 1
    try:
        return _blob_at(data, i)
    except ValueError:
        return None


class _ForwardReader:
    """The first ``size`` bytes of a forward-only stream, with the position read so far."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self._stream = stream
        self.size = size
        self.pos = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the file)."""
        n = min(n, self.size - self.pos)
        parts: list[bytes] = []
        while n > 0:
            chunk = self._stream.read(n)
            if not chunk:
                break
            parts.append(chunk)
            n -= len(chunk)
            self.pos += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def skip_to(self, offset: int) -> bool:
        """Move forward to ``offset`` (a forward seek where the stream has one, e.g. a tar body,
        which skips without copying; else read and discard); False when the file ends first."""
        if offset > self.size:
            return False
        if offset > self.pos:
            try:
                self._stream.seek(offset - self.pos, io.SEEK_CUR)
            except (AttributeError, OSError, ValueError):
                pass  # not seekable: read and discard below
            else:
                self.pos = offset
                return True
        while self.pos < offset:
            if not self.read(min(WINDOW, offset - self.pos)):
                return False
        return True

    def read_at(self, offset: int, n: int) -> bytes | None:
        """``n`` bytes at ``offset`` (fewer at the end of the file), None when
        ``offset`` was already passed or lies beyond the end."""
        if offset < self.pos or not self.skip_to(offset):
            return None
        return self.read(n)


def _search_ranges(r: _ForwardReader) -> list[tuple[int, int]] | None:
    """``[(file offset, length)]`` to search for the blob, in file order, read from the
    ELF headers (``r`` is just past the 4-byte magic): the ``.go.buildinfo`` section, or
    the writable ``PT_LOAD`` segments; empty when there is neither. None when the
    header or program header table cannot be read (damaged, or hand-made files)."""
    ident = r.read(12)
    if len(ident) < 12 or ident[0] not in (1, 2) or ident[1] not in (1, 2):
        return None
    cls, order = ident[0], "<" if ident[1] == 1 else ">"
    ehdr = struct.Struct(order + _EHDR[cls])
    rest = r.read(ehdr.size)
    if len(rest) < ehdr.size:
        return None
    (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = ehdr.unpack(rest)

    segments: list[tuple[int, int]] = []
    phdr = struct.Struct(order + _PHDR[cls])
    if not phnum or phentsize < phdr.size or phnum * phentsize > WINDOW:
        return None
    table = r.read_at(phoff, phnum * phentsize)
    if table is None or len(table) < phnum * phentsize:
        return None
    for k in range(phnum):
        f = phdr.unpack_from(table, k * phentsize)
        p_type, flags, offset, filesz = (f[0], f[6], f[1], f[4]) if cls == 1 else (f[0], f[1], f[2], f[5])
        if p_type == _PT_LOAD and flags & (_PF_X | _PF_W) == _PF_W and filesz:
            segments.append((offset, filesz))
    segments.sort()
    data_start = segments[0][0] if segments else r.size

    # .go.buildinfo by name, when the section table and its names come before the data
    shdr = struct.Struct(order + _SHDR[cls])
    if (0 < shnum and shentsize >= shdr.size and shstrndx < shnum and shnum * shentsize <= WINDOW
            and r.pos <= shoff and shoff + shnum * shentsize <= data_start):
        table = r.read_at(shoff, shnum * shentsize)
        if table is not None and len(table) == shnum * shentsize:
            sections = [shdr.unpack_from(table, k * shentsize) for k in range(shnum)]
            sections = [(s[0], s[1], s[4], s[5]) for s in sections]  # name, type, offset, size
            _, _, names_at, names_size = sections[shstrndx]
            if r.pos <= names_at and names_at + names_size <= data_start and names_size <= WINDOW:
                names = r.read_at(names_at, names_size) or b""
                for name, sh_type, offset, sh_size in sections:
                    if (sh_type != _SHT_NOBITS and sh_size and offset >= r.pos
                            and names[name:names.find(b"\0", name)] == b".go.buildinfo"):
                        return [(offset, sh_size)]
    return segments


def _aligned_magic(buf: bytes, base: int) -> int:
    """Index in ``buf`` (which starts at file offset ``base``) of the first 16-byte
    aligned magic, -1 when there is none."""
    i = buf.find(BUILDINFO_MAGIC, (-base) % _ALIGN)
    while i >= 0 and (base + i) % _ALIGN:
        i = buf.find(BUILDINFO_MAGIC, i + 1)
    return i


def _read_blob(r: _ForwardReader, data: bytes) -> bytes | None:
    """The blob starting at ``data[0]``, reading on from ``r`` as far as it needs."""
    buf = bytearray(data)
    while True:
        try:
            return _blob_at(buf, 0)
        except _Truncated:
            more = r.read(min(WINDOW, MAX_BUILDINFO + _HEADER_SIZE - len(buf)))
            if not more:
                return None
            buf += more
        except ValueError:
            return None


def _scan(r: _ForwardReader, ranges: list[tuple[int, int]]) -> bytes | None:
    """Search ``ranges`` window by window for the blob; read it when found."""
    keep = len(BUILDINFO_MAGIC) - 1  # a magic may straddle two windows
    carry = b""
    for offset, length in ranges:
        end = min(offset + length, r.size)
        if end <= r.pos:
            continue
        if offset > r.pos:
            if not r.skip_to(offset):
                return None
            carry = b""
        while r.pos < end:
            base = r.pos - len(carry)
            chunk = r.read(min(WINDOW, end - r.pos))
            if not chunk:
                return None
            buf = carry + chunk if carry else chunk
            i = _aligned_magic(buf, base)
            if i >= 0:
                return _read_blob(r, buf[i:])
            carry = buf[-keep:]
    return None


def parse_buildinfo(blob: bytes) -> tuple[str, str]:
    """``(go version, module info text)`` from a blob made by :func:`extract_buildinfo`."""
    pos = 32
    n, pos = _uvarint(blob, pos)
    version = blob[pos:pos + n].decode("utf-8", "replace")
    pos += n
    n, pos = _uvarint(blob, pos)
    mod = blob[pos:pos + n]
    if len(mod) >= 33 and mod[-17:-16] == b"\n":
        mod = mod[16:-16]  # sentinel-wrapped form
    return version, mod.decode("utf-8", "replace")


DEVEL = "(devel)"
"""The version Go records for a main module built from a work tree (not a module download)."""

_SEMVER_VALUE = re.compile(r"v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?", re.ASCII)
# Variable names syft (1.18) takes a main module's version from, as (prefix, suffix) rules on
# the name: it ends in "version"/"Version"/"ver"/"Ver" (version, Version, gitVersion,
# buildVersion, releaseVersion, appVer, ...) or, failing any such flag, in "tag"/"Tag"
# (tag, Tag, gitTag, ...). Only the first letter of the suffix may be upper case
# (VERSION does not count, as in syft).
_VERSION_NAMES = (re.compile(r"[A-Za-z0-9]*[vV]er(?:sion)?"), re.compile(r"[A-Za-z0-9]*[tT]ag"))


def _unquote(value: str) -> str:
    """A build setting value as Go wrote it: quoted (Go syntax) when it holds spaces,
    quotes, ``=`` or control characters, else verbatim."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            out = ast.literal_eval(value)  # Go's escapes are a subset of Python's here
        except (ValueError, SyntaxError):
            return value[1:-1]
        if isinstance(out, str):
            return out
    return value


def _linker_definitions(ldflags: str) -> list[tuple[str, str]]:
    """``(symbol, value)`` of every ``-X symbol=value`` in an ``-ldflags`` string, in order.
    The string is split into fields the way the go command splits it (spaces separate,
    single or double quotes group, no escapes)."""
    lexer = shlex.shlex(ldflags, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    lexer.commenters = ""
    try:
        fields = list(lexer)
    except ValueError:  # unbalanced quote: take the fields as they are
        fields = ldflags.split()
    out = []
    for i, f in enumerate(fields):
        if f in ("-X", "--X") and i + 1 < len(fields):
            definition = fields[i + 1]
        elif f.startswith(("-X=", "--X=")):
            definition = f.split("=", 1)[1]
        else:
            continue
        symbol, eq, value = definition.partition("=")
        if eq:
            out.append((symbol, value))
    return out


def version_from_ldflags(ldflags: str, main_module: str) -> str | None:
    """The main module's version set by the linker, as syft reads it, ``v``-prefixed; None
    when there is none.

    Taken from a ``-X <package>.<name>=<value>`` flag where ``<package>`` is ``main`` or a
    package of the main module (``<module>`` or ``<module>/...``, e.g.
    ``github.com/org/app/internal/version``) and ``<name>`` is a version name: one that ends
    in ``version``, ``Version``, ``ver`` or ``Ver`` (``-X main.version=1.2.3``,
    ``-X main.Version=v1.2.3``, ``-X <module>/pkg/version.gitVersion=...``,
    ``-X main.buildVersion=...``, ``-X main.releaseVersion=...``); failing any such flag, one
    that ends in ``tag`` or ``Tag`` (``-X main.gitTag=v1.2.3``). The value must start with
    ``MAJOR.MINOR.PATCH`` after any ``.../`` prefix (``refs/tags/v1.2.3`` gives ``v1.2.3``);
    pre-release and build parts are kept (syft cuts the value at the first ``.`` or ``+``
    after the patch number; ``1.2.3-rc.1`` stays whole here).
    """
    definitions = _linker_definitions(ldflags)
    for names in _VERSION_NAMES:
        for symbol, value in definitions:
            package, dot, name = symbol.rpartition(".")
            if not dot or not names.fullmatch(name):
                continue
            if package != "main" and package != main_module and not package.startswith(main_module + "/"):
                continue
            m = _SEMVER_VALUE.match(value.rpartition("/")[2])
            if m:
                v = m.group(0)
                return v if v.startswith("v") else "v" + v
    return None


class GoBinaryCataloger(Cataloger):
    """Main module, dependencies (``=>`` replacements applied) and ``stdlib`` of Go
    binaries, as syft reports them.

    - Module versions are as recorded (``v1.2.3``).
    - ``stdlib`` (ecosystem ``Go``, what the Go vulnerability database calls the standard
      library) has the toolchain version of the build info (``go1.21.3``; a
      ``GOEXPERIMENT`` suffix such as `` X:boringcrypto`` is left out), which the ``Go``
      version scheme orders against the database's ``1.21.3`` spelling. A binary built by
      a development toolchain (``devel ...``) gets no ``stdlib`` and a warning.
    - A binary built outside module mode (e.g. Debian's Go packages, GOPATH builds) has no
      main module line; its main package path stands in for it, version ``(devel)``, as in
      syft.
    - A main module recorded as ``(devel)`` takes its version from ``-ldflags -X``
      (:func:`version_from_ldflags`); without one it keeps ``(devel)`` (its purl has no
      version, it cannot be matched) and a warning says so.
    """

    name = "go"
    wants_executables = True
    max_file_size = 256 * 1024 * 1024

    def read_executable(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        """The build info blob of the Go binary ``stream`` (forward-only, ``size`` bytes),
        :data:`OLD_FORMAT` for Go < 1.18, None for anything else. Reads the headers and
        the data segment's windows only (see the module docstring); non-ELF files are
        decided from their first 4 bytes."""
        if size > self.max_file_size:
            return None
        r = _ForwardReader(stream, size)
        if r.read(4) not in EXECUTABLE_MAGICS:
            return None
        ranges = _search_ranges(r)
        if ranges is None:  # no usable program headers: only right after the header
            ranges = [(0, WINDOW)]
        return _scan(r, ranges)

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        packages: list[Package] = []
        warnings: list[str] = []
        for path in sorted(files):
            data = files[path]
            blob = data if data.startswith(BUILDINFO_MAGIC) or data == OLD_FORMAT else extract_buildinfo(data)
            if blob is None:
                continue
            if blob == OLD_FORMAT:
                warnings.append(f"go: {path}: built with Go before 1.18; its module list is not read")
                continue
            try:
                go_version, modinfo = parse_buildinfo(blob)
            except ValueError as e:
                warnings.append(f"go: {path}: damaged build info ({e}); skipped")
                continue
            layer = context.layer_of.get(path)
            info = _parse_modinfo(modinfo)
            main, deps = info.main, list(info.deps)
            if main is None or main[0] == "command-line-arguments":
                # no main module line (built outside module mode) or `go build file.go`:
                # a single (devel) dependency is the main module, else the package path stands in
                devel = [d for d in deps if d[1] == DEVEL]
                if len(devel) == 1:
                    main = devel[0]
                    deps.remove(main)
                elif info.path:
                    main = (info.path, DEVEL)
            if main is not None and main[1] == DEVEL:
                version = version_from_ldflags(info.settings.get("-ldflags", ""), main[0])
                if version:
                    main = (main[0], version)
                else:
                    warnings.append(f"go: {path}: main module {main[0]} is recorded as {DEVEL} and -ldflags sets no "
                                    f"version (-X main.version=...); it is listed without a version and cannot "
                                    f"be matched")
            for mod_path, version in ([main] if main else []) + deps:
                packages.append(self._package(mod_path, version, path, layer))
            toolchain = go_version.split()[0] if go_version.split() else ""
            if toolchain.startswith("go"):
                packages.append(Package(name="stdlib", version=toolchain, ecosystem="Go",
                                        purl=purl("golang", "stdlib", toolchain.removeprefix("go")),
                                        path=path, layer=layer))
            else:
                warnings.append(f"go: {path}: Go toolchain version {go_version!r} is not a release "
                                f"(a development build?); the standard library (stdlib) is not listed")
        return CatalogResult(tuple(packages), tuple(warnings))

    @staticmethod
    def _package(mod_path: str, version: str, path: str, layer: str | None) -> Package:
        namespace, _, name = mod_path.rpartition("/")
        return Package(name=mod_path, version=version, ecosystem="Go",
                       purl=purl("golang", name, version if version != DEVEL else None,
                                 namespace=namespace or None),
                       path=path, layer=layer)


@dataclass(frozen=True)
class _ModInfo:
    """The module text of a build info (what ``go version -m`` prints after the first line)."""

    path: str | None
    """``path`` line: the main package's import path."""
    main: tuple[str, str] | None
    """``mod`` line (path, version), replacement applied; None when absent."""
    deps: tuple[tuple[str, str], ...]
    """``dep`` lines (path, version), replacements applied, in order."""
    settings: Mapping[str, str]
    """``build`` lines, key -> value (unquoted): ``-ldflags``, ``vcs.revision``, ``GOOS``..."""


def _parse_modinfo(modinfo: str) -> _ModInfo:
    path = None
    mods: list[tuple[str, str]] = []
    has_main = False
    settings: dict[str, str] = {}
    for line in modinfo.splitlines():
        parts = line.split("\t")
        if parts[0] == "path" and len(parts) >= 2:
            path = parts[1]
        elif parts[0] in ("mod", "dep") and len(parts) >= 3:
            if parts[0] == "mod" and not mods:
                has_main = True
            mods.append((parts[1], parts[2]))
        elif parts[0] == "=>" and len(parts) >= 3 and mods:
            mods[-1] = (parts[1], parts[2])  # replacement of the line before
        elif parts[0] == "build" and len(parts) >= 2:
            kv = "\t".join(parts[1:])
            if kv.startswith('"'):  # a quoted key (Go >= 1.20 quotes keys holding = or spaces)
                end = kv.find('"=', 1)
                key, value = (_unquote(kv[:end + 1]), kv[end + 2:]) if end > 0 else (kv, "")
            else:
                key, _, value = kv.partition("=")
            settings[key] = _unquote(value)
    main = mods[0] if has_main else None
    return _ModInfo(path, main, tuple(mods[1:] if has_main else mods), settings)
