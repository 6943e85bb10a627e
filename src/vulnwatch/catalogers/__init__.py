"""Catalogers: files -> packages, one module per package format.

``CATALOGERS`` maps each name (as config and CLI spell it) to its class;
:func:`all_catalogers` gives one instance of each, in a fixed order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import LazyMap, exports

if TYPE_CHECKING:
    from .apk import ApkCataloger
    from .dpkg import DpkgCataloger
    from .golang import GoBinaryCataloger
    from .interface import (CatalogContext, Cataloger, CatalogError, CatalogLimitError, CatalogLimits, CatalogResult,
                            Distro)
    from .java import JavaArchiveCataloger
    from .npm import NpmCataloger
    from .python import PythonCataloger
    from .rpm import RpmCataloger

CATALOGERS: dict[str, type[Cataloger]] = LazyMap(__name__, {
    "dpkg": ".dpkg:DpkgCataloger", "apk": ".apk:ApkCataloger", "rpm": ".rpm:RpmCataloger",
    "python": ".python:PythonCataloger", "npm": ".npm:NpmCataloger", "go": ".golang:GoBinaryCataloger",
    "java": ".java:JavaArchiveCataloger",
})
"""Every cataloger by name: ``dpkg``, ``apk``, ``rpm``, ``python``, ``npm``, ``go``, ``java`` (each
module imported when its class is first looked up: the limits or the interface alone load none)."""

# each name imported with its module on first use
__getattr__ = exports(__name__, {
    "ApkCataloger": ".apk:ApkCataloger", "DpkgCataloger": ".dpkg:DpkgCataloger",
    "GoBinaryCataloger": ".golang:GoBinaryCataloger", "JavaArchiveCataloger": ".java:JavaArchiveCataloger",
    "NpmCataloger": ".npm:NpmCataloger", "PythonCataloger": ".python:PythonCataloger",
    "RpmCataloger": ".rpm:RpmCataloger",
    **{name: f".interface:{name}" for name in ("CatalogContext", "Cataloger", "CatalogError", "CatalogLimitError",
                                                "CatalogLimits", "CatalogResult", "Distro")},
})


def all_catalogers(names: list[str] | tuple[str, ...] | None = None) -> list[Cataloger]:
    """Instances of the named catalogers (all when ``names`` is None). Raises
    :class:`CatalogError` naming an unknown cataloger and the known ones."""
    if names is None:
        return [cls() for cls in CATALOGERS.values()]
    out = []
    for n in names:
        if n not in CATALOGERS:
            from .interface import CatalogError
            raise CatalogError("catalogers", n, f"unknown cataloger; choose from {', '.join(CATALOGERS)}")
        out.append(CATALOGERS[n]())
    return out


__all__ = ["CATALOGERS", "all_catalogers", "Cataloger", "CatalogContext", "CatalogError", "CatalogLimitError",
           "CatalogLimits", "CatalogResult", "Distro"]
