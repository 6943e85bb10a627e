"""OCIRegistry against a real docker-registry 2.8 (and real HTTP fronts for paging/faults)."""

from __future__ import annotations

import gzip

import pytest

from tests.registries.conftest import EXTRA_TAGS, MANY_REPOS
from vulnwatch.registries.interface import RegistryError
from vulnwatch.registries._manifest import DOCKER_MANIFEST, OCI_MANIFEST
from vulnwatch.registries.oci import OCIRegistry


@pytest.fixture
def plain(plain_registry):
    reg = OCIRegistry("local", plain_registry.url, insecure=True, page_size=2)
    yield reg
    reg.close()


def test_catalog_is_followed_across_pages(plain_registry, make_proxy):
    proxy = make_proxy(plain_registry.url)
    reg = OCIRegistry("local", proxy.url, insecure=True, page_size=2)
    repos = list(reg.repositories())
    assert repos == sorted(["app", "corrupt", "dock", "multi", *MANY_REPOS])
    pages = [p for m, p, _ in proxy.requests if p.startswith("/v2/_catalog")]
    assert len(repos) == 9 and len(pages) == 5  # 2+2+2+2+1
    assert all("n=2" in p for p in pages)


def test_tags_are_followed_across_pages(plain_registry, make_proxy):
    # Distribution 2.8 ignores n on tags/list; the front pages per the spec (Link, last, n).
    proxy = make_proxy(plain_registry.url, paginate_tags=True)
    reg = OCIRegistry("local", proxy.url, insecure=True, page_size=3)
    tags = list(reg.tags("app"))
    assert sorted(tags) == sorted(["v1", "v2", *EXTRA_TAGS])
    assert len(tags) == len(set(tags))
    pages = [p for m, p, _ in proxy.requests if "/tags/list" in p]
    assert len(pages) == 3
    assert "last=" in pages[1]


def test_images_group_tags_by_digest(plain, images):
    found = {img.digest: img for img in plain.images("app")}
    assert set(found) == {images.v1.manifest_digest, images.v2.manifest_digest}
    assert found[images.v1.manifest_digest].tags == tuple(sorted(["v1", *EXTRA_TAGS]))
    assert found[images.v2.manifest_digest].tags == ("v2",)
    assert all(i.registry == "local" and i.repository == "app" for i in found.values())
    assert found[images.v1.manifest_digest].media_type == OCI_MANIFEST


def test_oci_manifest_by_tag_and_digest(plain, images):
    m = plain.manifest("app", "v1")
    assert m.media_type == OCI_MANIFEST
    assert m.digest == images.v1.manifest_digest
    assert m.config.digest == images.v1.config_digest
    assert tuple(layer.digest for layer in m.layers) == images.v1.layer_digests
    assert m.index_digest is None
    by_digest = plain.manifest("app", images.v1.manifest_digest)
    assert by_digest.raw == m.raw


def test_docker_v2_manifest(plain, images):
    m = plain.manifest("dock", "v1")
    assert m.media_type == DOCKER_MANIFEST
    assert m.config.digest == images.v1.config_digest
    assert tuple(layer.digest for layer in m.layers) == images.v1.layer_digests
    assert m.layers[0].media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_index_resolves_to_configured_platform(plain_registry, images, platform):
    reg = OCIRegistry("local", plain_registry.url, insecure=True, platform=platform)
    m = reg.manifest("multi", "latest")
    assert m.platform == platform
    assert m.index_digest == images.index_digest
    assert m.digest == images.per_platform[platform].manifest_digest
    with reg.blob("multi", m.layers[0].digest) as f:
        assert f.read() == images.per_platform[platform].layer_bytes[0]


def test_missing_platform_lists_available_ones(plain_registry):
    reg = OCIRegistry("local", plain_registry.url, insecure=True, platform="linux/s390x")
    with pytest.raises(RegistryError) as e:
        reg.manifest("multi", "latest")
    msg = str(e.value)
    assert "linux/s390x" in msg and "linux/amd64, linux/arm64" in msg
    assert msg.startswith("local/multi:latest")


def test_all_platforms(plain_registry, images):
    reg = OCIRegistry("local", plain_registry.url, insecure=True, all_platforms=True)
    ms = reg.platform_manifests("multi", "latest")
    assert {m.platform: m.digest for m in ms} == {p: w.manifest_digest for p, w in images.per_platform.items()}


def test_blob_streams_verified_bytes(plain, images):
    m = plain.manifest("app", "v2")
    with plain.blob("app", m.layers[0].digest) as f:
        data = f.read()
    assert data == images.v2.layer_bytes[0]
    assert gzip.decompress(data)  # a real gzip layer
    with plain.blob("app", m.config.digest) as f:
        assert b'"diff_ids"' in f.read()


def test_corrupt_blob_on_disk_is_detected(plain_registry, plain, images):
    digest = images.corrupt.layer_digests[0]
    path = plain_registry.blob_path(digest)
    original = path.read_bytes()
    path.write_bytes(bytes(b ^ 0xFF for b in original))  # same size, other bytes
    with pytest.raises(RegistryError) as e:
        with plain.blob("corrupt", digest) as f:
            f.read()
    assert "does not match its digest" in str(e.value)
    assert "local/corrupt" in str(e.value) and digest in str(e.value)


def test_max_blob_size(plain_registry, images):
    reg = OCIRegistry("local", plain_registry.url, insecure=True, max_blob_size=10)
    with pytest.raises(RegistryError, match="max_blob_bytes"):
        with reg.blob("app", images.v1.layer_digests[0]) as f:
            f.read()


def test_plain_http_refused_unless_insecure(plain_registry):
    with pytest.raises(RegistryError) as e:
        OCIRegistry("local", plain_registry.url)
    assert "refusing plain HTTP" in str(e.value) and "insecure" in str(e.value)


def test_https_default_against_http_registry_fails_clearly(plain_registry):
    reg = OCIRegistry("local", plain_registry.host, retries=0)  # bare host -> https
    assert reg.base_url.startswith("https://")
    with pytest.raises(RegistryError) as e:
        list(reg.repositories())
    assert "cannot reach https://" in str(e.value)


def test_registry_error_codes_are_reported(plain):
    with pytest.raises(RegistryError) as e:
        plain.manifest("app", "no-such-tag")
    msg = str(e.value)
    assert msg.startswith("local/app:no-such-tag")
    assert "404" in msg and "MANIFEST_UNKNOWN" in msg


def test_retries_transient_errors_then_succeeds(plain_registry, make_proxy):
    proxy = make_proxy(plain_registry.url, fail_first=2)
    reg = OCIRegistry("local", proxy.url, insecure=True, backoff=0.01)
    assert "v1" in list(reg.tags("app"))
    assert len(proxy.requests) == 3


def test_retries_are_bounded(plain_registry, make_proxy):
    proxy = make_proxy(plain_registry.url, fail_first=100)
    reg = OCIRegistry("local", proxy.url, insecure=True, retries=2, backoff=0.01)
    with pytest.raises(RegistryError) as e:
        list(reg.tags("app"))
    assert e.value.retryable
    assert "503" in str(e.value) and "UNAVAILABLE" in str(e.value)
    assert len(proxy.requests) == 3


def test_manifest_digest_is_verified(plain_registry, make_proxy, images):
    proxy = make_proxy(plain_registry.url, tamper_manifests=True)
    reg = OCIRegistry("local", proxy.url, insecure=True)
    with pytest.raises(RegistryError, match="does not match the requested digest"):
        reg.manifest("app", images.v1.manifest_digest)
    with pytest.raises(RegistryError, match="registry says " + images.v1.manifest_digest):
        reg.manifest("app", "v1")


def test_credentials_in_url_rejected_without_echoing_them():
    with pytest.raises(RegistryError) as e:
        OCIRegistry("local", "https://bob:pw-in-url@registry.example", insecure=True)
    assert "pw-in-url" not in str(e.value) and "credentials" in str(e.value)


def test_requests_in_flight_stay_within_max_concurrency_across_repositories(plain_registry, make_proxy):
    # a cycle lists `listing_concurrency` repositories at once; their tags are resolved by one pool
    from concurrent.futures import ThreadPoolExecutor

    from vulnwatch.config.registries import OciRegistryConfig as OciConfig

    proxy = make_proxy(plain_registry.url, hold_heads=0.05)
    reg = OCIRegistry.from_config(OciConfig(name="local", type="oci", url=proxy.url, insecure=True,
                                            max_concurrency=3))
    try:
        assert (reg.concurrency, reg.listing_concurrency) == (3, 3)
        repos = ["app", *MANY_REPOS]
        with ThreadPoolExecutor(reg.listing_concurrency) as pool:
            found = dict(zip(repos, pool.map(lambda r: list(reg.images(r)), repos)))
    finally:
        reg.close()
    assert sorted(t for img in found["app"] for t in img.tags) == sorted(["v1", "v2", *EXTRA_TAGS])
    assert all(len(found[r]) == 1 for r in MANY_REPOS)
    heads = [p for m, p, _ in proxy.requests if m == "HEAD"]
    assert len(heads) == 8 + len(MANY_REPOS)            # one per tag, nothing else
    assert proxy.max_in_flight == 3                      # used, and never more


def test_tags_are_resolved_under_the_deadline_of_the_thread_that_lists(plain_registry, make_proxy):
    import time

    from vulnwatch.model import Deadline, deadline_scope

    proxy = make_proxy(plain_registry.url, hold_heads=1.5)
    reg = OCIRegistry("local", proxy.url, insecure=True, concurrency=4, retries=0)
    try:
        started = time.monotonic()
        with deadline_scope(Deadline.after(0.3, "limits.cycle_timeout")), pytest.raises(RegistryError) as e:
            list(reg.images("app"))
        assert time.monotonic() - started < 1.2
        assert "timed out" in str(e.value) and "limits.cycle_timeout" in str(e.value)
    finally:
        reg.close()
        while proxy.in_flight:           # the held requests end before the registry may go
            time.sleep(0.05)


def test_requests_sent_before_another_learnt_the_challenge_are_answered_with_credentials(basic_registry,
                                                                                        make_proxy):
    # repositories listed at once: every first request goes out before any 401 came back
    from concurrent.futures import ThreadPoolExecutor

    from tests.registries.conftest import BASIC_PASSWORD
    from vulnwatch.registries.auth import Credentials

    proxy = make_proxy(basic_registry.url, hold_tags=0.2)
    reg = OCIRegistry("local", proxy.url, insecure=True, concurrency=4,
                      credentials=Credentials(username="alice", password=BASIC_PASSWORD))
    try:
        with ThreadPoolExecutor(4) as pool:
            found = list(pool.map(lambda _: [i.tags for i in reg.images("app")], range(4)))
    finally:
        reg.close()
    assert found == [[("v1",)]] * 4
    first = [h for m, p, h in proxy.requests if "/tags/list" in p][:4]
    assert not any("authorization" in h for h in first)          # all four went out unauthenticated
