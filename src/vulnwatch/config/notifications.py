"""``notifications[]``: the sinks (Slack, Teams, CloudEvents webhook, email, console) and what each wants."""

from __future__ import annotations

import email.utils
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator, model_validator

from ..model import Severity
from .problems import loc_error
from .types import Duration, Model, Name, SecretHttpUrl, SeverityName, SinkRepositoryGlob, resolve_path

__all__ = ["ConsoleSinkConfig", "EmailSinkConfig", "SinkConfig", "SlackSinkConfig", "TeamsSinkConfig", "WebhookSinkConfig"]


# The receivers' limits, as vulnwatch.notify._payload.DEFAULT_MAX_PAYLOAD_BYTES has them (a test
# keeps the two equal; the config does not import the notifiers, which load httpx).
MIN_PAYLOAD_BYTES = 4096
DEFAULT_MAX_PAYLOAD_BYTES = {"webhook": 256 * 1024, "slack": 12_000, "teams": 27 * 1024, "email": 1024 * 1024}


class _RoutedSink(Model):
    name: Name
    """Unique name; the outbox refers to the sink by it (never by URL)."""
    min_severity: SeverityName = Severity.UNKNOWN
    """Only findings rated at least this (UNKNOWN, NEGLIGIBLE, LOW, MEDIUM, HIGH, CRITICAL)."""
    fixable_only: bool = False
    """Only findings with a known fix."""
    kev_only: bool = False
    """Only findings listed in CISA's Known Exploited Vulnerabilities catalog."""
    min_epss: float | None = Field(default=None, ge=0.0, le=1.0)
    """Only findings whose EPSS score is at least this (0-1; a finding without one is left out)."""
    repositories: list[SinkRepositoryGlob] = Field(default_factory=list)
    """Globs over ``<registry name>/<repository>`` (e.g. ``prod/*``); empty = every repository."""
    mode: Literal["per_image", "digest"] = "per_image"
    """``per_image``: one message per event; ``digest``: one message per run."""
    kinds: list[Literal["new_image", "findings_changed", "rebuild", "coverage"]] = Field(
        default_factory=lambda: ["new_image", "findings_changed", "rebuild", "coverage"])
    """Which changes to send: a new image, findings that moved on a known image, a rebuild
    (a tag moved to a new digest), the image's coverage changed (advisory data for an
    ecosystem it needs appeared or went missing, packages became (un)judged)."""
    timeout: Duration = timedelta(seconds=10)
    """Network timeout of one delivery attempt (HTTP request, SMTP conversation step)."""


class _SinkBase(_RoutedSink):
    url: SecretHttpUrl
    """Where to POST (a secret: webhook URLs carry tokens; use ``${VAR}``)."""
    verify_tls: bool = True
    """Check the receiver's TLS certificate; ``false`` only for a test receiver."""


class ConsoleSinkConfig(_RoutedSink):
    """Prints each notification to standard output (what the embedded example uses)."""

    type: Literal["console"]


class SlackSinkConfig(_SinkBase):
    """A Slack incoming webhook (Block Kit message)."""

    type: Literal["slack"]
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES["slack"], ge=MIN_PAYLOAD_BYTES)
    """Largest message posted, in bytes of JSON; longer lists end with "…and N more"."""
    max_listed: int = Field(default=10, ge=1, le=100)
    """Findings listed per list (new, fixed, changed) and image before "…and N more"."""


class TeamsSinkConfig(_SinkBase):
    """A Microsoft Teams Workflows webhook ("Post to a channel when a webhook request is
    received"; the retired Office 365 connector URLs work too): an Adaptive Card."""

    type: Literal["teams"]
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES["teams"], ge=MIN_PAYLOAD_BYTES)
    """Largest request, in bytes of JSON (Teams refuses messages over 28 KB); longer lists end
    with "…and N more"."""
    max_listed: int = Field(default=10, ge=1, le=100)
    """Findings listed per list (new, fixed, changed) and image before "…and N more"."""


class WebhookSinkConfig(_SinkBase):
    """A generic HTTPS webhook receiving CloudEvents 1.0 JSON."""

    type: Literal["webhook"]
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES["webhook"], ge=MIN_PAYLOAD_BYTES)
    """Largest request body, in bytes; a larger message is sent as several CloudEvents, "part
    n of m" (extension attributes ``groupid``, ``part``, ``parts``)."""
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


def _address(value: str) -> str:
    """An email address, bare (``sec@example.com``) or with a name (``Security <sec@example.com>``)."""
    name, addr = email.utils.parseaddr(value)
    if not re.fullmatch(r"[^@\s<>,;\\\"]+@[A-Za-z0-9.-]+\.?[A-Za-z0-9-]*", addr or "") or "\n" in value or "\r" in value:
        raise ValueError(f"bad email address {value!r}: write user@example.com or Name <user@example.com>")
    return value


EmailAddress = Annotated[str, AfterValidator(_address)]
SMTP_PORTS = {"starttls": 587, "implicit": 465, "none": 25}
"""The usual SMTP port for each ``tls`` mode (submission with STARTTLS, SMTPS, plain SMTP)."""


class EmailSinkConfig(_RoutedSink):
    """Email over SMTP: a multipart (plain text + HTML) message per event, or per digest."""

    type: Literal["email"]
    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    """SMTP server host name (or IP address)."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """SMTP port; unset = 587 for ``starttls``, 465 for ``implicit``, 25 for ``none``."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """``starttls``: plain connection upgraded with STARTTLS (refused if the server does not
    offer it); ``implicit``: TLS from the first byte (SMTPS); ``none``: no TLS at all, only
    with ``insecure: true``."""
    insecure: bool = False
    """Must be ``true`` for ``tls: none`` (messages and the password travel in clear)."""
    username: str | None = None
    """SMTP AUTH user name; unset = no authentication."""
    password: SecretStr | None = None
    """SMTP AUTH password (a secret: use ``${VAR}``)."""
    from_: EmailAddress = Field(alias="from")
    """Sender address (``From:`` and the envelope sender), e.g. ``vulnwatch <vulnwatch@example.com>``."""
    to: list[EmailAddress] = Field(min_length=1)
    """Recipients; each gets the message (one SMTP transaction, every address in ``To:``)."""
    ca_file: Path | None = None
    """PEM file of the CA certificates to trust for the server's certificate, instead of the
    system's (relative to the config file)."""
    verify_tls: bool = True
    """Check the server's certificate and host name; ``false`` only for a test server."""
    max_listed: int = Field(default=25, ge=1, le=500)
    """Findings listed per list (new, fixed, changed) and image before "…and N more"."""
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES["email"], ge=16 * 1024)
    """Largest message, in bytes as sent (headers and both parts); longer lists are cut."""

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _tls_and_auth(self) -> "EmailSinkConfig":
        if self.tls == "none" and not self.insecure:
            raise loc_error(("tls",), "tls: none sends mail (and any password) in clear: set insecure: true "
                            "to allow it, or use starttls / implicit")
        if self.password is not None and not self.username:
            raise loc_error(("password",), "password given without username")
        if self.username and self.password is None:
            raise loc_error(("username",), "username given without password (use password: ${VAR})")
        return self

    @property
    def smtp_port(self) -> int:
        """``port``, or the usual one for ``tls``."""
        return self.port or SMTP_PORTS[self.tls]


SinkConfig = Annotated[Union[SlackSinkConfig, TeamsSinkConfig, WebhookSinkConfig, EmailSinkConfig,
                             ConsoleSinkConfig], Field(discriminator="type")]
"""One ``notifications[]`` entry, by ``type``: ``slack``, ``teams``, ``webhook``, ``email`` or ``console``."""

