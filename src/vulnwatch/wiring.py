"""Config -> live objects: registries, scanners, store, notifiers, pipeline.

Shared by every entry point (CLI, daemon, Lambda) so that none of them holds logic of its own.
Each extension point is picked by its ``type`` name from a small registry of implementations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config, ConfigError
from .logs import register_secret
from .notify.interface import Notifier
from .notify.routing import Route
from .pipeline import Pipeline, Progress, Sink, Watch
from .registries.interface import Registry
from .scanners.interface import Scanner
from .store.interface import Store
from .targets import load_watch_list


def secret(value: Any) -> str | None:
    """The plain value of a pydantic ``SecretStr`` (or plain str), registered for redaction."""
    if value is None:
        return None
    plain = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    register_secret(plain)
    return plain


def register_config_secrets(cfg: Config) -> None:
    """Register every secret in the config for log redaction, before anything logs."""
    for reg in cfg.registries:
        for attr in ("password", "token"):
            secret(getattr(reg, attr, None))
    for sink in cfg.notifications:
        for attr in ("url", "secret"):
            secret(getattr(sink, attr, None))
        for v in (getattr(sink, "headers", None) or {}).values():
            secret(v)
    if cfg.state.url:
        secret(cfg.state.url)


def open_store(cfg: Config) -> Store:
    from .store.sql import SQLStore

    if cfg.state.url:
        secret(cfg.state.url)
        return SQLStore(cfg.state.sqlalchemy_url())
    return SQLStore.from_path(Path(cfg.state.path).expanduser())


def _ecr(reg) -> tuple[Registry, Scanner]:
    from .registries.ecr import ECRRegistry
    from .scanners.ecr import ECRScanner

    endpoint = str(reg.endpoint_url).rstrip("/") if reg.endpoint_url else None
    registry = ECRRegistry(reg.name, region=reg.region, registry_id=reg.registry_id,
                           endpoint_url=endpoint, max_concurrency=reg.max_concurrency)
    scanner = ECRScanner(region=reg.region, registry_id=reg.registry_id, endpoint_url=endpoint,
                         mode=reg.scan.mode, scan_interval=reg.scan.interval,
                         wait_timeout=reg.scan.wait_timeout, max_concurrency=reg.max_concurrency)
    return registry, scanner


REGISTRY_TYPES: dict[str, Callable[[Any], tuple[Registry, Scanner]]] = {"ecr": _ecr}
"""Registry ``type`` -> factory of (registry, scanner). Issue-3 types register themselves here."""


def build_watches(cfg: Config) -> list[Watch]:
    watches = []
    for reg in cfg.registries:
        factory = REGISTRY_TYPES.get(reg.type)
        if factory is None:
            raise ConfigError(f"registries: type {reg.type!r} of registry {reg.name!r} is not available "
                              f"in this build (known: {', '.join(sorted(REGISTRY_TYPES))})")
        registry, scanner = factory(reg)
        watch_list = None
        if reg.watch_list:
            s3 = None
            if str(reg.watch_list).startswith("s3://"):
                from .aws import client
                endpoint = getattr(reg, "endpoint_url", None)
                s3 = client("s3", region=getattr(reg, "region", None),
                            endpoint_url=str(endpoint).rstrip("/") if endpoint else None)
            watch_list = load_watch_list(str(reg.watch_list), s3_client=s3)
        watches.append(Watch(registry=registry, scanner=scanner, selectors=tuple(reg.selectors()),
                             watch_list=watch_list))
    return watches


def build_sinks(cfg: Config) -> list[Sink]:
    from .notify.registry import NOTIFIER_TYPES

    sinks = []
    for s in cfg.notifications:
        cls = NOTIFIER_TYPES[s.type]
        kwargs: dict[str, Any] = {}
        if s.type == "webhook":
            kwargs = {"secret": secret(s.secret), "timeout": s.timeout.total_seconds(),
                      "headers": {k: secret(v) for k, v in s.header_values().items()}}
        else:
            kwargs = {"timeout": s.timeout.total_seconds()}
        notifier: Notifier = cls(s.name, secret(s.url), **kwargs)
        route = Route(min_severity=s.min_severity, fixable_only=s.fixable_only, repositories=tuple(s.repositories or ()), mode=s.mode)
        sinks.append(Sink(notifier=notifier, route=route))
    return sinks


def build_pipeline(cfg: Config, *, store: Store | None = None, progress: Progress | None = None) -> Pipeline:
    register_config_secrets(cfg)
    store = store or open_store(cfg)
    d = cfg.delivery
    return Pipeline(store, build_watches(cfg), build_sinks(cfg),
                    max_attempts=d.max_attempts, backoff_base=d.backoff_base.total_seconds(),
                    backoff_max=d.backoff_max.total_seconds(), progress=progress)
