"""``vulndb`` and ``layer_cache``: the built-in scanner's advisory data and its per-layer cache."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from .types import Duration, Model, resolve_path

__all__ = ["EnrichmentSourceConfig", "LayerCacheConfig", "VulnDBConfig"]

ENRICHMENT_TYPES = ("kev", "epss", "cve5", "nvd")


class EnrichmentSourceConfig(Model):
    """One enrichment source ``db update`` downloads (conditional GET, imported when changed)."""

    type: Literal["kev", "epss", "cve5", "nvd"]
    """``kev`` (CISA KEV catalog JSON), ``epss`` (FIRST EPSS CSV, plain or .gz), ``cve5`` (a zip of
    CVE JSON 5 records), ``nvd`` (an NVD CVE API 2.0 response, or a zip of pages)."""
    url: str | None = None
    """Where to download it; default: CISA's feed for ``kev``, FIRST's daily file for ``epss``;
    ``cve5`` and ``nvd`` need one (a mirror)."""


class LayerCacheConfig(Model):
    """Per-layer cache of what the built-in scanner extracted: images that share lower layers
    with one already scanned pull and read only their new layers."""

    enabled: bool = True
    """Off: every new digest reads all its layers."""
    path: Path | None = None
    """Cache directory; default ``$XDG_CACHE_HOME/vulnwatch/layers``."""
    max_mb: int = Field(default=1024, ge=1)
    """Size bound; the least recently used entries are evicted beyond it."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)


class VulnDBConfig(Model):
    """The local OSV vulnerability data used by the built-in scanner."""

    path: Path | None = None
    """The index file (SQLite); default ``~/.cache/vulnwatch/osv.db``."""
    base_url: str = "https://osv-vulnerabilities.storage.googleapis.com"
    """Where ``vulnwatch db update`` downloads ``<base_url>/<Ecosystem>/all.zip`` from (a mirror for
    air-gapped sites)."""
    ecosystems: list[str] = Field(default_factory=list)
    """Ecosystems ``db update`` downloads (``Debian``, ``PyPI``, ...); empty = those of the stored inventories."""
    max_age: Duration = timedelta(days=7)
    """Scans warn when the data is older than this."""
    imports: list[Path] = Field(default_factory=list)
    """Local OSV exports (``all.zip`` files or folders of ``*.json``) and enrichment files (KEV,
    EPSS, CVE JSON 5, NVD; recognised by their content) imported before a run when they changed
    since the last import: the air-gapped way to feed the data."""
    enrichment: list[EnrichmentSourceConfig] = Field(
        default_factory=lambda: [{"type": "kev"}, {"type": "epss"}])   # validated (validate_default) into models
    """Enrichment sources ``db update`` downloads besides the OSV exports (default: KEV and EPSS
    from their publishers); ``[]`` for none."""
    auto_update: bool = True
    """``scan`` and ``run`` download the OSV export of an ecosystem they need that the data has no
    record of at all (from ``base_url``); offline they fail, naming ``vulnwatch db import``."""
    allow_missing_data: bool = False
    """``scan`` exits 0 (not 4) when the data does not cover an ecosystem or release the image
    needs (the coverage is still reported); as ``--allow-missing-data``."""
    epss_threshold: float = Field(default=0.1, ge=0.0, le=1.0)
    """An EPSS score moving by at least this much is a change (an event) when findings are re-matched."""

    @field_validator("enrichment")
    @classmethod
    def _enrichment(cls, value: list[EnrichmentSourceConfig]) -> list[EnrichmentSourceConfig]:
        for e in value:
            if e.url is None and e.type in ("cve5", "nvd"):
                raise ValueError(f"enrichment source {e.type!r} needs a url (a mirror of the data); "
                                 "or import its files with `vulnwatch db import PATH`")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @field_validator("imports")
    @classmethod
    def _imports(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [resolve_path(v, info) for v in value]
