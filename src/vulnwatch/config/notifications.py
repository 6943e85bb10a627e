"""``notifications[]``: the sinks (Slack, Teams, CloudEvents webhook, email, console) and what each wants."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, Union

from pydantic import Field, SecretStr, field_validator

from ..model import Severity
from .types import Duration, Model, Name, SecretHttpUrl, SeverityName, SinkRepositoryGlob

__all__ = ["ConsoleSinkConfig", "SinkConfig", "SlackSinkConfig", "TeamsSinkConfig", "WebhookSinkConfig"]


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
    repositories: list[SinkRepositoryGlob] = Field(default_factory=list)
    """Globs over ``<registry name>/<repository>`` (e.g. ``prod/*``); empty = every repository."""
    mode: Literal["per_image", "digest"] = "per_image"
    """``per_image``: one message per event; ``digest``: one message per run."""
    kinds: list[Literal["new_image", "findings_changed", "rebuild"]] = Field(
        default_factory=lambda: ["new_image", "findings_changed", "rebuild"])
    """Which changes to send: a new image, findings that moved on a known image, a rebuild
    (a tag moved to a new digest)."""
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


SinkConfig = Annotated[Union[SlackSinkConfig, TeamsSinkConfig, WebhookSinkConfig, ConsoleSinkConfig],
                      Field(discriminator="type")]
"""One ``notifications[]`` entry, by ``type``: ``slack``, ``teams``, ``webhook`` or ``console``."""

