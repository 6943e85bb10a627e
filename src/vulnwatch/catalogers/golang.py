"""Go: modules compiled into executables, from the build info Go 1.18+ embeds
(the ``\\xff Go buildinf:`` blob: Go version + ``runtime/debug`` module info).

``wants`` is by exec bit, not by path: the walker offers each executable with its
stream; :meth:`GoBinaryCataloger.read_executable` sniffs the ELF magic from the first
bytes and keeps only the small build info blob, so binaries are never held in memory
together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

from ..model import Package
from .interface import CatalogContext, Cataloger, CatalogResult
from .purl import purl

BUILDINFO_MAGIC = b"\xff Go buildinf:"
OLD_FORMAT = b"GO-BUILDINFO-PRE-1.18"
"""What :meth:`read_executable` keeps for Go < 1.18 binaries (pointer-based format, not read)."""
EXECUTABLE_MAGICS = (b"\x7fELF",)
MAX_BUILDINFO = 4 * 1024 * 1024


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def extract_buildinfo(data: bytes) -> bytes | None:
    """The build info blob (header + inline version and module strings) of a Go binary,
    :data:`OLD_FORMAT` for a pre-1.18 binary, None when ``data`` is not a Go binary."""
    start = 0
    while True:
        i = data.find(BUILDINFO_MAGIC, start)
        if i < 0:
            return None
        if i % 16 == 0 and len(data) >= i + 32:
            break
        start = i + 1
    flags = data[i + 15]
    if not flags & 0x2:
        return OLD_FORMAT
    try:
        pos = i + 32
        n, pos = _uvarint(data, pos)
        pos += n
        n, pos = _uvarint(data, pos)
        end = pos + n
    except ValueError:
        return None
    if end > len(data) or end - i > MAX_BUILDINFO:
        return None
    return data[i:end]


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


class GoBinaryCataloger(Cataloger):
    """Main module, dependencies (``=>`` replacements applied) and ``stdlib`` of Go
    binaries. Versions are as recorded (``v1.2.3``; stdlib ``go1.21.3``)."""

    name = "go"
    wants_executables = True
    max_file_size = 256 * 1024 * 1024

    def read_executable(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        head = stream.read(4)
        if head not in EXECUTABLE_MAGICS or size > self.max_file_size:
            return None
        return extract_buildinfo(head + stream.read(size - 4))

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
            mods: list[tuple[str, str]] = []
            for line in modinfo.splitlines():
                parts = line.split("\t")
                if parts[0] in ("mod", "dep") and len(parts) >= 3:
                    mods.append((parts[1], parts[2]))
                elif parts[0] == "=>" and len(parts) >= 3 and mods:
                    mods[-1] = (parts[1], parts[2])  # replacement of the line before
            for mod_path, version in mods:
                packages.append(self._package(mod_path, version, path, layer))
            if go_version.startswith("go"):
                packages.append(Package(name="stdlib", version=go_version, ecosystem="Go",
                                        purl=purl("golang", "stdlib", go_version.removeprefix("go")),
                                        path=path, layer=layer))
        return CatalogResult(tuple(packages), tuple(warnings))

    @staticmethod
    def _package(mod_path: str, version: str, path: str, layer: str | None) -> Package:
        namespace, _, name = mod_path.rpartition("/")
        return Package(name=mod_path, version=version, ecosystem="Go",
                       purl=purl("golang", name, version if version != "(devel)" else None,
                                 namespace=namespace or None),
                       path=path, layer=layer)
