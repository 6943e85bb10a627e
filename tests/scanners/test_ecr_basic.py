"""ECRScanner in basic mode against moto_server (and the proxy for what moto cannot do)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from vulnwatch.model import Finding, Image, ScanResult, Severity
from vulnwatch.scanners.ecr import LIMIT_NOTE, ECRScanner
from vulnwatch.scanners.interface import ScanError

from tests.support.ecr import FakeClock, basic_result, ts

NOW = datetime.now(timezone.utc).replace(microsecond=0)

CVSS3 = {
    "name": "CVE-2023-0286",
    "description": "X.400 address type confusion in X.509 GeneralName\nmore text",
    "uri": "https://security-tracker.debian.org/tracker/CVE-2023-0286",
    "severity": "HIGH",
    "attributes": [
        {"key": "package_version", "value": "1.1.1n-0+deb11u3"},
        {"key": "package_name", "value": "openssl"},
        {"key": "CVSS3_VECTOR", "value": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H"},
        {"key": "CVSS3_SCORE", "value": "7.4"},
        {"key": "CVSS2_VECTOR", "value": "AV:N/AC:M/Au:N/C:P/I:N/A:P"},
        {"key": "CVSS2_SCORE", "value": "5.8"},
    ],
}
CVSS2_ONLY = {
    "name": "CVE-2011-3374",
    "uri": "https://security-tracker.debian.org/tracker/CVE-2011-3374",
    "severity": "INFORMATIONAL",
    "attributes": [
        {"key": "package_version", "value": "2.2.4"},
        {"key": "package_name", "value": "apt"},
        {"key": "CVSS2_VECTOR", "value": "AV:N/AC:M/Au:N/C:N/I:P/A:N"},
        {"key": "CVSS2_SCORE", "value": "4.3"},
    ],
}


def image(repo: str, digest: str, *tags: str) -> Image:
    return Image(registry="prod", repository=repo, digest=digest, tags=tuple(tags))


def scanner(url: str, **kw) -> ECRScanner:
    kw.setdefault("poll_initial", 0.01)
    kw.setdefault("poll_max", 0.05)
    return ECRScanner(region="us-east-1", endpoint_url=url, **kw)


def previous_of(img: Image, scanned_at: datetime, *findings: Finding) -> ScanResult:
    return ScanResult(image=img, scanner="ecr-basic", scanned_at=scanned_at, findings=tuple(findings))


OLD_FINDING = Finding("CVE-2000-0001", "zlib", "1.0", severity=Severity.LOW, scanner="ecr-basic")


def test_never_scanned_image_is_scanned_and_findings_mapped(moto, pusher):
    digest = pusher.push("app", "latest")
    moto.inject_findings([basic_result("app", digest, [CVSS3, CVSS2_ONLY], completed=NOW)])
    s = scanner(moto.url)
    result = s.scan(image("app", digest, "latest"))

    assert s.name == "ecr-basic" and result.scanner == "ecr-basic"
    assert s.calls["StartImageScan"] == 1
    assert result.scanned_at == NOW
    assert result.vulnerability_source_updated_at == NOW - timedelta(hours=1)
    by_id = {f.vulnerability_id: f for f in result.findings}
    assert set(by_id) == {"CVE-2023-0286", "CVE-2011-3374"}
    f = by_id["CVE-2023-0286"]
    assert (f.package_name, f.package_version) == ("openssl", "1.1.1n-0+deb11u3")
    assert f.severity is Severity.HIGH
    assert f.cvss_score == 7.4 and f.cvss_vector == "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H"
    assert f.title == "X.400 address type confusion in X.509 GeneralName"
    assert f.links == ("https://security-tracker.debian.org/tracker/CVE-2023-0286",)
    assert f.scanner == "ecr-basic"
    g = by_id["CVE-2011-3374"]
    assert g.severity is Severity.NEGLIGIBLE
    assert g.cvss_score == 4.3 and g.cvss_vector == "AV:N/AC:M/Au:N/C:N/I:P/A:N"
    assert result.notes == ()


def test_recent_previous_scan_is_not_restarted(moto, pusher, ecr):
    digest = pusher.push("app", "latest")
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})  # scanned today
    moto.inject_findings([basic_result("app", digest, [CVSS3], completed=NOW)])
    img = image("app", digest, "latest")
    s = scanner(moto.url)
    prev = previous_of(img, NOW - timedelta(hours=1), OLD_FINDING)
    result = s.scan(img, prev)
    assert s.calls["StartImageScan"] == 0
    # No scan summary (moto) and the stored snapshot is within the interval: basic findings belong
    # to one scan and do not change until the next, so nothing is read again.
    assert s.calls["DescribeImageScanFindings"] == 0
    assert result.findings == (OLD_FINDING,) and result.scanned_at == prev.scanned_at


def test_recent_scan_reported_newer_by_the_summary_is_read(moto, pusher, ecr, proxy):
    digest = pusher.push("app", "latest")
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})
    moto.inject_findings([basic_result("app", digest, [CVSS3], completed=NOW)])
    proxy.summaries[digest] = {"imageScanStatus": {"status": "COMPLETE"},
                               "imageScanFindingsSummary": {"imageScanCompletedAt": ts(NOW),
                                                            "findingSeverityCounts": {"HIGH": 1}}}
    img = image("app", digest, "latest")
    s = scanner(proxy.url)
    result = s.scan(img, previous_of(img, NOW - timedelta(hours=1), OLD_FINDING))
    assert s.calls["StartImageScan"] == 0
    assert [f.vulnerability_id for f in result.findings] == ["CVE-2023-0286"]


def test_old_previous_scan_is_restarted(moto, pusher):
    digest = pusher.push("app", "latest")
    img = image("app", digest, "latest")
    s = scanner(moto.url)
    result = s.scan(img, previous_of(img, NOW - timedelta(days=2), OLD_FINDING))
    assert s.calls["StartImageScan"] == 1
    assert result.scanned_at > NOW - timedelta(minutes=5)
    # moto's default finding for a fresh scan, not the stored one
    assert [f.vulnerability_id for f in result.findings] == ["CVE-9999-9999"]


def test_scan_interval_is_honoured(moto, pusher):
    digest = pusher.push("app", "latest")
    img = image("app", digest)
    s = scanner(moto.url, scan_interval=timedelta(hours=1))
    s.scan(img, previous_of(img, NOW - timedelta(hours=2)))
    assert s.calls["StartImageScan"] == 1


def test_limit_exceeded_keeps_previous_with_note_and_returns_fast(moto, pusher, ecr, proxy):
    digest = pusher.push("app", "latest")
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})
    moto.inject_findings([basic_result("app", digest, [CVSS3], completed=NOW)])
    img = image("app", digest, "latest")
    prev = previous_of(img, NOW, OLD_FINDING)
    clock = FakeClock(NOW + timedelta(hours=25))  # the previous scan looks due
    s = scanner(proxy.url, clock=clock, sleep=clock.sleep)
    started = time.monotonic()
    result = s.scan(img, prev)
    assert time.monotonic() - started < 3
    assert proxy.calls["StartImageScan"] == 1  # one HTTP attempt, no retry storm
    assert result.findings == prev.findings and result.scanned_at == prev.scanned_at
    assert LIMIT_NOTE in result.notes


def test_limit_exceeded_without_matching_previous_reads_last_findings(moto, pusher, ecr):
    digest = pusher.push("app", "latest")
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})
    moto.inject_findings([basic_result("app", digest, [CVSS3], completed=NOW)])
    img = image("app", digest)
    s = scanner(moto.url)
    result = s.scan(img, previous_of(img, NOW - timedelta(days=3), OLD_FINDING))
    assert [f.vulnerability_id for f in result.findings] == ["CVE-2023-0286"]
    assert result.scanned_at == NOW and LIMIT_NOTE in result.notes


def test_in_progress_is_polled_and_unfinished_findings_never_read(moto, pusher, proxy):
    digest = pusher.push("app", "latest")
    bogus = {"findings": [dict(CVSS3, name="CVE-BOGUS-0001")]}
    proxy.queue_status(digest, "IN_PROGRESS", times=3, findings=bogus)
    img = image("app", digest)
    s = scanner(proxy.url)
    result = s.scan(img, previous_of(img, NOW - timedelta(days=2)))
    assert s.calls["StartImageScan"] == 1
    assert proxy.calls["DescribeImageScanFindings"] == 4  # 3 x IN_PROGRESS, then the finished scan
    assert [f.vulnerability_id for f in result.findings] == ["CVE-9999-9999"]


def test_someone_elses_running_scan_is_waited_for_not_restarted(moto, pusher, proxy, ecr):
    digest = pusher.push("app", "latest")
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})
    proxy.queue_status(digest, "PENDING", times=2)
    proxy.summaries[digest] = {"imageScanStatus": {"status": "IN_PROGRESS"}}   # as real ECR lists it
    s = scanner(proxy.url)
    result = s.scan(image("app", digest))
    assert s.calls["StartImageScan"] == 0
    assert [f.vulnerability_id for f in result.findings] == ["CVE-9999-9999"]


def test_scan_status_unknown_to_the_listing_is_probed_not_restarted(moto, pusher, proxy, ecr, monkeypatch):
    """When DescribeImages cannot say (the batch call failed), ask the findings first."""
    digest = pusher.push("app", "latest")
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})
    proxy.queue_status(digest, "PENDING", times=2)
    s = scanner(proxy.url)
    monkeypatch.setattr(s, "_attach_summaries", lambda pool, jobs: None)
    result = s.scan(image("app", digest))
    assert s.calls["StartImageScan"] == 0
    assert [f.vulnerability_id for f in result.findings] == ["CVE-9999-9999"]


def test_never_scanned_image_listed_without_status_is_started_without_probe(moto, pusher, proxy):
    digest = pusher.push("app", "latest")
    s = scanner(proxy.url)
    result = s.scan(image("app", digest))
    assert s.calls["StartImageScan"] == 1
    assert proxy.calls["DescribeImageScanFindings"] == 1        # only the read after the scan
    assert [f.vulnerability_id for f in result.findings] == ["CVE-9999-9999"]


def test_timeout_with_exponential_backoff(moto, pusher, proxy):
    digest = pusher.push("app", "latest")
    proxy.queue_status(digest, "IN_PROGRESS", times=10_000)
    img = image("app", digest)
    clock = FakeClock(NOW)
    s = scanner(proxy.url, clock=clock, sleep=clock.sleep, poll_initial=2.0, poll_max=30.0,
                wait_timeout=timedelta(minutes=3))
    with pytest.raises(ScanError) as e:
        s.scan(img, previous_of(img, NOW - timedelta(days=2)))
    assert e.value.code == "ScanTimeout" and e.value.image == img
    assert clock.sleeps[:5] == [2.0, 2.0, 4.0, 8.0, 16.0]
    assert max(clock.sleeps) == 30.0
    assert clock.now - NOW == timedelta(minutes=3)
    assert proxy.calls["DescribeImageScanFindings"] < 15  # polls, not a busy loop


def test_real_time_timeout_is_quick(moto, pusher, proxy):
    digest = pusher.push("app", "latest")
    proxy.queue_status(digest, "IN_PROGRESS", times=10_000)
    s = scanner(proxy.url, wait_timeout=timedelta(seconds=0.3))
    started = time.monotonic()
    with pytest.raises(ScanError, match="ScanTimeout|unfinished"):
        s.scan(image("app", digest), previous_of(image("app", digest), NOW - timedelta(days=2)))
    assert time.monotonic() - started < 2


def test_failed_scan_is_an_error_with_ecr_description(moto, pusher, proxy):
    digest = pusher.push("app", "latest")
    proxy.queue_status(digest, "FAILED", times=5, description="UnsupportedImageError: The operating system "
                                                              "and/or package manager are not supported.")
    img = image("app", digest, "latest")
    with pytest.raises(ScanError) as e:
        scanner(proxy.url).scan(img, previous_of(img, NOW - timedelta(days=2)))
    assert e.value.code == "ScanFailed"
    assert "package manager are not supported" in str(e.value) and "prod/app:latest" in str(e.value)


def test_missing_image_fails_alone_in_scan_many(moto, pusher):
    good = [image("app", pusher.push("app", f"v{i}")) for i in range(6)]
    ghost = image("app", "sha256:" + "0" * 64, "gone")
    s = scanner(moto.url, max_concurrency=3)
    out = dict((img, res) for img, res in s.scan_many([*good[:3], ghost, *good[3:]], {}))
    assert len(out) == 7
    assert isinstance(out[ghost], ScanError) and out[ghost].code == "ImageNotFoundException"
    assert "prod/app:gone" in str(out[ghost])
    assert all(isinstance(out[g], ScanResult) and out[g].findings for g in good)


def test_missing_repository_is_scan_error(moto):
    with pytest.raises(ScanError) as e:
        scanner(moto.url).scan(image("nope", "sha256:" + "1" * 64))
    assert e.value.code == "RepositoryNotFoundException"


def test_scan_summary_equal_to_previous_skips_findings_call(moto, pusher, proxy):
    digest = pusher.push("app", "latest")
    img = image("app", digest, "latest")
    when = NOW - timedelta(hours=3)
    proxy.summaries[digest] = {"imageScanStatus": {"status": "COMPLETE"},
                               "imageScanFindingsSummary": {"imageScanCompletedAt": ts(when),
                                                            "findingSeverityCounts": {"LOW": 1}}}
    prev = previous_of(img, when, OLD_FINDING)
    s = scanner(proxy.url)
    result = s.scan(img, prev)
    assert result.findings == prev.findings and result.scanned_at == when
    assert proxy.calls["DescribeImageScanFindings"] == 0 and s.calls["StartImageScan"] == 0
    assert s.calls["DescribeImages"] == 1


def test_findings_pages_are_merged(moto, pusher, proxy, ecr):
    digest = pusher.push("app", "latest")
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})
    many = [dict(CVSS3, name=f"CVE-2024-{i:05d}") for i in range(250)]
    moto.inject_findings([basic_result("app", digest, many, completed=NOW)])
    s = scanner(proxy.url)
    result = s.scan(image("app", digest))
    assert len(result.findings) == 250
    # listed without a scan status (moto never reports one): no probe, a start (refused: the
    # quota), then the 3 pages of the last scan
    assert proxy.calls["DescribeImageScanFindings"] == 3


def test_scan_many_in_parallel_counts_calls(moto, pusher):
    imgs = [image("app", pusher.push("app", f"v{i}")) for i in range(40)]
    s = scanner(moto.url, max_concurrency=4)
    started = time.monotonic()
    results = list(s.scan_many(imgs, {}))
    assert len(results) == 40 and all(isinstance(r, ScanResult) for _, r in results)
    assert s.calls["StartImageScan"] == 40
    assert s.calls["DescribeImages"] == 1  # the batched summary look-up
    assert time.monotonic() - started < 20


def test_waiting_scan_does_not_block_others_even_with_one_worker(moto, pusher, proxy):
    slow, fast1, fast2 = (image("app", pusher.push("app", t), t) for t in ("slow", "fast1", "fast2"))
    proxy.queue_status(slow.digest, "IN_PROGRESS", times=6)
    old = NOW - timedelta(days=2)
    prev = {i.key: previous_of(i, old) for i in (slow, fast1, fast2)}
    s = scanner(proxy.url, max_concurrency=1, poll_initial=0.05, poll_max=0.05)
    order = [img for img, res in s.scan_many([slow, fast1, fast2], prev)
             if isinstance(res, ScanResult)]
    assert order[-1] == slow and set(order) == {slow, fast1, fast2}


def _scanned_three(pusher, proxy):
    """Three pushed images whose listing says their scans completed three hours ago: (digests,
    that time, the ECR registry, its listed images)."""
    from vulnwatch.registries.ecr import ECRRegistry

    digests = [pusher.push("app", f"v{i}") for i in range(3)]
    when = NOW - timedelta(hours=3)
    for d in digests:
        proxy.summaries[d] = {"imageScanStatus": {"status": "COMPLETE"},
                              "imageScanFindingsSummary": {"imageScanCompletedAt": ts(when)}}
    registry = ECRRegistry("prod", region="us-east-1", endpoint_url=proxy.url)
    return digests, when, registry, list(registry.images("app"))


def test_scan_status_from_the_registry_listing_saves_the_describe_images_call(moto, pusher, proxy):
    digests, when, registry, images = _scanned_three(pusher, proxy)
    assert registry.scan_info("app", digests[0]).status == "COMPLETE"
    s = scanner(proxy.url, listing=registry)
    previous = {img.key: previous_of(img, when, OLD_FINDING) for img in images}
    results = dict(s.scan_many(images, previous))
    assert all(r.findings == (OLD_FINDING,) for r in results.values())
    assert s.calls["DescribeImages"] == 0                        # the listing already said it all
    assert s.calls["DescribeImageScanFindings"] == 0 and s.calls["StartImageScan"] == 0


def test_an_unchanged_image_is_decided_without_a_worker_or_a_client(moto, pusher, proxy, monkeypatch):
    """A steady cycle: what the listing said and the stored snapshot decide every image in the
    scheduling thread; no worker runs (``_prepare`` is the workers' step) and the retry-less
    client for StartImageScan is never made."""
    digests, when, registry, images = _scanned_three(pusher, proxy)
    s = scanner(proxy.url, listing=registry)
    monkeypatch.setattr(s, "_prepare", lambda *a: pytest.fail("an unchanged image was sent to a worker"))
    previous = {img.key: previous_of(img, when, OLD_FINDING) for img in images}
    results = dict(s.scan_many(images, previous))
    assert all(isinstance(r, ScanResult) and r.findings == (OLD_FINDING,) for r in results.values())
    assert s._start_client is None and sum(s.calls.values()) == 1     # GetRegistryScanningConfiguration
    s.start_client                                                   # made when first wanted
    assert s._start_client is not None and s._start_client.meta.config.retries["total_max_attempts"] == 1


def test_the_cycle_deadline_ends_the_wait_for_findings(moto, pusher, proxy):
    from vulnwatch.model import Deadline, deadline_scope

    digest = pusher.push("app", "latest")
    proxy.queue_status(digest, "IN_PROGRESS", times=10_000)
    img = image("app", digest)
    s = scanner(proxy.url, wait_timeout=timedelta(minutes=10), poll_initial=0.05, poll_max=0.2)
    started = time.monotonic()
    with deadline_scope(Deadline.after(0.5, "limits.cycle_timeout (test)")):
        [(got, outcome)] = list(s.scan_many([img], {img.key: previous_of(img, NOW - timedelta(days=2))}))
    assert time.monotonic() - started < 3
    assert got == img and isinstance(outcome, ScanError) and outcome.code == "Timeout"
    assert "limits.cycle_timeout (test)" in str(outcome)
