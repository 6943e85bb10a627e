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
