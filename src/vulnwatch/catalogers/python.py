"""Python: installed distributions (``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO``,
and ``*.egg-info`` files), in any site-packages or dist-packages directory."""

from __future__ import annotations

from collections.abc import Mapping

from packaging.utils import canonicalize_name

from ..model import Package
from .interface import CatalogContext, Cataloger, CatalogResult
from .purl import purl


def read_headers(text: str) -> dict[str, str]:
    """First occurrence of each header of a core-metadata file (RFC 822 style, the
    headers end at the first blank line)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        if line[0] in " \t":
            continue
        key, sep, value = line.partition(":")
        if sep and key not in out:
            out[key.strip()] = value.strip()
    return out


class PythonCataloger(Cataloger):
    """One package per metadata file; ``Name:`` and ``Version:`` headers as written."""

    name = "python"
    suffixes = (".dist-info/METADATA", ".egg-info/PKG-INFO", ".egg-info")
    max_file_size = 8 * 1024 * 1024

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        packages: list[Package] = []
        warnings: list[str] = []
        for path in sorted(files):
            headers = read_headers(files[path].decode("utf-8", "replace"))
            name, version = headers.get("Name"), headers.get("Version")
            if not name or not version:
                warnings.append(f"python: {path}: no Name/Version header; not a metadata file, skipped")
                continue
            packages.append(Package(
                name=name, version=version, ecosystem="PyPI",
                purl=purl("pypi", canonicalize_name(name), version),
                path=path, layer=context.layer_of.get(path)))
        return CatalogResult(tuple(packages), tuple(warnings))
