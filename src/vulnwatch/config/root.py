"""The whole configuration file: every section, unique names, the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from .delivery import DeliverySettings
from .limits import LimitsConfig
from .ignore import IgnoreConfig
from .notifications import SinkConfig, SlackSinkConfig, WebhookSinkConfig
from .problems import ConfigProblem, merged_error, problems_error
from .registries import ArchiveRegistryConfig, EcrRegistryConfig, OciRegistryConfig, RegistryConfig
from .service import ServiceSettings
from .state import StateConfig
from .types import Model
from .vulndb import LayerCacheConfig, VulnDBConfig
from .web import WebConfig

__all__ = ["Config", "SECTIONS"]

SECTIONS = ("state", "registries", "notifications", "delivery", "vulndb", "layer_cache", "web", "ignore",
            "limits")
"""The top-level sections of the file (a command may load only those it uses)."""


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
    ignore: IgnoreConfig = Field(default_factory=IgnoreConfig)
    """Ignore rules, ignore files and VEX documents: what to suppress."""
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    """Deadlines (per request, blob, image, cycle) and size bounds (manifests, layers, package
    metadata, zip archives): a breach fails that image or registry only."""

    _source: Path | None = PrivateAttr(default=None)
    _file: str = PrivateAttr(default="<defaults>")
    _lines: dict = PrivateAttr(default_factory=dict)
    _deferred: tuple = PrivateAttr(default=())
    _demo: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _unique_names(cls, data: Any, handler: Any) -> "Config":
        # Checked on the raw data and reported with the other problems of the file (an
        # "after" validator would only run once everything else is valid).
        problems: list[tuple[tuple[Any, ...], str]] = []
        for section in ("registries", "notifications"):
            items = data.get(section) if isinstance(data, dict) else None
            first: dict[str, int] = {}
            for i, item in enumerate(items if isinstance(items, list) else ()):
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(name, str):
                    continue
                if name in first:
                    problems.append(((section, i, "name"), f"duplicate name {name!r}: already used by "
                                     f"{section}[{first[name]}]; names must be unique"))
                else:
                    first[name] = i
        if not problems:
            return handler(data)
        try:
            handler(data)
        except ValidationError as e:
            raise merged_error(e, problems) from None
        raise problems_error(problems)

    @property
    def deferred_problems(self) -> tuple[ConfigProblem, ...]:
        """Problems in sections the loading command said it does not use (``load_config(...,
        sections=...)``): those sections were left at their defaults."""
        return self._deferred

    def problem(self, path: tuple[Any, ...], message: str) -> ConfigProblem:
        """A :class:`ConfigProblem` at ``path`` (``("registries", 0, "path")``) of the file this
        configuration was read from, with the line of that key."""
        from .problems import key_path

        line = 1
        for n in range(len(path), -1, -1):
            if path[:n] in self._lines:
                line = self._lines[path[:n]]
                break
        return ConfigProblem(self._file, line, key_path(path), message)

    @classmethod
    def default(cls) -> "Config":
        """The configuration used when there is no file: the bundled example image archive,
        scanned offline against the bundled OSV records and enrichment data, notifications printed to the console,
        SQLite state in the default place."""
        examples = Path(__file__).parent.parent / "examples"
        import os

        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vulnwatch"
        cfg = cls.model_validate({
            "registries": [{"name": "example", "type": "archive", "path": str(examples / "image.tar")}],
            "notifications": [{"name": "console", "type": "console"}],
            # the example records live in an index of their own: they never become a user's data
            # with the real CVE JSON 5 records and KEV entries of the example's CVEs (enrichment/)
            "vulndb": {"imports": [str(examples / "osv"), str(examples / "enrichment" / "cve5"),
                                   str(examples / "enrichment" / "kev" / "known_exploited_vulnerabilities.json")],
                       "path": str(cache / "example-osv.db"),
                       "enrichment": [], "auto_update": False},
        })
        cfg._demo = True
        return cfg

    @property
    def is_demo(self) -> bool:
        """True for :meth:`default` (the bundled example, offline)."""
        return self._demo

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

