"""One monitoring cycle: targets -> scan -> (snapshot + diff + outbox, one transaction) -> dispatch.

This is the only place that wires stages together; the CLI, the daemon and the Lambda handlers
all call :class:`Pipeline`. It does no formatting and no argument parsing.

One cycle at a time per store: given a :class:`CycleLease`, a cycle first takes the store's
``cycle`` lease (waiting for it, or failing with :class:`~vulnwatch.store.interface.LeaseHeld`),
keeps it renewed from a background thread, and makes every write fenced by it, so that a holder
whose lease was taken over (it stalled past the expiry) cannot write any more. In worker mode
(``CycleLease(worker=True)``) several processes share one store: instead of the cycle lease each
claims images a few at a time (``Store.claim_leases``), scans and records only those, under the
claim's fence, and the outbox is worked by one of them at a time (the ``dispatch`` lease).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .diff import coverage_event, diff
from .logs import redact
from .model import DataSource, Deadline, Event, Image, ScanResult, as_utc, deadline_scope, utcnow
from .policy import Policy
from .notify.interface import Notifier
from .delivery.outbox import DispatchReport, Dispatcher
from .delivery.routing import Route, route
from .registries.interface import CatalogUnavailableError, Registry, RegistryError, RepositoryNotFoundError
from .scanners.interface import ScanError, Scanner, ScanResources
from .store.interface import Lease, LeaseHeld, LeaseLost, ScanCommit, Store, StoreConflict
from .targets import TargetError, plan_repositories, select_images  # TargetError: for callers of build_watches

log = logging.getLogger(__name__)

_REMATCHED = "rematched_advisory_version"
"""Store marker: the advisory data version (``VulnIndex.data_version``) stored findings were last
re-matched against; a re-match looks only at inventories holding packages changed since."""
_CONFIRMED = "cycle_confirmed:"
"""Marker (+ registry name) of the last whole cycle of a watch: the key its stamps were made
under and the stamp (:meth:`Pipeline._still_current`)."""

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
    interrupted: str | None = None
    """Why the cycle stopped early (a stop was asked for, its lease was lost), or None. What was
    recorded before is kept; the image being scanned then was abandoned, nothing of it written."""

    @property
    def ok(self) -> bool:
        return not self.failures and self.interrupted is None


@dataclass(frozen=True)
class WorkItem:
    """One piece of a fanned-out cycle (a queue message of the serverless deployment): the
    images of one repository, or of slice ``slice`` of ``slices`` of it, or only ``digests``."""

    registry: str
    repository: str
    slice: int = 0
    slices: int = 1
    digests: tuple[str, ...] = ()
    """Only these images (a re-queued remainder whose scans were still running)."""
    attempt: int = 0
    """How many times this remainder was put back already."""

    def to_dict(self) -> dict:
        out: dict = {"v": 1, "registry": self.registry, "repository": self.repository}
        if self.slices != 1:
            out.update(slice=self.slice, slices=self.slices)
        if self.digests:
            out["digests"] = list(self.digests)
        if self.attempt:
            out["attempt"] = self.attempt
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "WorkItem":
        if not isinstance(data, Mapping) or not isinstance(data.get("registry"), str) \
                or not isinstance(data.get("repository"), str):
            raise ValueError("a work item names a registry and a repository")
        slices = int(data.get("slices", 1))
        index = int(data.get("slice", 0))
        if slices < 1 or not 0 <= index < slices:
            raise ValueError(f"bad slice {index} of {slices}")
        return cls(data["registry"], data["repository"], index, slices,
                   tuple(str(d) for d in data.get("digests") or ()), int(data.get("attempt", 0)))


def slice_of(digest: str, slices: int) -> int:
    """The slice (of ``slices``) an image belongs to: fixed by its digest alone."""
    return int(hashlib.sha256(digest.encode()).hexdigest()[:8], 16) % slices


@dataclass(frozen=True)
class CollectReport:
    """What :meth:`Pipeline.collect` did with one work item."""

    item: WorkItem
    report: CycleReport
    pending: tuple[Image, ...] = ()
    """Images whose scan was still running: not read, to be asked for again later."""
    more: tuple[WorkItem, ...] = ()
    """The other slices of a repository too large for one invocation."""


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

class Schedule:
    """When cycles (a fleet's rounds) start: every ``interval``, on multiples of it since
    1970-01-01 UTC so that every process computes the same starts, or at the times of a cron
    expression (UTC, read by croniter), which is used instead when given. The daemon waits for
    them; workers use :meth:`start_of` to agree on the round they are in."""

    def __init__(self, interval: timedelta = timedelta(hours=1), cron: str | None = None) -> None:
        if cron is None and interval <= timedelta(0):
            raise ValueError("a schedule needs a positive interval or a cron expression")
        if cron is not None:
            from croniter import croniter

            if not croniter.is_valid(cron):
                raise ValueError(f"bad cron expression {cron!r}")
        self.interval = interval
        self.cron = cron

    def __repr__(self) -> str:
        return f"Schedule(cron={self.cron!r})" if self.cron else f"Schedule(interval={self.interval})"

    def next_after(self, t: datetime) -> datetime:
        """The first start strictly after ``t``."""
        t = as_utc(t)
        if self.cron:
            from croniter import croniter

            return as_utc(croniter(self.cron, t).get_next(datetime))
        return self.start_of(t) + self.interval

    def start_of(self, t: datetime) -> datetime:
        """The start at or before ``t``: the round ``t`` belongs to (workers agree on it)."""
        t = as_utc(t)
        if self.cron:
            from croniter import croniter

            if croniter.match(self.cron, t.replace(second=0, microsecond=0)) and t.second == 0 \
                    and t.microsecond == 0:
                return t
            return as_utc(croniter(self.cron, t).get_prev(datetime))
        n = (t - _EPOCH) // self.interval
        return _EPOCH + n * self.interval

    def period(self, at: datetime) -> timedelta:
        """The time between the start at or before ``at`` and the next one."""
        start = self.start_of(at)
        return self.next_after(start) - start


def _process_space() -> str:
    """A short name for the space this process's pid lives in: the kernel boot and the pid
    namespace (two containers of one host, or two hosts of one name, differ). Empty when unknown."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return hashlib.sha256(f"{boot}/{pidns}".encode()).hexdigest()[:8]


def new_holder() -> str:
    """A lease holder name unique to this process: ``host:pid:nonce:space``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{_process_space()}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process of this machine's pid space that no longer runs (it
    crashed): its lease may be taken over before it expires. False when unsure (another machine
    or container, a process that runs, no permission to tell)."""
    parts = holder.split(":")
    if len(parts) != 4 or not parts[3] or not parts[1].isdigit():
        return False
    host, pid, _nonce, space = parts
    if host != socket.gethostname() or space != _process_space() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def claim_name(image: Image) -> str:
    """The lease name of a worker's claim on one image."""
    name = f"image:{image.registry}/{image.repository}@{image.digest}"
    if len(name) > 600:   # the column holds 700; very long names are hashed
        name = "image:" + hashlib.sha256(name.encode()).hexdigest()
    return name


@dataclass(frozen=True)
class CycleLease:
    """How a cycle shares its store with other processes."""

    holder: str = field(default_factory=new_holder)
    """This process's name in the lease table."""
    ttl: timedelta = timedelta(minutes=5)
    """How long the lease (or a claim) lasts unless renewed; renewed every third of it. A
    crashed holder's lease is taken over after this (at once on the same machine)."""
    wait: timedelta | None = None
    """Wait up to this long for the cycle lease (None: do not wait, raise ``LeaseHeld``)."""
    worker: bool = False
    """Worker mode: claim images instead of holding the store for the whole cycle."""
    round_start: datetime | None = None
    """Worker mode: the scheduled start of this round; images a worker finished since are not
    scanned again in it (None: every image not claimed right now)."""
    poll: float = 0.5
    """Seconds between attempts while waiting for a lease."""


class LeaseKeeper:
    """Renews leases from a background thread every third of their ttl; remembers the ones lost."""

    def __init__(self, store: Store, ttl: timedelta) -> None:
        self.store = store
        self.ttl = ttl
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self.lost = threading.Event()
        """Set when a renewal found a lease taken over."""
        self.lost_names: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vulnwatch-lease", daemon=True)
        self._thread.start()

    def hold(self, *leases: Lease) -> None:
        with self._lock:
            for lease in leases:
                self._held[lease.name] = lease

    def drop(self, *leases: Lease) -> None:
        """Stop renewing these (a renewed copy has the same name and token)."""
        with self._lock:
            for lease in leases:
                held = self._held.get(lease.name)
                if held is not None and held.token == lease.token:
                    del self._held[lease.name]

    def _run(self) -> None:
        every = max(self.ttl.total_seconds() / 3, 0.05)
        while not self._stop.wait(every):
            with self._lock:
                held = list(self._held.values())
            for lease in held:
                try:
                    renewed = self.store.renew_lease(lease, self.ttl)
                except LeaseLost:
                    log.error("lease %s was taken over by another holder; stopping work under it", lease.name)
                    with self._lock:
                        self._held.pop(lease.name, None)
                        self.lost_names.append(lease.name)
                    self.lost.set()
                    continue
                except Exception as e:  # the store is unreachable for a moment: try again
                    log.warning("could not renew lease %s (%s); retrying", lease.name, type(e).__name__)
                    continue
                with self._lock:
                    if lease.name in self._held:
                        self._held[lease.name] = renewed

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class Watch:
    """One configured registry with what to watch in it and the scanner to use."""

    registry: Registry
    scanner: Scanner
    selectors: Sequence = ()
    """``targets`` selectors; empty with no watch list means every repository."""
    watch_list: Sequence[str] | None = None
    """Repository names from a watch list file (the older JSON-array format), if configured."""
    watch_list_error: str | None = None
    """Why the configured watch list could not be read (the registry then fails in each cycle,
    naming the file; the other registries go on)."""


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
                 advisory_base_url: str | None = None, policy: Policy | None = None,
                 cycle_timeout: float | None = None, delivery_timeout: float | None = None,
                 epss_threshold: float = 0.1, record_batch: int = 200) -> None:
        self.store = store
        self.epss_threshold = epss_threshold
        """An EPSS move at least this large is a change (``vulndb.epss_threshold``)."""
        self.record_batch = max(1, int(record_batch))
        """Results written per transaction (:meth:`Store.commit_scans`)."""
        self.policy = policy or Policy()
        """The ignore rules and VEX statements: applied to every result before it is diffed
        (:meth:`suppress`), the one place suppression happens in a cycle and in re-matching."""
        self.cycle_timeout = cycle_timeout
        """Seconds one cycle may take, delivery included (``limits.cycle_timeout``); None: no bound."""
        self.delivery_timeout = delivery_timeout or 0.0
        """The part of ``cycle_timeout`` kept for delivery (``limits.delivery_timeout``): scanning
        stops that long before the cycle's deadline."""
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
        if watch.watch_list_error is not None:
            failures.append(_failure(reg.name, watch.watch_list_error, "WatchListError"))
            return []
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
        chosen = list(plan.select(listed))
        for (repo, _selector), outcome in zip(chosen, _list_repositories(reg, chosen)):
            target = f"{reg.name}/{repo}"
            if isinstance(outcome, RepositoryNotFoundError):
                where = "watch list" if watch.watch_list is not None else "configuration"
                if warnings is None:
                    failures.append(_failure(target, _reason(outcome, target), "RepositoryNotFound"))
                else:
                    warnings.append(_failure(target, f"{_reason(outcome, target)}; named in the {where}: "
                                             "remove it there or fix the name", "RepositoryNotFound",
                                             kind="warning"))
            elif isinstance(outcome, RegistryError):
                failures.append(_failure(target, _reason(outcome, target), "RegistryError"))
            else:
                images.extend(outcome)
        return images

    # -- recording -------------------------------------------------------------------------
    def suppress(self, result: ScanResult, now=None) -> ScanResult:
        """``result`` with the findings the policy suppresses at ``now`` moved to
        :attr:`~vulnwatch.model.ScanResult.suppressed` (and those it no longer suppresses back):
        the policy stage, between matching and diff."""
        return self.policy.apply(result, now)

    def record(self, result: ScanResult, previous: ScanResult | None, *, has_error: bool = True,
               keep_inventory: bool = False, data: Sequence[DataSource] = (),
               also: list[Event] | None = None) -> Event | None:
        """Diff ``result`` against what is stored and commit snapshot + outbox in one transaction.

        A result identical to the stored snapshot (same scan, same findings, same tags) of an image
        with no recorded error is not written again: nothing changed, so nothing is owed.

        The commit is conditional on ``previous`` still being the stored snapshot: when another
        writer (an overlapping cycle) recorded the image in between, the snapshot is read again
        and the diff made again against it, so one change is recorded once.

        The policy is applied first (:meth:`suppress`); ``data`` names the data the result was
        judged by, for the reasons of its event (:func:`vulnwatch.diff.explain`).

        Returns the event of the findings, else the ``coverage`` event (the image's coverage
        moved: :func:`vulnwatch.diff.coverage_event`), else None; when both were made, the
        coverage event is appended to ``also``. Both go to the outbox in the same transaction."""
        result = self.suppress(result)
        for _attempt in range(_CONFLICT_RETRIES):
            try:
                return self._record_once(result, previous, has_error=has_error, keep_inventory=keep_inventory,
                                         data=data, also=also)
            except StoreConflict:
                log.info("%s was recorded by another writer meanwhile; diffing again", result.image)
                previous = self.store.snapshot(*result.image.key, with_inventory=not keep_inventory)
                has_error = True
        return self._record_once(result, previous, has_error=has_error, keep_inventory=keep_inventory, data=data,
                                 also=also)

    def _record_once(self, result: ScanResult, previous: ScanResult | None, *, has_error: bool,
                     keep_inventory: bool, data: Sequence[DataSource] = (),
                     also: list[Event] | None = None) -> Event | None:
        commit, event = self._prepare(result, previous, has_error=has_error, keep_inventory=keep_inventory,
                                      data=data)
        if commit is not None:
            self.store.commit_scan(result, commit.deliveries, keep_inventory=keep_inventory, expected=previous)
            _also(commit, event, also)
        return event

    def _prepare(self, result: ScanResult, previous: ScanResult | None, *, has_error: bool,
                 keep_inventory: bool, data: Sequence[DataSource] = (),
                 tags: Mapping[tuple[str, str, str], str] | None = None
                 ) -> tuple[ScanCommit | None, Event | None]:
        """What recording ``result`` writes (None: nothing, it is the stored snapshot) and its event."""
        image = result.image
        if (previous is not None and not has_error and image.tags == previous.image.tags
                and result == replace(previous, image=image)):
            return None, None
        base: ScanResult | None = None
        moved: list[str] = []
        if previous is None:
            for tag in image.tags:
                old = (self.store.tag_digest(image.registry, image.repository, tag) if tags is None
                       else tags.get((image.registry, image.repository, tag)))
                if old and old != image.digest:
                    moved.append(tag)
                    if base is None:
                        base = self.store.snapshot(image.registry, image.repository, old)
        event = diff(result, previous, base, tuple(moved), data=data, epss_threshold=self.epss_threshold)
        covered = coverage_event(result, previous, base, data=data)
        deliveries: list[tuple[Event, list[str]]] = []
        for ev in (event, covered):
            if ev is not None:
                sinks = [s.notifier.name for s in self.sinks if route(ev, s.route) is not None]
                deliveries.append((ev, sinks))
        return ScanCommit(result, tuple(deliveries), keep_inventory, previous), event or covered

    def _tags_of_new(self, items: Sequence[tuple[ScanResult, ScanResult | None, bool, bool]]
                     ) -> dict[tuple[str, str, str], str] | None:
        """Where the tags of the batch's new images (no previous snapshot) pointed when last seen,
        ``{(registry, repository, tag): digest}``, read with one query per repository (a moved
        tag makes the event a rebuild); None when a read fails (then each image asks alone)."""
        wanted: dict[tuple[str, str], set[str]] = {}
        for result, previous, _has_error, _keep in items:
            if previous is None and result.image.tags:
                wanted.setdefault((result.image.registry, result.image.repository), set()).update(result.image.tags)
        out: dict[tuple[str, str, str], str] = {}
        try:
            for (registry, repository), names in wanted.items():
                for tag, digest in self.store.tag_digests(registry, repository, sorted(names)).items():
                    out[(registry, repository, tag)] = digest
        except Exception as e:  # noqa: BLE001 - each image reads its tags itself, as before
            log.debug("reading the batch's tags at once failed (%s)", e)
            return None
        return out

    def record_many(self, items: Sequence[tuple[ScanResult, ScanResult | None, bool, bool]],
                    claims: Mapping[tuple[str, str, str], Lease] | None = None, *,
                    data: Sequence[DataSource] = (), also: list[Event] | None = None
                    ) -> list[Event | None | Exception]:
        """:meth:`record` for many results (``(result, previous, has_error, keep_inventory)``) in
        batched writes (:meth:`Store.commit_scans`: one transaction for all, each image still all
        or nothing with its outbox rows). An image another writer recorded meanwhile is diffed and
        written again on its own; when the batch cannot be written (a lost claim, a database
        error) each image is recorded on its own, so one bad image costs only itself. Returns per
        item its event (None: nothing to report; as :meth:`record`, a coverage event made beside a
        findings event is appended to ``also``) or the exception that kept it from being recorded
        (``LeaseLost`` of its claim, or another error)."""
        claims = claims or {}
        out: list[Event | None | Exception] = [None] * len(items)
        todo: list[tuple[int, ScanCommit]] = []
        events: dict[int, Event | None] = {}
        tags = self._tags_of_new(items)
        for n, (result, previous, has_error, keep) in enumerate(items):
            try:
                result = self.suppress(result)     # the policy first, as in record
                with self._fence(*([claims[result.image.key]] if result.image.key in claims else [])):
                    commit, event = self._prepare(result, previous, has_error=has_error, keep_inventory=keep,
                                                  data=data, tags=tags)
            except Exception as e:     # a read failed: this image is not recorded
                out[n] = e
                continue
            events[n] = event
            if commit is not None:
                todo.append((n, commit))
        conflicts: list | None = None
        if todo:
            fence = [claims[c.result.image.key] for _, c in todo if c.result.image.key in claims]
            try:
                with self._fence(*fence):
                    conflicts = self.store.commit_scans([c for _, c in todo])
            except LeaseLost:
                if not fence:
                    raise          # the cycle's own lease is gone: stop the cycle
                conflicts = None
            except Exception as e:
                log.warning("writing %d results at once failed (%s); writing them one by one", len(todo), e)
                conflicts = None
        done = {n for n, _ in todo}
        for n in events:
            if n not in done:
                out[n] = events[n]
        for k, (n, commit) in enumerate(todo):
            if conflicts is not None and conflicts[k] is None:
                out[n] = events[n]
                _also(commit, events[n], also)
                continue
            result = commit.result
            claim = claims.get(result.image.key)
            try:
                with self._fence(*([claim] if claim else [])):
                    previous = commit.expected
                    if conflicts is not None:     # another writer got there first: diff again
                        log.info("%s was recorded by another writer meanwhile; diffing again", result.image)
                        previous = self.store.snapshot(*result.image.key, with_inventory=not commit.keep_inventory)
                    out[n] = self.record(result, previous, has_error=True, keep_inventory=commit.keep_inventory,
                                         data=data, also=also)
            except LeaseLost as e:
                if claim is None:
                    raise
                out[n] = e
            except Exception as e:
                out[n] = e
        return out

    # -- leases ----------------------------------------------------------------------------
    def supports_leases(self) -> bool:
        """Whether the store implements leases (``Store.acquire_lease`` and the rest)."""
        return type(self.store).acquire_lease is not Store.acquire_lease

    def acquire(self, name: str, lease: CycleLease, wait: timedelta | None = None,
                stop: threading.Event | None = None) -> Lease:
        """Take lease ``name``, waiting up to ``wait`` for it (polling); a holder that is a dead
        process of this machine is taken over at once. Raises ``LeaseHeld`` when it stays held."""
        deadline = time.monotonic() + wait.total_seconds() if wait is not None else None
        while True:
            try:
                return self.store.acquire_lease(name, lease.holder, lease.ttl)
            except LeaseHeld as held:
                if holder_is_dead(held.holder):
                    log.warning("lease %s: its holder %s is no longer running; taking over", name, held.holder)
                    try:
                        return self.store.acquire_lease(name, lease.holder, lease.ttl, take_over=held.holder)
                    except LeaseHeld:
                        pass   # someone else took it over first
                if deadline is None or time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                    raise
                log.info("%s; waiting", held)
                if stop is not None:
                    stop.wait(lease.poll)
                else:
                    time.sleep(lease.poll)

    # -- the cycle -------------------------------------------------------------------------
    def run_cycle(self, *, deliver: bool = True, lease: CycleLease | None = None,
                  stop: threading.Event | None = None) -> CycleReport:
        """One cycle. Without ``lease`` it holds nothing (the caller is the only writer). With
        one, it takes the store's ``cycle`` lease first (raising ``LeaseHeld`` if another
        holds it past ``lease.wait``) and writes only under its fence, or, in worker mode,
        claims images. ``stop`` (set from a signal handler) ends the cycle after the image being
        recorded; images being scanned then are abandoned (nothing of them is written)."""
        if lease is None or not self.supports_leases():
            if lease is not None:
                log.warning("state store %s keeps no leases: cycles on it are not kept from overlapping "
                            "(each change is still recorded once)", type(self.store).__name__)
            return self._cycle(deliver=deliver, stop=stop)
        keeper = LeaseKeeper(self.store, lease.ttl)
        try:
            if lease.worker:   # a lost claim abandons its image only (its writes are refused)
                return self._cycle(deliver=deliver, stop=_Either(stop, threading.Event()),
                                   claims=(lease, keeper))
            halt = _Either(stop, keeper.lost)
            held = self.acquire("cycle", lease, lease.wait, stop)
            keeper.hold(held)
            try:
                with self.store.fenced(held):
                    report = self._cycle(deliver=deliver, stop=halt, fence=(held,))
            except LeaseLost as e:
                report = CycleReport(interrupted=f"lease lost: {e}")
            finally:
                keeper.drop(held)
                with contextlib.suppress(Exception):
                    self.store.release_lease(held)
            if keeper.lost.is_set() and report.interrupted is None:
                report = replace(report, interrupted="lease lost: another holder took the store over")
            return report
        finally:
            keeper.close()

    def _batches(self, watch: Watch, images: list[Image], stop: threading.Event | None,
                 claims: tuple[CycleLease, LeaseKeeper] | None
                 ) -> Iterator[tuple[list[Image], dict[tuple[str, str, str], Lease]]]:
        """The images of one watch in the groups they are scanned in: all at once (a plain
        cycle), a few at a time (a cycle that can be stopped: at most one group is abandoned),
        or as claimed (worker mode: a few at a time, each group claimed before it is scanned)."""
        if stop is None and claims is None:
            yield images, {}
            return
        per = max(1, int(getattr(watch.scanner, "max_concurrency", 4) or 4))
        size = 2 * per if watch.scanner.stores_inventories else 25 * per
        if claims is None:
            for i in range(0, len(images), size):
                yield images[i:i + size], {}
            return
        lease, keeper = claims
        by_name = {claim_name(img): img for img in images}
        names = list(by_name)
        window = 500
        for i in range(0, len(names), window):
            while not (stop is not None and stop.is_set()):
                taken = self.store.claim_leases(names[i:i + window], lease.holder, lease.ttl, limit=size,
                                                done_before=lease.round_start)
                if not taken:
                    break
                keeper.hold(*taken)
                yield [by_name[c.name] for c in taken], {by_name[c.name].key: c for c in taken}

    def _deadlines(self) -> tuple[Deadline | None, Deadline | None]:
        """(the cycle's deadline, the end of its scanning: ``delivery_timeout`` before it)."""
        if not self.cycle_timeout:
            return None, None
        whole = _spell(self.cycle_timeout)
        cycle = Deadline.after(self.cycle_timeout, f"limits.cycle_timeout ({whole})")
        scan = Deadline(cycle.at - min(self.delivery_timeout, self.cycle_timeout / 2),
                        f"limits.cycle_timeout ({whole}) less limits.delivery_timeout "
                        f"({_spell(self.delivery_timeout)})")
        return cycle, scan

    def _cycle(self, *, deliver: bool, stop: threading.Event | None = None,
               claims: tuple[CycleLease, LeaseKeeper] | None = None, fence: tuple[Lease, ...] = ()) -> CycleReport:
        cycle_deadline, scan_deadline = self._deadlines()
        tallies: list[_CycleTally] = []
        with deadline_scope(scan_deadline):
            if len(self.watches) <= 1:
                for watch in self.watches:
                    if stop is not None and stop.is_set():
                        break
                    tallies.append(self._watch_cycle(watch, stop, claims))
            else:
                tallies = self._watches_at_once(stop, claims, fence, scan_deadline)
        t = _CycleTally()
        for part in tallies:
            t.merge(part)
        interrupted = None
        if stop is not None and stop.is_set():
            interrupted = stop.reason() if isinstance(stop, _Either) else "stopped"
        if deliver and interrupted is None:
            with deadline_scope(cycle_deadline):
                delivery = self._deliver_as_worker(claims[0], stop) if claims is not None else self.deliver()
        else:
            delivery = None
        return CycleReport(images=t.selected, scanned=t.scanned, events=tuple(t.events),
                           failures=tuple(t.failures), delivery=delivery, notes=_grouped(t.notes),
                           warnings=tuple(t.warnings), interrupted=interrupted)

    def _watches_at_once(self, stop: threading.Event | None, claims: tuple[CycleLease, LeaseKeeper] | None,
                         fence: tuple[Lease, ...], scan_deadline: Deadline | None) -> list[_CycleTally]:
        """Every watch (registry) in a thread of its own, so that a slow registry holds up only
        its own images: each gets this thread's deadline and fence. A watch still busy when the
        scanning time is over (a request that does not end) is left behind, named as a failure,
        and whatever it records later is recorded under the same fence."""
        results: dict[int, _CycleTally] = {}
        errors: list[BaseException] = []

        def run(i: int, watch: Watch) -> None:
            try:
                with self._fence(*fence):
                    results[i] = self._watch_cycle(watch, stop, claims)
            except BaseException as e:   # raised again in the cycle's thread
                errors.append(e)

        report, counts, lock = self.progress, {}, threading.Lock()

        def progress(stage: str, done: int, total: int) -> None:   # one bar over every watch
            if stage != "scan":
                return report(stage, done, total)
            with lock:
                counts[threading.current_thread().name] = (done, total)
                done, total = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
            report(stage, done, total)

        self.progress = progress
        try:
            return self._run_watches(run, results, errors, scan_deadline)
        finally:
            self.progress = report

    def _run_watches(self, run, results: dict, errors: list, scan_deadline: Deadline | None) -> list[_CycleTally]:
        threads = []
        for i, watch in enumerate(self.watches):
            ctx = contextvars.copy_context()
            th = threading.Thread(target=ctx.run, args=(run, i, watch), daemon=True,
                                  name=f"vulnwatch-watch-{watch.registry.name}")
            th.start()
            threads.append(th)
        grace = 5.0
        late: list[Watch] = []
        for watch, th in zip(self.watches, threads):
            th.join(None if scan_deadline is None else scan_deadline.remaining() + grace)
            if th.is_alive():
                late.append(watch)
        if errors:
            raise errors[0]
        out = [results[i] for i in sorted(results)]
        for watch in late:
            t = _CycleTally()
            t.failures.append(_failure(watch.registry.name, f"still busy when the scanning time ran out "
                                       f"({scan_deadline.what if scan_deadline else 'deadline'}): a request to it "
                                       "does not end; its unfinished images are scanned in the next cycle",
                                       "Timeout"))
            out.append(t)
        return out

    def _watch_cycle(self, watch: Watch, stop: threading.Event | None,
                     claims: tuple[CycleLease, LeaseKeeper] | None) -> "_CycleTally":
        """Select, scan and record the images of one watch."""
        t = _CycleTally()
        # the registry lists (its time, mostly waiting) while the store is read (ours)
        with ThreadPoolExecutor(1, thread_name_prefix="vulnwatch-targets") as pool:
            listing = pool.submit(contextvars.copy_context().run, self.targets, watch, t.failures, t.warnings)
            statuses = self.store.images()
            stored = None if watch.scanner.stores_inventories else self.store.snapshots(watch.registry.name)
            images = listing.result()
        t.selected += len(images)
        failing = {st.image.key for st in statuses if st.last_error}
        key = self._confirm_key(watch) if claims is None else None
        at = utcnow()                              # one stamp for every image this cycle confirms
        images, confirmed = self._still_current(watch, images, statuses, key)
        if stored is None:                         # large snapshots: one at a time
            previous: Mapping = StoredSnapshots(self.store, {st.image.key for st in statuses
                                                             if st.last_scanned_at})
        else:                                      # small ones: all in one query
            wanted = {img.key for img in images}
            previous = {s.image.key: s for s in stored if s.image.key in wanted}
        t.done, t.total = len(confirmed), len(images) + len(confirmed)
        t.scanned += len(confirmed)
        self.progress("scan", t.done, t.total)
        t.data = watch.scanner.data_sources() if images else ()
        for batch, claimed in self._batches(watch, images, stop, claims):
            checked: list[tuple[str, str, str]] = confirmed    # stamped with the first batch's
            confirmed = []
            finished: set[tuple[str, str, str]] = set()     # recorded, or its failure was
            try:
                self._scan_batch(watch, batch, previous, failing, claimed, stop, checked, finished, t)
            finally:
                if claims is not None:
                    claims[1].drop(*claimed.values())
                    for key, c in claimed.items():     # abandoned ones are free for others at once
                        with contextlib.suppress(Exception):
                            self.store.release_lease(c, done=key in finished)
            try:
                with self._fence(*(claimed[k] for k in checked if k in claimed)):
                    self.store.mark_checked(checked, at)
            except LeaseLost:
                if not claimed:
                    raise
            if stop is not None and stop.is_set():
                break
        if confirmed:                               # no batch to scan: every image was current
            self.store.mark_checked(confirmed, at)
        if key is not None and not (stop is not None and stop.is_set()) and self._confirm_key(watch) == key:
            # the data and the policy held still through the cycle: what it stamped is current under key
            try:
                self.store.set_marker(_CONFIRMED + watch.registry.name,
                                      json.dumps({"key": key, "at": at.isoformat()}))
            except LeaseLost:
                raise
            except Exception as e:   # the next cycle then scans every image, as without it
                log.warning("%s: keeping what this cycle confirmed failed: %s", watch.registry.name, e)
        return t

    def _confirm_key(self, watch: Watch) -> str | None:
        """What the result of every stored digest of ``watch`` depends on now besides the image
        (the scanner's :meth:`~vulnwatch.scanners.interface.Scanner.result_key`: for the
        built-in scanner, the advisory data's version and notes), with the code's version and
        the policy (its rules and which of them are in force now); None when the scanner's
        results can move by themselves."""
        scanner_key = watch.scanner.result_key()
        if scanner_key is None:
            return None
        return hashlib.sha256(json.dumps([__version__, watch.scanner.name, scanner_key,
                                          self.policy.state()]).encode()).hexdigest()

    def _still_current(self, watch: Watch, images: list[Image], statuses: Sequence, key: str | None
                       ) -> tuple[list[Image], list[tuple[str, str, str]]]:
        """(the images to scan, the keys of those that need no scan). An image needs none when the
        previous cycle of this watch confirmed its snapshot (stamped it checked, under the same
        key, :meth:`_confirm_key`, with the data and policy unchanged to the end of that cycle)
        and nothing about it moved since: same digest and tags, made by this scanner, no error
        since, and the scanner does not want it again for its coverage
        (:meth:`~vulnwatch.scanners.interface.Scanner.rescan_needed`: the built-in scanner may
        fetch data an ecosystem lacks). Scanning it again would give the stored snapshot back and
        write nothing; only its ``last_checked_at`` is stamped."""
        if key is None or not images:
            return images, []
        try:
            raw = self.store.marker(_CONFIRMED + watch.registry.name)
            mark = json.loads(raw) if raw else None
            last = datetime.fromisoformat(mark["at"]) if mark and mark.get("key") == key else None
        except (ValueError, TypeError, KeyError) as e:
            log.debug("%s: no usable mark of the last cycle (%s)", watch.registry.name, e)
            last = None
        if last is None:
            return images, []
        by_key = {st.image.key: st for st in statuses}
        scan, confirmed = [], []
        for img in images:
            st = by_key.get(img.key)
            if (st is not None and st.last_scanned_at is not None and not st.last_error
                    and st.scanner == watch.scanner.name and st.image.tags == img.tags
                    and not watch.scanner.rescan_needed(st.coverage)
                    and st.last_checked_at is not None and _same_instant(st.last_checked_at, last)):
                confirmed.append(img.key)
            else:
                scan.append(img)
        return scan, confirmed

    def _fence(self, *leases: Lease):
        return self.store.fenced(*leases) if leases else contextlib.nullcontext()

    def _scan_batch(self, watch: Watch, batch: list[Image], previous: Mapping, failing: set,
                    claimed: Mapping[tuple[str, str, str], Lease], stop: threading.Event | None,
                    checked: list, finished: set, t: "_CycleTally", pending: list | None = None) -> None:
        """Scan one group of images and record the results (under their claims' fences, if any),
        ``record_batch`` at a time in one write (what stop or a crash leaves unwritten is
        scanned again next cycle: nothing is owed for it yet). With ``pending``, an image whose
        scan is still running (``ScanTimeout``) is put there instead of being recorded as
        failed: the caller asks again later."""
        ready: list[tuple[Image, ScanResult]] = []

        def flush() -> None:
            if not ready:
                return
            batch = list(ready)
            ready.clear()
            outcomes = self.record_many([(res, previous.get(img.key), img.key in failing, False)
                                         for img, res in batch], claimed, data=t.data, also=t.events)
            for (image, result), got in zip(batch, outcomes):
                if isinstance(got, LeaseLost):
                    log.warning("%s: claim taken over by another worker; left to it", image)
                    continue
                if isinstance(got, Exception):
                    log.error("recording %s failed: %s", image, got)
                    t.failures.append(_failure(str(image), f"recording failed: {got}", type(got).__name__))
                    continue
                checked.append(image.key)
                finished.add(image.key)
                t.scanned += 1
                for n in result.notes:
                    t.notes.setdefault(n, []).append(str(image))
                if got is not None:
                    t.events.append(got)

        try:
            for image, outcome in watch.scanner.scan_many(batch, previous):
                if stop is not None and stop.is_set():
                    break      # the rest of this group is abandoned: nothing of it written
                t.done += 1
                self.progress("scan", t.done, t.total)
                if pending is not None and isinstance(outcome, ScanError) and outcome.code == "ScanTimeout":
                    pending.append(image)
                    continue
                claim = claimed.get(image.key)
                if isinstance(outcome, ScanError):
                    try:
                        with self._fence(*([claim] if claim else [])):
                            t.failures.append(_failure(str(image), _reason(outcome, str(image)), outcome.code))
                            self.store.record_failure(image, watch.scanner.name, str(outcome), utcnow())
                        finished.add(image.key)
                    except LeaseLost:
                        if claim is None:
                            raise          # the cycle lease is gone: stop the cycle
                        log.warning("%s: claim taken over by another worker; left to it", image)
                    except Exception as e:  # a broken record must not stop the others
                        log.exception("recording %s failed", image)
                        t.failures.append(_failure(str(image), f"recording failed: {e}", type(e).__name__))
                    continue
                ready.append((image, outcome))
                if len(ready) >= self.record_batch:
                    flush()
        except BaseException:
            ready.clear()      # an error of the cycle itself: what is not written is scanned again
            raise
        flush()                # what was scanned is recorded (a stop too: these scans are whole)

    def _deliver_as_worker(self, lease: CycleLease, stop: threading.Event | None) -> DispatchReport | None:
        """Worker mode: the outbox is worked by one worker at a time (the ``dispatch`` lease); a
        worker waits for the one dispatching, so events it just recorded are not left behind."""
        try:
            held = self.acquire("dispatch", lease, lease.ttl, stop)
        except LeaseHeld as e:
            log.info("outbox left to %s", e.holder)
            return None
        keeper = LeaseKeeper(self.store, lease.ttl)
        keeper.hold(held)
        try:
            with self.store.fenced(held):
                return self.deliver()
        except LeaseLost as e:
            log.warning("%s", e)
            return None
        finally:
            keeper.close()
            with contextlib.suppress(Exception):
                self.store.release_lease(held)

    # -- fanned-out cycles (the serverless deployment) -----------------------------------
    def work_items(self, failures: list[Failure] | None = None,
                   warnings: list[Failure] | None = None) -> list["WorkItem"]:
        """The cycle as independent pieces of work: one :class:`WorkItem` per watched
        repository (what the ``schedule`` handler sends, one queue message each). Names known
        exactly need no listing; globs list the registry's repositories."""
        failures = [] if failures is None else failures
        items: list[WorkItem] = []
        for watch in self.watches:
            plan = plan_repositories(watch.selectors, watch.watch_list)
            listed: list[str] = []
            if plan.needs_listing:
                try:
                    listed = list(watch.registry.repositories())
                except RegistryError as e:
                    failures.append(_failure(watch.registry.name, _reason(e, watch.registry.name),
                                             type(e).__name__))
                    continue
            items.extend(WorkItem(watch.registry.name, repo) for repo, _sel in plan.select(listed))
        return items

    def collect(self, item: "WorkItem", *, slice_size: int = 200, give_up: bool = False) -> "CollectReport":
        """One piece of a fanned-out cycle: the images of one repository (or of one slice of
        it, or only ``item.digests``), scanned where due and recorded as any cycle records
        them (diff + snapshot + outbox in one conditional commit; nothing is written for an
        image whose snapshot is current).

        A repository with more than ``slice_size`` selected images, asked for whole, is split:
        this call does slice 0 and returns the others in :attr:`CollectReport.more` for other
        invocations (an image belongs to slice ``hash(digest) mod n``, the same in every
        invocation). Images whose scan is still running are not read: they are returned in
        :attr:`CollectReport.pending` (unless ``give_up``: then they fail with ``ScanTimeout``).
        Unchanged images are not stamped as checked (that would be a write per image per cycle)."""
        t = _CycleTally()
        watch = next((w for w in self.watches if w.registry.name == item.registry), None)
        if watch is None:
            t.failures.append(_failure(item.registry, "no such registry in the configuration", "UnknownRegistry"))
            return CollectReport(item, CycleReport(failures=tuple(t.failures)))
        chosen = dict(plan_repositories(watch.selectors, [item.repository]).select())
        selector = chosen.get(item.repository)
        if selector is None:      # left the watch list since the message was sent
            return CollectReport(item, CycleReport(notes=(f"{item.repository}: no longer watched",)))
        target = f"{watch.registry.name}/{item.repository}"
        try:
            images = select_images(watch.registry.images(item.repository), selector)
        except RepositoryNotFoundError as e:
            t.warnings.append(_failure(target, f"{_reason(e, target)}; remove it from the watch list or fix the "
                                       "name", "RepositoryNotFound", kind="warning"))
            return CollectReport(item, CycleReport(warnings=tuple(t.warnings)))
        except RegistryError as e:
            t.failures.append(_failure(target, _reason(e, target), "RegistryError"))
            return CollectReport(item, CycleReport(failures=tuple(t.failures)))
        more: list[WorkItem] = []
        slices = item.slices
        if item.digests:
            wanted = set(item.digests)
            images = [img for img in images if img.digest in wanted]
        else:
            if slices == 1 and len(images) > slice_size:
                slices = -(-len(images) // slice_size)
                more = [replace(item, slice=i, slices=slices) for i in range(1, slices)]
            if slices > 1:
                images = [img for img in images if slice_of(img.digest, slices) == item.slice]
        t.selected = len(images)
        t.data = watch.scanner.data_sources() if images else ()     # what events' reasons name
        previous, failing = self.store.current([img.key for img in images])
        pending: list[Image] = []
        self._scan_batch(watch, images, previous, failing, {}, None, [], set(), t,
                         pending=None if give_up else pending)
        report = CycleReport(images=t.selected, scanned=t.scanned, events=tuple(t.events),
                             failures=tuple(t.failures), notes=_grouped(t.notes), warnings=tuple(t.warnings))
        return CollectReport(item, report, pending=tuple(pending), more=tuple(more))

    def event_of_change(self, old: ScanResult | None, new: ScanResult | None) -> Event | None:
        """The event one stored change means (a stream record's old and new snapshot): a new
        image, or the per-finding diff of old against new; None when nothing a user is told
        about moved. The same :func:`~vulnwatch.diff.diff` the cycle used, so the same id."""
        if new is None:
            return None
        return diff(new, old) or coverage_event(new, old)

    def deliver_events(self, event_ids: Sequence[str]) -> tuple[DispatchReport, set[str]]:
        """Deliver what is due in the outbox (as :meth:`deliver`), then say which of
        ``event_ids`` still have deliveries pending (a sink was down): the caller has those
        retried. Delivered ones are marked, so a retry sends each to each sink once."""
        report = self.deliver()
        wanted = set(event_ids)
        if not wanted:
            return report, set()
        from .store.interface import DeliveryStatus

        pending = {d.event.id for d in self.store.deliveries(DeliveryStatus.PENDING, limit=10_000)}
        return report, pending & wanted

    # -- the advisory data and re-matching -----------------------------------------------
    def _resources(self) -> ScanResources:
        if self.resources is None:
            raise RuntimeError("this pipeline was built without vulnerability data")
        return self.resources

    def rematch(self) -> list[Event]:
        """:meth:`rematch_events`, all of them in a list."""
        return list(self.rematch_events())

    def rematch_events(self) -> Iterator[Event]:
        """Continuous re-matching: every stored inventory matched again against the current OSV
        data, without touching any registry; what moved is diffed and written to the outbox like
        any scan. Yields the events a batch at a time, as each batch is written (a mass move of
        a large fleet is never held in memory whole: consume it as it comes); the store's
        marker of what was re-matched moves when the last batch is done, so a re-match stopped
        part way is done again next time (its events are not written twice: their ids are
        stable).

        Proportional to the change: the advisory index logs the package names of every record
        added, changed, withdrawn or removed (``VulnIndex.changes_since``), and the store keeps the
        data version it was last re-matched against, so a re-match with nothing changed since does
        nothing, and otherwise only inventories holding a package of a changed name are
        fingerprinted (each distinct package matched once); with a store that keeps a package
        index (``Store.package_index``) each changed distinct package is evaluated once against
        the signature it had, and only images holding one that moved are read: what each holds
        of the changed packages (``Store.holdings``) lets its new result be made from its snapshot
        alone, the held packages' findings (computed once per distinct package) in place of the
        stored ones (``BuiltinScanner.rematch_held``), without reading its inventory. What that
        cannot tell (no index, no coverage kept, a package held twice, stored findings that are
        not what the package's signature says) is matched whole: inventories stream from the
        store as light rows, and only images whose findings moved are read back, re-matched,
        diffed and written, a batch per transaction (``Store.commit_scans``). The others are
        stamped as checked, in one statement."""
        from .scanners.builtin import BuiltinScanner

        resources = self._resources()
        scanner = BuiltinScanner.for_rematch(resources)
        data = scanner.data_sources()
        index = resources.vulndb
        version = index.data_version()         # read first: what changes meanwhile is seen next time
        previous = self.store.marker(_REMATCHED)
        changed = index.changes_since(previous)
        if changed is not None and not changed:
            return                             # the data did not change since the last re-match
        moved: list[tuple[str, str, str]] = []
        unchanged: list[tuple[str, str, str]] = []
        covered: dict[str, bool] = {}

        def gained(inv) -> bool:
            """Data arrived for an ecosystem its stored coverage says has none (a coverage change
            even when no finding moves)."""
            for eco in inv.coverage_missing or ():
                if eco not in covered:
                    covered[eco] = index.coverage_of(eco)[0] > 0
                if covered[eco]:
                    return True
            return False

        candidates = None
        signatures: dict[tuple, str] = {}
        held_by: dict[tuple[str, str, str], list] = {}      # image -> the changed packages it holds
        if changed is not None:
            packages = self.store.package_index({n for _e, n in changed})
            if packages is not None:    # each changed package evaluated once; images only where it moved
                touched = {}                    # package id -> IndexedPackage
                moved_packages: set[str] = set()
                for p in packages:
                    if not scanner.touches([p.row], p.distro, changed):
                        continue        # its folded name collides with a changed one, that's all
                    touched[p.id] = p
                    sig = scanner.package_findings(p.row, p.distro)[1]
                    if sig != p.signature:
                        moved_packages.add(p.id)
                        signatures[(p.distro, p.row)] = sig
                candidates = self.store.inventories_holding(moved_packages) if moved_packages else []
                holdings = (self.store.holdings(touched) if candidates else None) or {}
                rest = []
                rows_of: dict[frozenset, list] = {}     # images of one base hold the same packages
                for key in candidates:      # known holdings: moved or not without reading the inventory
                    held = holdings.get(key)
                    if held is None:
                        rest.append(key)
                    elif held & moved_packages:
                        rows = rows_of.get(held)
                        if rows is None:
                            rows = rows_of[held] = [(touched[pid].row, touched[pid].signature) for pid in sorted(held)]
                        held_by[key] = rows
                    else:
                        unchanged.append(key)
                candidates = rest
                del holdings, rows_of
        else:
            self.store.package_index(())           # bring the index up to date (its signatures below)
        stream = (self.store.inventories() if candidates is None else
                  self.store.inventories(keys=candidates) if candidates else ())
        for inv in stream:
            if changed is not None and inv.findings_signature is not None and not scanner.touches(
                    inv.rows, inv.distro, changed):
                (moved if gained(inv) else unchanged).append(inv.key)  # no package named by a changed record
                continue
            same = (inv.findings_signature is not None
                    and scanner.fingerprint(inv.rows, inv.distro) == inv.findings_signature)
            (unchanged if same and not gained(inv) else moved).append(inv.key)
        self.store.mark_checked(unchanged, utcnow())
        del unchanged
        step = self.record_batch
        fresh = scanner.data_notes()[1]
        held_keys = list(held_by)
        for i in range(0, len(held_keys), step):    # the snapshot alone: only the held packages matched anew
            chunk = held_keys[i:i + step]
            items = []
            for old in self.store.snapshots_of(chunk, with_inventory=False):
                new = scanner.rematch_held(old, held_by[old.image.key], old.distro, fresh)
                if new is None:
                    moved.append(old.image.key)     # the whole inventory is needed
                else:
                    items.append((new, old, True, True))
                del held_by[old.image.key]
            yield from self._record_rematched(items, data)
        for i in range(0, len(moved), step):      # read, re-match and write a batch at a time
            chunk = moved[i:i + step]
            invs = {inv.key: inv for inv in self.store.inventories(keys=chunk)}
            items = []
            for old in self.store.snapshots_of(chunk, with_inventory=False):
                inv = invs.get(old.image.key)
                if inv is not None:
                    items.append((scanner.rematch(old, inv.packages, inv.distro), old, True, True))
            yield from self._record_rematched(items, data)
        if changed is None:
            signatures = scanner.package_signatures()
        self.store.set_package_signatures(signatures)     # after the images they moved are written
        self.store.set_marker(_REMATCHED, version)
        prune = getattr(index, "prune_changes", None)
        if prune is not None and previous:
            try:                          # what led up to the last re-match is not needed again
                prune(previous)
            except Exception as e:        # a read-only index: the log just stays
                log.debug("change log of the advisory index not pruned: %s", e)

    def _record_rematched(self, items: list, data: Sequence[DataSource]) -> list[Event]:
        """Record a batch of re-matched results (:meth:`record_many`); their events (coverage
        events too). The first failure is raised."""
        events: list[Event] = []
        for got in self.record_many(items, data=data, also=events):
            if isinstance(got, Exception):
                raise got
            if got is not None:
                events.append(got)
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
        """Import one local OSV export (an ``all.zip`` or a folder of records), or an enrichment
        file (KEV, EPSS, CVE JSON 5, NVD: recognised by content, imported when it changed); returns
        its :class:`~vulnwatch.vulndb.interface.ImportReport` or
        :class:`~vulnwatch.vulndb.enrichment.EnrichmentReport`. Raises ``VulnDBError``."""
        from .vulndb.sync import detect_kind, import_enrichment, import_path, local_source, local_version

        path = path.resolve()
        if detect_kind(path) is not None:
            return import_enrichment(self._resources().vulndb, path)
        return import_path(self._resources().vulndb, path, source=local_source(path), location=str(path),
                           last_modified=local_version(path))

    def update_enrichment(self, sources: Sequence[tuple[str, str]]) -> list:
        """Download each ``(name, url)`` enrichment source where it changed (conditional GET, then
        content hash); returns an :class:`~vulnwatch.vulndb.enrichment.EnrichmentReport` each.
        Raises :class:`~vulnwatch.vulndb.interface.VulnDBError`."""
        from .vulndb.sync import update_enrichment

        return update_enrichment(self._resources().vulndb, list(sources))

    def advisory_sources(self) -> tuple[list, int, Path]:
        """The sources in the local index (:class:`~vulnwatch.vulndb.interface.SourceStatus`), its
        record count and its file."""
        index = self._resources().vulndb
        return index.sources(), index.count(), index.path

    def enrichment_sources(self) -> list:
        """The enrichment sources in the local index (KEV, EPSS, CVE JSON 5, NVD), as
        :class:`~vulnwatch.vulndb.interface.SourceStatus` (``ecosystem`` is the source name)."""
        return self._resources().vulndb.enrichment_sources()

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


@dataclass
class _CycleTally:
    selected: int = 0
    scanned: int = 0
    done: int = 0
    total: int = 0
    events: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)      # note -> the images it was said of
    data: tuple = ()                               # the data the watch's scanner judges by

    def merge(self, other: "_CycleTally") -> None:
        self.selected += other.selected
        self.scanned += other.scanned
        self.events.extend(other.events)
        self.failures.extend(other.failures)
        self.warnings.extend(other.warnings)
        for note, images in other.notes.items():
            self.notes.setdefault(note, []).extend(images)



def _spell(seconds: float) -> str:
    """``3600`` -> ``1h``, ``90`` -> ``1m30s`` (as the configuration writes durations)."""
    ms = round(seconds * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"


class _Either(threading.Event):
    """Set when a stop was asked for or a lease was lost (whichever first); says which."""

    def __init__(self, stop: threading.Event | None, lost: threading.Event) -> None:
        super().__init__()
        self._stop = stop
        self._lost = lost

    def is_set(self) -> bool:
        return bool((self._stop is not None and self._stop.is_set()) or self._lost.is_set())

    def reason(self) -> str:
        if self._lost.is_set():
            return "lease lost: another holder took the store over"
        return "stopped"


def _reason(error: Exception, target: str) -> str:
    """The error's message without the target it starts with (the failure names it already)."""
    reason = getattr(error, "reason", None)
    text = reason if isinstance(reason, str) and reason else str(error)
    while text.startswith(f"{target}: "):
        text = text[len(target) + 2:]
    return text


def _list_repositories(reg: Registry, chosen: Sequence[tuple[str, Any]]) -> list[list[Image] | RegistryError]:
    """The selected images of each (repository, selector) of ``chosen``, in that order, or the
    :class:`RegistryError` listing it raised. Up to ``reg.listing_concurrency`` repositories are
    listed at once (each in the caller's context: its deadline holds there too); any other
    error is raised, as a listing one after the other would raise it."""
    def one(item: tuple[str, Any]) -> list[Image] | RegistryError:
        repo, selector = item
        try:
            return select_images(reg.images(repo), selector)
        except RegistryError as e:
            return e

    workers = min(max(1, int(getattr(reg, "listing_concurrency", 1) or 1)), len(chosen))
    if workers <= 1:
        return [one(item) for item in chosen]
    with ThreadPoolExecutor(workers, thread_name_prefix="vulnwatch-list") as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, item) for item in chosen]
        return [f.result() for f in futures]


def _same_instant(a: datetime, b: datetime) -> bool:
    """Whether two stored times are one (a store may drop the zone: naive is UTC; and may keep
    only milliseconds)."""
    return abs((as_utc(a) - as_utc(b)).total_seconds()) < 0.001


def _failure(target: str, error: str, code: str, *, kind: str = "failure") -> Failure:
    """A :class:`Failure` (or warning), logged with its fields (``event``, ``target``, ``code``,
    ``error``) at INFO only: the caller presents the report's failures and warnings (the CLI
    prints them, as JSON objects with ``--log-format json``)."""
    error = redact(error)      # what a server said back can hold what it was sent
    log.info("%s %s: %s", kind, target, error, extra={"event": kind, "target": target, "code": code, "error": error})
    return Failure(target, error, code)


def _also(commit: ScanCommit, event: Event | None, also: list[Event] | None) -> None:
    """The events of a written commit besides ``event`` (the one returned), added to ``also``."""
    if also is not None:
        also.extend(ev for ev, _sinks in commit.deliveries if ev is not event)


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
