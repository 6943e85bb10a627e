"""Enrichment sources: data about vulnerabilities (not packages) that the OSV records lack.

Each source reads one published format into plain rows keyed by vulnerability id, which the
index keeps in tables of their own (:meth:`~vulnwatch.vulndb.index.VulnIndex.replace_enrichment`),
apart from the OSV records:

- ``cve5``: CVE JSON 5 records (the CVE Program's format), CVSS from the CNA container and the
  ADP containers (CISA-ADP's "vulnrichment");
- ``nvd``: NVD's CVE API 2.0 responses, CVSS v2 / v3.0 / v3.1 / v4.0 metrics;
- ``kev``: CISA's Known Exploited Vulnerabilities catalog;
- ``epss``: FIRST's daily EPSS scores (CSV, optionally gzip-compressed).

The matcher applies them when findings are made or re-matched (:mod:`vulnwatch.vulndb.match`).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..interface import VulnDBError

CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")
"""What a CVE id looks like (other ids are not enrichment keys)."""

MAX_FILE_BYTES = 512 * 1024 * 1024
"""One enrichment file (after decompression) at most; larger ones are refused."""

MAX_VECTOR_LENGTH = 1024

RANKS = {"nvd:Primary": 10, "cve5:cna": 20, "cve5:adp": 30, "nvd:Secondary": 40}
"""Which enrichment CVSS wins when several exist (lower first): NVD's own (Primary) analysis,
then the CNA's, then an ADP's (CISA-ADP), then other NVD sources (Secondary)."""


class EnrichmentError(VulnDBError):
    """An enrichment file cannot be used at all (not its format, unreadable); the message names it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="BadEnrichment")


@dataclass
class EnrichmentData:
    """What one source file holds, as rows for the index."""

    cvss: list[tuple[str, str, int, str, str]] = field(default_factory=list)
    """``(vuln_id, provider, rank, kind, vector)``; ``kind`` is ``CVSS_V2``/``CVSS_V3``/``CVSS_V4``."""
    kev: list[tuple[str, str, str | None, int | None]] = field(default_factory=list)
    """``(cve, date_added, due_date, ransomware 1/None)``."""
    epss: list[tuple[str, float, float | None]] = field(default_factory=list)
    """``(cve, epss, percentile)``."""
    records: int = 0
    """Vulnerabilities described."""
    version: str | None = None
    """The data's own version or date (KEV ``catalogVersion``, EPSS ``score_date``, NVD ``timestamp``)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Entries left out, as ``(where, why)``."""

    def skip(self, where: str, why: str) -> None:
        if len(self.skipped) < 1000:
            self.skipped.append((where, why))


@dataclass(frozen=True)
class EnrichmentReport:
    """What one import or download of an enrichment source did."""

    source: str
    """``kev``, ``epss``, ``cve5`` or ``nvd``."""
    location: str
    """File or URL."""
    changed: bool
    """False when the data was the same as last time (content hash, or HTTP 304)."""
    records: int = 0
    """Vulnerabilities it describes."""
    version: str | None = None
    skipped: tuple[tuple[str, str], ...] = ()


class EnrichmentSource(abc.ABC):
    """One enrichment format."""

    name: str
    """Source name: ``kev``, ``epss``, ``cve5``, ``nvd``."""
    default_url: str | None = None
    """Where ``db update`` downloads it from unless configured (None: a URL must be configured)."""

    @classmethod
    @abc.abstractmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        """Whether the file or folder at ``path`` (``head``: its first bytes, or those of its
        first ``*.json`` member) is in this format."""

    @abc.abstractmethod
    def read(self, path: Path) -> EnrichmentData:
        """Read the file (or zip, or folder); raises :class:`EnrichmentError` when it is not
        usable at all, skips (and names) entries that are not."""


def vector_ok(vector: object) -> bool:
    return isinstance(vector, str) and 0 < len(vector) <= MAX_VECTOR_LENGTH
