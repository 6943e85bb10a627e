"""The CLI as users run it: ``vulnwatch`` through typer's runner (the real app, real servers)."""

from __future__ import annotations

import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR


@dataclass
class Home:
    """A user's directory: config file, state, caches, the example image archive."""

    path: Path
    archive: Path

    def config(self, body: str = "", *, registries: str | None = None, notifications: str | None = None,
               state: str | None = None, name: str = "vulnwatch.yaml") -> Path:
        """Write a config (``body`` appended; registries default to the example archive)."""
        if registries is None:
            registries = f"  - {{name: local, type: archive, path: {self.archive}}}"
        if notifications is None:
            notifications = "  - {name: out, type: console}"
        text = (f"state: {{path: {state or self.path / 'state.db'}}}\n"
                f"vulndb:\n  path: {self.path / 'osv.db'}\n  imports: [{OSV_DIR / 'Debian'}, {OSV_DIR / 'PyPI'}]\n"
                f"registries:\n{registries}\nnotifications:\n{notifications}\n" + textwrap.dedent(body))
        cfg = self.path / name
        cfg.write_text(text)
        return cfg


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    for k in list(os.environ):
        if k.startswith("VULNWATCH_") and k != "VULNWATCH_TEST_IMAGE_CACHE":
            monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.chdir(tmp_path)
    archive = tmp_path / "webapp.tar"
    shutil.copy(IMAGE_ARCHIVE, archive)
    return Home(tmp_path, archive)


def vw(*args: str, env: dict[str, str | None] | None = None):
    """``vulnwatch ARGS`` in this process; the result has ``exit_code``, ``stdout``, ``stderr``."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
