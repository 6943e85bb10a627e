"""One monitoring cycle: targets -> scan -> (snapshot + diff + outbox, one transaction) -> dispatch.

This is the only place that wires stages together; the CLI, the daemon and the Lambda handlers
all call :class:`Pipeline`. It does no formatting and no argument parsing.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .diff import diff
from .model import Event, Image, ScanResult, utcnow
from .notify.interface import Notifier
from .delivery.outbox import DispatchReport, Dispatcher
from .delivery.routing import Route, route
from .registries.interface import CatalogUnavailableError, Registry, RegistryError, RepositoryNotFoundError
from .scanners.interface import ScanError, Scanner, ScanResources
from .store.interface import Store, StoreConflict
from .targets import TargetError, plan_repositories, select_images  # TargetError: for callers of build_watches

log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 3
"""Times one image's record is diffed again after another writer got there first."""


@dataclass(frozen=True)
class Failure:
    """Something that could not be scanned or listed; the cycle went on without it."""

    target: str
    """The image (``registry/repo:tag@digest``), repository or registry that failed."""
    error: str
    """What went wrong (no secrets)."""
    code: str = "Error"
    """Short machine-readable reason (the scanner's or registry's error code)."""


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did."""

    images: int = 0
    """Images selected for scanning."""
    scanned: int = 0
    """Images whose scan result was recorded."""
    events: tuple[Event, ...] = ()
    """Change events written to the outbox."""
    failures: tuple[Failure, ...] = ()
    """Per image / repository / registry failures (the cycle went on)."""
    delivery: DispatchReport | None = None
    """What the dispatcher did at the end of the cycle (None if delivery was skipped)."""
    notes: tuple[str, ...] = ()
    """Remarks worth showing (quota reached, stale data, ...)."""
    warnings: tuple[Failure, ...] = ()
    """Things to fix that did not fail the cycle: a configured repository the registry does not
    have (deleted, or a typo), named by ``target``."""

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Watch:
    """One configured registry with what to watch in it and the scanner to use."""

    registry: Registry
    scanner: Scanner
    selectors: Sequence = ()
    """``targets`` selectors; empty with no watch list means every repository."""
    watch_list: Sequence[str] | None = None
    """Repository names from a watch list file (the older JSON-array format), if configured."""


@dataclass(frozen=True)
class Sink:
    """A configured notification sink: the notifier and what it wants."""

    notifier: Notifier
    route: Route = field(default_factory=Route)


class RoutedNotifier(Notifier):
    """Applies a sink's :class:`Route` to each event before sending (the outbox keeps whole events).
    ``on_sent(n)`` is told of every send attempt of ``n`` events (for progress: Slack is paced)."""

    def __init__(self, sink: Sink, on_sent: Callable[[int], None] | None = None) -> None:
        self.sink = sink
        self.name = sink.notifier.name
        self._on_sent = on_sent or (lambda n: None)

    def send(self, events: Sequence[Event]) -> None:
        routed = [e for e in (route(ev, self.sink.route) for ev in events) if e is not None]
        try:
            if routed:
                self.sink.notifier.send(routed)
        finally:
            self._on_sent(len(events))

    def close(self) -> None:
        self.sink.notifier.close()


Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; ``total`` 0 when unknown."""


class Pipeline:
    """Runs cycles over the configured watches; records to ``store``; delivers to ``sinks``."""

    def __init__(self, store: Store, watches: Sequence[Watch], sinks: Sequence[Sink] = (), *,
                 max_attempts: int = 8, backoff_base: float = 30.0, backoff_max: float = 3600.0,
                 progress: Progress | None = None, resources: ScanResources | None = None,
                 advisory_base_url: str | None = None) -> None:
        self.store = store
        self.watches = list(watches)
        self.sinks = list(sinks)
        self.resources = resources
        """The vulnerability data (and layer cache) the scanners share; needed for re-matching
        and the advisory-data operations."""
        self.advisory_base_url = advisory_base_url
        self.progress = progress or (lambda stage, done, total: None)
        self._sent = 0
        self.dispatcher = Dispatcher(
            store, {s.notifier.name: RoutedNotifier(s, self._delivered) for s in self.sinks},
            max_attempts=max_attempts, backoff_base=backoff_base, backoff_max=backoff_max,
            modes={s.notifier.name: s.route.mode for s in self.sinks})

    # -- selection -------------------------------------------------------------------------
    def targets(self, watch: Watch, failures: list[Failure], warnings: list[Failure] | None = None) -> list[Image]:
        """The images of one watch, after repository and tag selection. Repositories named exactly
        (selectors without globs, watch-list entries) are asked for their images directly; only
        globs need the registry to list its repositories. A named repository the registry does
        not have is a warning (in ``warnings``), not a failure."""
        reg = watch.registry
        plan = plan_repositories(watch.selectors, watch.watch_list)
        listed: list[str] = []
        if plan.needs_listing:
            try:
                listed = list(reg.repositories())
            except CatalogUnavailableError as e:
                globs = ", ".join(repr(s.name) for s in plan.globs)
                failures.append(_failure(reg.name, f"{e.reason}; the glob selector(s) {globs} need that list: "
                                         "name the repositories exactly (repositories: [{name: team/app}]) or "
                                         "give a watch_list", "CatalogUnavailable"))
            except RegistryError as e:
                failures.append(_failure(reg.name, _reason(e, reg.name), type(e).__name__))
                return []
        images: list[Image] = []
        for repo, selector in plan.select(listed):
            target = f"{reg.name}/{repo}"
            try:
                images.extend(select_images(reg.images(repo), selector))
            except RepositoryNotFoundError as e:
                where = "watch list" if watch.watch_list is not None else "configuration"
                if warnings is None:
                    failures.append(_failure(target, _reason(e, target), "RepositoryNotFound"))
                else:
                    warnings.append(_failure(target, f"{_reason(e, target)}; named in the {where}: "
                                             "remove it there or fix the name", "RepositoryNotFound",
                                             kind="warning"))
            except RegistryError as e:
                failures.append(_failure(target, _reason(e, target), "RegistryError"))
        return images

    # -- recording -------------------------------------------------------------------------
    def record(self, result: ScanResult, previous: ScanResult | None, *, has_error: bool = True,
               keep_inventory: bool = False) -> Event | None:
        """Diff ``result`` against what is stored and commit snapshot + outbox in one transaction.

        A result identical to the stored snapshot (same scan, same findings, same tags) of an image
        with no recorded error is not written again: nothing changed, so nothing is owed.

        The commit is conditional on ``previous`` still being the stored snapshot: when another
        writer (an overlapping cycle) recorded the image in between, the snapshot is read again
        and the diff made again against it, so one change is recorded once."""
        for _attempt in range(_CONFLICT_RETRIES):
            try:
                return self._record_once(result, previous, has_error=has_error, keep_inventory=keep_inventory)
            except StoreConflict:
                log.info("%s was recorded by another writer meanwhile; diffing again", result.image)
                previous = self.store.snapshot(*result.image.key, with_inventory=not keep_inventory)
                has_error = True
        return self._record_once(result, previous, has_error=has_error, keep_inventory=keep_inventory)

    def _record_once(self, result: ScanResult, previous: ScanResult | None, *, has_error: bool,
                     keep_inventory: bool) -> Event | None:
        image = result.image
        if (previous is not None and not has_error and image.tags == previous.image.tags
                and result == replace(previous, image=image)):
            return None
        base: ScanResult | None = None
        moved: list[str] = []
        if previous is None:
            for tag in image.tags:
                old = self.store.tag_digest(image.registry, image.repository, tag)
                if old and old != image.digest:
                    moved.append(tag)
                    if base is None:
                        base = self.store.snapshot(image.registry, image.repository, old)
        event = diff(result, previous, base, tuple(moved))
        deliveries: list[tuple[Event, list[str]]] = []
        if event is not None:
            sinks = [s.notifier.name for s in self.sinks if route(event, s.route) is not None]
            deliveries.append((event, sinks))
        self.store.commit_scan(result, deliveries, keep_inventory=keep_inventory, expected=previous)
        return event

    # -- the cycle -------------------------------------------------------------------------
    def run_cycle(self, *, deliver: bool = True) -> CycleReport:
        failures: list[Failure] = []
        warnings: list[Failure] = []
        events: list[Event] = []
        notes: dict[str, list[str]] = {}      # note -> the images it was said of
        selected = 0
        scanned = 0
        for watch in self.watches:
            images = self.targets(watch, failures, warnings)
            selected += len(images)
            statuses = self.store.images()
            failing = {st.image.key for st in statuses if st.last_error}
            if watch.scanner.stores_inventories:     # large snapshots: one at a time
                previous: Mapping = StoredSnapshots(self.store, {st.image.key for st in statuses
                                                                 if st.last_scanned_at})
            else:                                      # small ones: all in one query
                wanted = {img.key for img in images}
                previous = {s.image.key: s for s in self.store.snapshots(watch.registry.name)
                            if s.image.key in wanted}
            checked: list[tuple[str, str, str]] = []
            self.progress("scan", 0, len(images))
            done = 0
            for image, outcome in watch.scanner.scan_many(images, previous):
                done += 1
                self.progress("scan", done, len(images))
                if isinstance(outcome, ScanError):
                    failures.append(_failure(str(image), _reason(outcome, str(image)), outcome.code))
                    self.store.record_failure(image, watch.scanner.name, str(outcome), utcnow())
                    continue
                try:
                    event = self.record(outcome, previous.get(image.key), has_error=image.key in failing)
                    checked.append(image.key)
                except Exception as e:  # a broken record must not stop the others
                    log.exception("recording %s failed", image)
                    failures.append(Failure(str(image), f"recording failed: {e}", type(e).__name__))
                    continue
                scanned += 1
                for n in outcome.notes:
                    notes.setdefault(n, []).append(str(image))
                if event is not None:
                    events.append(event)
            self.store.mark_checked(checked, utcnow())
        delivery = self.deliver() if deliver else None
        return CycleReport(images=selected, scanned=scanned, events=tuple(events),
                           failures=tuple(failures), delivery=delivery, notes=_grouped(notes),
                           warnings=tuple(warnings))

    # -- the advisory data and re-matching -----------------------------------------------
    def _resources(self) -> ScanResources:
        if self.resources is None:
            raise RuntimeError("this pipeline was built without vulnerability data")
        return self.resources

    def rematch(self) -> list[Event]:
        """Continuous re-matching: every stored inventory matched again against the current OSV
        data, without touching any registry; what moved is diffed and written to the outbox like
        any scan. Returns the events.

        Fast path: inventories stream from the store as light rows and the built-in scanner's
        fingerprint of their new findings is compared with the stored one; only images whose
        findings moved are read back whole, re-matched, diffed and written. The others are
        stamped as checked, in one statement."""
        from .scanners.builtin import BuiltinScanner

        scanner = BuiltinScanner.for_rematch(self._resources())
        moved: list[tuple[str, str, str]] = []
        unchanged: list[tuple[str, str, str]] = []
        for inv in self.store.inventories():
            same = (inv.findings_signature is not None
                    and scanner.fingerprint(inv.rows, inv.distro) == inv.findings_signature)
            (unchanged if same else moved).append(inv.key)
        self.store.mark_checked(unchanged, utcnow())
        events = []
        for inv in self.store.inventories(keys=moved):
            old = self.store.snapshot(*inv.key, with_inventory=False)
            if old is None:
                continue
            new = scanner.rematch(old, inv.packages, inv.distro)
            ev = self.record(new, old, has_error=True, keep_inventory=True)
            if ev is not None:
                events.append(ev)
        return events

    def needed_ecosystems(self) -> list[str]:
        """OSV export names the stored inventories need (``Debian`` for ``Debian:12``, ``PyPI``)."""
        from .vulndb.interface import ecosystem_base

        return sorted({ecosystem_base(e) for e in self.store.inventory_ecosystems()})

    def update_advisories(self, ecosystems: Sequence[str]) -> list:
        """Download the OSV exports of ``ecosystems`` where they changed (conditional GET) into
        the local index; returns a :class:`~vulnwatch.vulndb.interface.UpdateResult` each.
        Raises :class:`~vulnwatch.vulndb.interface.VulnDBError`."""
        from .vulndb.sync import update

        kwargs = {"base_url": self.advisory_base_url} if self.advisory_base_url else {}
        return update(self._resources().vulndb, list(ecosystems), **kwargs)

    def import_advisories(self, path: Path):
        """Import one local OSV export (an ``all.zip`` or a folder of records); returns its
        :class:`~vulnwatch.vulndb.interface.ImportReport`. Raises ``VulnDBError``."""
        from .vulndb.sync import import_path, local_source

        path = path.resolve()
        return import_path(self._resources().vulndb, path, source=local_source(path), location=str(path))

    def advisory_sources(self) -> tuple[list, int, Path]:
        """The sources in the local index (:class:`~vulnwatch.vulndb.interface.SourceStatus`), its
        record count and its file."""
        index = self._resources().vulndb
        return index.sources(), index.count(), index.path

    def _delivered(self, n: int) -> None:
        self._sent += n
        self.progress("deliver", self._sent, 0)

    def deliver(self) -> DispatchReport:
        """Deliver whatever is due in the outbox (this cycle's events and earlier retries);
        ``progress("deliver", events sent so far, 0)`` after each message."""
        self._sent = 0
        return self.dispatcher.dispatch()

    def close(self) -> None:
        for w in self.watches:
            w.scanner.close()
            w.registry.close()
        for s in self.sinks:
            s.notifier.close()
        if self.resources is not None:
            self.resources.close()


def _reason(error: Exception, target: str) -> str:
    """The error's message without the target it starts with (the failure names it already)."""
    reason = getattr(error, "reason", None)
    text = reason if isinstance(reason, str) and reason else str(error)
    while text.startswith(f"{target}: "):
        text = text[len(target) + 2:]
    return text


def _failure(target: str, error: str, code: str, *, kind: str = "failure") -> Failure:
    """A :class:`Failure` (or warning), logged with its fields (``event``, ``target``, ``code``,
    ``error``) at INFO only: the caller presents the report's failures and warnings (the CLI
    prints them, as JSON objects with ``--log-format json``)."""
    log.info("%s %s: %s", kind, target, error, extra={"event": kind, "target": target, "code": code, "error": error})
    return Failure(target, error, code)


def _grouped(notes: dict[str, list[str]]) -> tuple[str, ...]:
    """``image: note`` for a note said of one image; ``note (N images, e.g. first)`` for many."""
    out = []
    for note, images in notes.items():
        if len(images) == 1:
            out.append(f"{images[0]}: {note}")
        else:
            out.append(f"{note} ({len(images)} images, e.g. {images[0]})")
    return tuple(out)


class StoredSnapshots(Mapping):
    """The stored snapshots of a cycle's images, read one at a time when a scanner asks
    (a fleet's inventories need not fit in memory at once); the last few are kept, since the
    pipeline asks again for the one it is about to diff."""

    def __init__(self, store: Store, known: set[tuple[str, str, str]], keep: int = 64) -> None:
        self._store = store
        self._known = known
        self._keep = keep
        self._recent: OrderedDict[tuple[str, str, str], ScanResult] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, key: tuple[str, str, str]) -> ScanResult:
        if key not in self._known:
            raise KeyError(key)
        with self._lock:
            hit = self._recent.get(key)
            if hit is not None:
                self._recent.move_to_end(key)
                return hit
        snap = self._store.snapshot(*key)
        if snap is None:
            raise KeyError(key)
        with self._lock:
            self._recent[key] = snap
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        return snap

    def __iter__(self):
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, key: object) -> bool:
        return key in self._known
