"""Parsing of user-typed image references."""

from __future__ import annotations

import pytest

from vulnwatch.model import ImageRef
from vulnwatch.registries.interface import RegistryError
from vulnwatch.registries.reference import InvalidReferenceError, api_host, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, expected", [
    ("debian", ImageRef("docker.io", "library/debian")),
    ("debian:12", ImageRef("docker.io", "library/debian", "12")),
    ("bitnami/redis:7.2", ImageRef("docker.io", "bitnami/redis", "7.2")),
    ("docker.io/debian:12", ImageRef("docker.io", "library/debian", "12")),
    ("index.docker.io/library/debian", ImageRef("docker.io", "library/debian")),
    ("localhost/app", ImageRef("localhost", "app")),
    ("localhost:5000/team/app:v1", ImageRef("localhost:5000", "team/app", "v1")),
    ("127.0.0.1:5000/app@" + D, ImageRef("127.0.0.1:5000", "app", None, D)),
    ("ghcr.io/org/sub/app:1.0@" + D, ImageRef("ghcr.io", "org/sub/app", "1.0", D)),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:latest",
     ImageRef("123456789012.dkr.ecr.us-east-1.amazonaws.com", "team/app", "latest")),
    ("  quay.io/a/b_c-d.e:tag_1  ", ImageRef("quay.io", "a/b_c-d.e", "tag_1")),
])
def test_parse(text, expected):
    assert parse_reference(text) == expected


def test_round_trip():
    ref = parse_reference("localhost:5000/team/app:v1@" + D)
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize("text, problem", [
    ("", "empty"),
    ("https://ghcr.io/a/b", "scheme"),
    ("ghcr.io/Org/App", "bad repository"),
    ("app:bad tag", "bad tag"),
    ("app:-x", "bad tag"),
    ("app@sha256:1234", "bad digest"),
    ("app@sha256:" + "AB" * 32, "64 lowercase hex"),
    ("ghcr.io//app", "bad repository"),
])
def test_invalid(text, problem):
    with pytest.raises(InvalidReferenceError) as e:
        parse_reference(text)
    assert problem in str(e.value) and repr(text) in str(e.value)
    assert isinstance(e.value, RegistryError) and isinstance(e.value, ValueError)


def test_api_host():
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("ghcr.io") == "ghcr.io"
