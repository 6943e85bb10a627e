"""Session-wide real servers. Each test gets them clean."""

from __future__ import annotations

import os

import pytest

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
