"""``state``: where vulnwatch keeps what it has seen (SQLite path or a database URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationInfo, field_validator, model_validator

from .problems import loc_error
from .types import Model, resolve_path

DEFAULT_STATE_PATH = "~/.local/state/vulnwatch/vulnwatch.db"
"""The SQLite file used when neither ``state.path`` nor ``state.url`` is given."""


class StateConfig(Model):
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
        return None if value is None else resolve_path(value, info)

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
            raise loc_error(("url",), "give either state.path (SQLite) or state.url, not both")
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

