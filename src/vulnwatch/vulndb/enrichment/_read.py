"""Reading enrichment files: plain or gzip, single files, zips and folders of ``*.json``."""

from __future__ import annotations

import gzip
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .interface import MAX_FILE_BYTES, EnrichmentError


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is gzip, at most :data:`MAX_FILE_BYTES`."""
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f) if magic == b"\x1f\x8b" else f
            data = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise EnrichmentError(f"{path}: cannot be read ({e})") from e
    if len(data) > MAX_FILE_BYTES:
        raise EnrichmentError(f"{path}: larger than {MAX_FILE_BYTES} bytes; not imported")
    return data


def load_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise EnrichmentError(f"{where}: not JSON ({e})") from None


def json_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(label, bytes)`` of every ``*.json`` in a zip, a folder (recursively) or one file."""
    if path.is_dir():
        for f in sorted(path.rglob("*.json")):
            yield str(f), read_bytes(f)
        return
    if zipfile.is_zipfile(path):
        try:
            z = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise EnrichmentError(f"{path}: not a readable zip ({e})") from e
        with z:
            for info in z.infolist():
                if info.is_dir() or not info.filename.endswith(".json") or info.file_size > MAX_FILE_BYTES:
                    continue
                try:
                    yield f"{path.name}:{info.filename}", z.read(info)
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError) as e:
                    raise EnrichmentError(f"{path}:{info.filename}: cannot be read ({e})") from e
        return
    yield str(path), read_bytes(path)


def head_of(path: Path, size: int = 4096) -> bytes:
    """The first bytes of ``path`` (decompressed), or of its first ``*.json`` member."""
    try:
        if path.is_dir():
            first = next(iter(sorted(path.rglob("*.json"))), None)
            return first.read_bytes()[:size] if first else b""
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.filename.endswith(".json") and not info.is_dir():
                        with z.open(info) as m:
                            return m.read(size)
            return b""
        with open(path, "rb") as f:
            magic = f.read(2)
            f.seek(0)
            if magic == b"\x1f\x8b":
                return gzip.GzipFile(fileobj=f).read(size)
            return f.read(size)
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile):
        return b""
