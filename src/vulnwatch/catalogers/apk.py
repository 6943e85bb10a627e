"""apk: Alpine's ``lib/apk/db/installed``."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Package
from ._deb822 import stanzas
from .interface import CatalogContext, Cataloger, CatalogResult
from .purl import purl

INSTALLED = "lib/apk/db/installed"


class ApkCataloger(Cataloger):
    """Alpine/Wolfi packages: ``P:`` name, ``V:`` version, ``A:`` arch, ``o:`` origin
    (the source package, which advisories use)."""

    name = "apk"
    exact_paths = frozenset({INSTALLED, "usr/" + INSTALLED})
    max_file_size = 64 * 1024 * 1024

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        packages: list[Package] = []
        warnings: list[str] = []
        # the same database may be reachable as lib/... and usr/lib/... (usr-merge)
        seen_data: set[bytes] = set()
        distro = context.distro
        namespace = distro.id if distro else "alpine"
        ecosystem = context.distro_ecosystem or "Alpine"
        records = 0
        for path in sorted(files):
            data = files[path]
            if data in seen_data:
                continue
            seen_data.add(data)
            for lineno, fields in stanzas(data.decode("utf-8", "replace")):
                records += 1
                context.limits.check_records(self.name, path, records)
                name, version = fields.get("P"), fields.get("V")
                if not name or not version:
                    warnings.append(f"apk: {path}: line {lineno}: record without P: or V:; skipped")
                    continue
                origin = fields.get("o") or name
                packages.append(Package(
                    name=name, version=version, ecosystem=ecosystem,
                    purl=purl("apk", name, version, namespace=namespace,
                              qualifiers={"arch": fields.get("A"),
                                          "distro": distro.purl_distro if distro else None,
                                          "upstream": origin if origin != name else None}),
                    source_name=origin, path=path, layer=context.layer_of.get(path)))
        return CatalogResult(tuple(packages), tuple(warnings))
