"""``registries[]``: where images come from (ECR, any OCI registry, local archives), which
repositories and tags to watch in each, and how often to scan. Data only: selection itself is
:mod:`vulnwatch.targets`."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from .problems import loc_error
from .types import Duration, HttpUrl, Model, Name, RepositoryGlob, TagGlob, is_glob, resolve_path

NO_CATALOG_HOSTS = {
    "ghcr.io": "GHCR", "docker.io": "Docker Hub", "index.docker.io": "Docker Hub",
    "registry-1.docker.io": "Docker Hub", "registry.hub.docker.com": "Docker Hub",
    "registry.gitlab.com": "GitLab",
}
"""Registries known not to list their repositories (``/v2/_catalog``): only exact repository
names (or a watch list) can work there."""
DOCKER_HUB_HOSTS = {h for h, who in NO_CATALOG_HOSTS.items() if who == "Docker Hub"}

__all__ = ["ArchiveRegistryConfig", "EcrRegistryConfig", "EcrScanSettings", "OciRegistryConfig", "RegistryConfig",
           "RepositorySelector", "ScanSettings", "TagFilter"]


class TagFilter(Model):
    """Which tags select an image: it is selected when ANY of its tags matches ``include`` and
    does not match ``exclude``."""

    include: list[TagGlob] = Field(default_factory=lambda: ["*"])
    """Tag globs to take (``fnmatch``, case-sensitive); default ``["*"]``."""
    exclude: list[TagGlob] = Field(default_factory=list)
    """Tag globs to leave out, applied after ``include`` (e.g. ``["*-dev", "sha-*"]``)."""


class RepositorySelector(Model):
    """Which repositories to watch, and which of their images."""

    name: RepositoryGlob = "*"
    """Exact repository name or glob (``team/*``; ``*`` also matches ``/``)."""
    tags: TagFilter = Field(default_factory=TagFilter)
    """Tag filters; default: every tag."""
    newest: int | None = Field(default=None, ge=1)
    """Keep only the newest N images by push time (after tag filters); unset = all."""
    untagged: bool = False
    """Also take images that have no tag (tag filters do not apply to them)."""

    @property
    def is_exact(self) -> bool:
        """True when ``name`` is an exact repository name (no glob characters)."""
        return not is_glob(self.name)


class ScanSettings(Model):
    """How often images of a registry are scanned and how long to wait for a scan."""

    interval: Duration = timedelta(hours=24)
    """Re-scan an image when its last scan is older than this (``30s``, ``10m``, ``24h``, ``1d``)."""
    wait_timeout: Duration = timedelta(minutes=10)
    """Give up waiting for one image's scan after this long."""


class EcrScanSettings(ScanSettings):
    """ECR scan settings: which scanning the registry uses, as well as the timings."""

    mode: Literal["auto", "basic", "enhanced", "builtin"] = "auto"
    """``basic`` (ECR basic scanning), ``enhanced`` (Amazon Inspector), ``auto``: ask the
    registry's scanning configuration; or ``builtin``: vulnwatch's own scanner, reading the
    images through the registry's Registry v2 API with an ECR token (``registry_url``)."""


class _RegistryBase(Model):
    name: Name
    """Unique name; stored with every image (``Image.registry``)."""
    max_concurrency: int = Field(default=4, ge=1, le=64)
    """Calls in flight at once against this registry."""
    repositories: list[RepositorySelector] = Field(default_factory=list)
    """Repository selectors. Omitted or ``[]`` means every repository (``[{name: "*"}]``),
    narrowed to ``watch_list`` when that is set. A repository takes the first selector with its
    exact name, else the first glob that matches it."""
    watch_list: str | None = None
    """A JSON array of repository names (the existing watch-list format): ``s3://bucket/key`` or
    a local file (relative to the config file). When set, only repositories it names are
    watched (and still only those a selector matches)."""

    @field_validator("watch_list")
    @classmethod
    def _watch_list(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("empty watch list source: give s3://bucket/key or a file path")
        if value.startswith("s3://"):
            bucket, _, key = value[5:].partition("/")
            if not bucket or not key:
                raise ValueError(f"bad S3 watch list {value!r}: use s3://bucket/key")
            return value
        if re.match(r"^[a-z][a-z0-9+.-]*://", value):
            raise ValueError(f"unsupported watch list source {value!r}: use s3://bucket/key or a file path")
        return str(resolve_path(value, info))

    def selectors(self) -> list[RepositorySelector]:
        """The selectors in force: the configured ones, or one that takes every repository."""
        return list(self.repositories) or [RepositorySelector()]


class EcrRegistryConfig(_RegistryBase):
    """An Amazon ECR private registry (credentials: the usual AWS chain)."""

    type: Literal["ecr"]
    region: str | None = None
    """AWS region, e.g. ``us-east-1``; unset = the AWS default (``AWS_REGION`` / profile)."""
    registry_id: str | None = None
    """12-digit AWS account id of the registry; unset = the caller's account."""
    endpoint_url: HttpUrl | None = None
    """Override the ECR API endpoint (a VPC endpoint, or moto in tests)."""
    registry_url: HttpUrl | None = None
    """Override the Registry v2 endpoint images are pulled from with ``scan.mode: builtin``
    (default ``https://<registry_id>.dkr.ecr.<region>.amazonaws.com``; a VPC endpoint, or a
    test registry)."""
    insecure: bool = False
    """Allow a plain-HTTP ``registry_url`` without TLS verification (a test registry only)."""
    scan: EcrScanSettings = Field(default_factory=EcrScanSettings)
    """Scanning mode and timings."""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", value):
            raise ValueError(f"bad AWS region {value!r}: e.g. us-east-1, eu-west-2")
        return value

    @field_validator("registry_id", mode="before")
    @classmethod
    def _registry_id(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads unquoted digits as a number (and a leading 0 as octal): only take it
            # when the number can only have been written as the 12 digits.
            if 10**11 <= value < 10**12:
                return str(value)
            raise ValueError('quote the account id, e.g. registry_id: "012345678901"')
        if isinstance(value, str) and not re.fullmatch(r"\d{12}", value):
            raise ValueError(f"bad registry_id {value!r}: an AWS account id is 12 digits")
        return value

    @model_validator(mode="after")
    def _registry_url(self) -> "EcrRegistryConfig":
        if self.registry_url and self.registry_url.startswith("http://") and not self.insecure:
            raise loc_error(("registry_url",), "plain http:// needs insecure: true for this registry")
        return self


class OciRegistryConfig(_RegistryBase):
    """A registry speaking the OCI distribution (Docker Registry v2) API."""

    type: Literal["oci"]
    url: HttpUrl
    """Base URL, e.g. ``https://ghcr.io`` or ``http://127.0.0.1:5000``."""
    insecure: bool = False
    """Allow plain HTTP and do not verify TLS certificates (this registry only)."""
    username: str | None = None
    """User for basic auth / token exchange (with ``password``)."""
    password: SecretStr | None = None
    """Password or token for ``username`` (use ``${VAR}``)."""
    platform: str = "linux/amd64"
    """Platform to pick from multi-platform images: ``os/arch[/variant]``, or ``all``: every
    platform of an index becomes an image of its own (tags read ``1.0 [linux/arm64]``)."""
    scan: ScanSettings = Field(default_factory=ScanSettings)
    """Scan timings."""

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str) -> str:
        if value != "all" and not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?", value):
            raise ValueError(f"bad platform {value!r}: use os/arch[/variant], e.g. linux/amd64, linux/arm64/v8, "
                             "or all (every platform of a multi-platform image, each scanned on its own)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _docker_hub_names(cls, data: Any) -> Any:
        # Docker Hub's official images live under library/: `debian` is `library/debian`, as in
        # `docker pull debian` (and as `vulnwatch scan debian:12` names it).
        if not isinstance(data, dict) or _host(data.get("url")) not in DOCKER_HUB_HOSTS:
            return data
        repos = data.get("repositories")
        if not isinstance(repos, list):
            return data
        fixed = []
        for r in repos:
            name = r.get("name") if isinstance(r, dict) else None
            if isinstance(name, str) and "/" not in name and not is_glob(name):
                r = {**r, "name": f"library/{name}"}
            fixed.append(r)
        return {**data, "repositories": fixed}

    @property
    def host(self) -> str:
        """The host (and port) of ``url``, lower case."""
        return _host(self.url) or ""

    @model_validator(mode="after")
    def _catalog_needed(self) -> "OciRegistryConfig":
        who = NO_CATALOG_HOSTS.get(self.host)
        if who is None or self.watch_list is not None:
            return self
        example = "library/debian" if who == "Docker Hub" else "owner/app"
        advice = (f"{who} does not list its repositories, so only exact names can be watched there: name them "
                  f"(repositories: [{{name: {example}}}]) or give a watch_list")
        if not self.repositories:
            raise loc_error(("url",), f"no repositories named; {advice}")
        for i, sel in enumerate(self.repositories):
            if not sel.is_exact:
                raise loc_error(("repositories", i, "name"), f"glob {sel.name!r}: {advice}")
        return self

    @model_validator(mode="after")
    def _credentials(self) -> "OciRegistryConfig":
        if self.password is not None and not self.username:
            raise loc_error(("password",), "password given without username")
        if self.username and self.password is None:
            raise loc_error(("username",), "username given without password (use password: ${VAR})")
        if self.url.startswith("http://") and not self.insecure:
            raise loc_error(("url",), "plain http:// needs insecure: true for this registry")
        return self


class ArchiveRegistryConfig(_RegistryBase):
    """Images from a file: a ``docker save`` tarball or an OCI layout (directory or tar)."""

    type: Literal["archive"]
    path: Path
    """The archive file or OCI layout directory (relative to the config file)."""
    scan: ScanSettings = Field(default_factory=ScanSettings)
    """Scan timings."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


def _host(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    rest = url.strip().split("://", 1)[-1]
    return rest.split("/", 1)[0].lower() or None


RegistryConfig = Annotated[Union[EcrRegistryConfig, OciRegistryConfig, ArchiveRegistryConfig],
                           Field(discriminator="type")]
"""One ``registries[]`` entry, by ``type``: ``ecr``, ``oci`` or ``archive``."""

