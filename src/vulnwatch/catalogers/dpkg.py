"""dpkg: ``var/lib/dpkg/status`` and distroless ``var/lib/dpkg/status.d/*``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..model import Package
from ._deb822 import stanzas
from .interface import CatalogContext, Cataloger, CatalogResult
from .purl import purl

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
NOT_PRESENT = frozenset({"not-installed", "config-files"})
"""dpkg states in which the package's files are not on disk."""
_SOURCE_RE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?$")


class DpkgCataloger(Cataloger):
    """Debian/Ubuntu packages. Each installed stanza gives a package; ``Source:`` (with
    an optional ``(version)``) gives the source package, which Debian advisories use."""

    name = "dpkg"
    exact_paths = frozenset({STATUS})
    max_file_size = 64 * 1024 * 1024

    def wants(self, path: str) -> bool:
        if path == STATUS:
            return True
        if path.startswith(STATUS_D):
            base = path[len(STATUS_D):]
            return "/" not in base and not base.endswith(".md5sums") and not base.startswith(".")
        return False

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        packages: list[Package] = []
        warnings: list[str] = []
        seen: set[tuple[str, str, str]] = set()
        records = 0
        for path in sorted(files):
            text = files[path].decode("utf-8", "replace")
            for lineno, fields in stanzas(text):
                records += 1
                context.limits.check_records(self.name, path, records)
                name = fields.get("Package")
                version = fields.get("Version")
                if not name or not version:
                    warnings.append(f"dpkg: {path}: line {lineno}: stanza without Package or Version; skipped")
                    continue
                status = fields.get("Status")
                if status and status.split()[-1] in NOT_PRESENT:
                    continue
                arch = fields.get("Architecture", "")
                key = (name, version, arch)
                if key in seen:
                    continue
                seen.add(key)
                src_name = src_version = None
                if "Source" in fields:
                    m = _SOURCE_RE.match(fields["Source"])
                    if m:
                        src_name, src_version = m.group(1), m.group(2)
                    else:
                        warnings.append(f"dpkg: {path}: line {lineno}: cannot read Source: {fields['Source']!r}")
                packages.append(self._package(name, version, arch, src_name, src_version, path, context))
        return CatalogResult(tuple(packages), tuple(warnings))

    @staticmethod
    def _package(name: str, version: str, arch: str, src_name: str | None, src_version: str | None,
                 path: str, context: CatalogContext) -> Package:
        distro = context.distro
        namespace = distro.id if distro and distro.id in ("debian", "ubuntu") else "debian"
        upstream = None
        if src_name and (src_name != name or src_version):
            upstream = src_name + (f"@{src_version}" if src_version else "")
        ecosystem = context.distro_ecosystem or ("Ubuntu" if namespace == "ubuntu" else "Debian")
        return Package(
            name=name, version=version, ecosystem=ecosystem,
            purl=purl("deb", name, version, namespace=namespace,
                      qualifiers={"arch": arch, "distro": distro.purl_distro if distro else None,
                                  "upstream": upstream}),
            source_name=src_name or name,
            source_version=src_version if src_version and src_version != version else None,
            path=path, layer=context.layer_of.get(path))
