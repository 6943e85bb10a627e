"""Session-wide real servers. Each test gets them clean."""

from __future__ import annotations

import os

import pytest

import json
import subprocess
from pathlib import Path

from tests.support.images import ImageLayout, build_app_image, build_debian_image, default_cache_dir
from tests.support.postgres import PostgresCluster, PostgresUnavailable
from tests.support.servers import MotoServer, start_receiver


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server, monkeypatch):
    """A reset moto server plus fake credentials in the environment for boto3."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


@pytest.fixture
def receiver():
    rec = start_receiver()
    yield rec
    rec.close()


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL server per test session (per xdist worker)."""
    try:
        cluster = PostgresCluster.start()
    except PostgresUnavailable as e:
        pytest.skip(f"PostgreSQL tests skipped: {e}")
    yield cluster
    cluster.stop()


# -- real images, built once per session (see tests/support/images.py), and syft's view of them --

@pytest.fixture(scope="session")
def image_cache(tmp_path_factory) -> Path:
    return default_cache_dir(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def app_image(image_cache) -> ImageLayout:
    """bookworm + Python layer + npm layer + whiteout layer."""
    return build_app_image(image_cache, "bookworm", cache_dir=image_cache)


@pytest.fixture(scope="session")
def bullseye_image(image_cache) -> ImageLayout:
    return build_debian_image(image_cache, "bullseye", cache_dir=image_cache)


def run_syft(layout: ImageLayout) -> dict:
    """syft's JSON inventory of an OCI layout (cached next to the layout)."""
    out = layout.path.parent / "syft.json"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")   # one per xdist worker: they may race
        subprocess.run(["syft", f"oci-dir:{layout.path}", "-q", "-o", f"json={tmp}"], check=True,
                       capture_output=True, timeout=600,
                       env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"})
        tmp.rename(out)
    return json.loads(out.read_text())


@pytest.fixture(scope="session")
def syft_of():
    return run_syft


# ---------------------------------------------------------------- hypothesis (property tests)
# "ci" (the default): few examples, no deadline (2 shared cores make timings meaningless),
# derandomized so a run is reproducible and never fails on a new find by chance; the whole
# property suite stays under ~30 s on one core. "dev": HYPOTHESIS_PROFILE=dev, 20x the
# examples, random, for hunting. Found examples are kept under .pytest_cache (ignored by git).
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

_HYPOTHESIS_DB = DirectoryBasedExampleDatabase(".pytest_cache/hypothesis")
settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True, database=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=1200, deadline=None, database=_HYPOTHESIS_DB,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- ECR on the session moto_server (helpers in tests/support/ecr.py) --------------------------

@pytest.fixture
def ecr(moto):
    import boto3

    return boto3.client("ecr", region_name="us-east-1", endpoint_url=moto.url)


@pytest.fixture
def pusher(ecr):
    from tests.support.ecr import Pusher

    return Pusher(ecr)


@pytest.fixture
def proxy(moto):
    from tests.support.ecr_proxy import ECRProxy

    p = ECRProxy(moto.url, page_size=100)
    yield p
    p.close()


# -- configuration files written to a temp dir -------------------------------------------------

@pytest.fixture
def write_config(tmp_path):
    """Write YAML (dedented) to ``vulnwatch.yaml`` in a temp dir; return its path."""

    import textwrap

    def write(text: str, name: str = "vulnwatch.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write_config):
    """Write YAML and load it with the given environment (default: empty)."""

    def _load(text: str, environ: dict[str, str] | None = None):
        from vulnwatch.config import load_config

        return load_config(write_config(text), environ=environ or {})

    return _load


@pytest.fixture
def config_error(write_config):
    """Write YAML, expect ConfigError, return it."""

    def _err(text: str, environ: dict[str, str] | None = None):
        from vulnwatch.config import ConfigError, load_config

        path = write_config(text)
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=environ or {})
        return info.value

    return _err


# -- a store with an outbox, and a receiver that comes up late (notify and delivery tests) --------

@pytest.fixture
def store(tmp_path):
    """The real SQLStore on a fresh SQLite file."""
    from vulnwatch.store.sql import SQLStore

    s = SQLStore.from_path(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def late_receiver():
    from tests.support.events import LateReceiver

    lr = LateReceiver()
    yield lr
    lr.close()
