"""ECR's own findings as a :class:`~vulnwatch.scanners.interface.Scanner`.

Two kinds of ECR scanning exist, chosen per registry (``GetRegistryScanningConfiguration``):

* **basic** (``ecr-basic``): a scan runs when someone calls ``StartImageScan`` (at most once per
  image per 24 h; more answers ``LimitExceededException``) or on push. We start one only when the
  image's last scan is older than ``scan_interval``, wait for it without blocking a thread, and
  read the findings of finished scans only.
* **enhanced** (``ecr-enhanced``, Amazon Inspector): images are rescanned continuously by AWS;
  we start nothing and read ``enhancedFindings``.

:meth:`ECRScanner.scan_many` works in phases on a bounded thread pool: (0, basic) one batched
``DescribeImages`` per 100 images for the scan summaries real ECR reports, (1) decide per image
and start the scans that are due, (2) read findings, re-polling unfinished scans with exponential
back-off on a schedule instead of sleeping in a worker. Results are yielded as they finish.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal


from .. import aws
from ..model import Finding, Image, ScanResult, Severity, by_finding_key, current_deadline, utcnow
from ..registries.ecr import ECRRegistry
from .interface import Scanner, ScanError

Mode = Literal["auto", "basic", "enhanced"]

#: Scan statuses meaning "not finished yet, ask again later".
UNFINISHED = frozenset({"IN_PROGRESS", "PENDING"})
#: Scan statuses whose findings are those of a finished scan.
FINISHED = frozenset({"COMPLETE", "ACTIVE"})
#: Error codes worth retrying in a later cycle.
RETRYABLE_CODES = frozenset({"ThrottlingException", "ServerException", "ServiceUnavailable",
                             "TooManyRequestsException", "RequestLimitExceeded", "InternalError"})

#: Inspector ``packageManager`` -> OSV ecosystem (``OS`` is resolved from the image platform).
PACKAGE_MANAGER_ECOSYSTEMS = {
    "PIP": "PyPI", "PYTHONPKG": "PyPI", "PIPENV": "PyPI", "POETRY": "PyPI",
    "NPM": "npm", "NODEPKG": "npm", "YARN": "npm",
    "GOBINARY": "Go", "GOMOD": "Go",
    "JAR": "Maven", "POM": "Maven", "GRADLE": "Maven",
    "BUNDLER": "RubyGems", "GEMSPEC": "RubyGems",
    "CARGO": "crates.io", "COMPOSER": "Packagist", "NUGET": "NuGet", "DOTNET_CORE": "NuGet",
}

LIMIT_NOTE = ("ECR allows one basic scan per image per 24 h (StartImageScan: LimitExceededException); "
              "findings are those of the last completed scan")


def platform_ecosystem(platform: str | None) -> str:
    """Inspector image platform (``DEBIAN_12``, ``UBUNTU_22_04``, ``ALPINE_LINUX_3_19``) -> OSV
    ecosystem (``Debian:12``, ``Ubuntu:22.04``, ``Alpine:v3.19``); ``""`` when unknown."""
    if not platform:
        return ""
    p = platform.upper()
    if p.startswith("DEBIAN_"):
        return "Debian:" + p.removeprefix("DEBIAN_").split("_")[0]
    if p.startswith("UBUNTU_"):
        return "Ubuntu:" + ".".join(p.removeprefix("UBUNTU_").split("_")[:2])
    if p.startswith("ALPINE_LINUX_"):
        return "Alpine:v" + ".".join(p.removeprefix("ALPINE_LINUX_").split("_")[:2])
    return ""


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


def _dedupe(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """One finding per :attr:`Finding.key` (the most severe wins), sorted by key."""
    out = by_finding_key(findings)
    return tuple(out[k] for k in sorted(out))


def map_basic_finding(raw: dict[str, Any]) -> Finding:
    """One basic-scan ``findings[]`` entry -> :class:`Finding` (``scanner="ecr-basic"``)."""
    attrs = {a.get("key"): a.get("value") for a in raw.get("attributes") or ()}
    score, vector = _float(attrs.get("CVSS3_SCORE")), attrs.get("CVSS3_VECTOR")
    if score is None and not vector:
        score, vector = _float(attrs.get("CVSS2_SCORE")), attrs.get("CVSS2_VECTOR")
    return Finding(
        vulnerability_id=raw.get("name") or "",
        package_name=attrs.get("package_name") or "",
        package_version=attrs.get("package_version") or "",
        severity=Severity.parse(raw.get("severity")),
        cvss_score=score,
        cvss_vector=vector or None,
        title=_first_line(raw.get("description")),
        links=(raw["uri"],) if raw.get("uri") else (),
        scanner="ecr-basic",
    )


def _package_version(pkg: dict[str, Any], os_package: bool) -> str:
    version = str(pkg.get("version") or "")
    if not os_package:
        return version
    epoch, release = pkg.get("epoch"), pkg.get("release")
    if release:
        version = f"{version}-{release}"
    if epoch:
        version = f"{epoch}:{version}"
    return version


def _pick_cvss(entries: Iterable[dict[str, Any]]) -> tuple[float | None, str | None]:
    """The CVSS 3.x entry if any (highest version), else the first."""
    entries = [e for e in entries if e]
    if not entries:
        return None, None
    v3 = sorted((e for e in entries if str(e.get("version") or "").startswith("3")),
                key=lambda e: str(e.get("version")), reverse=True)
    best = v3[0] if v3 else entries[0]
    vector = best.get("scoringVector")
    if vector and str(best.get("version") or "").startswith("3") and not vector.startswith("CVSS:"):
        vector = f"CVSS:{best['version']}/{vector}"
    return _float(best.get("baseScore") if "baseScore" in best else best.get("score")), vector


def map_enhanced_finding(raw: dict[str, Any]) -> list[Finding]:
    """One Inspector ``enhancedFindings[]`` entry -> one :class:`Finding` per vulnerable package
    (``scanner="ecr-enhanced"``)."""
    details = raw.get("packageVulnerabilityDetails") or {}
    vid = details.get("vulnerabilityId") or raw.get("title") or raw.get("findingArn") or ""
    cvss = list(details.get("cvss") or ())
    score, vector = _pick_cvss(cvss)
    if score is None:
        score, vector = _pick_cvss([(raw.get("scoreDetails") or {}).get("cvss") or {}])
    links: list[str] = []
    for url in [details.get("sourceUrl"), *(details.get("referenceUrls") or ()),
                ((raw.get("remediation") or {}).get("recommendation") or {}).get("url")]:
        if url and url not in links:
            links.append(url)
    platform = None
    for res in raw.get("resources") or ():
        platform = ((res.get("details") or {}).get("awsEcrContainerImage") or {}).get("platform") or platform
    yes_no = {"YES": True, "PARTIAL": True, "NO": False}
    common = dict(
        vulnerability_id=vid,
        aliases=tuple(sorted({a for a in details.get("relatedVulnerabilities") or () if a and a != vid})),
        severity=Severity.parse(raw.get("severity") or details.get("vendorSeverity")),
        fix_available=yes_no.get(str(raw.get("fixAvailable") or "").upper()),
        exploit_available={"YES": True, "NO": False}.get(str(raw.get("exploitAvailable") or "").upper()),
        cvss_score=score,
        cvss_vector=vector,
        title=_first_line(raw.get("title") or raw.get("description")),
        links=tuple(links),
        scanner="ecr-enhanced",
    )
    out = []
    for pkg in details.get("vulnerablePackages") or ():
        manager = str(pkg.get("packageManager") or "").upper()
        os_package = manager in ("OS", "DPKG", "RPM", "APK", "")
        ecosystem = platform_ecosystem(platform) if manager == "OS" else PACKAGE_MANAGER_ECOSYSTEMS.get(manager, "")
        fixed = pkg.get("fixedInVersion")
        fixed_versions = (fixed,) if fixed and fixed not in ("NotAvailable", "None") else ()
        out.append(Finding(package_name=pkg.get("name") or "", package_version=_package_version(pkg, os_package),
                           ecosystem=ecosystem, fixed_versions=fixed_versions, **common))
    return out


@dataclass
class _Job:
    """Mutable per-image state while :meth:`ECRScanner.scan_many` runs."""

    image: Image
    previous: ScanResult | None
    summary_at: datetime | None = None
    """``imageScanFindingsSummary.imageScanCompletedAt`` from ``DescribeImages``, when given."""
    listed: bool = False
    """``DescribeImages`` answered for this image (so ``scan_status`` is what ECR knows)."""
    scan_status: str | None = None
    """``imageScanStatus.status`` from ``DescribeImages``; None there means never scanned."""
    last_scan: datetime | None = None
    """Completion time of the last scan known before we started one."""
    started: bool = False
    limit_exceeded: bool = False
    notes: list[str] = field(default_factory=list)
    first_page: dict[str, Any] | None = None
    """A findings page of a finished scan already read in phase 1."""
    deadline: datetime | None = None
    delay: float = 0.0


_WAIT = object()  # a read found the scan unfinished
_ASK = object()   # phase 1: ECR must be asked whether (and when) the image was scanned
_START = object()  # phase 1: a scan is due; start it


class ECRScanner(Scanner):
    """Findings from ECR basic scanning or Inspector enhanced scanning.

    ``mode``: ``auto`` asks ECR once which kind the registry uses. ``scan_interval``: a basic scan
    is started only when the last one finished longer ago. ``wait_timeout``: how long to wait for a
    started scan before :class:`ScanError` ``ScanTimeout``; polls start ``poll_initial`` seconds
    apart and double up to ``poll_max``. ``max_concurrency``: worker threads for API calls.
    ``clock``/``sleep`` are injectable for tests. ``start_client`` is the client used for
    ``StartImageScan`` (default: a retry-less sibling of ``client``, see :mod:`vulnwatch.aws`).
    ``calls`` counts API calls per operation.
    """

    @classmethod
    def from_config(cls, registry_config: Any, registry: Any, resources: Any) -> "ECRScanner":
        reg = registry_config
        endpoint = str(reg.endpoint_url).rstrip("/") if reg.endpoint_url else None
        return cls(region=reg.region, registry_id=reg.registry_id, endpoint_url=endpoint, mode=reg.scan.mode,
                   scan_interval=reg.scan.interval, wait_timeout=reg.scan.wait_timeout,
                   max_concurrency=reg.max_concurrency, listing=registry)

    def __init__(self, *, client: Any = None, region: str | None = None, registry_id: str | None = None,
                 endpoint_url: str | None = None, mode: Mode = "auto",
                 scan_interval: timedelta = timedelta(hours=24), wait_timeout: timedelta = timedelta(minutes=10),
                 poll_initial: float = 2.0, poll_max: float = 30.0, max_concurrency: int = 4,
                 clock: Callable[[], datetime] = utcnow, sleep: Callable[[float], None] = time.sleep,
                 start_client: Any = None, listing: ECRRegistry | None = None) -> None:
        if mode not in ("auto", "basic", "enhanced"):
            raise ValueError(f"ECR scanner mode must be auto, basic or enhanced, not {mode!r}")
        self.client = client if client is not None else aws.client(
            "ecr", region=region, endpoint_url=endpoint_url, max_pool_connections=max(10, max_concurrency * 2))
        self._start_client = start_client
        self._start_lock = threading.Lock()
        self.registry_id = registry_id
        self.listing = listing
        """The registry that listed the images: what its ``DescribeImages`` pages said of each
        image's scan is used instead of asking again."""
        self.scan_interval = scan_interval
        self.wait_timeout = wait_timeout
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.max_concurrency = max(1, max_concurrency)
        self.clock = clock
        self.sleep = sleep
        self.calls = aws.CallCounter()
        self.calls.attach(self.client)
        if start_client is not None and start_client is not self.client:
            self.calls.attach(start_client)
        self._mode: str | None = None if mode == "auto" else mode
        self._mode_lock = threading.Lock()

    @property
    def start_client(self) -> Any:
        """The client ``StartImageScan`` is called with: the one given, else a retry-less sibling
        of :attr:`client` made on first use (a cycle that starts no scan makes none)."""
        with self._start_lock:
            if self._start_client is None:
                self._start_client = aws.without_retries(self.client)
                self.calls.attach(self._start_client)
            return self._start_client

    def __repr__(self) -> str:
        return f"ECRScanner(mode={self._mode or 'auto'!r}, registry_id={self.registry_id!r})"

    # -- mode ------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``basic`` or ``enhanced`` (detected on first use when constructed with ``auto``)."""
        with self._mode_lock:
            if self._mode is None:
                self._mode = self._detect_mode()
            return self._mode

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"ecr-{self.mode}"

    def _detect_mode(self) -> str:
        try:
            resp = self.client.get_registry_scanning_configuration()
        except aws.exceptions.ClientError:
            return "basic"  # unsupported or denied: basic scanning is what every registry has
        scan_type = ((resp.get("scanningConfiguration") or {}).get("scanType") or "").upper()
        return "enhanced" if scan_type == "ENHANCED" else "basic"

    # -- public API ------------------------------------------------------------------------
    def scan(self, image: Image, previous: ScanResult | None = None) -> ScanResult:
        """Scan one image (see :meth:`scan_many`). Raises :class:`ScanError`."""
        for _, outcome in self.scan_many([image], {image.key: previous} if previous else {}):
            if isinstance(outcome, ScanError):
                raise outcome
            return outcome
        raise ScanError(image, "no result produced")  # pragma: no cover - scan_many yields once per image

    def scan_many(self, images: Iterable[Image], previous: Mapping[tuple[str, str, str], ScanResult]
                  ) -> Iterator[tuple[Image, ScanResult | ScanError]]:
        """Scan ``images``, yielding ``(image, ScanResult | ScanError)`` as each finishes."""
        jobs = [_Job(image, previous.get(image.key)) for image in images]
        if not jobs:
            return
        mode = self.mode
        pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="ecr-scan")
        try:
            if mode == "basic":
                self._attach_summaries(pool, jobs)
            yield from self._run(pool, jobs)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self.client.close()
        if self._start_client is not None and self._start_client is not self.client:
            self._start_client.close()

    # -- phases ----------------------------------------------------------------------------
    def _ids(self) -> dict[str, str]:
        return {"registryId": self.registry_id} if self.registry_id else {}

    def _attach_summaries(self, pool: ThreadPoolExecutor, jobs: list[_Job]) -> None:
        """Phase 0: ``imageScanFindingsSummary`` per digest, 100 images per ``DescribeImages`` call.
        Best effort: a failing batch (e.g. one image deleted) just leaves its summaries unknown."""
        by_repo: dict[str, list[_Job]] = {}
        for job in jobs:
            info = self.listing.scan_info(job.image.repository, job.image.digest) if self.listing else None
            if info is not None:          # the registry's listing already said it
                job.listed = True
                job.scan_status = info.status
                job.summary_at = _utc(info.completed_at)
                continue
            by_repo.setdefault(job.image.repository, []).append(job)

        def fetch(repository: str, batch: list[_Job]) -> None:
            digests = sorted({j.image.digest for j in batch})
            try:
                resp = self.client.describe_images(repositoryName=repository,
                                                   imageIds=[{"imageDigest": d} for d in digests], **self._ids())
            except (aws.exceptions.ClientError, aws.exceptions.BotoCoreError):
                return
            found = {}
            status = {}
            for detail in resp.get("imageDetails") or ():
                at = _utc((detail.get("imageScanFindingsSummary") or {}).get("imageScanCompletedAt"))
                if at:
                    found[detail["imageDigest"]] = at
                status[detail["imageDigest"]] = (detail.get("imageScanStatus") or {}).get("status")
            for j in batch:
                j.summary_at = found.get(j.image.digest)
                j.listed = j.image.digest in status
                j.scan_status = status.get(j.image.digest)

        futures = [pool.submit(fetch, repo, batch[i:i + 100])
                   for repo, batch in by_repo.items() for i in range(0, len(batch), 100)]
        wait(futures)

    def _run(self, pool: ThreadPoolExecutor, jobs: list[_Job]) -> Iterator[tuple[Image, ScanResult | ScanError]]:
        """Phases 1 and 2 on one schedule: prepare (and start) every job, then read findings,
        re-polling unfinished scans at their due time. No worker ever sleeps. What phase 1 can
        decide without asking ECR (a snapshot still current, findings to read) is decided here,
        in this thread: an unchanged image costs no worker and no call."""
        running: dict[Future, tuple[_Job, str]] = {}
        scheduled: list[tuple[datetime, int, _Job]] = []
        seq = itertools.count()
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()   # futures as they complete

        def submit(fn: Callable[..., Any], job: _Job, step: str, *args: Any) -> None:
            fut = pool.submit(fn, job, *args)
            running[fut] = (job, step)
            fut.add_done_callback(finished.put)   # one wake-up per completion, not a wait() on all

        def schedule(job: _Job, at: datetime) -> None:
            heapq.heappush(scheduled, (at, next(seq), job))

        def settle(job: _Job, step: str, outcome: Any) -> tuple[Image, ScanResult | ScanError] | None:
            """What a finished step means: the job's result (to yield), or its next step scheduled."""
            now = self.clock()
            if step == "prepare" and outcome is None:
                job.deadline = now + self.wait_timeout
                job.delay = self.poll_initial
                # the first look at a scan just started: after poll_initial, but never past
                # the deadline (a caller that waits less re-queues the image instead)
                first = min(timedelta(seconds=self.poll_initial), self.wait_timeout)
                schedule(job, now + first if job.started else now)
                return None
            if outcome is _WAIT:
                if job.deadline is not None and now >= job.deadline:
                    return job.image, ScanError(
                        job.image, f"scan still unfinished after {self.wait_timeout}; it goes on in ECR, "
                        f"the next cycle reads its findings", code="ScanTimeout", retryable=True)
                at = now + timedelta(seconds=job.delay)
                if job.deadline is not None:
                    at = min(at, job.deadline)
                job.delay = min(job.delay * 2, self.poll_max)
                schedule(job, at)
                return None
            return job.image, outcome

        ready: list[tuple[Image, ScanResult | ScanError]] = []   # decided here; yielded once the calls are queued
        for job in jobs:
            try:
                decision = self._decide(job)
            except Exception as e:  # noqa: BLE001 - one image's surprise must not stop the run
                ready.append((job.image, self._error(job.image, e)))
                continue
            if decision is _ASK or decision is _START:
                submit(self._prepare, job, "prepare", decision)
                continue
            result = settle(job, "prepare", decision)
            if result is not None:
                ready.append(result)
        yield from ready
        del ready

        cycle = current_deadline()          # the cycle's: waiting for findings stops at it
        while running or scheduled:
            now = self.clock()
            if cycle is not None and cycle.expired and scheduled:
                for _, _, job in scheduled:
                    yield job.image, ScanError(job.image, f"scan findings not read: {cycle.what} reached while "
                                               "waiting for them; read in the next cycle", code="Timeout",
                                               retryable=True)
                scheduled.clear()
                if not running:
                    break
            while scheduled and scheduled[0][0] <= now:
                _, _, job = heapq.heappop(scheduled)
                submit(self._read, job, "read")
            if not running:
                pause = max(0.0, (scheduled[0][0] - self.clock()).total_seconds())
                self.sleep(min(pause, cycle.remaining() + 0.01) if cycle is not None else pause)
                continue
            timeout = max(0.0, (scheduled[0][0] - now).total_seconds()) if scheduled else None
            if cycle is not None and scheduled:
                timeout = min(timeout, cycle.remaining() + 0.01)
            done = []
            try:
                done.append(finished.get(timeout=timeout))
                while True:
                    done.append(finished.get_nowait())
            except queue.Empty:
                pass
            for fut in done:
                job, step = running.pop(fut)
                try:
                    outcome = fut.result()
                except ScanError as e:
                    yield job.image, e
                    continue
                except Exception as e:  # noqa: BLE001 - one image's surprise must not stop the run
                    yield job.image, self._error(job.image, e)
                    continue
                result = settle(job, step, outcome)
                if result is not None:
                    yield result

    # -- per image steps ------------------------------------------------------------------------
    def _decide(self, job: _Job) -> Any:
        """Phase 1 as far as it goes without an API call (run in the scheduling thread): the
        current snapshot (nothing to ask ECR), ``None`` (read the findings), or :data:`_ASK` /
        :data:`_START`, which :meth:`_prepare` completes in a worker."""
        if self.mode == "enhanced":
            return None
        prev = job.previous
        last = prev.scanned_at if prev else None
        if job.summary_at and (last is None or job.summary_at > last):
            last = job.summary_at  # a newer scan happened (on push, or by someone else)
        if last is None and job.listed and job.scan_status in UNFINISHED:
            return None  # a scan is running (someone else's, or on push): wait for it
        if last is None and not (job.listed and job.scan_status is None):
            # ECR did not say whether the image was ever scanned: ask for its findings.
            # (Listed without a scan status means never scanned: start one without asking.)
            return _ASK
        return self._due(job, last)

    def _due(self, job: _Job, last: datetime | None) -> Any:
        """Whether a scan is due, given the last one known: the current snapshot, ``None`` (read
        the findings) or :data:`_START`."""
        job.last_scan = last
        prev = job.previous
        if last is not None and self.clock() - last < self.scan_interval:
            if prev and (job.summary_at is None or job.summary_at == prev.scanned_at):
                # Basic findings belong to one scan and do not change until the next one: with no
                # newer scan reported (or no summary at all, as on moto), the snapshot is current.
                return replace(prev, image=job.image)
            return None
        return _START

    def _prepare(self, job: _Job, decision: Any = None) -> ScanResult | None:
        """Phase 1 in a worker: what :meth:`_decide` left to ECR (``decision``: :data:`_ASK` or
        :data:`_START`; omitted, decided here). ``None`` means "read findings"."""
        if decision is None:
            decision = self._decide(job)
        image = job.image
        if decision is _ASK:
            try:
                page = self._findings_page(image)
            except ScanError as e:
                if e.code != "ScanNotFoundException":
                    raise
                page = None
            status = ((page or {}).get("imageScanStatus") or {}).get("status")
            if status in UNFINISHED:
                return None  # someone else's scan is running: wait for it
            last = None
            if status in FINISHED:
                last = _utc((page.get("imageScanFindings") or {}).get("imageScanCompletedAt"))
                job.first_page = page
            decision = self._due(job, last)
        if decision is not _START:
            return decision
        try:
            self.start_client.start_image_scan(repositoryName=image.repository,
                                               imageId={"imageDigest": image.digest}, **self._ids())
        except aws.exceptions.ClientError as e:
            if aws.error_code(e) != "LimitExceededException":
                raise self._error(image, e) from None
            job.limit_exceeded = True
            job.notes.append(LIMIT_NOTE)
            return None
        except aws.exceptions.BotoCoreError as e:
            raise self._error(image, e) from None
        job.started = True
        job.first_page = None
        return None

    def _findings_pages(self, image: Image) -> Iterator[dict[str, Any]]:
        """``DescribeImageScanFindings`` pages, lazily; errors become :class:`ScanError`."""
        try:
            yield from self.client.get_paginator("describe_image_scan_findings").paginate(
                repositoryName=image.repository, imageId={"imageDigest": image.digest}, **self._ids())
        except (aws.exceptions.ClientError, aws.exceptions.BotoCoreError) as e:
            raise self._error(image, e) from None

    def _findings_page(self, image: Image) -> dict[str, Any]:
        """The first findings page only."""
        return next(self._findings_pages(image))

    def _read(self, job: _Job) -> Any:
        """Phase 2: findings of a finished scan, ``_WAIT`` while unfinished, or :class:`ScanError`."""
        image, prev = job.image, job.previous
        if job.first_page is not None and not job.first_page.get("nextToken"):
            pages: Iterator[dict[str, Any]] = iter([job.first_page])
        else:
            pages = self._findings_pages(image)
        job.first_page = None
        try:
            page = next(pages)
        except ScanError as e:
            if e.code == "ScanNotFoundException" and job.started:
                return _WAIT  # just started; not visible yet
            if job.limit_exceeded and prev:
                return self._keep_previous(job)
            raise
        status_info = page.get("imageScanStatus") or {}
        status = status_info.get("status") or ""
        if status in UNFINISHED:
            return _WAIT
        if status not in FINISHED:
            if job.limit_exceeded and prev:
                return self._keep_previous(job)
            description = status_info.get("description") or "no description from ECR"
            code = "ScanFailed" if status == "FAILED" else (status or "ScanFailed")
            raise ScanError(image, f"ECR scan status {status or 'missing'}: {description}", code=code)
        body = page.get("imageScanFindings") or {}
        completed = _utc(body.get("imageScanCompletedAt"))
        if (self.mode == "basic" and job.started and job.last_scan and completed
                and completed <= job.last_scan):
            return _WAIT  # still the old scan's findings: ours has not finished
        if job.limit_exceeded and prev and completed and completed == prev.scanned_at:
            return self._keep_previous(job)
        raw_basic = list(body.get("findings") or ())
        raw_enhanced = list(body.get("enhancedFindings") or ())
        for more in pages:
            more_body = more.get("imageScanFindings") or {}
            raw_basic += more_body.get("findings") or ()
            raw_enhanced += more_body.get("enhancedFindings") or ()
        return self._result(job, body, raw_basic, raw_enhanced, completed)

    def _result(self, job: _Job, body: dict[str, Any], raw_basic: list, raw_enhanced: list,
                completed: datetime | None) -> ScanResult:
        if self.mode == "enhanced":
            mapped = [f for raw in raw_enhanced for f in map_enhanced_finding(raw)]
            # Enhanced results may also carry basic-style findings; use them only if alone.
            if not raw_enhanced:
                mapped = [replace(map_basic_finding(r), scanner="ecr-enhanced") for r in raw_basic]
            if completed is None:
                seen = [_utc(r.get("updatedAt") or r.get("lastObservedAt")) for r in raw_enhanced]
                completed = max((s for s in seen if s), default=None)
        else:
            mapped = [map_basic_finding(r) for r in raw_basic]
        findings = _dedupe(mapped)
        distros = {f.ecosystem for f in findings if f.ecosystem.split(":")[0] in ("Debian", "Ubuntu", "Alpine")}
        return ScanResult(
            image=job.image,
            scanner=self.name,
            scanned_at=completed or self.clock(),
            findings=findings,
            vulnerability_source_updated_at=_utc(body.get("vulnerabilitySourceUpdatedAt")),
            distro=distros.pop() if len(distros) == 1 else None,
            notes=tuple(job.notes),
        )

    def _keep_previous(self, job: _Job) -> ScanResult:
        prev = job.previous
        assert prev is not None
        notes = tuple(dict.fromkeys([*prev.notes, *job.notes]))
        return replace(prev, image=job.image, notes=notes)

    def _error(self, image: Image, exc: BaseException) -> ScanError:
        code = aws.error_code(exc)
        if code is not None:
            message = (exc.response.get("Error") or {}).get("Message") or code  # type: ignore[attr-defined]
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)  # type: ignore[attr-defined]
            return ScanError(image, f"{code}: {message}", code=code,
                             retryable=code in RETRYABLE_CODES or status >= 500)
        if isinstance(exc, aws.exceptions.NoCredentialsError):
            return ScanError(image, "no AWS credentials found (set AWS_PROFILE or access keys, or use a role)",
                             code="NoCredentials")
        if isinstance(exc, aws.exceptions.BotoCoreError):
            return ScanError(image, f"cannot reach ECR ({type(exc).__name__}); check region, endpoint and network",
                             code=type(exc).__name__, retryable=True)
        return ScanError(image, f"{type(exc).__name__}: {exc}", code=type(exc).__name__)
