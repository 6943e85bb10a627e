"""Enrichment sources by name (:data:`SOURCES`) and the guess of a file's format (:func:`detect`).

Add a source: a module with an :class:`~.interface.EnrichmentSource`, its entry here, its name
in the config schema's ``vulndb.enrichment[].type``.
"""

from __future__ import annotations

from pathlib import Path

from ._read import head_of
from .cve5 import Cve5Source
from .epss import EpssSource
from .interface import EnrichmentData, EnrichmentError, EnrichmentReport, EnrichmentSource
from .kev import KevSource
from .nvd import NvdSource

SOURCES: dict[str, type[EnrichmentSource]] = {
    "kev": KevSource,
    "epss": EpssSource,
    "cve5": Cve5Source,
    "nvd": NvdSource,
}


def detect(path: Path) -> str | None:
    """The enrichment source whose format ``path`` is in, or None (then it is OSV data)."""
    head = head_of(path)
    for name, cls in SOURCES.items():
        if cls.sniff(path, head):
            return name
    return None


__all__ = ["SOURCES", "detect", "EnrichmentData", "EnrichmentError", "EnrichmentReport", "EnrichmentSource"]
