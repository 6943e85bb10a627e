"""Hostile inputs, made small: zip archives written by hand (lying headers, nesting, one
compressed body reused for many members), gzip bombs streamed to disk, OCI layouts whose layer
blobs are given as files (never held whole in memory)."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_MANIFEST

_ZEROS = b"\0" * (1 << 20)


@dataclass(frozen=True)
class Member:
    """One zip member: ``body`` is what is stored (already deflated when ``method`` is 8)."""

    name: str
    body: bytes
    crc: int
    size: int
    """The uncompressed size the headers declare."""
    method: int = 8


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def deflated_zeros(n: int) -> tuple[bytes, int]:
    """(raw deflate of ``n`` zero bytes, their CRC), computed a MiB at a time."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out, crc, left = [], 0, n
    while left:
        chunk = _ZEROS[:min(left, len(_ZEROS))]
        out.append(c.compress(chunk))
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    out.append(c.flush())
    return b"".join(out), crc


def member(name: str, data: bytes, *, declared: int | None = None) -> Member:
    """A deflated member of ``data``; ``declared`` lies about its size."""
    return Member(name, deflate(data), zlib.crc32(data), len(data) if declared is None else declared)


def zip_bytes(members: list[Member]) -> bytes:
    """A zip archive (local headers, central directory, end record) of ``members`` as given."""
    out = bytearray()
    central = bytearray()
    for m in members:
        name = m.name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x800, m.method, 0, 0x21, m.crc, len(m.body), m.size,
                           len(name), 0) + name + m.body
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x800, m.method, 0, 0x21, m.crc,
                               len(m.body), m.size, len(name), 0, 0, 0, 0, 0, offset) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def tar_header(name: str, size: int, type_: bytes = b"0", linkname: str = "", mode: int = 0o644,
               devmajor: int = 0, devminor: int = 0) -> bytes:
    """One ustar header block."""
    h = bytearray(512)

    def put(off: int, length: int, value: bytes) -> None:
        h[off:off + len(value[:length])] = value[:length]

    put(0, 100, name.encode())
    put(100, 8, b"%07o\0" % mode)
    put(108, 8, b"0000000\0")
    put(116, 8, b"0000000\0")
    put(124, 12, b"%011o\0" % size)
    put(136, 12, b"00000000000\0")
    put(156, 1, type_)
    put(157, 100, linkname.encode())
    put(257, 6, b"ustar\0")
    put(263, 2, b"00")
    put(329, 8, b"%07o\0" % devmajor)
    put(337, 8, b"%07o\0" % devminor)
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def tar_file(name: str, data: bytes) -> bytes:
    return tar_header(name, len(data)) + data + b"\0" * (-len(data) % 512)


class LayerFile:
    """A gzip layer blob written to ``path`` as it is built (its uncompressed digest kept)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "wb")
        self._gz = gzip.GzipFile(fileobj=self._f, mode="wb", compresslevel=1, mtime=0)
        self._diff = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self._gz.write(data)
        self._diff.update(data)

    def file(self, name: str, data: bytes) -> None:
        self.write(tar_file(name, data))

    def close(self) -> str:
        self.write(b"\0" * 1024)
        self._gz.close()
        self._f.close()
        return "sha256:" + self._diff.hexdigest()


def layout(out_dir: Path, layers: list[tuple[Path, str]]) -> Path:
    """An OCI layout of ``(blob file, diff id)`` layers (moved into ``blobs/``)."""
    blobs = out_dir / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    descs, diff_ids = [], []
    for blob, diff_id in layers:
        h = hashlib.sha256()
        with open(blob, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digest = h.hexdigest()
        size = blob.stat().st_size
        blob.rename(blobs / digest)
        descs.append({"mediaType": MEDIA_LAYER_GZIP, "digest": f"sha256:{digest}", "size": size})
        diff_ids.append(diff_id)

    def put(data: bytes) -> str:
        d = hashlib.sha256(data).hexdigest()
        (blobs / d).write_bytes(data)
        return f"sha256:{d}"

    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                           "config": {"mediaType": MEDIA_CONFIG, "digest": put(config), "size": len(config)},
                           "layers": descs}).encode()
    mdigest = put(manifest)
    (out_dir / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (out_dir / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "manifests": [{"mediaType": MEDIA_MANIFEST, "digest": mdigest, "size": len(manifest),
                                           "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    return out_dir


def image_of(out_dir: Path, build) -> Path:
    """An OCI layout with one gzip layer made by ``build(LayerFile)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lf = LayerFile(out_dir / "layer.tmp")
    build(lf)
    diff = lf.close()
    return layout(out_dir, [(lf.path, diff)])
