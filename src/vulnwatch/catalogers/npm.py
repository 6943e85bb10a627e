"""npm: ``package.json`` files of installed packages (``node_modules/**/package.json``).

Like syft, every ``package.json`` with a name and a version is a package, including
an application's own root ``package.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ..model import Package
from .interface import CatalogContext, Cataloger, CatalogResult
from .purl import purl


def _is_unicode(text: str) -> bool:
    """False for a string JSON escapes made invalid (a lone UTF-16 surrogate such as ``\\ud800``):
    it cannot be encoded, so neither put in a purl nor stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class NpmCataloger(Cataloger):
    """Node packages: ``name`` and ``version`` of each ``package.json``."""

    name = "npm"
    suffixes = ("/package.json",)
    exact_paths = frozenset({"package.json"})
    max_file_size = 4 * 1024 * 1024

    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        packages: list[Package] = []
        warnings: list[str] = []
        for path in sorted(files):
            try:
                doc = json.loads(files[path].decode("utf-8-sig", "replace"))
            except RecursionError:  # json.loads has no depth limit of its own
                warnings.append(f"npm: {path}: not valid JSON (nested too deeply); skipped")
                continue
            except ValueError as e:
                warnings.append(f"npm: {path}: not valid JSON ({e}); skipped")
                continue
            if not isinstance(doc, dict):
                continue
            name, version = doc.get("name"), doc.get("version")
            if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
                continue  # a package.json that is not a package (test fixtures, workspaces)
            if not (_is_unicode(name) and _is_unicode(version)):
                warnings.append(f"npm: {path}: name or version holds a lone surrogate escape (\\ud800...); skipped")
                continue
            namespace, _, bare = name.rpartition("/") if name.startswith("@") else ("", "", name)
            packages.append(Package(
                name=name, version=version, ecosystem="npm",
                purl=purl("npm", bare, version, namespace=namespace or None),
                path=path, layer=context.layer_of.get(path)))
        return CatalogResult(tuple(packages), tuple(warnings))
