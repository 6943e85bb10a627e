"""A misbehaving registry of the tests' own beside a good one (the real docker-registry): 500s,
429 with Retry-After, hangs, headers dripped a byte at a time, a manifest and blobs dripped at 16 bytes/s, a stalled blob, wrong
digests, a truncated blob, malformed and huge manifests, a layer that is not one. Each bad
image fails with an error that says what happened; the good images are recorded AND notified;
the whole cycle ends within its deadline (``limits.cycle_timeout``)."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from typer.testing import CliRunner

from tests.support.bad_registry import BEHAVIOURS, BadRegistry
from tests.support.registry import start_registry
from tests.support.servers import start_receiver
from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR
from vulnwatch.registries.archive import ArchiveRegistry

CYCLE_TIMEOUT = 30

EXPECTED = {
    # repository -> words its failure must say ("a|b": either)
    "bad/err500": ["HTTP 500"],
    "bad/ratelimited": ["HTTP 429"],
    "bad/hang": ["timed out"],
    "bad/headerdrip": ["timed out", "limits.request_timeout"],     # a byte of headers every 0.3 s
    "bad/slowmanifest": ["limits.request_timeout|limits.read_timeout"],   # 16 B/s: whichever first
    "bad/drip": ["limits.blob_timeout|limits.read_timeout"],      # 16 B/s each second: whichever first
    "bad/stall": ["limits.read_timeout|limits.blob_timeout"],
    "bad/wrongdigest": ["does not match its digest"],
    "bad/truncated": ["broke off"],
    "bad/malformed": ["not a JSON object"],
    "bad/huge": ["limits.max_manifest_bytes", "refused"],
    "bad/hugechunked": ["limits.max_manifest_bytes", "refused"],
    "bad/badlayer": ["damaged tar stream"],
}


@pytest.fixture(scope="module")
def image():
    reg = ArchiveRegistry("src", IMAGE_ARCHIVE)
    repo = next(iter(reg.repositories()))
    img = next(iter(reg.images(repo)))
    m = reg.manifest(repo, img.digest)
    blobs = {}
    for d in (m.config, *m.layers):
        with reg.blob(repo, d.digest) as f:
            blobs[d.digest] = f.read()
    return m, blobs


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("good-registry"))
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "good/app", "1.0")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def osv_db(tmp_path_factory):
    """The example OSV data imported once (a run would import it before its first cycle, and
    that import is not what these tests time)."""
    from vulnwatch.build import open_vulndb
    from vulnwatch.config import parse_config

    path = tmp_path_factory.mktemp("osv") / "osv.db"
    cfg = parse_config(f"vulndb: {{path: {path}, imports: [{OSV_DIR / 'Debian'}, {OSV_DIR / 'PyPI'}]}}\n")
    open_vulndb(cfg).close()
    return path


def _osv(tmp_path, osv_db) -> str:
    copy = tmp_path / "osv.db"
    shutil.copyfile(osv_db, copy)
    return f"{{path: {copy}, imports: [{OSV_DIR / 'Debian'}, {OSV_DIR / 'PyPI'}]}}"


@pytest.fixture
def bad(image):
    m, blobs = image
    server = BadRegistry(m.raw, m.media_type, blobs)
    yield server
    server.close()


def test_a_misbehaving_registry_costs_only_its_own_images(tmp_path, monkeypatch, good, bad, osv_db):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rec = start_receiver()
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {_osv(tmp_path, osv_db)}
layer_cache: {{enabled: false}}
limits:
  connect_timeout: 1s
  read_timeout: 1s
  request_timeout: 2s
  blob_timeout: 2s
  image_timeout: 4s
  cycle_timeout: {CYCLE_TIMEOUT}s
  delivery_timeout: 10s
registries:
  - {{name: bad, type: oci, url: '{bad.url}', insecure: true, max_concurrency: 4}}
  - {{name: good, type: oci, url: '{good.url}', insecure: true}}
notifications:
  - {{name: hook, type: webhook, url: '{rec.url}/hook'}}
""")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["--config", str(cfg), "run", "--format", "json"], catch_exceptions=False)
    elapsed = time.monotonic() - started
    try:
        assert elapsed < CYCLE_TIMEOUT, f"the cycle took {elapsed:.1f}s, past its deadline: {result.output}"
        assert result.exit_code == 1, result.output
        out = json.loads(result.stdout[result.stdout.index("{"):])
        failures = {f["target"]: f["error"] for f in out["failures"]}

        # the good registry's image and the control image of the bad one: recorded and notified
        subjects = {e["registry"] + "/" + e["repository"] for e in out["events"]}
        assert {"good/good/app", "bad/bad/fine"} <= subjects, (subjects, failures)
        sent = [b for b in rec.bodies("/hook")]
        sent_repos = {b["data"]["repository"] for b in sent}
        assert {"good/app", "bad/fine"} <= sent_repos, sent_repos
        assert out["delivery"]["delivered"] >= 2

        # every misbehaving repository: one clear failure naming what happened
        for repo, words in EXPECTED.items():
            found = [err for target, err in failures.items() if f"/{repo}" in f"/{target}" or repo in target]
            assert found, f"{repo}: no failure reported; failures: {failures}"
            for w in words:
                assert any(any(alt in err for alt in w.split("|")) for err in found), f"{repo}: {w!r} not in {found}"
        assert not any("good/app" in t for t in failures), failures
        assert len(BEHAVIOURS) == len(EXPECTED) + 1
    finally:
        rec.close()


def test_the_cycle_deadline_cuts_a_slow_registry_and_still_delivers(tmp_path, monkeypatch, good, image, osv_db):
    """Eight images that drip at 16 bytes/s, per-image and per-blob limits longer than the whole
    cycle: scanning stops ``delivery_timeout`` before ``cycle_timeout`` (the images in flight and
    those not reached fail, naming the cycle's limit), and the good registry's image, recorded
    long before, is delivered within the cycle."""
    m, blobs = image
    slow = BadRegistry(m.raw, m.media_type, blobs, repositories=tuple(f"r{i}/drip" for i in range(8)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rec = start_receiver()
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {_osv(tmp_path, osv_db)}
layer_cache: {{enabled: false}}
limits: {{read_timeout: 5s, blob_timeout: 1m, image_timeout: 1m, cycle_timeout: 8s, delivery_timeout: 3s}}
registries:
  - {{name: slow, type: oci, url: '{slow.url}', insecure: true, max_concurrency: 4}}
  - {{name: good, type: oci, url: '{good.url}', insecure: true}}
notifications:
  - {{name: hook, type: webhook, url: '{rec.url}/hook'}}
""")
    started = time.monotonic()
    try:
        result = CliRunner().invoke(app, ["--config", str(cfg), "run", "--format", "json"], catch_exceptions=False)
        elapsed = time.monotonic() - started
        # the cycle's own 8s, plus loading the configuration and building the pipeline around it
        assert elapsed < 8 + 3, f"the run took {elapsed:.1f}s, past its 8s cycle deadline: {result.output}"
        assert result.exit_code == 1, result.output
        out = json.loads(result.stdout[result.stdout.index("{"):])
        failures = {f["target"]: f for f in out["failures"]}
        slow_failures = [f for t, f in failures.items() if t.startswith("slow/")]
        assert len(slow_failures) == 8, failures
        assert all("limits.cycle_timeout" in f["error"] for f in slow_failures), slow_failures
        assert [e["repository"] for e in out["events"]] == ["good/app"]
        assert [b["data"]["repository"] for b in rec.bodies("/hook")] == ["good/app"]
    finally:
        rec.close()
        slow.close()
