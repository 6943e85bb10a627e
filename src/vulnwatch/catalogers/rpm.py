"""rpm: the SQLite rpmdb (``var/lib/rpm/rpmdb.sqlite``, ``usr/lib/sysimage/rpm/rpmdb.sqlite``).

The database is opened from an in-memory copy (never written to disk) and each row's
RPM header blob is parsed for NAME, VERSION, RELEASE, EPOCH, ARCH and SOURCERPM.
BerkeleyDB (``Packages``) and NDB (``Packages.db``) databases are recognised and
reported as not read, with a warning.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Mapping

from ..model import Package
from .interface import CatalogContext, Cataloger, CatalogResult
from .purl import purl

RPM_DIRS = ("var/lib/rpm/", "usr/lib/sysimage/rpm/", "usr/share/rpm/")
SQLITE_NAME = "rpmdb.sqlite"
UNSUPPORTED = {"Packages": "BerkeleyDB", "Packages.db": "NDB"}

TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH, TAG_SOURCERPM = 1000, 1001, 1002, 1003, 1022, 1044
TYPE_INT32, TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING = 4, 6, 8, 9


class RpmHeaderError(ValueError):
    """An RPM header blob is malformed."""


def parse_header(blob: bytes) -> dict[int, str | int]:
    """Tags of interest from an RPM header blob as stored in rpmdb (no lead magic:
    ``il``, ``dl``, ``il`` 16-byte index entries, then ``dl`` bytes of data)."""
    if len(blob) < 8:
        raise RpmHeaderError("header shorter than 8 bytes")
    il, dl = struct.unpack(">ii", blob[:8])
    if il < 1 or dl < 0 or il > 65536 or 8 + 16 * il + dl > len(blob):
        raise RpmHeaderError(f"header index says {il} entries and {dl} data bytes, blob has {len(blob)}")
    data_start = 8 + 16 * il
    store = blob[data_start:data_start + dl]
    wanted = {TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH, TAG_SOURCERPM}
    out: dict[int, str | int] = {}
    for i in range(il):
        tag, typ, offset, count = struct.unpack(">iiii", blob[8 + 16 * i: 24 + 16 * i])
        if tag not in wanted:
            continue
        if offset < 0 or offset >= len(store):
            raise RpmHeaderError(f"tag {tag} points outside the data store")
        if typ == TYPE_INT32:
            if offset + 4 > len(store):
                raise RpmHeaderError(f"tag {tag} truncated")
            out[tag] = struct.unpack(">i", store[offset:offset + 4])[0]
        elif typ in (TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING):
            end = store.find(b"\0", offset)
            if end < 0:
                raise RpmHeaderError(f"tag {tag} string not terminated")
            out[tag] = store[offset:end].decode("utf-8", "replace")
    return out


def source_name(sourcerpm: str) -> str:
    """``openssl-3.0.7-25.el9_3.src.rpm`` -> ``openssl``."""
    base = sourcerpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    parts = base.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else base


class RpmCataloger(Cataloger):
    """RHEL/Fedora/Alma/Rocky/SUSE packages from the SQLite rpmdb."""

    name = "rpm"
    exact_paths = frozenset(d + n for d in RPM_DIRS for n in (SQLITE_NAME, *UNSUPPORTED))
    max_file_size = 512 * 1024 * 1024

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        packages: list[Package] = []
        warnings: list[str] = []
        unread: list[tuple[str, str]] = []
        for path in sorted(files):
            base = path.rpartition("/")[2]
            if base in UNSUPPORTED:
                warnings.append(f"rpm: {path}: {UNSUPPORTED[base]} rpmdb is not read (only rpmdb.sqlite is); "
                                "RPM packages of this image are not listed")
                unread.append((path, f"{UNSUPPORTED[base]} rpmdb not read (only rpmdb.sqlite is): its RPM "
                                     "packages are not judged"))
                continue
            rows, err = self._rows(files[path])
            if err:
                warnings.append(f"rpm: {path}: cannot open as SQLite rpmdb ({err}); RPM packages not listed")
                continue
            for n, (hnum, blob) in enumerate(rows, 1):
                context.limits.check_records(self.name, path, n)
                if not isinstance(blob, bytes):  # the column's type is not enforced by SQLite
                    warnings.append(f"rpm: {path}: record {hnum}: header is {type(blob).__name__}, not a blob; "
                                    "skipped")
                    continue
                try:
                    tags = parse_header(bytes(blob))
                except RpmHeaderError as e:
                    warnings.append(f"rpm: {path}: record {hnum}: {e}; skipped")
                    continue
                pkg = self._package(tags, path, context)
                if pkg is None:
                    warnings.append(f"rpm: {path}: record {hnum}: no NAME/VERSION; skipped")
                elif pkg.name != "gpg-pubkey":
                    packages.append(pkg)
        return CatalogResult(tuple(packages), tuple(warnings), tuple(unread))

    @staticmethod
    def _rows(data: bytes) -> tuple[list[tuple[int, bytes]], str | None]:
        if not data.startswith(b"SQLite format 3\0"):
            return [], "not an SQLite file"
        copy = bytearray(data)
        copy[18:20] = b"\x01\x01"  # WAL databases: read the main file as a legacy one
        con = sqlite3.connect(":memory:")
        try:
            con.deserialize(bytes(copy))
            return list(con.execute("SELECT hnum, blob FROM Packages ORDER BY hnum")), None
        except sqlite3.Error as e:
            return [], str(e)
        finally:
            con.close()

    @staticmethod
    def _package(tags: dict[int, str | int], path: str, context: CatalogContext) -> Package | None:
        name, version, release = tags.get(TAG_NAME), tags.get(TAG_VERSION), tags.get(TAG_RELEASE)
        if not name or not version:
            return None
        epoch = tags.get(TAG_EPOCH)
        vr = f"{version}-{release}" if release else str(version)
        full = f"{epoch}:{vr}" if epoch not in (None, "") else vr
        srpm = tags.get(TAG_SOURCERPM)
        distro = context.distro
        return Package(
            name=str(name), version=full, ecosystem=context.distro_ecosystem or "Red Hat",
            purl=purl("rpm", str(name), vr, namespace=distro.id if distro else None,
                      qualifiers={"arch": str(tags.get(TAG_ARCH) or ""),
                                  "epoch": str(epoch) if epoch not in (None, "") else None,
                                  "distro": distro.purl_distro if distro else None,
                                  "upstream": str(srpm) if srpm else None}),
            source_name=source_name(str(srpm)) if srpm else None,
            path=path, layer=context.layer_of.get(path))
