"""Fixtures for the config and targets tests: config files written to a temp dir."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vulnwatch.config import Config, ConfigError, load_config


@pytest.fixture
def write_config(tmp_path):
    """Write YAML (dedented) to ``vulnwatch.yaml`` in a temp dir; return its path."""

    def write(text: str, name: str = "vulnwatch.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write_config):
    """Write YAML and load it with the given environment (default: empty)."""

    def _load(text: str, environ: dict[str, str] | None = None) -> Config:
        return load_config(write_config(text), environ=environ or {})

    return _load


@pytest.fixture
def config_error(write_config):
    """Write YAML, expect ConfigError, return it."""

    def _err(text: str, environ: dict[str, str] | None = None) -> ConfigError:
        path = write_config(text)
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=environ or {})
        return info.value

    return _err
