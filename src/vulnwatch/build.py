"""Config -> live objects: registries, scanners, store, notifiers, pipeline.

Shared by every entry point (CLI, daemon, Lambda) so that none of them holds logic of its own.
Each extension point is picked by its ``type`` name from a small registry of implementations.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError
from .logs import reveal
from .registries.interface import Registry
from .scanners.interface import Scanner
from .store.interface import Store

if TYPE_CHECKING:  # the pipeline (and notify, httpx) load only for the verbs that run one
    from .notify.interface import Notifier
    from .delivery.routing import Route
    from .pipeline import Pipeline, Progress, Sink, Watch


def register_config_secrets(cfg: Config) -> None:
    """Register every secret in the config for log redaction, before anything logs."""
    for reg in cfg.registries:
        for attr in ("password", "token"):
            reveal(getattr(reg, attr, None))
    for sink in cfg.notifications:
        for attr in ("url", "secret"):
            reveal(getattr(sink, attr, None))
        for v in (getattr(sink, "headers", None) or {}).values():
            reveal(v)
    if cfg.state.url:
        reveal(cfg.state.url)


def open_store(cfg: Config) -> Store:
    """The configured state store: ``state.url`` by its scheme (:data:`vulnwatch.store.STORES`),
    else the SQLite file ``state.path``."""
    from .store import open_store as open_url

    if cfg.state.url:
        return open_url(reveal(cfg.state.url))
    return open_url(f"sqlite:///{Path(cfg.state.path).expanduser()}")


def _ecr(reg) -> tuple[Registry, Scanner]:
    from .registries.ecr import ECRRegistry
    from .scanners.ecr import ECRScanner

    endpoint = str(reg.endpoint_url).rstrip("/") if reg.endpoint_url else None
    registry = ECRRegistry(reg.name, region=reg.region, registry_id=reg.registry_id,
                           endpoint_url=endpoint, max_concurrency=reg.max_concurrency)
    scanner = ECRScanner(region=reg.region, registry_id=reg.registry_id, endpoint_url=endpoint,
                         mode=reg.scan.mode, scan_interval=reg.scan.interval,
                         wait_timeout=reg.scan.wait_timeout, max_concurrency=reg.max_concurrency,
                         listing=registry)
    return registry, scanner


def open_vulndb(cfg: Config):
    """The OSV index, with the configured local exports imported when they changed since the
    last import (``vulndb.imports``: the air-gapped way to feed data)."""
    from .vulndb.index import VulnIndex
    from .vulndb.sync import import_path

    index = VulnIndex(cfg.vulndb.path)
    known = {s.location: s for s in index.sources()}
    for path in cfg.vulndb.imports:
        mtime = _newest_mtime(path)
        seen = known.get(str(path))
        if seen is None or seen.imported_at.timestamp() < mtime:
            import_path(index, path, source=_source_name(path), location=str(path))
    return index


def _newest_mtime(path: Path) -> float:
    if path.is_dir():
        return max((p.stat().st_mtime for p in path.rglob("*.json")), default=path.stat().st_mtime)
    return path.stat().st_mtime


def _source_name(path: Path) -> str:
    """Source key for a local export: ``Debian`` for ``.../Debian/all.zip``, ``local:<dir>`` for a folder."""
    from .vulndb.sync import export_source

    return export_source(path) or f"local:{path}"


class _Shared:
    """What the scanners of one pipeline share, opened on first use: the OSV index (so the
    configured local exports are imported once) and the layer cache."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._vulndb = None
        self._layer_cache: Any = False

    @property
    def vulndb(self):
        if self._vulndb is None:
            self._vulndb = open_vulndb(self.cfg)
        return self._vulndb

    @property
    def layer_cache(self):
        if self._layer_cache is False:
            self._layer_cache = open_layer_cache(self.cfg)
        return self._layer_cache


def open_layer_cache(cfg: Config):
    """The per-layer cache, or None when ``layer_cache.enabled`` is off."""
    from .walker import LayerCache

    lc = cfg.layer_cache
    if not lc.enabled:
        return None
    return LayerCache(lc.path, max_bytes=lc.max_mb * 1024 * 1024)


def _builtin(shared: _Shared, registry: Registry, reg) -> Scanner:
    from .scanners.builtin import BuiltinScanner

    return BuiltinScanner(registry, shared.vulndb, max_age=shared.cfg.vulndb.max_age,
                          max_concurrency=min(reg.max_concurrency, 4), layer_cache=shared.layer_cache)


def _archive(reg, shared: _Shared) -> tuple[Registry, Scanner]:
    from .registries.archive import ArchiveRegistry

    registry = ArchiveRegistry(reg.name, reg.path)
    return registry, _builtin(shared, registry, reg)


def _oci(reg, shared: _Shared) -> tuple[Registry, Scanner]:
    from .registries.auth import Credentials, docker_config_credentials, ecr_credentials
    from .registries.oci import OCIRegistry
    from .registries.reference import api_host

    url = str(reg.url).rstrip("/")
    host = api_host(url.split("://", 1)[-1])
    if reg.username:
        creds = Credentials(username=reg.username, password=reveal(reg.password))
    else:
        creds = docker_config_credentials(host)
        if creds is None and _ECR_HOST.match(host.split(":", 1)[0]):
            creds = ecr_credentials(host)     # an ECR registry read with our own scanner
        if creds is not None:
            reveal(creds.password)
    every = reg.platform == "all"
    registry = OCIRegistry(reg.name, url, credentials=creds, insecure=reg.insecure,
                           platform="linux/amd64" if every else reg.platform, all_platforms=every)
    return registry, _builtin(shared, registry, reg)


_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


REGISTRY_TYPES: dict[str, Callable[..., tuple[Registry, Scanner]]] = {
    "ecr": lambda reg, shared: _ecr(reg), "archive": _archive, "oci": _oci}
"""Registry ``type`` -> factory ``(registry config, shared) -> (registry, scanner)``."""


def selectors_of(reg) -> tuple:
    """The :class:`~vulnwatch.targets.Selector` values of one configured registry."""
    from .targets import Selector

    return tuple(Selector(name=s.name, include=tuple(s.tags.include), exclude=tuple(s.tags.exclude),
                          newest=s.newest, untagged=s.untagged) for s in reg.selectors())


def build_watches(cfg: Config) -> list[Watch]:
    from .pipeline import Watch
    from .targets import load_watch_list

    watches = []
    shared = _Shared(cfg)
    for reg in cfg.registries:
        factory = REGISTRY_TYPES.get(reg.type)
        if factory is None:
            raise ConfigError(f"registries: type {reg.type!r} of registry {reg.name!r} is not available "
                              f"in this build (known: {', '.join(sorted(REGISTRY_TYPES))})")
        registry, scanner = factory(reg, shared)
        watch_list = None
        if reg.watch_list:
            s3 = None
            if str(reg.watch_list).startswith("s3://"):
                from .aws import client
                endpoint = getattr(reg, "endpoint_url", None)
                s3 = client("s3", region=getattr(reg, "region", None),
                            endpoint_url=str(endpoint).rstrip("/") if endpoint else None)
            watch_list = load_watch_list(str(reg.watch_list), s3_client=s3)
        watches.append(Watch(registry=registry, scanner=scanner, selectors=selectors_of(reg),
                             watch_list=watch_list))
    return watches


def route_of(s) -> Route:
    """The :class:`~vulnwatch.delivery.routing.Route` of one configured sink."""
    from .delivery.routing import Route

    return Route(min_severity=s.min_severity, fixable_only=s.fixable_only,
                 repositories=tuple(s.repositories or ()), mode=s.mode, kinds=frozenset(s.kinds))


def build_sinks(cfg: Config) -> list[Sink]:
    """One :class:`~vulnwatch.pipeline.Sink` per configured notification: its notifier (looked
    up by type in :data:`vulnwatch.notify.NOTIFIERS`) and its route."""
    from .notify import NOTIFIERS
    from .pipeline import Sink

    return [Sink(notifier=NOTIFIERS[s.type].from_config(s), route=route_of(s)) for s in cfg.notifications]


def build_pipeline(cfg: Config, *, store: Store | None = None, progress: Progress | None = None,
                   with_watches: bool = True) -> Pipeline:
    """The pipeline of ``cfg``. ``with_watches=False`` leaves the registries and scanners out,
    for verbs that only record or deliver (re-matching, retrying dead letters)."""
    from .pipeline import Pipeline

    register_config_secrets(cfg)
    store = store or open_store(cfg)
    d = cfg.delivery
    return Pipeline(store, build_watches(cfg) if with_watches else [], build_sinks(cfg),
                    max_attempts=d.max_attempts, backoff_base=d.backoff_base.total_seconds(),
                    backoff_max=d.backoff_max.total_seconds(), progress=progress)


def resolve_image(text: str, *, platform: str = "linux/amd64", insecure: bool = False):
    """``docker-archive:PATH``, ``oci:PATH[:TAG]`` or a registry reference -> (registry, Image)."""
    from .model import Image
    from .registries.archive import ArchiveRegistry
    from .registries.interface import RegistryError

    for prefix in ("docker-archive:", "oci-archive:", "oci:"):
        if text.startswith(prefix):
            rest = text[len(prefix):]
            path, tag = Path(rest), None
            if not path.exists() and ":" in rest:
                head, _, tag = rest.rpartition(":")
                path = Path(head)
            if not path.exists():
                raise RegistryError(f"no such file or folder: {path}")
            registry = ArchiveRegistry(path.name, path, platform=platform)
            images = [img for repo in registry.repositories() for img in registry.images(repo)]
            if tag:
                images = [i for i in images if tag in i.tags] or images
            if not images:
                raise RegistryError(f"{path}: the archive holds no image")
            if len(images) > 1 and not tag:
                names = ", ".join(f"{i.repository}:{t}" for i in images for t in i.tags)
                raise RegistryError(f"{path}: the archive holds {len(images)} images ({names}); name one as "
                                    f"{prefix}{path}:TAG")
            return registry, images[0]
    from .registries.auth import docker_config_credentials
    from .registries.oci import OCIRegistry
    from .registries.reference import api_host, parse_reference

    ref = parse_reference(text)
    host = api_host(ref.registry)
    scheme = "http" if insecure else "https"
    registry = OCIRegistry(ref.registry, f"{scheme}://{host}", credentials=docker_config_credentials(host),
                           insecure=insecure, platform=platform)
    reference = ref.digest or ref.tag or "latest"
    digest, media_type, _ = registry.resolve(ref.repository, reference)
    tags = (ref.tag,) if ref.tag else ()
    return registry, Image(registry=ref.registry, repository=ref.repository, digest=digest, tags=tags,
                           media_type=media_type)


def needed_ecosystems(cfg: Config) -> list[str]:
    """OSV export names needed by the stored inventories (``Debian`` for ``Debian:12``, ``PyPI``, ...)."""
    store = open_store(cfg)
    try:
        ecos = set()
        for snap in store.snapshots():
            for p in snap.packages:
                if p.ecosystem:
                    ecos.add(p.ecosystem.split(":", 1)[0])
        return sorted(ecos)
    finally:
        store.close()
