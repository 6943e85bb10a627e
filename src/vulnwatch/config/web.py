"""``web``: the dashboard and HTTP API of ``vulnwatch serve``.

Reading is open unless ``token`` or ``username``/``password`` is set; writing (re-queueing a dead
letter) is off unless ``write_token`` is set. Every secret here is a ``SecretStr``: never
printed, and ``${VAR}`` keeps it out of the file.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from .problems import loc_error
from .types import Model

__all__ = ["WebConfig"]


class WebConfig(Model):
    """The dashboard and HTTP API (``vulnwatch serve``)."""

    host: str = "127.0.0.1"
    """Address to listen on (``--host`` overrides it). Anything but loopback exposes the
    dashboard to the network: set ``token`` or ``username``/``password`` then."""
    port: int = Field(default=8080, ge=1, le=65535)
    """TCP port (``--port`` overrides it)."""
    token: SecretStr | None = None
    """When set, every route but ``/healthz`` and ``/readyz`` needs it: as
    ``Authorization: Bearer <token>``, or as the password of HTTP basic auth (any user name,
    which is how a browser sends it)."""
    username: str | None = None
    """With ``password``: HTTP basic auth for every route but ``/healthz`` and ``/readyz``."""
    password: SecretStr | None = None
    """Password of ``username``."""
    write_token: SecretStr | None = None
    """Enables the write actions (re-queue and deliver a dead letter). The API takes it in the
    ``X-Write-Token`` header; the dashboard asks for it once and keeps a signed cookie. Unset:
    the server is read-only."""
    secret: SecretStr | None = None
    """Key that signs the CSRF tokens and the write cookie; a random one per process when unset
    (forms and write sessions then end with a restart)."""
    page_size: int = Field(default=50, ge=5, le=500)
    """Images per page of the fleet overview."""
    trusted_hosts: list[str] = Field(default_factory=list)
    """``Host`` header values accepted (e.g. ``vulnwatch.example.com``); empty accepts any.
    Protects against DNS rebinding when the dashboard is open without auth."""

    @model_validator(mode="after")
    def _pairs(self) -> "WebConfig":
        if (self.username is None) != (self.password is None):
            raise loc_error(("password" if self.username else "username",),
                            "give both web.username and web.password for basic auth, or neither")
        for name in ("token", "password", "write_token", "secret"):
            value = getattr(self, name)
            if value is not None and len(value.get_secret_value()) < 8:
                raise loc_error((name,), f"web.{name} is too short: use at least 8 characters")
        return self

    @property
    def auth_required(self) -> bool:
        """True when reading needs a token or a password."""
        return self.token is not None or self.username is not None
