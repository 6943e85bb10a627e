"""The whole configuration file: every section, unique names, the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from .delivery import DeliverySettings
from .notifications import SinkConfig, SlackSinkConfig, WebhookSinkConfig
from .problems import problems_error
from .registries import ArchiveRegistryConfig, EcrRegistryConfig, OciRegistryConfig, RegistryConfig
from .service import ServiceSettings
from .state import StateConfig
from .types import Model
from .vulndb import LayerCacheConfig, VulnDBConfig
from .web import WebConfig

__all__ = ["Config"]


class Config(Model):
    """The whole configuration file."""

    state: StateConfig = Field(default_factory=StateConfig)
    """Where state is kept."""
    registries: list[RegistryConfig] = Field(default_factory=list)
    """Registries to watch, each with a unique ``name``."""
    notifications: list[SinkConfig] = Field(default_factory=list)
    """Notification sinks, each with a unique ``name``."""
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    """Retry policy for notifications."""
    vulndb: VulnDBConfig = Field(default_factory=VulnDBConfig)
    """Vulnerability data for the built-in scanner."""
    layer_cache: LayerCacheConfig = Field(default_factory=LayerCacheConfig)
    """Per-layer cache of the built-in scanner."""
    web: WebConfig = Field(default_factory=WebConfig)
    """The dashboard and HTTP API of ``vulnwatch serve``."""
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    """The daemon (``vulnwatch watch``): schedule, leases on the store, health endpoint."""

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        problems: list[tuple[tuple[Any, ...], str]] = []
        for section, items in (("registries", self.registries), ("notifications", self.notifications)):
            first: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.name in first:
                    problems.append(((section, i, "name"), f"duplicate name {item.name!r}: already used by "
                                     f"{section}[{first[item.name]}]; names must be unique"))
                else:
                    first[item.name] = i
        if problems:
            raise problems_error(problems)
        return self

    @classmethod
    def default(cls) -> "Config":
        """The configuration used when there is no file: the bundled example image archive,
        scanned offline against the bundled OSV records, notifications printed to the console,
        SQLite state in the default place."""
        examples = Path(__file__).parent.parent / "examples"
        return cls.model_validate({
            "registries": [{"name": "example", "type": "archive", "path": str(examples / "image.tar")}],
            "notifications": [{"name": "console", "type": "console"}],
            "vulndb": {"imports": [str(examples / "osv")]},
        })

    @property
    def source(self) -> Path | None:
        """The file this configuration was loaded from (None for :meth:`default`)."""
        return self._source

    def registry(self, name: str) -> EcrRegistryConfig | OciRegistryConfig | ArchiveRegistryConfig:
        """The registry called ``name``; ``KeyError`` naming it and the known ones otherwise."""
        for r in self.registries:
            if r.name == name:
                return r
        raise KeyError(f"no registry named {name!r} (configured: {', '.join(r.name for r in self.registries) or 'none'})")

    def notification(self, name: str) -> SlackSinkConfig | WebhookSinkConfig:
        """The notification sink called ``name``; ``KeyError`` otherwise."""
        for s in self.notifications:
            if s.name == name:
                return s
        raise KeyError(f"no notification sink named {name!r} "
                       f"(configured: {', '.join(s.name for s in self.notifications) or 'none'})")

