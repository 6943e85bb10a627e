"""The configuration file: one YAML document, validated by pydantic models.

``load_config(path)`` reads the file, interpolates ``${VAR}`` / ``${VAR:-default}`` from the
environment in string values, and validates the result. Every problem is reported in one
:class:`ConfigError` whose message has one line per problem, each naming the file, the line of
the offending key and its key path::

    vulnwatch.yaml:14: registries[0].scan.interval: bad duration '10x': use a number followed by
    s, m, h or d (e.g. 30s, 10m, 24h, 1d)

Secrets (registry passwords, database URLs, webhook URLs, HMAC secrets, header values) are
:class:`pydantic.SecretStr`: their ``repr``/``str`` show ``**********``; code that needs the
value calls ``.get_secret_value()``. They never appear in error messages either.

Relative paths (``state.path``, ``registries[].path``, a local ``watch_list``) are resolved
against the directory of the configuration file (the current directory for
:meth:`Config.default`).

The layout of the file is documented in ``docs/configuration.md``; a commented example is
``examples/vulnwatch.ecr.yaml``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer,
                      PrivateAttr, SecretStr, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .model import Severity

__all__ = [
    "ArchiveRegistryConfig", "Config", "ConfigError", "ConfigProblem", "DeliverySettings",
    "Duration", "EcrRegistryConfig", "EcrScanSettings", "OciRegistryConfig", "RegistryConfig",
    "RepositorySelector", "ScanSettings", "Selector", "SinkConfig", "SlackSinkConfig",
    "StateConfig", "TagFilter", "WebhookSinkConfig", "config_summary", "format_duration",
    "interpolate", "is_glob", "key_path", "load_config", "parse_config", "parse_duration",
]

DEFAULT_STATE_PATH = "~/.local/state/vulnwatch/vulnwatch.db"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file."""

    file: str
    """The configuration file as given (``<defaults>`` for :meth:`Config.default`)."""
    line: int
    """1-based line of the offending key (of the nearest enclosing key when the key is missing)."""
    key_path: str
    """Where in the document, e.g. ``registries[0].scan.interval`` (empty for the whole file)."""
    message: str
    """What is wrong and what to do; never contains a secret value."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration file cannot be used.

    ``str(error)`` has one line per problem, ``file:line: key.path: message``;
    ``problems`` holds them as :class:`ConfigProblem` values.
    """

    def __init__(self, message: str, *, problems: Sequence[ConfigProblem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)

    @classmethod
    def from_problems(cls, problems: Sequence[ConfigProblem]) -> "ConfigError":
        return cls("\n".join(str(p) for p in problems), problems=problems)


def _loc_error(loc: tuple[Any, ...], message: str, value: Any = None) -> ValidationError:
    """A validation error attached to ``loc`` (relative to the model raising it).

    Raised from a model validator, pydantic prefixes the model's own location, so the
    problem is reported at the exact key (e.g. ``registries[1].name``)."""
    return ValidationError.from_exception_data("config", [InitErrorDetails(
        type=PydanticCustomError("config", "{message}", {"message": message}), loc=loc, input=value)])


def _problems_error(problems: list[tuple[tuple[Any, ...], str]]) -> ValidationError:
    return ValidationError.from_exception_data("config", [InitErrorDetails(
        type=PydanticCustomError("config", "{message}", {"message": m}), loc=loc, input=None)
        for loc, m in problems])


# --------------------------------------------------------------------------------------------
# Field types: durations, globs, names
# --------------------------------------------------------------------------------------------

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_HINT = "use a number followed by s, m, h or d (e.g. 30s, 10m, 24h, 1d, 1h30m)"


def parse_duration(value: Any) -> timedelta:
    """``30s``, ``10m``, ``24h``, ``1d``, ``2w``, ``500ms``, combinations (``1h30m``), a
    ``timedelta``, or a bare number of seconds. Raises ``ValueError`` naming the input."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: {_DURATION_HINT}")
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r}: {_DURATION_HINT}")
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"bad duration {value!r}: {_DURATION_HINT}")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest spelling ``parse_duration`` reads back: ``1d``, ``1h30m``, ``45s``, ``250ms``."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return sign + "".join(parts)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"duration must be greater than zero, got {format_duration(value)}")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive),
                     PlainSerializer(format_duration, return_type=str)]
"""A positive duration written ``30s``, ``10m``, ``24h``, ``1d`` (or seconds as a number)."""


def _check_glob(pattern: str, allowed: str, what: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"empty {what} pattern")
    bad = sorted({c for c in pattern if not re.fullmatch(allowed, c)})
    if bad:
        raise ValueError(f"bad {what} pattern {pattern!r}: character(s) {''.join(bad)!r} cannot occur in "
                         f"{what}s; use an exact name or a glob with * ? [...]")
    depth = 0
    for c in pattern:
        if c == "[":
            if depth:
                raise ValueError(f"bad {what} pattern {pattern!r}: nested '[' in a character class")
            depth = 1
        elif c == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"bad {what} pattern {pattern!r}: '[' without a closing ']'")
    if "]" in pattern.replace("[]", "") and "[" not in pattern:
        raise ValueError(f"bad {what} pattern {pattern!r}: ']' without an opening '['")
    return pattern


def is_glob(pattern: str) -> bool:
    """True when ``pattern`` has glob characters (``*``, ``?``, ``[``), False for an exact name."""
    return any(c in pattern for c in "*?[")


# Repository names are lower case (OCI distribution spec): a-z 0-9 . _ - and / between components.
RepositoryGlob = Annotated[str, AfterValidator(
    lambda v: _check_glob(v, r"[a-z0-9._/\-*?\[\]!]", "repository name"))]
"""An exact repository name or an ``fnmatch`` glob over it (``*`` also matches ``/``)."""

TagGlob = Annotated[str, AfterValidator(lambda v: _check_glob(v, r"[A-Za-z0-9._\-*?\[\]!]", "tag"))]
"""An exact tag or an ``fnmatch`` glob over tags."""

SinkRepositoryGlob = Annotated[str, AfterValidator(
    lambda v: _check_glob(v, r"[A-Za-z0-9._/\-*?\[\]!]", "registry/repository"))]
"""A glob over ``<registry name>/<repository>``, e.g. ``prod/*`` or ``*/team/app``."""

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"bad name {value!r}: use letters, digits, '.', '_' or '-' "
                         "(starting with a letter or digit, at most 64 characters)")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
"""A configured name (registry or notification sink): ``[A-Za-z0-9][A-Za-z0-9_.-]*``."""


def _check_http_url(value: str, what: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", value):
        raise ValueError(f"{what} must be an http:// or https:// URL")
    return value


def _secret_http_url(value: SecretStr) -> SecretStr:
    # The message must not echo the URL: it is a secret.
    _check_http_url(value.get_secret_value(), "the URL")
    return value


SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]
HttpUrl = Annotated[str, AfterValidator(lambda v: _check_http_url(v, "the URL"))]


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir") or Path.cwd())


def _resolve_path(value: Path | str, info: ValidationInfo) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else (_base_dir(info) / p).resolve()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True,
                              validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # `repositories:` with nothing under it (all entries commented out) is YAML null:
        # treat it as "not given" for keys that have a non-null default.
        if isinstance(data, dict):
            fields = cls.model_fields
            drop = [k for k, v in data.items() if v is None and k in fields and not fields[k].is_required()
                    and (fields[k].default is not None or fields[k].default_factory is not None)]
            if drop:
                data = {k: v for k, v in data.items() if k not in drop}
        return data


# --------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------

class StateConfig(_Model):
    """Where vulnwatch keeps what it has seen: ``path`` (SQLite) or ``url``, not both."""

    path: Path | None = None
    """SQLite database file; the default when neither key is given is
    ``~/.local/state/vulnwatch/vulnwatch.db``. Relative paths are relative to the config file."""
    url: SecretStr | None = None
    """Any SQLAlchemy URL, e.g. ``postgresql+psycopg://user:${PGPASSWORD}@host/db`` (a secret:
    it may hold a password)."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve_path(value, info)

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
        try:
            make_url(value.get_secret_value())
        except (ArgumentError, ValueError):
            raise ValueError("not a valid SQLAlchemy URL (dialect[+driver]://user:password@host/db)") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("path") is None and data.get("url") is None:
            return {**data, "path": DEFAULT_STATE_PATH}
        return data

    @model_validator(mode="after")
    def _one_of(self) -> "StateConfig":
        if self.path is not None and self.url is not None:
            raise _loc_error(("url",), "give either state.path (SQLite) or state.url, not both")
        return self

    def sqlalchemy_url(self) -> str:
        """The URL to hand to SQLAlchemy (secret included: never log it)."""
        if self.url is not None:
            return self.url.get_secret_value()
        return f"sqlite:///{self.path}"

    def display_url(self) -> str:
        """The URL with any password masked, safe to print."""
        if self.url is None:
            return f"sqlite:///{self.path}"
        from sqlalchemy.engine import make_url
        return make_url(self.url.get_secret_value()).render_as_string(hide_password=True)


# --------------------------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------------------------

class TagFilter(_Model):
    """Which tags select an image: it is selected when ANY of its tags matches ``include`` and
    does not match ``exclude``."""

    include: list[TagGlob] = Field(default_factory=lambda: ["*"])
    """Tag globs to take (``fnmatch``, case-sensitive); default ``["*"]``."""
    exclude: list[TagGlob] = Field(default_factory=list)
    """Tag globs to leave out, applied after ``include`` (e.g. ``["*-dev", "sha-*"]``)."""

    def accepts(self, tag: str) -> bool:
        """True when ``tag`` is included and not excluded."""
        return (any(fnmatchcase(tag, p) for p in self.include)
                and not any(fnmatchcase(tag, p) for p in self.exclude))


class RepositorySelector(_Model):
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

    def matches(self, repository: str) -> bool:
        """True when ``repository`` is selected by ``name``."""
        return fnmatchcase(repository, self.name)


Selector = RepositorySelector
"""Short name used by :mod:`vulnwatch.targets`."""


class ScanSettings(_Model):
    """How often images of a registry are scanned and how long to wait for a scan."""

    interval: Duration = timedelta(hours=24)
    """Re-scan an image when its last scan is older than this (``30s``, ``10m``, ``24h``, ``1d``)."""
    wait_timeout: Duration = timedelta(minutes=10)
    """Give up waiting for one image's scan after this long."""


class EcrScanSettings(ScanSettings):
    """ECR scan settings: which scanning the registry uses, as well as the timings."""

    mode: Literal["auto", "basic", "enhanced"] = "auto"
    """``basic`` (ECR basic scanning), ``enhanced`` (Amazon Inspector), or ``auto``: ask the
    registry's scanning configuration."""


class _RegistryBase(_Model):
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
        return str(_resolve_path(value, info))

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

    @model_validator(mode="after")
    def _credentials(self) -> "OciRegistryConfig":
        if self.password is not None and not self.username:
            raise _loc_error(("password",), "password given without username")
        if self.username and self.password is None:
            raise _loc_error(("username",), "username given without password (use password: ${VAR})")
        if self.url.startswith("http://") and not self.insecure:
            raise _loc_error(("url",), "plain http:// needs insecure: true for this registry")
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
        return _resolve_path(value, info)


RegistryConfig = Annotated[Union[EcrRegistryConfig, OciRegistryConfig, ArchiveRegistryConfig],
                           Field(discriminator="type")]
"""One ``registries[]`` entry, by ``type``: ``ecr``, ``oci`` or ``archive``."""


# --------------------------------------------------------------------------------------------
# notifications
# --------------------------------------------------------------------------------------------

def _severity(value: Any) -> Severity:
    if isinstance(value, Severity):
        return value
    if isinstance(value, str) and value.strip().upper() in Severity.__members__:
        return Severity[value.strip().upper()]
    names = ", ".join(s.name for s in sorted(Severity))
    raise ValueError(f"unknown severity {value!r}: use one of {names}")


SeverityName = Annotated[Severity, BeforeValidator(_severity), PlainSerializer(lambda s: s.name, return_type=str)]


class _RoutedSink(_Model):
    name: Name
    """Unique name; the outbox refers to the sink by it (never by URL)."""
    min_severity: SeverityName = Severity.UNKNOWN
    """Only findings rated at least this (UNKNOWN, NEGLIGIBLE, LOW, MEDIUM, HIGH, CRITICAL)."""
    fixable_only: bool = False
    """Only findings with a known fix."""
    repositories: list[SinkRepositoryGlob] = Field(default_factory=list)
    """Globs over ``<registry name>/<repository>`` (e.g. ``prod/*``); empty = every repository."""
    mode: Literal["per_image", "digest"] = "per_image"
    """``per_image``: one message per event; ``digest``: one message per run."""
    kinds: list[Literal["new_image", "findings_changed", "rebuild"]] = Field(
        default_factory=lambda: ["new_image", "findings_changed", "rebuild"])
    """Which changes to send: a new image, findings that moved on a known image, a rebuild
    (a tag moved to a new digest)."""
    timeout: Duration = timedelta(seconds=10)
    """HTTP timeout for one delivery attempt."""

    def wants_repository(self, registry: str, repository: str) -> bool:
        """True when ``registry/repository`` matches ``repositories`` (or that list is empty)."""
        full = f"{registry}/{repository}"
        return not self.repositories or any(fnmatchcase(full, p) for p in self.repositories)


class _SinkBase(_RoutedSink):
    url: SecretHttpUrl
    """Where to POST (a secret: webhook URLs carry tokens; use ``${VAR}``)."""


class ConsoleSinkConfig(_RoutedSink):
    """Prints each notification to standard output (what the embedded example uses)."""

    type: Literal["console"]


class SlackSinkConfig(_SinkBase):
    """A Slack incoming webhook (Block Kit message)."""

    type: Literal["slack"]


class WebhookSinkConfig(_SinkBase):
    """A generic HTTPS webhook receiving CloudEvents 1.0 JSON."""

    type: Literal["webhook"]
    secret: SecretStr | None = None
    """HMAC-SHA256 key to sign each body with; unset = unsigned."""
    headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")], SecretStr] = Field(
        default_factory=dict)
    """Extra HTTP headers (values are secrets: they may hold tokens)."""

    @field_validator("secret")
    @classmethod
    def _empty_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    def header_values(self) -> dict[str, str]:
        """``headers`` with the values revealed, for the HTTP client only."""
        return {k: v.get_secret_value() for k, v in self.headers.items()}


SinkConfig = Annotated[Union[SlackSinkConfig, WebhookSinkConfig, ConsoleSinkConfig], Field(discriminator="type")]
"""One ``notifications[]`` entry, by ``type``: ``slack``, ``webhook`` or ``console``."""


# --------------------------------------------------------------------------------------------
# vulnerability data (the built-in scanner)
# --------------------------------------------------------------------------------------------

class LayerCacheConfig(_Model):
    """Per-layer cache of what the built-in scanner extracted: images that share lower layers
    with one already scanned pull and read only their new layers."""

    enabled: bool = True
    """Off: every new digest reads all its layers."""
    path: Path | None = None
    """Cache directory; default ``$XDG_CACHE_HOME/vulnwatch/layers``."""
    max_mb: int = Field(default=1024, ge=1)
    """Size bound; the least recently used entries are evicted beyond it."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve_path(value, info)


class VulnDBConfig(_Model):
    """The local OSV vulnerability data used by the built-in scanner."""

    path: Path | None = None
    """The index file (SQLite); default ``~/.cache/vulnwatch/osv.db``."""
    base_url: str = "https://osv-vulnerabilities.storage.googleapis.com"
    """Where ``vulnwatch db update`` downloads ``<base_url>/<Ecosystem>/all.zip`` from (a mirror for
    air-gapped sites)."""
    ecosystems: list[str] = Field(default_factory=list)
    """Ecosystems ``db update`` downloads (``Debian``, ``PyPI``, ...); empty = those of the stored inventories."""
    max_age: Duration = timedelta(days=7)
    """Scans warn when the data is older than this."""
    imports: list[Path] = Field(default_factory=list)
    """Local OSV exports (``all.zip`` files or folders of ``*.json``) imported before a run when
    they are newer than the last import: the air-gapped way to feed the data."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve_path(value, info)

    @field_validator("imports")
    @classmethod
    def _imports(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [_resolve_path(v, info) for v in value]


class DeliverySettings(_Model):
    """Retries of notifications from the outbox."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    """Attempts before a delivery is dead-lettered."""
    backoff_base: Duration = timedelta(seconds=30)
    """Delay before the second attempt; doubles each time."""
    backoff_max: Duration = timedelta(hours=1)
    """Upper bound on the delay between attempts."""

    @model_validator(mode="after")
    def _order(self) -> "DeliverySettings":
        if self.backoff_max < self.backoff_base:
            raise _loc_error(("backoff_max",), f"backoff_max ({format_duration(self.backoff_max)}) is "
                             f"shorter than backoff_base ({format_duration(self.backoff_base)})")
        return self

    def backoff(self, attempt: int) -> timedelta:
        """Delay after failed attempt number ``attempt`` (1-based): base * 2**(attempt-1), capped."""
        factor = 2 ** max(0, min(attempt - 1, 40))
        return min(self.backoff_base * factor, self.backoff_max)


# --------------------------------------------------------------------------------------------
# the whole file
# --------------------------------------------------------------------------------------------

class Config(_Model):
    """The whole configuration file."""

    state: StateConfig = Field(default_factory=StateConfig)
    """Where state is kept."""
    registries: list[RegistryConfig] = Field(default_factory=list)
    """Registries to watch, each with a unique ``name``."""
    notifications: list[SinkConfig] = Field(default_factory=list)
    """Notification sinks, each with a unique ``name``."""
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    """Retry policy for notifications."""
    vulndb: VulnDBConfig = Field(default_factory=VulnDBConfig)
    """Vulnerability data for the built-in scanner."""
    layer_cache: LayerCacheConfig = Field(default_factory=LayerCacheConfig)
    """Per-layer cache of the built-in scanner."""

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        problems: list[tuple[tuple[Any, ...], str]] = []
        for section, items in (("registries", self.registries), ("notifications", self.notifications)):
            first: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.name in first:
                    problems.append(((section, i, "name"), f"duplicate name {item.name!r}: already used by "
                                     f"{section}[{first[item.name]}]; names must be unique"))
                else:
                    first[item.name] = i
        if problems:
            raise _problems_error(problems)
        return self

    @classmethod
    def default(cls) -> "Config":
        """The configuration used when there is no file: the bundled example image archive,
        scanned offline against the bundled OSV records, notifications printed to the console,
        SQLite state in the default place."""
        examples = Path(__file__).parent / "examples"
        return cls.model_validate({
            "registries": [{"name": "example", "type": "archive", "path": str(examples / "image.tar")}],
            "notifications": [{"name": "console", "type": "console"}],
            "vulndb": {"imports": [str(examples / "osv")]},
        })

    @property
    def source(self) -> Path | None:
        """The file this configuration was loaded from (None for :meth:`default`)."""
        return self._source

    def registry(self, name: str) -> EcrRegistryConfig | OciRegistryConfig | ArchiveRegistryConfig:
        """The registry called ``name``; ``KeyError`` naming it and the known ones otherwise."""
        for r in self.registries:
            if r.name == name:
                return r
        raise KeyError(f"no registry named {name!r} (configured: {', '.join(r.name for r in self.registries) or 'none'})")

    def notification(self, name: str) -> SlackSinkConfig | WebhookSinkConfig:
        """The notification sink called ``name``; ``KeyError`` otherwise."""
        for s in self.notifications:
            if s.name == name:
                return s
        raise KeyError(f"no notification sink named {name!r} "
                       f"(configured: {', '.join(s.name for s in self.notifications) or 'none'})")


# --------------------------------------------------------------------------------------------
# YAML with lines, and ${VAR} interpolation
# --------------------------------------------------------------------------------------------

_VAR_RE = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_VAR_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.S)


class _Interpolation(Exception):
    pass


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` (default when unset or empty); ``$${`` is a
    literal ``${``; any other ``$`` is kept. Raises ``ValueError`` naming a missing variable."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        body, closed = m.group(1), m.group(2)
        if not closed:
            raise _Interpolation("unterminated '${' (write $${ for a literal '${')")
        vm = _VAR_BODY.fullmatch(body)
        if not vm:
            raise _Interpolation(f"bad variable reference '${{{body}}}': use ${{NAME}} or ${{NAME:-default}}")
        name, default = vm.group(1), vm.group(2)
        value = environ.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            raise _Interpolation(f"environment variable {name} is not set "
                                 f"(set it, or write ${{{name}:-default}})")
        return value

    return _VAR_RE.sub(repl, text)


class _Document:
    """The parsed YAML: plain data, plus the line of every key and list item."""

    def __init__(self, file: str, text: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.lines: dict[tuple[Any, ...], int] = {(): 1}
        self.problems: list[ConfigProblem] = []
        self.environ = environ
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            self._loader = loader
            self._active: set[int] = set()
            self._explicit: set[tuple[Any, ...]] = set()
            if node is None:
                self.data: Any = {}
            else:
                self.lines[()] = node.start_mark.line + 1
                self.data = self._build(node, ())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(e, "problem", None) or str(e)
            context = getattr(e, "context", None)
            msg = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
            self.problems.append(ConfigProblem(file, line, "", msg))
            self.data = None
        finally:
            loader.dispose()

    def _build(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        if id(node) in self._active:
            raise yaml.YAMLError(f"recursive alias at {key_path(path)}")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
                self._loader.flatten_mapping(node)  # merge keys (<<): merged pairs come first
                n_merged = len(node.value) - explicit
                out: dict[Any, Any] = {}
                for index, (key_node, value_node) in enumerate(node.value):
                    key = self._loader.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    try:
                        hash(key)
                    except TypeError:
                        self.problems.append(ConfigProblem(self.file, line, key_path(path),
                                                           "a key must be a plain value"))
                        continue
                    if key in out and index >= n_merged:
                        if (path + (key,)) not in self._explicit:
                            # an explicit key overrides one merged in with <<
                            self._explicit.add(path + (key,))
                            self.lines[path + (key,)] = line
                            out[key] = self._build(value_node, path + (key,))
                            continue
                        self.problems.append(ConfigProblem(
                            self.file, line, key_path(path + (key,)),
                            f"duplicate key (first at line {self.lines[path + (key,)]}); remove one"))
                        continue
                    if key in out:
                        continue  # merged from several sources: the first one wins
                    if index >= n_merged:
                        self._explicit.add(path + (key,))
                    self.lines[path + (key,)] = line
                    out[key] = self._build(value_node, path + (key,))
                return out
            if isinstance(node, yaml.SequenceNode):
                items = []
                for i, item in enumerate(node.value):
                    self.lines[path + (i,)] = item.start_mark.line + 1
                    items.append(self._build(item, path + (i,)))
                return items
            value = self._loader.construct_object(node, deep=True)
            if isinstance(value, str) and "${" in value:
                try:
                    value = interpolate(value, self.environ)
                except _Interpolation as e:
                    self.problems.append(ConfigProblem(self.file, self.line(path), key_path(path), str(e)))
            return value
        finally:
            self._active.discard(id(node))

    def line(self, path: tuple[Any, ...]) -> int:
        """Line of ``path``, or of its nearest enclosing key."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1


def key_path(path: Sequence[Any]) -> str:
    """``("registries", 0, "scan", "interval")`` -> ``registries[0].scan.interval``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_KNOWN_KEYS = sorted({f for m in (Config, StateConfig, TagFilter, RepositorySelector, EcrScanSettings,
                                  EcrRegistryConfig, OciRegistryConfig, ArchiveRegistryConfig,
                                  SlackSinkConfig, WebhookSinkConfig, DeliverySettings)
                      for f in m.model_fields})


def _data_path(loc: Sequence[Any], data: Any) -> tuple[Any, ...]:
    """Pydantic's error location -> a path into the document: drops the union tags
    (``registries.0.ecr.scan`` -> ``registries[0].scan``) and ``[key]`` markers."""
    out: list[Any] = []
    node = data
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(node, dict):
            if part in node:
                out.append(part)
                node = node[part]
            elif node.get("type") == part:
                continue  # discriminator tag pydantic puts in the location
            else:
                out.append(part)
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(part)
            node = None
    return tuple(out)


def _message(err: dict[str, Any], path: tuple[Any, ...]) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
        return f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "; remove it")
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        return f"unknown type {ctx.get('tag')!r}: use one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "required key 'type' is missing"
    if kind == "model_type" or kind == "dict_type":
        return "expected a mapping (key: value lines)"
    if kind == "list_type":
        return "expected a list (lines starting with '- ')"
    return msg


def _problems_from_validation(exc: ValidationError, doc: _Document) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        path = _data_path(err["loc"], doc.data)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = path + ("type",)
        problems.append(ConfigProblem(doc.file, doc.line(path), key_path(path), _message(err, path)))
    return problems


def parse_config(text: str, *, file: str = "<string>", base_dir: Path | str | None = None,
                 environ: Mapping[str, str] | None = None) -> Config:
    """Validate configuration ``text`` (the body of a file named ``file``, used in messages).
    Raises :class:`ConfigError` listing every problem."""
    doc = _Document(file, text, os.environ if environ is None else environ)
    if doc.problems:
        raise ConfigError.from_problems(doc.problems)
    if not isinstance(doc.data, dict):
        raise ConfigError.from_problems([ConfigProblem(
            file, doc.line(()), "", "the file must be a mapping with keys such as state, registries, "
                                    "notifications, delivery")])
    try:
        return Config.model_validate(doc.data, context={"base_dir": Path(base_dir or Path.cwd())})
    except ValidationError as e:
        raise ConfigError.from_problems(_problems_from_validation(e, doc)) from None


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the configuration file at ``path``.

    ``environ`` defaults to ``os.environ``. Raises :class:`ConfigError` (one line per problem,
    each naming file, line and key path)."""
    file = str(path)
    p = Path(os.path.expanduser(file))
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError.from_problems([ConfigProblem(file, 1, "", "file not found; pass the path of "
                                                       "your vulnwatch.yaml (see examples/)")]) from None
    except IsADirectoryError:
        raise ConfigError.from_problems([ConfigProblem(file, 1, "", "is a directory, not a YAML file")]) from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError.from_problems([ConfigProblem(file, 1, "", f"cannot read: {reason}")]) from None
    cfg = parse_config(text, file=file, base_dir=p.resolve().parent, environ=environ)
    cfg._source = p.resolve()
    return cfg


# --------------------------------------------------------------------------------------------
# summary for `vulnwatch check-config`
# --------------------------------------------------------------------------------------------

def _selector_summary(sel: RepositorySelector) -> str:
    tags = "+" + ",".join(sel.tags.include)
    if sel.tags.exclude:
        tags += " -" + ",".join(sel.tags.exclude)
    out = f"{sel.name} (tags {tags}"
    if sel.newest:
        out += f", newest {sel.newest}"
    if sel.untagged:
        out += ", untagged too"
    return out + ")"


def config_summary(cfg: Config) -> list[str]:
    """Human-readable lines describing ``cfg``, secrets left out (for ``vulnwatch check-config``)."""
    lines = []
    if cfg.source is not None:
        lines.append(f"config: {cfg.source}")
    lines.append(f"state: {cfg.state.display_url()}")
    if not cfg.registries:
        lines.append("registries: none")
    for r in cfg.registries:
        if isinstance(r, EcrRegistryConfig):
            where = f"region {r.region or '(AWS default)'}"
            if r.registry_id:
                where += f", account {r.registry_id}"
            if r.endpoint_url:
                where += f", endpoint {r.endpoint_url}"
            scan = f"scan {r.scan.mode}"
        elif isinstance(r, OciRegistryConfig):
            where = r.url + (" (insecure)" if r.insecure else "")
            if r.username:
                where += f", user {r.username}"
            where += f", platform {r.platform}"
            scan = "scan builtin"
        else:
            where = str(r.path)
            scan = "scan builtin"
        lines.append(f"registry {r.name} ({r.type}): {where}; {scan} every {format_duration(r.scan.interval)}, "
                     f"wait up to {format_duration(r.scan.wait_timeout)}; max {r.max_concurrency} concurrent")
        sels = "; ".join(_selector_summary(s) for s in r.selectors())
        lines.append(f"  repositories: {sels}")
        if r.watch_list:
            lines.append(f"  watch list: {r.watch_list}")
    if not cfg.notifications:
        lines.append("notifications: none")
    for s in cfg.notifications:
        text = (f"notification {s.name} ({s.type}, {s.mode}): min severity {s.min_severity.name}, "
                f"{'fixable only' if s.fixable_only else 'fixable or not'}, repositories "
                f"{', '.join(s.repositories) or 'all'}, timeout {format_duration(s.timeout)}")
        if isinstance(s, WebhookSinkConfig):
            text += f", {'signed' if s.secret else 'unsigned'}"
            if s.headers:
                text += f", headers {', '.join(sorted(s.headers))}"
        lines.append(text)
    d = cfg.delivery
    lines.append(f"delivery: up to {d.max_attempts} attempts, backoff {format_duration(d.backoff_base)} "
                 f"doubling to {format_duration(d.backoff_max)}")
    return lines
