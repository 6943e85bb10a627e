"""vulnwatch.aws: client configuration and the retry-less sibling."""

from __future__ import annotations

from vulnwatch import aws


def test_client_uses_adaptive_retries_and_pool(moto):
    c = aws.client("ecr", region="us-east-1", endpoint_url=moto.url, max_pool_connections=17)
    assert c.meta.config.retries["mode"] == "adaptive"
    assert c.meta.config.retries["total_max_attempts"] == 5
    assert c.meta.config.max_pool_connections == 17
    assert c.meta.region_name == "us-east-1"


def test_without_retries_keeps_endpoint_and_credentials(moto):
    c = aws.client("ecr", region="eu-west-1", endpoint_url=moto.url)
    one = aws.without_retries(c)
    assert one.meta.config.retries["total_max_attempts"] == 1
    assert one.meta.endpoint_url == moto.url and one.meta.region_name == "eu-west-1"
    assert one.describe_repositories()["repositories"] == []  # it works against the same server


def test_call_counter_counts_operations_and_pages(moto):
    c = aws.client("ecr", region="us-east-1", endpoint_url=moto.url)
    calls = aws.CallCounter()
    calls.attach(c)
    c.create_repository(repositoryName="app")
    list(c.get_paginator("describe_repositories").paginate())
    assert calls.snapshot() == {"CreateRepository": 1, "DescribeRepositories": 1}
