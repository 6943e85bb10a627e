"""``vulndb`` and ``layer_cache``: the built-in scanner's advisory data and its per-layer cache."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from .types import Duration, Model, resolve_path

__all__ = ["LayerCacheConfig", "VulnDBConfig"]


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
    """Local OSV exports (``all.zip`` files or folders of ``*.json``) imported before a run when
    they are newer than the last import: the air-gapped way to feed the data."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @field_validator("imports")
    @classmethod
    def _imports(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [resolve_path(v, info) for v in value]
