"""Config -> live objects: store, registries, scanners, notifiers, the pipeline.

Shared by every entry point (CLI, daemon, Lambda handlers, web server), so that none of them holds
logic of its own. Construction only: each extension point is looked up by name in its package's
map (:data:`~vulnwatch.registries.REGISTRIES`, :data:`~vulnwatch.scanners.SCANNERS`,
:data:`~vulnwatch.store.STORES`, :data:`~vulnwatch.notify.NOTIFIERS`) and built by its own
``from_config``; policy (what to import when, what to select) lives in the stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .logs import reveal

if TYPE_CHECKING:  # the pipeline (and notify, httpx) load only for the verbs that run one
    from .delivery.routing import Route
    from .model import Image
    from .pipeline import Pipeline, Progress, Sink, Watch
    from .policy import Policy
    from .scanners import ScanResources
    from .scanners.builtin import BuiltinScanner
    from .store.interface import Store


def register_config_secrets(cfg: Config) -> None:
    """Register every secret in the config for redaction, before anything logs."""
    for reg in cfg.registries:
        for attr in ("password", "token"):
            reveal(getattr(reg, attr, None))
    for sink in cfg.notifications:
        for attr in ("url", "secret", "password"):
            reveal(getattr(sink, attr, None))
        for v in (getattr(sink, "headers", None) or {}).values():
            reveal(v)
    if cfg.state.url:
        reveal(cfg.state.url)


def check_watch_lists(cfg: Config) -> list:
    """Problems with the local watch lists ``cfg`` names, read as a cycle reads them (a JSON array
    of repository names): each a :class:`~vulnwatch.config.ConfigProblem` at the registry's
    ``watch_list`` key, naming the file and what is wrong in it (``vulnwatch check-config``). A
    missing file is :func:`vulnwatch.config.check_config`'s to say; ``s3://`` lists are not read."""
    from pathlib import Path as _Path

    from .targets import TargetError, load_watch_list

    problems = []
    for i, reg in enumerate(cfg.registries):
        wl = reg.watch_list
        if not wl or wl.startswith("s3://") or not _Path(wl).is_file():
            continue
        try:
            load_watch_list(wl)
        except TargetError as e:
            problems.append(cfg.problem(("registries", i, "watch_list"), str(e)))
    return problems


def open_store(cfg: Config) -> Store:
    """The configured state store: ``state.url`` by its scheme (:data:`vulnwatch.store.STORES`),
    else the SQLite file ``state.path``."""
    from .store import open_store as open_url

    if cfg.state.url:
        return open_url(reveal(cfg.state.url))
    return open_url(f"sqlite:///{Path(cfg.state.path).expanduser()}")


def open_vulndb(cfg: Config):
    """The OSV index, with the configured local exports (``vulndb.imports``) imported when they
    changed since the last import (:func:`vulnwatch.vulndb.sync.import_changed`)."""
    from .vulndb.index import VulnIndex
    from .vulndb.sync import import_changed

    index = VulnIndex(cfg.vulndb.path)
    if not cfg.is_demo and cfg.vulndb.path is None:
        _drop_example_data(index)
    import_changed(index, cfg.vulndb.imports)
    return index


def _drop_example_data(index) -> None:
    """The bundled example records serve the embedded-defaults demo only: the default index,
    where an older vulnwatch's demo imported them (``vulndb.imports: [examples/osv]``), loses
    them. (Importing them on purpose, ``db import .../examples/osv/Debian``, is left alone.)"""
    demo = str(Path(__file__).parent / "examples" / "osv")
    for s in index.sources():
        if s.location == demo:
            index.drop_source(s.ecosystem)


def enrichment_default_url(kind: str) -> str:
    """Where enrichment source ``kind`` is downloaded from when its ``url`` is not configured."""
    from .vulndb.enrichment import SOURCES

    url = SOURCES[kind].default_url
    if url is None:
        raise ValueError(f"enrichment source {kind!r} has no default URL; configure vulndb.enrichment[].url")
    return url


def open_layer_cache(cfg: Config):
    """The per-layer cache, or None when ``layer_cache.enabled`` is off."""
    from .walker import LayerCache

    lc = cfg.layer_cache
    if not lc.enabled:
        return None
    return LayerCache(lc.path, max_bytes=lc.max_mb * 1024 * 1024)


def request_limits(cfg: Config):
    """The registries' :class:`~vulnwatch.registries.interface.RequestLimits` of ``limits``."""
    from .registries.interface import RequestLimits

    lim = cfg.limits
    return RequestLimits(connect_timeout=lim.connect_timeout.total_seconds(),
                         read_timeout=lim.read_timeout.total_seconds(),
                         request_timeout=lim.request_timeout.total_seconds(),
                         blob_timeout=lim.blob_timeout.total_seconds(),
                         max_manifest_bytes=lim.max_manifest_bytes, max_blob_bytes=lim.max_blob_bytes)


def scan_limits(cfg: Config):
    """The scanners' :class:`~vulnwatch.scanners.interface.ScanLimits` of ``limits``."""
    from .catalogers.interface import CatalogLimits
    from .scanners.interface import ScanLimits
    from .walker.limits import LayerLimits

    lim = cfg.limits
    return ScanLimits(
        image_timeout=lim.image_timeout.total_seconds(),
        layers=LayerLimits(max_total_bytes=lim.max_image_bytes, max_ratio=lim.max_compression_ratio,
                           max_entries=lim.max_tar_entries, max_kept_bytes=lim.max_metadata_bytes),
        catalog=CatalogLimits(max_packages=lim.max_packages, max_cataloger_packages=lim.max_cataloger_packages,
                              max_cataloger_bytes=lim.max_cataloger_bytes, zip_max_depth=lim.zip_max_depth,
                              zip_max_ratio=lim.zip_max_ratio, zip_max_inflated_bytes=lim.zip_max_inflated_bytes,
                              zip_max_members=lim.zip_max_members))


def scan_resources(cfg: Config, *, layer_cache: bool = True) -> ScanResources:
    """What the scanners of one pipeline share (the OSV index, the layer cache, the limits),
    opened on first use."""
    from .scanners import ScanResources

    fetch = None
    if cfg.vulndb.auto_update:
        def fetch(index, ecosystems):
            from .vulndb.sync import fetch_missing

            return fetch_missing(index, ecosystems, cfg.vulndb.base_url)
    return ScanResources(lambda: open_vulndb(cfg), (lambda: open_layer_cache(cfg)) if layer_cache else (lambda: None),
                         max_age=cfg.vulndb.max_age, limits=scan_limits(cfg), fetch_missing=fetch)


def selectors_of(reg) -> tuple:
    """The :class:`~vulnwatch.targets.Selector` values of one configured registry."""
    from .targets import Selector

    return tuple(Selector(name=s.name, include=tuple(s.tags.include), exclude=tuple(s.tags.exclude),
                          newest=s.newest, untagged=s.untagged) for s in reg.selectors())


def build_watch(reg, resources: ScanResources, limits=None) -> Watch:
    """One configured registry: the registry (by type), its scanner (the one the registry names),
    its selectors and watch list."""
    from .pipeline import Watch
    from .registries import REGISTRIES
    from .scanners import SCANNERS
    from .targets import TargetError, load_watch_list

    registry = REGISTRIES[reg.type].from_config(reg, limits)
    scanner = SCANNERS[registry.default_scanner].from_config(reg, registry, resources)
    watch_list = None
    if reg.watch_list:
        s3 = None
        if str(reg.watch_list).startswith("s3://"):
            from .aws import client
            endpoint = getattr(reg, "endpoint_url", None)
            s3 = client("s3", region=getattr(reg, "region", None),
                        endpoint_url=str(endpoint).rstrip("/") if endpoint else None)
        try:
            watch_list = load_watch_list(str(reg.watch_list), s3_client=s3)
        except TargetError as e:     # this registry fails in the cycle, the others go on
            return Watch(registry=registry, scanner=scanner, selectors=selectors_of(reg), watch_list=(),
                         watch_list_error=str(e))
    return Watch(registry=registry, scanner=scanner, selectors=selectors_of(reg), watch_list=watch_list)


def build_watches(cfg: Config, resources: ScanResources | None = None) -> list[Watch]:
    """A :class:`~vulnwatch.pipeline.Watch` per configured registry."""
    resources = resources or scan_resources(cfg)
    limits = request_limits(cfg)
    return [build_watch(reg, resources, limits) for reg in cfg.registries]


def route_of(s) -> Route:
    """The :class:`~vulnwatch.delivery.routing.Route` of one configured sink."""
    from .delivery.routing import Route

    return Route(min_severity=s.min_severity, fixable_only=s.fixable_only, kev_only=s.kev_only, min_epss=s.min_epss,
                 repositories=tuple(s.repositories or ()), mode=s.mode, kinds=frozenset(s.kinds))


def build_sinks(cfg: Config) -> list[Sink]:
    """One :class:`~vulnwatch.pipeline.Sink` per configured notification: its notifier (looked
    up by type in :data:`vulnwatch.notify.NOTIFIERS`) and its route."""
    from .notify import NOTIFIERS
    from .pipeline import Sink

    return [Sink(notifier=NOTIFIERS[s.type].from_config(s), route=route_of(s)) for s in cfg.notifications]


def build_policy(cfg: Config, *, ignore_files=(), vex=()) -> Policy:
    """The ignore rules and VEX statements in force: ``ignore.vex`` and ``vex`` documents first
    (their statements win), then ``ignore.files`` and ``ignore_files`` (``scan --ignorefile``), then
    ``ignore.rules`` (each named by the config file and line). Raises
    :class:`~vulnwatch.policy.interface.PolicyError` naming the file (and line) that cannot be used."""
    from .policy import load_files, rules_from_mappings

    rules = []
    for i, rule in enumerate(cfg.ignore.rules):
        where = cfg.problem(("ignore", "rules", i), "")
        rules.extend(rules_from_mappings([(where.line, rule.as_mapping())], where.file))
    return load_files(ignore=[*cfg.ignore.files, *ignore_files], vex=[*cfg.ignore.vex, *vex], rules=rules)


def build_pipeline(cfg: Config, *, store: Store | None = None, progress: Progress | None = None,
                   with_watches: bool = True) -> Pipeline:
    """The pipeline of ``cfg``. ``with_watches=False`` leaves the registries and scanners out,
    for verbs that only record or deliver (re-matching, retrying dead letters, advisory data)."""
    from .pipeline import Pipeline

    from .config import ConfigError
    from .policy.interface import PolicyError

    register_config_secrets(cfg)
    try:
        policy = build_policy(cfg)
    except PolicyError as e:      # a bad ignore file or VEX document is a bad configuration
        raise ConfigError(str(e)) from None
    store = store or open_store(cfg)
    resources = scan_resources(cfg)
    d = cfg.delivery
    return Pipeline(store, build_watches(cfg, resources) if with_watches else [], build_sinks(cfg),
                    max_attempts=d.max_attempts, backoff_base=d.backoff_base.total_seconds(),
                    backoff_max=d.backoff_max.total_seconds(), progress=progress, resources=resources,
                    advisory_base_url=cfg.vulndb.base_url, policy=policy,
                    cycle_timeout=cfg.limits.cycle_timeout.total_seconds(),
                    delivery_timeout=cfg.limits.delivery_timeout.total_seconds(),
                    epss_threshold=cfg.vulndb.epss_threshold)


@dataclass
class ImageScan:
    """One image to scan with the built-in scanner (``vulnwatch scan IMAGE``): close it after."""

    scanner: BuiltinScanner
    """Reads the image's registry or archive."""
    image: Image
    """The image the user named, resolved to its digest."""
    resources: ScanResources
    """The vulnerability data and layer cache the scanner uses."""

    def close(self) -> None:
        self.scanner.close()
        self.resources.close()


def image_scan(cfg: Config, text: str, *, platform: str = "linux/amd64", insecure: bool = False,
               layer_cache: bool = True, inventory_only: bool = False,
               layer_progress: Callable[[Any, int, int], None] | None = None) -> ImageScan:
    """The built-in scanner for one image the user names (``docker-archive:PATH``,
    ``oci:PATH[:TAG]``, ``host/repo:tag``). ``inventory_only`` opens no vulnerability data.
    Raises :class:`~vulnwatch.registries.interface.RegistryError` naming the input."""
    from .registries import resolve_image
    from .scanners import SCANNERS

    registry, image = resolve_image(text, platform=platform, insecure=insecure, limits=request_limits(cfg))
    resources = scan_resources(cfg, layer_cache=layer_cache)
    lim = resources.limits
    scanner = SCANNERS["builtin"](registry, None if inventory_only else resources.vulndb,
                                  max_age=resources.max_age, layer_progress=layer_progress,
                                  layer_cache=resources.layer_cache, limits=lim.layers,
                                  catalog_limits=lim.catalog, image_timeout=lim.image_timeout,
                                  fetch_missing=resources.fetch_missing)
    return ImageScan(scanner, image, resources)
