"""One cycle at a time per store, through the pipeline and the CLI: a second run exits 75 or
waits; a holder whose lease was taken over cannot write; a stop abandons the image in flight."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR
from vulnwatch.model import Finding, Image, ScanResult, Severity
from vulnwatch.pipeline import CycleLease, Pipeline, Watch
from vulnwatch.registries.interface import Registry
from vulnwatch.scanners.interface import Scanner
from vulnwatch.store.interface import LeaseHeld
from vulnwatch.store.sql import SQLStore

UTC = timezone.utc
TTL = timedelta(seconds=30)


class Listed(Registry):
    """A registry that lists fixed images (their content is the scanner's business)."""

    name = "r"

    def __init__(self, images):
        self._images = list(images)

    def repositories(self):
        return iter(sorted({i.repository for i in self._images}))

    def images(self, repository):
        return iter([i for i in self._images if i.repository == repository])


class Scripted(Scanner):
    """Returns one finding per image; calls ``before(image)`` first (the test's hook)."""

    name = "scripted"

    def __init__(self, before=lambda image: None):
        self.before = before
        self.max_concurrency = 1

    def scan(self, image, previous=None):
        self.before(image)
        return ScanResult(image, self.name, datetime.now(UTC),
                          findings=(Finding("CVE-2024-1", "zlib", "1", Severity.HIGH, "Debian:12"),))


def images(n=3):
    return [Image("r", f"app{i}", "sha256:" + f"{i}" * 64, ("1.0",)) for i in range(n)]


@pytest.mark.parametrize("batch", [1, 200])
def test_a_holder_whose_lease_was_taken_over_writes_nothing_more(store_url, batch):
    store, other = SQLStore(store_url), SQLStore(store_url)
    imgs = images(3)
    holder = "host-a:1:first"

    def before(image):
        if image == imgs[1]:     # while image 1 is scanned, another process takes the store over
            other.acquire_lease("cycle", "host-b:2:second", TTL, take_over=holder)

    try:
        pipeline = Pipeline(store, [Watch(Listed(imgs), Scripted(before))], record_batch=batch)
        report = pipeline.run_cycle(lease=CycleLease(holder=holder, ttl=TTL))
        assert report.interrupted and "lease lost" in report.interrupted and "host-b:2:second" in report.interrupted
        if batch == 1:      # written before the takeover: recorded
            assert store.snapshot(*imgs[0].key) is not None
        else:               # its batch was still to be written: refused whole (scanned again next cycle)
            assert store.snapshot(*imgs[0].key) is None
        assert store.snapshot(*imgs[1].key) is None                # after it: refused, nothing written
        assert store.snapshot(*imgs[2].key) is None
        assert store.lease("cycle").holder == "host-b:2:second"    # and its release did not free it
    finally:
        store.close()
        other.close()


def test_a_worker_that_loses_one_claim_abandons_that_image_only(store_url):
    from vulnwatch.pipeline import claim_name

    store, other = SQLStore(store_url), SQLStore(store_url)
    imgs = images(3)
    holder = "w1:1:x:s"

    def before(image):
        if image == imgs[1]:    # another worker decides this one's claim on image 1 is stale
            other.acquire_lease(claim_name(image), "w2:2:y:s", TTL, take_over=holder)

    try:
        pipeline = Pipeline(store, [Watch(Listed(imgs), Scripted(before))])
        report = pipeline.run_cycle(lease=CycleLease(holder=holder, ttl=TTL, worker=True,
                                                     round_start=datetime.now(UTC)))
        assert report.interrupted is None and report.scanned == 2
        assert [store.snapshot(*i.key) is not None for i in imgs] == [True, False, True]
        assert store.lease(claim_name(imgs[1])).holder == "w2:2:y:s"       # still the other's
        assert store.lease(claim_name(imgs[0])).expires_at <= datetime.now(UTC)   # done, released
    finally:
        store.close()
        other.close()


def test_a_stop_abandons_the_image_in_flight_and_releases_the_lease(store):
    imgs = images(4)
    stop = threading.Event()

    def before(image):
        if image == imgs[1]:
            stop.set()           # SIGTERM arrives while image 1 is being scanned

    pipeline = Pipeline(store, [Watch(Listed(imgs), Scripted(before))])
    report = pipeline.run_cycle(lease=CycleLease(ttl=TTL), stop=stop)
    assert report.interrupted == "stopped" and report.delivery is None
    assert [store.snapshot(*i.key) is not None for i in imgs] == [True, False, False, False]
    lease = store.lease("cycle")
    assert lease.expires_at <= datetime.now(UTC)                  # free for the next one at once
    assert pipeline.run_cycle(lease=CycleLease(ttl=TTL)).scanned == 4


def test_the_lease_is_renewed_while_a_long_cycle_runs(store):
    imgs = images(3)
    pipeline = Pipeline(store, [Watch(Listed(imgs), Scripted(lambda image: time.sleep(0.8)))])
    report = pipeline.run_cycle(lease=CycleLease(ttl=timedelta(seconds=1)))     # 2.4 s > ttl
    assert report.interrupted is None and report.scanned == 3


def test_a_dead_holder_on_this_machine_is_taken_over_at_once(store):
    import subprocess

    from vulnwatch.pipeline import new_holder

    dead = subprocess.Popen(["true"])
    dead.wait()
    host, _pid, nonce, space = new_holder().split(":")
    store.acquire_lease("cycle", f"{host}:{dead.pid}:{nonce}:{space}", timedelta(hours=1))
    pipeline = Pipeline(store, [Watch(Listed(images(1)), Scripted())])
    assert pipeline.run_cycle(lease=CycleLease(ttl=TTL)).scanned == 1
    for other in (f"elsewhere:{dead.pid}:{nonce}:{space}",             # another machine
                  f"{host}:{dead.pid}:{nonce}:0000beef"):              # another container: pids differ
        store.acquire_lease("cycle", other, timedelta(hours=1))
        with pytest.raises(LeaseHeld):
            pipeline.run_cycle(lease=CycleLease(ttl=TTL))
        store.release_lease(store.lease("cycle"))


# -- through the CLI -----------------------------------------------------------------------------

@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "vulnwatch.yaml"
    path.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {{path: {tmp_path / 'osv.db'}, imports: [{OSV_DIR}]}}
registries:
  - {{name: local, type: archive, path: {IMAGE_ARCHIVE}}}
service: {{lease_ttl: 30s}}
""")
    return path


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def test_a_second_run_exits_75_naming_the_holder_or_waits_for_it(cfg, tmp_path):
    store = SQLStore.from_path(tmp_path / "state.db")
    try:
        held = store.acquire_lease("cycle", "ci-runner-7:4242:abcd", timedelta(minutes=5))
        r = cli(cfg, "run")
        assert r.exit_code == 75, r.output
        assert "another vulnwatch cycle is running on this store (ci-runner-7:4242:abcd" in r.stderr
        assert "--wait" in r.stderr and store.images() == []          # nothing done
        started = time.monotonic()
        r = cli(cfg, "run", "--wait", "--wait-timeout", "1s")
        assert r.exit_code == 75 and time.monotonic() - started >= 1.0
        threading.Timer(1.0, store.release_lease, args=(held,)).start()
        started = time.monotonic()
        r = cli(cfg, "run", "--wait")
        assert r.exit_code == 0, r.output
        assert time.monotonic() - started >= 1.0 and "1 images selected, 1 scanned, 1 change events" in r.stdout
        assert store.lease("cycle").expires_at <= datetime.now(UTC)     # released after the run
        assert cli(cfg, "run", "--wait-timeout", "x").exit_code == 0    # ignored without --wait
        r = cli(cfg, "run", "--wait", "--wait-timeout", "soon")
        assert r.exit_code == 2 and "bad duration 'soon'" in r.stderr
    finally:
        store.close()
