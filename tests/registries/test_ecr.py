"""ECRRegistry against moto_server (through the paging proxy where pagination matters)."""

from __future__ import annotations

import json

import boto3
import pytest

from vulnwatch.registries.ecr import ECRRegistry
from vulnwatch.registries.interface import RegistryError

from tests.support.ecr import OCI


def test_250_images_listed_across_real_pages(moto, pusher, proxy):
    digests = {pusher.push("big", f"v{i}") for i in range(250)}
    assert len(digests) == 250

    # A client that ignores nextToken sees only the first page: the proxy really pages.
    raw = boto3.client("ecr", region_name="us-east-1", endpoint_url=proxy.url)
    first = raw.describe_images(repositoryName="big")
    assert len(first["imageDetails"]) == 100 and first.get("nextToken")

    reg = ECRRegistry("prod", region="us-east-1", endpoint_url=proxy.url)
    proxy.calls.clear()
    images = list(reg.images("big"))
    assert {i.digest for i in images} == digests
    assert proxy.calls["DescribeImages"] == 3
    assert reg.calls["DescribeImages"] == 3
    assert all(i.registry == "prod" and i.repository == "big" for i in images)


def test_repositories_paginated(moto, ecr, proxy):
    names = {f"team/app{i:03d}" for i in range(130)}
    for n in names:
        ecr.create_repository(repositoryName=n)
    reg = ECRRegistry("prod", region="us-east-1", endpoint_url=proxy.url)
    assert set(reg.repositories()) == names
    assert proxy.calls["DescribeRepositories"] == 2


def test_two_tags_on_one_digest_are_one_image(moto, pusher):
    d1 = pusher.push("app", "latest", seed="same")
    d2 = pusher.push("app", "1.0", seed="same")
    other = pusher.push("app", "0.9", seed="older")
    assert d1 == d2
    reg = ECRRegistry("prod", region="us-east-1", endpoint_url=moto.url)
    images = {i.digest: i for i in reg.images("app")}
    assert len(images) == 2
    img = images[d1]
    assert img.tags == ("1.0", "latest")
    assert images[other].tags == ("0.9",)
    assert img.pushed_at is not None and img.pushed_at.tzinfo is not None
    assert img.media_type == OCI
    assert img.key == ("prod", "app", d1)


def test_missing_repository_names_registry_and_repository(moto):
    reg = ECRRegistry("prod", region="us-east-1", endpoint_url=moto.url)
    with pytest.raises(RegistryError) as e:
        list(reg.images("nope/missing"))
    assert "prod/nope/missing" in str(e.value)
    assert "RepositoryNotFoundException" in str(e.value)
    assert e.value.repository == "nope/missing" and not e.value.retryable


def test_unreachable_endpoint_is_retryable_error_without_secrets(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value-xyz")
    from tests.support.servers import free_port
    from vulnwatch import aws
    client = aws.client("ecr", region="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    reg = ECRRegistry("prod", client=client)
    with pytest.raises(RegistryError) as e:
        list(reg.repositories())
    assert e.value.retryable and "prod" in str(e.value)
    assert "secret-value-xyz" not in str(e.value) and "secret-value-xyz" not in repr(reg)


def test_manifest_via_batch_get_image(moto, pusher):
    digest = pusher.push("app", "latest", seed="m1")
    reg = ECRRegistry("prod", region="us-east-1", endpoint_url=moto.url)
    m = reg.manifest("app", "latest")
    doc = json.loads(m.raw)
    assert m.media_type == OCI
    assert m.digest == digest
    assert m.config.digest == doc["config"]["digest"]
    assert [layer.digest for layer in m.layers] == [doc["layers"][0]["digest"]]
    assert reg.manifest("app", digest).raw == m.raw
    with pytest.raises(RegistryError, match="prod/app:nope"):
        reg.manifest("app", "nope")
