"""Catalogers: files -> packages, one module per package format.

``CATALOGERS`` maps each name (as config and CLI spell it) to its class;
:func:`all_catalogers` gives one instance of each, in a fixed order.
"""

from __future__ import annotations

from .apk import ApkCataloger
from .dpkg import DpkgCataloger
from .golang import GoBinaryCataloger
from .interface import CatalogContext, Cataloger, CatalogError, CatalogLimitError, CatalogLimits, CatalogResult, Distro
from .java import JavaArchiveCataloger
from .npm import NpmCataloger
from .python import PythonCataloger
from .rpm import RpmCataloger

CATALOGERS: dict[str, type[Cataloger]] = {
    c.name: c for c in (DpkgCataloger, ApkCataloger, RpmCataloger, PythonCataloger, NpmCataloger,
                        GoBinaryCataloger, JavaArchiveCataloger)
}
"""Every cataloger by name: ``dpkg``, ``apk``, ``rpm``, ``python``, ``npm``, ``go``, ``java``."""


def all_catalogers(names: list[str] | tuple[str, ...] | None = None) -> list[Cataloger]:
    """Instances of the named catalogers (all when ``names`` is None). Raises
    :class:`CatalogError` naming an unknown cataloger and the known ones."""
    if names is None:
        return [cls() for cls in CATALOGERS.values()]
    out = []
    for n in names:
        if n not in CATALOGERS:
            raise CatalogError("catalogers", n, f"unknown cataloger; choose from {', '.join(CATALOGERS)}")
        out.append(CATALOGERS[n]())
    return out


__all__ = ["CATALOGERS", "all_catalogers", "Cataloger", "CatalogContext", "CatalogError", "CatalogLimitError",
           "CatalogLimits", "CatalogResult", "Distro"]
