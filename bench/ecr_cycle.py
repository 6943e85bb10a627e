"""Benchmark: one vulnwatch ECR cycle against the legacy hourly Lambda loop, on moto_server.

    python bench/ecr_cycle.py [--images 1000] [--repos 50] [--hours 24] [--concurrency N]
                              [--standard-retries] [--no-proxy] [--profile]

Starts its own ``moto_server`` on 127.0.0.1, pushes ``--images`` images spread over ``--repos``
repositories, then measures in one run:

1. a cold cycle (never-scanned images) of the legacy loop and of ours, each on a fresh moto
   state (reset + the same images pushed again, so the digests are the same);
2. a steady cycle of each one hour later (same calendar day in moto, so the legacy loop's
   ``StartImageScan`` answers ``LimitExceededException``; ours starts nothing because the last
   scan is less than ``scan.interval`` = 24 h old). ``--standard-retries`` adds a legacy steady
   cycle made with botocore's ``standard`` retry mode, which retries that error as throttling
   (botocore's default mode, ``legacy``, does not retry it for ECR); it takes ~3 minutes;
3. ``StartImageScan`` calls over a simulated day: ours measured over ``--hours`` hourly cycles
   (an injected clock running ``k`` hours ahead of the real one); the legacy loop's is
   images x 24 by construction (it calls ``StartImageScan`` for every image every hour);
4. (``--no-proxy`` skips it) one more steady cycle of each through ``tests.support.ecr_proxy``,
   which adds the ``imageScanFindingsSummary`` that real ECR's ``DescribeImages`` reports and
   moto leaves out (the proxy runs in this process, so both sides pay its CPU).

Every cycle also reports the CPU seconds spent by the moto_server process and by this process
(2 cores are shared by both), which shows where a cycle's time goes.

Each hourly cycle of ours is a fresh process-like run (as ``vulnwatch run`` from cron): new
clients, the SQLite state reopened. API calls are counted per operation with botocore event
hooks on every client: ``before-call`` (calls, what ``calls`` counters of our registry and
scanner count too) and ``before-send`` (HTTP attempts, retries included).

Targets (from the issue): ours >= 5x faster than the legacy loop, and in steady hourly runs
<= 1/24 of its ``StartImageScan`` calls. PASS/MISS is printed for each; the exit code is 0.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import os
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Fake credentials for moto, set before boto3 reads the environment. AWS_RETRY_MODE and
# AWS_MAX_ATTEMPTS are left alone: they are part of what "boto3 default config" means, and the
# legacy client's effective retry settings are printed.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)

import boto3  # noqa: E402
import botocore  # noqa: E402
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402
import moto  # noqa: E402

from tests.support.ecr import push_images  # noqa: E402
from tests.support.ecr_proxy import ECRProxy  # noqa: E402
from tests.support.servers import MotoServer  # noqa: E402
from vulnwatch.config import Config, parse_config  # noqa: E402
from vulnwatch.model import utcnow  # noqa: E402
from vulnwatch.pipeline import CycleReport, Pipeline, Watch  # noqa: E402
from vulnwatch.registries.ecr import ECRRegistry  # noqa: E402
from vulnwatch.scanners.ecr import ECRScanner  # noqa: E402
from vulnwatch.build import build_sinks, open_store, register_config_secrets, selectors_of  # noqa: E402
import vulnwatch.store.sql  # noqa: E402,F401  the store (SQLAlchemy) is imported when first opened: load it here,
# so that an in-process cycle measures the cycle, not the imports (the `vulnwatch run` row has those)

START = "StartImageScan"
FINDINGS = "DescribeImageScanFindings"


# ------------------------------------------------------------------------------------------
# counting API calls
# ------------------------------------------------------------------------------------------

class Meter:
    """API calls, HTTP attempts and final error codes per operation, over any number of clients.

    ``before-call`` fires once per API call (a paginator page is a call); ``before-send`` once
    per HTTP attempt, so ``attempts - calls`` is the number of retries botocore made."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.attempts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        events = client.meta.events
        events.register("before-call", self._on_call)
        events.register("before-send", self._on_send)
        events.register("after-call", self._on_after_call)
        return client

    @staticmethod
    def _operation(event_name: str) -> str:
        return event_name.rsplit(".", 1)[-1]

    def _on_call(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self.calls[self._operation(event_name)] += 1

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self.attempts[self._operation(event_name)] += 1

    def _on_after_call(self, event_name: str = "", parsed: Any = None, **_: Any) -> None:
        code = ((parsed or {}).get("Error") or {}).get("Code") if isinstance(parsed, dict) else None
        if code:
            with self._lock:
                self.errors[(self._operation(event_name), code)] += 1

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_attempts(self) -> int:
        return sum(self.attempts.values())


# ------------------------------------------------------------------------------------------
# CPU accounting
# ------------------------------------------------------------------------------------------

def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Cpu:
    """CPU seconds spent during one cycle by the moto_server process and by this process."""

    moto: float = 0.0
    own: float = 0.0


class cpu_of:
    """``with cpu_of(server) as cpu: ...`` fills ``cpu`` with the CPU seconds spent inside."""

    def __init__(self, server: MotoServer) -> None:
        self.pid = server.proc.pid
        self.cpu = Cpu()

    def __enter__(self) -> Cpu:
        self._start = (process_cpu(self.pid), own_cpu())
        return self.cpu

    def __exit__(self, *exc: Any) -> None:
        self.cpu.moto = process_cpu(self.pid) - self._start[0]
        self.cpu.own = own_cpu() - self._start[1]


# ------------------------------------------------------------------------------------------
# the images
# ------------------------------------------------------------------------------------------

def layout(images: int, repos: int) -> dict[str, list[str]]:
    """Repository name -> tags: ``images`` spread as evenly as possible over ``repos``."""
    per, extra = divmod(images, repos)
    return {f"team{r:02d}/service": [f"v{t}" for t in range(per + (1 if r < extra else 0))]
            for r in range(repos)}


def populate(server: MotoServer, repos: dict[str, list[str]]) -> None:
    """Reset moto and push every image (same manifests, so the same digests, every time)."""
    server.reset()
    push_images(server.url, repos)


# ------------------------------------------------------------------------------------------
# the legacy loop
# ------------------------------------------------------------------------------------------

@dataclass
class LegacyResult:
    seconds: float
    meter: Meter
    images: int = 0
    """Images seen (entries of the first ``ListImages`` page of each repository)."""
    changed: int = 0
    """Images whose severity counts differ from the stored ones (what it notified about)."""
    retries: dict[str, Any] = field(default_factory=dict)
    """The effective retry settings of its boto3 client."""
    cpu: Cpu = field(default_factory=Cpu)


def legacy_cycle(endpoint_url: str, watch_list: list[str], stored: dict[str, dict[str, int]],
                 retry_mode: str | None = None) -> LegacyResult:
    """The existing hourly Lambda, re-implemented faithfully and serially.

    For each repository of the watch list: ``ListImages`` (first page only); for each image
    ``StartImageScan`` (every error swallowed) then ``DescribeImageScanFindings`` (first page
    only) and compare its severity counts with the stored ones. The client has boto3's default
    configuration (``retry_mode`` None), so whatever retries botocore applies by default apply;
    ``retry_mode`` forces one (``standard`` retries ``LimitExceededException`` as throttling).
    """
    meter = Meter()
    started = time.perf_counter()
    config = botocore.config.Config(retries={"mode": retry_mode}) if retry_mode else None
    ecr = meter.attach(boto3.client("ecr", endpoint_url=endpoint_url, config=config))
    result = LegacyResult(0.0, meter, retries=dict(ecr.meta.config.retries or {}))
    for repo in watch_list:
        try:
            image_ids = ecr.list_images(repositoryName=repo)["imageIds"]
        except botocore.exceptions.ClientError:
            continue
        for image_id in image_ids:
            result.images += 1
            try:
                ecr.start_image_scan(repositoryName=repo, imageId=image_id)
            except Exception:  # noqa: BLE001 - the legacy Lambda swallows every error here
                pass
            try:
                resp = ecr.describe_image_scan_findings(repositoryName=repo, imageId=image_id)
            except botocore.exceptions.ClientError:
                continue
            counts = (resp.get("imageScanFindings") or {}).get("findingSeverityCounts") or {}
            key = f"{repo}@{image_id.get('imageDigest')}"
            if stored.get(key) != counts:
                result.changed += 1
                stored[key] = counts
    ecr.close()
    result.seconds = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------
# our cycle
# ------------------------------------------------------------------------------------------

@dataclass
class OursResult:
    seconds: float
    meter: Meter
    report: CycleReport
    counters: dict[str, int]
    """Our registry's and scanner's own ``calls`` counters, merged (a cross-check of ``meter``)."""
    cpu: Cpu = field(default_factory=Cpu)


class AheadClock:
    """The real UTC clock, ``hours`` ahead: polls still wait real time, decisions see the future."""

    def __init__(self, hours: float = 0.0) -> None:
        self.offset = timedelta(hours=hours)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


def bench_config(endpoint_url: str, state: Path, concurrency: int | None) -> Config:
    return parse_config(bench_config_text(endpoint_url, state, concurrency), file="<bench>")


def bench_config_text(endpoint_url: str, state: Path, concurrency: int | None) -> str:
    extra = f"\n    max_concurrency: {concurrency}" if concurrency else ""
    return f"""
state:
  path: {state}
registries:
  - name: bench
    type: ecr
    region: us-east-1
    endpoint_url: {endpoint_url}{extra}
"""


def our_cycle(cfg: Config, clock: Callable[[], datetime], profile: cProfile.Profile | None = None) -> OursResult:
    """One ``vulnwatch run``: the pipeline built as :func:`vulnwatch.build.build_pipeline` does
    (registry and scanner as their ``from_config`` make them), except that the scanner gets ``clock``."""
    meter = Meter()
    started = time.perf_counter()
    if profile:
        profile.enable()
    register_config_secrets(cfg)
    store = open_store(cfg)
    reg = cfg.registries[0]
    endpoint = str(reg.endpoint_url).rstrip("/") if reg.endpoint_url else None
    registry = ECRRegistry(reg.name, region=reg.region, registry_id=reg.registry_id,
                           endpoint_url=endpoint, max_concurrency=reg.max_concurrency)
    scanner = ECRScanner(region=reg.region, registry_id=reg.registry_id, endpoint_url=endpoint,
                         mode=reg.scan.mode, scan_interval=reg.scan.interval,
                         wait_timeout=reg.scan.wait_timeout, max_concurrency=reg.max_concurrency,
                         clock=clock, listing=registry)
    for client in {id(c): c for c in (registry.client, scanner.client, scanner.start_client)}.values():
        meter.attach(client)
    d = cfg.delivery
    pipeline = Pipeline(store, [Watch(registry=registry, scanner=scanner, selectors=selectors_of(reg))],
                        build_sinks(cfg), max_attempts=d.max_attempts,
                        backoff_base=d.backoff_base.total_seconds(), backoff_max=d.backoff_max.total_seconds())
    try:
        report = pipeline.run_cycle()
    finally:
        pipeline.close()
        store.close()
        if profile:
            profile.disable()
    seconds = time.perf_counter() - started
    counters = collections.Counter(registry.calls.snapshot()) + collections.Counter(scanner.calls.snapshot())
    return OursResult(seconds, meter, report, dict(counters))


@dataclass
class ProcessResult:
    """One ``vulnwatch run`` as its own process, timed from start to exit."""

    seconds: float
    returncode: int
    output: str
    own: float                        # CPU seconds of the child process (user + system)
    cpu: Cpu = field(default_factory=Cpu)


def process_cycle(cfg_text: str, folder: Path) -> ProcessResult:
    """``vulnwatch --config FILE run --no-deliver`` in a new interpreter, as cron starts it: the
    console entry point ``vulnwatch.cli.main:main``, this interpreter, this ``PYTHONPATH``."""
    import subprocess

    path = folder / "vulnwatch-bench.yaml"
    path.write_text(cfg_text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    # bytecode compiled, as an installed package has it (pip compiles on install); without this
    # a PYTHONDONTWRITEBYTECODE environment makes every start compile vulnwatch from source
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "vulnwatch")],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vulnwatch.cli.main", "--config", str(path), "run",
                           "--no-deliver", "--format", "json"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ProcessResult(seconds, proc.returncode, proc.stdout[-2000:] + proc.stderr[-2000:], own)


# ------------------------------------------------------------------------------------------
# moto's own speed, for context
# ------------------------------------------------------------------------------------------

def moto_floor(server: MotoServer, repo: str, n: int = 300) -> tuple[float, float]:
    """Milliseconds per ``DescribeImageScanFindings`` call made serially, and with 4 threads."""
    ecr = boto3.client("ecr", endpoint_url=server.url,
                       config=botocore.config.Config(max_pool_connections=8))
    image_id = ecr.list_images(repositoryName=repo)["imageIds"][0]
    call = lambda _=None: ecr.describe_image_scan_findings(repositoryName=repo, imageId=image_id)  # noqa: E731
    call()
    t = time.perf_counter()
    for _ in range(n):
        call()
    serial = (time.perf_counter() - t) / n * 1000
    t = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(n)))
    threaded = (time.perf_counter() - t) / n * 1000
    ecr.close()
    return serial, threaded


def fill_summaries(server: MotoServer, proxy: ECRProxy, repos: dict[str, list[str]]) -> int:
    """Give the proxy, per digest, the ``imageScanFindingsSummary`` real ECR would report in
    ``DescribeImages`` (taken from moto's findings, outside any measured cycle)."""
    ecr = boto3.client("ecr", endpoint_url=server.url)
    filled = 0
    for repo in repos:
        for image_id in ecr.list_images(repositoryName=repo)["imageIds"]:
            digest = image_id["imageDigest"]
            try:
                resp = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageDigest": digest})
            except botocore.exceptions.ClientError:
                continue  # never scanned: real ECR reports no summary either
            body = resp.get("imageScanFindings") or {}
            proxy.summaries[digest] = {
                "imageScanStatus": resp.get("imageScanStatus") or {"status": "COMPLETE"},
                "imageScanFindingsSummary": {
                    "imageScanCompletedAt": body["imageScanCompletedAt"].timestamp(),
                    "vulnerabilitySourceUpdatedAt": body["vulnerabilitySourceUpdatedAt"].timestamp(),
                    "findingSeverityCounts": body.get("findingSeverityCounts") or {},
                },
            }
            filled += 1
    ecr.close()
    return filled


# ------------------------------------------------------------------------------------------
# printing
# ------------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def calls_cell(meter: Meter, op: str | None = None) -> str:
    calls = meter.total_calls if op is None else meter.calls.get(op, 0)
    attempts = meter.total_attempts if op is None else meter.attempts.get(op, 0)
    return f"{calls}" if calls == attempts else f"{calls} ({attempts})"


def print_calls(columns: list[tuple[str, Meter]]) -> None:
    ops = sorted({op for _, m in columns for op in (*m.calls, *m.attempts)})
    errors = sorted({key for _, m in columns for key in m.errors})
    width = max(len(label) for label in [*ops, "operation", *(f"  {op}: {code.removesuffix('Exception')}" for op, code in errors)]) + 2
    print("  API calls per cycle by operation: calls (HTTP attempts, when retries made them differ)")
    print("  " + "operation".ljust(width) + "".join(name.rjust(17) for name, _ in columns))
    for op in ops:
        print("  " + op.ljust(width) + "".join(calls_cell(m, op).rjust(17) for _, m in columns))
    print("  " + "total".ljust(width) + "".join(calls_cell(m).rjust(17) for _, m in columns))
    if errors:
        print("  errors answered (final, after retries; ...Exception):")
        for op, code in errors:
            print("  " + f"  {op}: {code.removesuffix('Exception')}".ljust(width) + "".join(str(m.errors.get((op, code), 0)).rjust(17) for _, m in columns))


def describe_ours(r: OursResult) -> str:
    rep = r.report
    return (f"{rep.images} images, {rep.scanned} scanned, {len(rep.events)} events, "
            f"{len(rep.failures)} failures")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000, help="images in total (default 1000)")
    ap.add_argument("--repos", type=int, default=50, help="repositories (default 50)")
    ap.add_argument("--hours", type=int, default=24,
                    help="hourly cycles of ours for the start-scan count (default 24: one day)")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="registries[].max_concurrency for ours (default: the config default)")
    ap.add_argument("--standard-retries", action="store_true",
                    help="add a legacy steady cycle with botocore's standard retry mode (~3 min more)")
    ap.add_argument("--no-proxy", action="store_true",
                    help="skip the extra steady cycles through the real-ECR-like proxy")
    ap.add_argument("--profile", action="store_true",
                    help="also profile one more steady cycle of ours (main thread) and print the top")
    args = ap.parse_args(argv)
    if args.images < 1 or args.repos < 1 or args.repos > args.images or args.hours < 2:
        ap.error("need --images >= --repos >= 1 and --hours >= 2")

    repos = layout(args.images, args.repos)
    watch_list = list(repos)
    total_started = time.perf_counter()
    server = MotoServer()
    tmp = tempfile.TemporaryDirectory(prefix="vulnwatch-bench-")
    proxy: ECRProxy | None = None

    def legacy(endpoint: str, stored: dict, retry_mode: str | None = None) -> LegacyResult:
        with cpu_of(server) as cpu:
            result = legacy_cycle(endpoint, watch_list, stored, retry_mode)
        result.cpu = cpu
        return result

    def ours(cfg: Config, hours: float, profile: cProfile.Profile | None = None) -> OursResult:
        with cpu_of(server) as cpu:
            result = our_cycle(cfg, AheadClock(hours), profile)
        result.cpu = cpu
        return result

    try:
        state = Path(tmp.name) / "state.db"
        cfg = bench_config(server.url, state, args.concurrency)
        day = date.today()  # moto's "same day" is the server's local calendar day

        # -- legacy: cold, steady (+1 h), steady with standard retries -----------------------
        t = time.perf_counter()
        populate(server, repos)
        setup_seconds = time.perf_counter() - t
        stored: dict[str, dict[str, int]] = {}
        legacy_cold = legacy(server.url, stored)
        legacy_steady = legacy(server.url, stored)
        legacy_standard = legacy(server.url, stored, "standard") if args.standard_retries else None
        serial_ms, threaded_ms = moto_floor(server, watch_list[0])

        # -- ours: cold, then hourly -----------------------------------------------------------
        populate(server, repos)
        hourly = [ours(cfg, 0)]
        # the steady cycle as cron runs it: a whole `vulnwatch run` process, start to exit
        # (real clock: minutes after the cold cycle, well within scan.interval)
        with cpu_of(server) as cpu:
            ours_process = process_cycle(bench_config_text(server.url, state, args.concurrency), Path(tmp.name))
        ours_process.cpu = cpu
        hourly += [ours(cfg, hour) for hour in range(1, args.hours)]
        ours_cold, ours_steady = hourly[0], hourly[1]

        # -- both through the real-ECR-like proxy (scan summaries in DescribeImages) -----------
        legacy_proxy = ours_proxy = None
        if not args.no_proxy:
            proxy = ECRProxy(server.url, page_size=100)
            # Its handler writes headers and body separately: without TCP_NODELAY every serial
            # call waits ~40 ms for a delayed ACK, which would penalise the serial legacy loop.
            proxy.server.RequestHandlerClass.disable_nagle_algorithm = True
            fill_summaries(server, proxy, repos)
            legacy_proxy = legacy(proxy.url, stored)
            ours_proxy = ours(bench_config(proxy.url, state, args.concurrency), args.hours - 0.5)

        profile_text = ""
        if args.profile:
            prof = cProfile.Profile()
            ours(cfg, args.hours - 0.25, prof)
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
            profile_text = out.getvalue()
        crossed_midnight = date.today() != day
    finally:
        if proxy is not None:
            proxy.close()
        server.stop()
        tmp.cleanup()
    total_seconds = time.perf_counter() - total_started

    # -- report ----------------------------------------------------------------------------
    n = args.images
    print(f"ECR cycle benchmark, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {n} images in "
          f"{args.repos} repositories on moto_server {moto.__version__} (127.0.0.1)")
    print(f"  python {platform.python_version()}, boto3 {boto3.__version__}, botocore {botocore.__version__}, "
          f"{os.cpu_count()} CPUs; ours: max_concurrency {cfg.registries[0].max_concurrency}, "
          f"scan.interval 24h, SQLite state")
    print(f"  legacy client retries (boto3 default config): {legacy_cold.retries}")
    print(f"  moto floor: {serial_ms:.1f} ms per findings call serially, {threaded_ms:.1f} ms with 4 threads; "
          f"pushing the images took {setup_seconds:.1f} s")
    if crossed_midnight:
        print("  WARNING: the local date changed during the run; moto's once-a-day scan limit was reset, "
              "steady-state numbers are not comparable. Run again.")
    print()
    print("  outcome check:")
    print(f"    legacy cold:   {legacy_cold.images} images, {legacy_cold.changed} with changed counts")
    print(f"    legacy steady: {legacy_steady.images} images, {legacy_steady.changed} with changed counts")
    print(f"    ours cold:     {describe_ours(ours_cold)}")
    print(f"    ours steady:   {describe_ours(ours_steady)}")
    if ours_proxy is not None:
        print(f"    ours steady via proxy: {describe_ours(ours_proxy)}")
    for label, r in (("ours cold", ours_cold), ("ours steady", ours_steady)):
        if r.counters != dict(r.meter.calls):
            print(f"    note: {label}: our calls counters {r.counters} differ from the hooks {dict(r.meter.calls)}")
    print()

    ours_process.cpu.own = ours_process.own        # the child's CPU, not this process's
    # (label, legacy, ours, target ratio or None, where the target comes from)
    rows: list[tuple[str, LegacyResult, Any, float | None, str]] = [
        ("cold cycle", legacy_cold, ours_cold, 1.5, "issue 12"),
        ("steady cycle (+1 h), in process", legacy_steady, ours_steady, 5, "earlier target"),
        ("steady, `vulnwatch run` process", legacy_steady, ours_process, 10, "issue 12")]
    if legacy_standard is not None:
        rows.append(("steady, legacy w/ standard retries", legacy_standard, ours_steady, 5, "earlier target"))
    if legacy_proxy is not None and ours_proxy is not None:
        rows.append(("steady, real-ECR-like proxy", legacy_proxy, ours_proxy, 5, "earlier target"))
    print("  wall seconds, and CPU seconds of moto_server / of our side, per cycle")
    print(f"  {'':36}{'legacy':>8}{'cpu m/own':>12}{'ours':>8}{'cpu m/own':>12}{'legacy/ours':>13}   target")
    verdicts = []
    for label, lr, our, target, source in rows:
        r = ratio(lr.seconds, our.seconds)
        print(f"  {label:36}{lr.seconds:>8.2f}{lr.cpu.moto:>6.1f}/{lr.cpu.own:<5.1f}{our.seconds:>8.2f}"
              f"{our.cpu.moto:>6.1f}/{our.cpu.own:<5.1f}{r:>12.1f}x   >= {target:g}x {verdict(r >= target)}"
              f" ({source})")
        verdicts.append(f"{label} >= {target:g}x faster than the legacy loop ({source}): {r:.1f}x "
                        f"{verdict(r >= target)}")
    if ours_process.returncode != 0:
        print(f"  WARNING: the `vulnwatch run` process exited {ours_process.returncode}:\n{ours_process.output}")
    print()
    columns = [("legacy cold", legacy_cold.meter), ("legacy steady", legacy_steady.meter)]
    if legacy_standard is not None:
        columns.append(("legacy std-retry", legacy_standard.meter))
    columns += [("ours cold", ours_cold.meter), ("ours steady", ours_steady.meter)]
    if ours_proxy is not None:
        columns.append(("ours via proxy", ours_proxy.meter))
    print_calls(columns)
    print()

    steady_times = [r.seconds for r in hourly[1:]]
    print(f"  ours, {args.hours} hourly cycles (clock k hours ahead):")
    print(f"    {'hour':>4}{'seconds':>9}{'cpu m/own':>12}{'calls':>7}{START:>16}{FINDINGS:>27}"
          f"{'events':>8}{'failures':>10}")
    for hour, r in enumerate(hourly):
        print(f"    {hour:>4}{r.seconds:>9.2f}{r.cpu.moto:>6.1f}/{r.cpu.own:<5.1f}{r.meter.total_calls:>7}"
              f"{r.meter.calls.get(START, 0):>16}{r.meter.calls.get(FINDINGS, 0):>27}"
              f"{len(r.report.events):>8}{len(r.report.failures):>10}")
    print(f"    steady cycles (hours 1-{args.hours - 1}): median {statistics.median(steady_times):.2f} s, "
          f"min {min(steady_times):.2f} s, max {max(steady_times):.2f} s")
    print()

    ours_day = sum(r.meter.calls.get(START, 0) for r in hourly)
    note = (f" (measured over {args.hours} hourly runs; the later ones start none either: "
            f"the last scans are < 24 h old)" if args.hours < 24 else " (measured over 24 hourly runs)")
    legacy_day = n * 24
    limited = legacy_steady.meter.errors.get((START, "LimitExceededException"), 0)
    day_ok = ours_day * 24 <= legacy_day
    print(f"  {START} calls per day of 24 hourly runs:")
    print(f"    legacy: {n} x 24 = {legacy_day} by construction (one steady cycle measured: "
          f"{legacy_steady.meter.calls.get(START, 0)} calls, {legacy_steady.meter.attempts.get(START, 0)} "
          f"attempts, {limited} LimitExceededException)")
    print(f"    ours:   {ours_day}{note}")
    print(f"    ours/legacy = {ours_day}/{legacy_day} = {ratio(ours_day, legacy_day):.4f}, target <= 1/24 = "
          f"{1 / 24:.4f}: {verdict(day_ok)}")
    print()
    verdicts.append(f"StartImageScan per day <= 1/24: {verdict(day_ok)}")
    print("  targets:")
    for v in verdicts:
        print(f"    {v}")
    print(f"  total benchmark time {total_seconds:.0f} s")
    if profile_text:
        print()
        print("  profile of one more steady cycle of ours (main thread only, cumulative):")
        print(profile_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
