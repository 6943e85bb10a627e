"""``ignore``: rules that suppress findings, ignore files and VEX documents."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .types import Model, resolve_path

__all__ = ["IgnoreConfig", "IgnoreRuleConfig"]


def _listed(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out = [v.strip() for v in items]
    if any(not v for v in out):
        raise ValueError("empty pattern")
    return out


class IgnoreRuleConfig(Model):
    """One rule: the findings it matches are suppressed (kept and shown, never counted, gated on
    or notified) until it expires."""

    id: str | list[str] | None = None
    """Vulnerability id or alias (``CVE-2023-5678``, ``GHSA-...``), or a list; globs allowed."""
    package: str | list[str] | None = None
    """Package: a purl (``pkg:deb/debian/openssl``), a purl glob (``pkg:deb/debian/openssl*``) or a
    package-name glob, or a list."""
    repository: str | list[str] | None = None
    """Images: globs over ``<registry name>/<repository>`` or ``<repository>``, or a list."""
    reason: str = Field(min_length=1)
    """Why it is safe to ignore (shown with every suppressed finding)."""
    expires: date | None = None
    """``YYYY-MM-DD``: the rule applies until the start of that day (UTC); then the findings are
    back, with an event that says so."""

    @field_validator("id", "package", "repository")
    @classmethod
    def _patterns(cls, value: str | list[str] | None) -> str | list[str] | None:
        _listed(value)
        return value

    @field_validator("package")
    @classmethod
    def _purls(cls, value: str | list[str] | None) -> str | list[str] | None:
        for p in _listed(value):
            if p.startswith("pkg:") and "/" not in p:
                raise ValueError(f"{p!r} is not a purl: write pkg:TYPE/NAMESPACE/NAME (globs allowed)")
        return value

    @model_validator(mode="after")
    def _something(self) -> "IgnoreRuleConfig":
        if self.id is None and self.package is None:
            raise ValueError("a rule needs an id or a package")
        return self

    def as_mapping(self) -> dict:
        """The rule as the policy stage reads it."""
        out: dict = {"reason": self.reason}
        for key in ("id", "package", "repository"):
            if getattr(self, key) is not None:
                out[key] = _listed(getattr(self, key))
        if self.expires is not None:
            out["expires"] = self.expires
        return out


class IgnoreConfig(Model):
    """What to suppress: rules here, in ignore files, and VEX documents."""

    rules: list[IgnoreRuleConfig] = Field(default_factory=list)
    """Ignore rules (id, package, repository, reason, expires)."""
    files: list[Path] = Field(default_factory=list)
    """Ignore files: vulnwatch's YAML (``rules:``), Trivy's ``.trivyignore`` (ids, ``exp:YYYY-MM-DD``)
    or ``.trivyignore.yaml``; relative to the config file."""
    vex: list[Path] = Field(default_factory=list)
    """VEX documents: OpenVEX or CycloneDX JSON (``not_affected``, ``fixed``); relative to the config file."""

    @field_validator("files", "vex")
    @classmethod
    def _paths(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [resolve_path(v, info) for v in value]
