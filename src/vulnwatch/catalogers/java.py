"""Java: archives (``*.jar``, ``*.war``, ``*.ear``, ``*.jpi``, ``*.hpi``) opened in memory.

Each ``META-INF/maven/<group>/<artifact>/pom.properties`` is a package; an archive
without one falls back to ``META-INF/MANIFEST.MF`` and its file name. Archives nested
in archives (``WEB-INF/lib/*.jar``, Spring Boot ``BOOT-INF/lib``) are read too, up to
a depth limit.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping

from ..model import Package
from .interface import CatalogContext, Cataloger, CatalogResult
from .purl import purl

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear", ".jpi", ".hpi")
MAX_DEPTH = 3
MAX_NESTED_SIZE = 128 * 1024 * 1024
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
    suffixes = ARCHIVE_SUFFIXES
    max_file_size = 256 * 1024 * 1024

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        packages: list[Package] = []
        warnings: list[str] = []
        for path in sorted(files):
            self._archive(path, files[path], path, context.layer_of.get(path), 0, packages, warnings)
        return CatalogResult(tuple(packages), tuple(warnings))

    def _archive(self, label: str, data: bytes, path: str, layer: str | None, depth: int,
                 packages: list[Package], warnings: list[str]) -> None:
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
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as e:
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
        if depth + 1 >= MAX_DEPTH:
            return
        for info in zf.infolist():
            if info.filename.endswith(ARCHIVE_SUFFIXES) and 0 < info.file_size <= MAX_NESTED_SIZE:
                try:
                    nested = zf.read(info)
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as e:
                    warnings.append(f"java: {label}!{info.filename}: unreadable ({e})")
                    continue
                self._archive(f"{label}!{info.filename}", nested, path, layer, depth + 1, packages, warnings)

    def _from_manifest(self, zf: zipfile.ZipFile, label: str, path: str, layer: str | None) -> Package | None:
        try:
            mf = _manifest(zf.read("META-INF/MANIFEST.MF").decode("utf-8", "replace"))
        except KeyError:
            mf = {}
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
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
