"""Image -> findings: the ``Scanner`` interface.

Implementations, by name in :data:`vulnwatch.scanners.SCANNERS` (a registry names the one that
scans its images, :attr:`vulnwatch.registries.interface.Registry.default_scanner`): ``ecr``
(ECR basic scanning and Inspector enhanced findings) and ``builtin`` (our own: walker ->
catalogers -> OSV data, and re-matching of stored inventories).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..catalogers.interface import CatalogLimits
from ..model import CoverageSummary, DataSource, Image, ScanResult, current_deadline
from ..walker.limits import LayerLimits


class ScanError(Exception):
    """Scanning one image failed. Recorded per image; the run goes on.

    ``code`` is a short machine-readable reason (e.g. ``ImageNotFoundException``,
    ``ScanTimeout``, ``LayerTooLarge``); the message names the image.
    """

    def __init__(self, image: Image | str, message: str, *, code: str = "ScanFailed",
                 retryable: bool = False) -> None:
        super().__init__(f"{image}: {message}")
        self.image = image
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class ScanLimits:
    """What one image may cost a scanner (``limits`` in the configuration)."""

    image_timeout: float | None = None
    """Seconds for one image (manifest, layers, cataloging); None: no bound."""
    layers: LayerLimits = field(default_factory=LayerLimits)
    """The walker's bounds (image bytes, ratio, entries, metadata kept)."""
    catalog: CatalogLimits = field(default_factory=CatalogLimits)
    """The catalogers' bounds (packages, metadata bytes, zip archives)."""


class ScanResources:
    """What the scanners of one pipeline share, each opened on first use and at most once: the
    vulnerability data (so configured local exports are imported once) and the layer cache."""

    def __init__(self, open_vulndb: Callable[[], Any], open_layer_cache: Callable[[], Any] = lambda: None, *,
                 max_age: timedelta = timedelta(days=7), limits: ScanLimits | None = None,
                 fetch_missing: Callable[[Any, list[str]], None] | None = None) -> None:
        self._open_vulndb = open_vulndb
        self._fetch_missing = fetch_missing
        self._open_layer_cache = open_layer_cache
        self._vulndb: Any = None
        self._layer_cache: Any = False
        self.max_age = max_age
        """Scans warn when the vulnerability data is older than this."""
        self.limits = limits or ScanLimits()
        """What one image may cost."""

    @property
    def vulndb(self) -> Any:
        """The OSV index (:class:`vulnwatch.vulndb.index.VulnIndex`)."""
        if self._vulndb is None:
            self._vulndb = self._open_vulndb()
        return self._vulndb

    @property
    def fetch_missing(self) -> Callable[[list[str]], None] | None:
        """``fetch(ecosystems)``: get the advisory data of base ecosystems the data has no record
        of (``db update`` from the configured source); None when not configured."""
        if self._fetch_missing is None:
            return None
        fetch = self._fetch_missing
        return lambda ecosystems: fetch(self.vulndb, ecosystems)

    @property
    def layer_cache(self) -> Any:
        """The per-layer cache (:class:`vulnwatch.walker.LayerCache`), or None when off."""
        if self._layer_cache is False:
            self._layer_cache = self._open_layer_cache()
        return self._layer_cache

    def close(self) -> None:
        """Close the vulnerability data if it was opened."""
        if self._vulndb is not None:
            self._vulndb.close()
            self._vulndb = None


class Scanner(abc.ABC):
    """Produces a :class:`ScanResult` for an image."""

    name: str
    """Scanner name recorded on results (``ecr-basic``, ``ecr-enhanced``, ``builtin``)."""
    stores_inventories: bool = False
    """True when results carry the image's whole inventory (large snapshots): the pipeline then
    hands ``previous`` snapshots over one at a time instead of reading them all at once."""

    @classmethod
    def from_config(cls, registry_config: Any, registry: Any, resources: ScanResources) -> "Scanner":
        """The scanner of one configured registry (``registries[]`` entry), reading from
        ``registry``, sharing ``resources`` with the pipeline's other scanners."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from the configuration")

    @abc.abstractmethod
    def scan(self, image: Image, previous: ScanResult | None = None) -> ScanResult:
        """Scan one image. ``previous`` is the stored snapshot of the same digest, if any:
        a scanner may use it to pace itself (ECR's one scan per 24 h) or to return it when
        nothing new can be learnt. Raises :class:`ScanError`."""

    def scan_many(self, images: Iterable[Image],
                  previous: Mapping[tuple[str, str, str], ScanResult]) -> Iterator[tuple[Image, ScanResult | ScanError]]:
        """Scan many images, yielding each result or error as it completes (any order).

        The default is sequential; implementations may run calls in parallel.
        ``previous`` maps :attr:`Image.key` to the stored snapshot.
        """
        for image in images:
            late = deadline_error(image)
            if late is not None:
                yield image, late
                continue
            try:
                yield image, self.scan(image, previous.get(image.key))
            except ScanError as e:
                yield image, e

    def data_sources(self) -> tuple[DataSource, ...]:
        """The data this scanner judges images by, with versions and dates (advisory sources,
        enrichment sources), for the reasons of change events; () when it cannot say."""
        return ()

    def result_key(self) -> str | None:
        """What this scanner's result for a digest depends on besides the image's own content,
        as a key: while it stays the same, scanning a digest whose stored snapshot this scanner
        made (and a cycle confirmed under the same key) gives that snapshot again, so a cycle
        need not scan it. None (the default): results can move by themselves (ECR's findings
        change on AWS's side), so every image is scanned every cycle."""
        return None

    def rescan_needed(self, coverage: CoverageSummary | None) -> bool:
        """Whether a stored snapshot with this coverage is to be scanned again even under an
        unchanged :meth:`result_key` (the scan itself may change what it is judged by, such as
        fetching data it lacks). Asked only of scanners with a result key."""
        return False

    def close(self) -> None:
        """Release resources."""


def deadline_error(image: Image) -> ScanError | None:
    """A :class:`ScanError` (code ``Timeout``) when the deadline in force (the cycle's) has been
    reached before ``image`` was started, else None."""
    d = current_deadline()
    if d is None or not d.expired:
        return None
    return ScanError(image, f"not scanned: {d.what} reached before this image's turn; it is scanned in the next "
                     "cycle", code="Timeout", retryable=True)
