"""What the catalogers ask of the walker, and cataloging an image with it.

:class:`CatalogPlan` turns the catalogers' declarations (paths, suffixes, patterns, sizes,
executables, reducers) plus the os-release files into the walker's
:class:`~vulnwatch.walker.WalkPlan`, and hands each cataloger its own files from the merged
view. :func:`catalog_image` walks layer streams; :func:`catalog_layers` walks layers by digest
through the per-layer cache, keyed by :func:`cache_key`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO

from .. import __version__
from ..model import Package
from ..walker import (ExecutableReader, LayerCache, LayerLimits, LayerStack, ReducerFor, WalkPlan, WalkResult,
                      walk_cached)
from ..walker.cache import FORMAT_VERSION, LayerProgress
from .interface import CatalogContext, Cataloger, CatalogError, CatalogLimitError, CatalogLimits, Distro
from .os_release import OS_RELEASE_MAX_SIZE, OS_RELEASE_PATHS, find_distro

__all__ = ["CatalogPlan", "Inventory", "cache_key", "catalog_image", "catalog_layers"]


@dataclass(frozen=True)
class Inventory:
    """What is installed in an image, according to our catalogers."""

    packages: tuple[Package, ...] = ()
    """All packages found, grouped by cataloger in the order given."""
    distro: Distro | None = None
    """The operating system, from os-release; None when absent."""
    warnings: tuple[str, ...] = ()
    """Remarks from the walker and the catalogers, naming layer/file."""
    layers: tuple[str, ...] = ()
    """Layers read, bottom first."""
    unread: tuple[tuple[str, str], ...] = ()
    """Package databases found and not read (``(path, reason)``), from the catalogers."""

    @property
    def ecosystem(self) -> str | None:
        """OSV ecosystem of the distro (``Debian:12``)."""
        return self.distro.ecosystem if self.distro else None


class CatalogPlan:
    """What a set of catalogers asks of the walker, built once from their declarations:
    :attr:`walk` (the walker's plan) and :meth:`catalog` (the merged view -> an inventory)."""

    def __init__(self, catalogers: Sequence[Cataloger] | None = None, limits: CatalogLimits | None = None) -> None:
        if catalogers is None:
            from . import all_catalogers
            catalogers = all_catalogers()
        self.limits = limits or CatalogLimits()
        """What the catalogers may read of one image."""
        self.catalogers: list[Cataloger] = list(catalogers)
        if limits is not None:
            for c in self.catalogers:
                c.limits = limits
        """The catalogers, in the order their packages are reported."""
        os_paths = frozenset(OS_RELEASE_PATHS)
        cats = self.catalogers

        def wants(path: str) -> int | None:
            best: int | None = OS_RELEASE_MAX_SIZE if path in os_paths else None
            for c in cats:
                if c.wants(path) and (best is None or c.max_file_size > best):
                    best = c.max_file_size
            return best

        exec_catalogers = [c for c in cats if c.wants_executables]
        reader: ExecutableReader | None = None
        if len(exec_catalogers) == 1:
            reader = exec_catalogers[0].read_executable
        elif exec_catalogers:
            def reader(path: str, stream: IO[bytes], size: int) -> bytes | None:  # noqa: F811
                data = stream.read(size)
                for c in exec_catalogers:
                    kept = c.read_executable(path, io.BytesIO(data), size)
                    if kept is not None:
                        return kept
                return None
        reducing = [c for c in cats if c.reduces]

        def reducer_for(path: str) -> ExecutableReader | None:
            for c in reducing:
                if c.wants(path):
                    return c.reduce
            return None


        self.walk = WalkPlan(wants, reader, reducer_for if reducing else None)
        """The walker's plan: which files to keep for these catalogers."""

    def stack(self, limits: LayerLimits | None = None) -> LayerStack:
        """An empty :class:`~vulnwatch.walker.LayerStack` reading for these catalogers."""
        return LayerStack(self.walk, limits=limits)

    def catalog(self, walked: WalkResult) -> Inventory:
        """Hand each cataloger its files from the merged view. A cataloger's
        :class:`CatalogError` becomes a warning."""
        files = walked.data()
        distro = find_distro(files)
        lim = self.limits
        context = CatalogContext(distro=distro, layer_of=walked.layer_of(), limits=lim)
        packages: list[Package] = []
        warnings = list(walked.warnings)
        unread: list[tuple[str, str]] = []
        for c in self.catalogers:
            mine = {p: d for p, d in files.items() if c.wants(p)}
            if c.wants_executables:
                for p, f in walked.executables.items():
                    mine.setdefault(p, f.data)
            if not mine:
                continue
            size = sum(len(d) for d in mine.values())
            if size > lim.max_cataloger_bytes:
                biggest = max(mine, key=lambda p: len(mine[p]))
                raise CatalogLimitError(c.name, biggest, f"{size} bytes of metadata in {len(mine)} file(s), over "
                                        f"{lim.max_cataloger_bytes}", key="limits.max_cataloger_bytes")
            try:
                result = c.catalog(mine, context)
            except CatalogLimitError:
                raise
            except CatalogError as e:
                warnings.append(str(e))
                continue
            if len(result.packages) > lim.max_cataloger_packages:
                raise CatalogLimitError(c.name, result.packages[-1].path or "", f"{len(result.packages)} packages, "
                                        f"over {lim.max_cataloger_packages}", key="limits.max_cataloger_packages")
            packages.extend(result.packages)
            warnings.extend(result.warnings)
            unread.extend(result.unread)
            if len(packages) > lim.max_packages:
                raise CatalogLimitError(c.name, result.packages[-1].path or "", f"the image has more than "
                                        f"{lim.max_packages} packages", key="limits.max_packages")
        return Inventory(packages=tuple(packages), distro=distro, warnings=tuple(warnings), unread=tuple(unread),
                         layers=walked.layers)


def cache_key(catalogers: Sequence[Cataloger], limits: LayerLimits | None = None,
              catalog_limits: CatalogLimits | None = None) -> str:
    """The per-layer cache key of these catalogers: a hash of everything besides the layers that
    decides what the walker keeps (the catalogers' declarations in order, the os-release files,
    the limits, the vulnwatch and cache format versions)."""
    decl = {
        "format": FORMAT_VERSION,
        "vulnwatch": __version__,
        "os_release": [list(OS_RELEASE_PATHS), OS_RELEASE_MAX_SIZE],
        "limits": dataclasses.asdict(limits or LayerLimits()),
        # what reduce() keeps depends on the zip limits (nesting depth)
        "zip": [(catalog_limits or CatalogLimits()).zip_max_depth],
        "catalogers": [{
            "class": f"{type(c).__module__}.{type(c).__qualname__}",
            "name": c.name,
            "version": str(getattr(c, "version", "")),
            "exact_paths": sorted(c.exact_paths),
            "suffixes": list(c.suffixes),
            "patterns": list(c.patterns),
            "max_file_size": c.max_file_size,
            "wants_executables": c.wants_executables,
        } for c in catalogers],
    }
    return hashlib.sha256(json.dumps(decl, sort_keys=True).encode()).hexdigest()


def catalog_image(layers: Iterable[tuple[str, BinaryIO]], catalogers: Sequence[Cataloger] | None = None, *,
                  limits: LayerLimits | None = None, catalog_limits: CatalogLimits | None = None) -> Inventory:
    """Walk ``layers`` once for all ``catalogers`` (default: every registered one) and
    return the packages found. Raises :class:`~vulnwatch.walker.LayerError` when a layer is
    unsafe or unreadable; a cataloger's :class:`CatalogError` becomes a warning."""
    plan = CatalogPlan(catalogers, catalog_limits)
    stack = plan.stack(limits)
    for layer, stream in layers:
        stack.add(layer, stream)
    return plan.catalog(stack.result())


def catalog_layers(layers: Sequence[str], open_blob: Callable[[str], BinaryIO],
                   catalogers: Sequence[Cataloger] | None = None, *, limits: LayerLimits | None = None,
                   cache: LayerCache | None = None, progress: LayerProgress | None = None,
                   catalog_limits: CatalogLimits | None = None) -> Inventory:
    """Catalog an image given its layer digests, bottom first, and ``open_blob(digest)`` (a
    stream, closed after reading), through the per-layer ``cache`` when given (layers found in it
    are never opened). Raises :class:`~vulnwatch.walker.LayerError` and whatever ``open_blob``
    raises."""
    plan = CatalogPlan(catalogers, catalog_limits)
    key = cache_key(plan.catalogers, limits or LayerLimits(), plan.limits) if cache is not None else ""
    walked = walk_cached(layers, open_blob, plan.walk, key=key, limits=limits, cache=cache, progress=progress)
    return plan.catalog(walked)
