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
