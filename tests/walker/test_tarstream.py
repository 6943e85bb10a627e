"""The strict tar reader (vulnwatch.walker.tarstream) against Python's tarfile, hand-made
headers (base-256, signed checksums, sparse, PAX size), damage, and real layers; and
the layer walker's use of it (gzip members, errors naming layer and entry)."""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib

import pytest
import zstandard

from vulnwatch.walker import LayerError, LayerLimits, walk_layers
from vulnwatch.walker.source import open_layer
from vulnwatch.walker.tarstream import BLOCK_SIZE, EntryType, TarFormatError, TarStreamReader

LONG_DIR = "usr/lib/" + "/".join(f"dir{i:02d}-with-a-long-name" for i in range(6))
LONG_NAME = f"{LONG_DIR}/file-whose-full-path-is-over-a-hundred-characters.txt"
LONG_LINK_TARGET = "/" + LONG_NAME
UNICODE_NAME = "usr/share/doc/café/naïve-文件.txt"

TYPE_OF = {tarfile.REGTYPE: EntryType.FILE, tarfile.AREGTYPE: EntryType.FILE, tarfile.CONTTYPE: EntryType.FILE,
           tarfile.LNKTYPE: EntryType.HARDLINK, tarfile.SYMTYPE: EntryType.SYMLINK,
           tarfile.CHRTYPE: EntryType.CHAR, tarfile.BLKTYPE: EntryType.BLOCK, tarfile.DIRTYPE: EntryType.DIRECTORY,
           tarfile.FIFOTYPE: EntryType.FIFO, tarfile.GNUTYPE_SPARSE: EntryType.SPARSE}


def chunker(data: bytes, size: int):
    """``next_chunk`` over ``data`` in pieces of ``size`` bytes."""
    pieces = iter([data[i:i + size] for i in range(0, len(data), size)])
    return lambda: next(pieces, b"")


def read_all(data: bytes, chunk: int = 1 << 20, *, bodies: bool = True) -> list[tuple]:
    out = []
    for e in TarStreamReader(chunker(data, chunk)):
        body = e.open().read() if bodies else None
        out.append((e.name.rstrip("/"), e.type, e.size, e.mode, e.linkname, body))
    return out


def read_with_tarfile(data: bytes) -> list[tuple]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        for m in tf:
            body = tf.extractfile(m).read() if m.isreg() else b""
            out.append((m.name.rstrip("/"), TYPE_OF[m.type], m.size, m.mode, m.linkname, body))
    return out


def info(name: str, type_: bytes = tarfile.REGTYPE, *, size: int = 0, mode: int = 0o644,
         linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.linkname, ti.mtime = type_, size, mode, linkname, 0
    return ti


def make_archive(fmt: int, **kwargs) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kwargs) as tf:
        tf.addfile(info("etc", tarfile.DIRTYPE, mode=0o755))
        tf.addfile(info("etc/hostname", size=5), io.BytesIO(b"host\n"))
        tf.addfile(info(LONG_DIR, tarfile.DIRTYPE, mode=0o755))
        body = bytes(range(256)) * 40  # not a multiple of 512
        tf.addfile(info(LONG_NAME, size=len(body), mode=0o755), io.BytesIO(body))
        tf.addfile(info("bin/long-link", tarfile.SYMTYPE, linkname=LONG_LINK_TARGET))
        tf.addfile(info("etc/hard", tarfile.LNKTYPE, linkname="etc/hostname"))
        tf.addfile(info(LONG_NAME + ".hard", tarfile.LNKTYPE, linkname=LONG_NAME))
        tf.addfile(info(UNICODE_NAME, size=3), io.BytesIO("été".encode()[:3]))
        tf.addfile(info("dev/null", tarfile.CHRTYPE, mode=0o666))
        tf.addfile(info("run/fifo", tarfile.FIFOTYPE))
        tf.addfile(info("empty", size=0))
        tf.addfile(info("big", size=3 * 1024 * 1024 + 7), io.BytesIO(b"\xab" * (3 * 1024 * 1024 + 7)))
        tf.addfile(info("after-big", size=2), io.BytesIO(b"ok"))
    return buf.getvalue()


def set_field(data: bytes, header_offset: int, start: int, value: bytes, *, signed: bool = False) -> bytes:
    """Overwrite a header field and store a fresh (unsigned or signed) checksum."""
    h = bytearray(data[header_offset:header_offset + BLOCK_SIZE])
    h[start:start + len(value)] = value
    h[148:156] = b" " * 8
    total = sum(h) - (256 * sum(1 for b in h if b >= 128) if signed else 0)
    h[148:156] = b"%06o\0 " % total
    return data[:header_offset] + bytes(h) + data[header_offset + BLOCK_SIZE:]


def header_offsets(data: bytes, *, first: bool = False) -> dict[str, int]:
    """Member name -> offset of its own header (``first``: of its first metadata header)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return {m.name: m.offset if first else m.offset_data - BLOCK_SIZE for m in tf.getmembers()}


# ---------------------------------------------------------------- same as tarfile

@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
@pytest.mark.parametrize("chunk", [1 << 20, 4096, 700, 37], ids=["1M", "4k", "700", "37"])
def test_same_entries_and_bodies_as_tarfile(fmt, chunk):
    data = make_archive(fmt)
    mine = read_all(data, chunk)
    assert mine == read_with_tarfile(data)
    names = [m[0] for m in mine]
    assert LONG_NAME in names and UNICODE_NAME in names and len(LONG_NAME) > 100
    assert (("bin/long-link", EntryType.SYMLINK) in [(m[0], m[1]) for m in mine])
    assert next(m for m in mine if m[0] == "bin/long-link")[4] == LONG_LINK_TARGET
    assert next(m for m in mine if m[0] == "after-big")[5] == b"ok"


def test_ustar_prefix_field():
    name = "opt/" + "p" * 90 + "/" + "n" * 90  # fits ustar only through the prefix field
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        tf.addfile(info(name, size=2), io.BytesIO(b"hi"))
    data = buf.getvalue()
    assert data[345:349] == b"opt/"  # really written with a prefix
    assert read_all(data) == read_with_tarfile(data)
    assert read_all(data)[0][0] == name


def test_global_pax_header_is_skipped_and_pax_keys_apply():
    data = make_archive(tarfile.PAX_FORMAT, pax_headers={"comment": "global"})
    assert data[156:157] == b"g"
    assert read_all(data) == read_with_tarfile(data)


def test_entries_skipped_unread_keep_the_stream_aligned():
    data = make_archive(tarfile.GNU_FORMAT)
    full = read_all(data, 1000)
    skipped = read_all(data, 1000, bodies=False)
    assert [m[:5] for m in full] == [m[:5] for m in skipped]


def test_base256_size_is_read():
    data = make_archive(tarfile.GNU_FORMAT)
    off = header_offsets(data)["etc/hostname"]
    patched = set_field(data, off, 124, b"\x80" + (5).to_bytes(11, "big"))
    assert patched != data
    assert read_all(patched) == read_with_tarfile(patched) == read_all(data)
    # a huge base-256 size is reported, then the stream ends inside the body
    huge = set_field(data[:off + BLOCK_SIZE], off, 124, b"\x80" + (1 << 40).to_bytes(11, "big"))
    reader = iter(TarStreamReader(chunker(huge, 1 << 20)))
    entries = [next(reader), next(reader)]
    assert entries[1].name == "etc/hostname" and entries[1].size == 1 << 40
    with pytest.raises(TarFormatError) as e:
        next(reader)
    assert e.value.truncated and e.value.number == 2 and e.value.name == "etc/hostname"


def test_signed_checksum_accepted():
    data = make_archive(tarfile.GNU_FORMAT)
    off = header_offsets(data)[UNICODE_NAME]
    signed = set_field(data, off, 0, UNICODE_NAME.encode(), signed=True)
    assert signed[off + 148:off + 156] != data[off + 148:off + 156]  # the name has bytes >= 128
    assert read_all(signed) == read_all(data)


def test_pax_size_overrides_header_size():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = info("f", size=6)
        ti.pax_headers = {"size": "6"}
        tf.addfile(ti, io.BytesIO(b"abcdef"))
        tf.addfile(info("g", size=1), io.BytesIO(b"z"))
    data = buf.getvalue()
    off = header_offsets(data)["f"]
    zeroed = set_field(data, off, 124, b"00000000000\0")  # header says 0, PAX says 6
    assert [(m[0], m[2], m[5]) for m in read_all(zeroed)] == [("f", 6, b"abcdef"), ("g", 1, b"z")]


@pytest.mark.parametrize("type_", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE], ids=["sym", "hard", "dir"])
def test_header_only_types_have_no_body_whatever_their_size_field(type_):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(info("x", type_, linkname="target" if type_ != tarfile.DIRTYPE else ""))
        tf.addfile(info("f", size=3), io.BytesIO(b"abc"))
    patched = set_field(buf.getvalue(), 0, 124, b"%011o\0" % 700)  # as Go and tarfile: ignored
    entries = read_all(patched)
    assert [(m[0], m[2], m[5]) for m in entries] == [("x", 700, b""), ("f", 3, b"abc")]
    assert entries == read_with_tarfile(patched)


def old_gnu_sparse(name: str, stored: bytes, *, extended: bool) -> bytes:
    """An 'S' member as GNU tar writes it (sparse map in the header, optionally one
    extension block), followed by a regular file."""
    h = bytearray(tarfile.TarInfo(name).tobuf(tarfile.GNU_FORMAT))
    h[124:136] = b"%011o\0" % len(stored)
    h[156:157] = b"S"
    h[386:398] = b"%011o\0" % 0
    h[398:410] = b"%011o\0" % len(stored)
    h[482] = 1 if extended else 0
    h[483:495] = b"%011o\0" % (len(stored) + 4096)
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    ext = b""
    if extended:
        e = bytearray(BLOCK_SIZE)
        e[0:12] = b"%011o\0" % 8192
        e[12:24] = b"%011o\0" % 0
        ext = bytes(e)
    padded = stored + bytes(-len(stored) % BLOCK_SIZE)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(info("next", size=4), io.BytesIO(b"next"))
    return bytes(h) + ext + padded + buf.getvalue()


@pytest.mark.parametrize("extended", [False, True])
def test_old_gnu_sparse_is_skipped_whole(extended):
    data = old_gnu_sparse("var/sparse", b"S" * 700, extended=extended)
    entries = read_all(data, bodies=False)
    assert [(m[0], m[1], m[2]) for m in entries] == [("var/sparse", EntryType.SPARSE, 700),
                                                      ("next", EntryType.FILE, 4)]
    assert read_all(data)[1][5] == b"next"
    # the walker does not expand it, and says so when the file is wanted
    res = walk_layers([("l0", io.BytesIO(data))], lambda p: 1000 if p in ("var/sparse", "next") else None)
    assert set(res.files) == {"next"}
    assert any("'var/sparse'" in w and "sparse" in w for w in res.warnings)


def test_pax_sparse_uses_real_name():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = info("./GNUSparseFile.0/data.bin", size=3)
        ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "opt/data.bin",
                          "GNU.sparse.realsize": "4096"}
        tf.addfile(ti, io.BytesIO(b"map"))
        tf.addfile(info("z", size=1), io.BytesIO(b"z"))
    assert [(m[0], m[1], m[2]) for m in read_all(buf.getvalue(), bodies=False)] == [
        ("opt/data.bin", EntryType.SPARSE, 3), ("z", EntryType.FILE, 1)]


# ---------------------------------------------------------------- body reader

def test_body_reader_is_bounded_forward_only_and_expires():
    data = make_archive(tarfile.GNU_FORMAT)
    reader = iter(TarStreamReader(chunker(data, 333)))
    entry = next(e for e in reader if e.name == LONG_NAME)
    expected = bytes(range(256)) * 40
    body = entry.open()
    assert body.read(10) == expected[:10]
    assert body.seek(100) == 100 and body.tell() == 100
    with pytest.raises(io.UnsupportedOperation):
        body.seek(5)
    buffered = io.BufferedReader(body, 64)  # readinto works for wrappers
    assert buffered.read(50) == expected[100:150]
    assert buffered.read() == expected[150:]
    assert body.read(10) == b""  # never past the body
    nxt = next(reader)
    assert nxt.type is EntryType.SYMLINK and nxt.open().read() == b""
    with pytest.raises(ValueError, match="no longer available"):
        body.read(1)


# ---------------------------------------------------------------- damage

def test_bad_checksum_names_entry_and_offset():
    data = make_archive(tarfile.GNU_FORMAT)
    off = header_offsets(data)["etc/hostname"]
    bad = data[:off] + b"X" + data[off + 1:]
    with pytest.raises(TarFormatError) as e:
        read_all(bad)
    assert e.value.number == 2 and e.value.offset == off and "checksum" in str(e.value)
    assert not e.value.truncated
    with pytest.raises(LayerError) as le:
        walk_layers([("sha256:abc", io.BytesIO(gzip.compress(bad)))], lambda p: None)
    assert le.value.code == "LayerCorrupt"
    assert "sha256:abc" in str(le.value) and "#2" in str(le.value) and "checksum" in str(le.value)


def test_not_a_tar_and_empty_stream():
    with pytest.raises(LayerError, match="not a tar archive") as e:
        walk_layers([("l0", io.BytesIO(b"hello world " * 100))], lambda p: None)
    assert e.value.code == "LayerCorrupt"
    with pytest.raises(LayerError, match="not a tar archive") as e:
        walk_layers([("l0", io.BytesIO(gzip.compress(b"")))], lambda p: None)
    assert e.value.code == "LayerCorrupt"


@pytest.mark.parametrize("cut", ["in-body", "in-header", "in-long-name"])
def test_truncated_archive_is_corrupt(cut):
    data = make_archive(tarfile.GNU_FORMAT)
    offsets = header_offsets(data, first=True)
    end = {"in-body": offsets["big"] + BLOCK_SIZE + 1000, "in-header": offsets["etc/hostname"] + 100,
           "in-long-name": offsets[LONG_NAME] + BLOCK_SIZE + 50}[cut]
    with pytest.raises(TarFormatError) as e:
        read_all(data[:end], 100)
    assert e.value.truncated
    with pytest.raises(LayerError) as le:
        walk_layers([("layerX", io.BytesIO(gzip.compress(data[:end])))], lambda p: None)
    assert le.value.code == "LayerCorrupt" and "layerX" in str(le.value) and "truncated" in str(le.value)
    if cut == "in-body":
        assert le.value.path == "big"


def test_end_without_zero_blocks_is_fine_but_a_lone_zero_block_is_not():
    data = make_archive(tarfile.GNU_FORMAT)
    ends = header_offsets(data)["after-big"] + 2 * BLOCK_SIZE
    assert read_all(data[:ends]) == read_all(data)
    assert read_all(data[:ends + BLOCK_SIZE]) == read_all(data)  # one zero block, then EOF
    lone = data[:ends] + bytes(BLOCK_SIZE) + data[:ends]
    with pytest.raises(TarFormatError, match="lone zero block"):
        read_all(lone)


def test_oversized_metadata_header_is_refused():
    h = bytearray(tarfile.TarInfo("././@LongLink").tobuf(tarfile.GNU_FORMAT))
    h[124:136] = b"%011o\0" % (2 << 20)
    h[156:157] = b"L"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    with pytest.raises(TarFormatError, match="metadata header"):
        read_all(bytes(h) + bytes(4 << 20))


def test_malformed_pax_record_is_refused():
    data = make_archive(tarfile.PAX_FORMAT)
    off = data.find(b" path=")  # first PAX record: "NNN path=..."
    assert off > 0
    bad = data[:off - 3] + b"9x9" + data[off:]
    with pytest.raises(TarFormatError, match="PAX record"):
        read_all(bad)


# ---------------------------------------------------------------- compression

def test_multi_member_gzip_and_zero_padding():
    data = make_archive(tarfile.PAX_FORMAT)
    cuts = [0, 1000, len(data) // 2, len(data) - 700, len(data)]
    blob = b"".join(gzip.compress(data[a:b]) for a, b in zip(cuts, cuts[1:])) + bytes(100)
    wanted = {"etc/hostname", "after-big", LONG_NAME}
    res = walk_layers([("l0", io.BytesIO(blob))], lambda p: 10 << 20 if p in wanted else None)
    assert res.data()["etc/hostname"] == b"host\n" and res.data()["after-big"] == b"ok"
    assert res.data()[LONG_NAME] == bytes(range(256)) * 40


def test_garbage_after_a_gzip_member_is_corrupt():
    data = make_archive(tarfile.GNU_FORMAT)
    blob = gzip.compress(data[:2000]) + b"garbage!" + gzip.compress(data[2000:])
    with pytest.raises(LayerError) as e:
        walk_layers([("l0", io.BytesIO(blob))], lambda p: None)
    assert e.value.code == "LayerCorrupt" and "cannot decompress" in str(e.value)


def test_truncated_gzip_is_corrupt():
    # the tar itself is complete in what survives: only the gzip trailer is missing
    data = make_archive(tarfile.GNU_FORMAT)
    blob = gzip.compress(data)[:-6]
    with pytest.raises(LayerError) as e:
        source = open_layer("l0", io.BytesIO(blob), LayerLimits(), 0)
        while source.next_chunk():
            pass
    assert e.value.code == "LayerCorrupt" and "end-of-stream" in str(e.value)


@pytest.mark.parametrize("kind", ["tar", "gzip", "zstd-frames"])
def test_layer_source_counts_and_produces_the_stream(kind):
    data = make_archive(tarfile.PAX_FORMAT)
    blob = {"tar": data, "gzip": gzip.compress(data),
            "zstd-frames": zstandard.ZstdCompressor().compress(data[:5000])
            + zstandard.ZstdCompressor().compress(data[5000:])}[kind]
    source = open_layer("l0", io.BytesIO(blob), LayerLimits(), 0)
    out = []
    while chunk := source.next_chunk():
        assert len(chunk) <= 1 << 20
        out.append(chunk)
    assert b"".join(out) == data and source.count == len(data)
    assert source.compressed == (None if kind == "tar" else len(blob))


# ---------------------------------------------------------------- real layers

def test_real_app_image_layers_match_tarfile(app_image):
    for path in app_image.layer_paths:
        blob = path.read_bytes()
        data = zlib.decompress(blob, 31) if blob[:2] == b"\x1f\x8b" else blob
        mine = {(e.name.rstrip("/"), e.type, e.size) for e in TarStreamReader(chunker(data, 1 << 20))}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
            ref = {(m.name, TYPE_OF.get(m.type, EntryType.OTHER), m.size) for m in tf}
        assert mine == ref and len(mine) > 5
