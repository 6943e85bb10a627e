"""Store fixtures: every store test runs against SQLite (a temp file) and a real PostgreSQL."""

from __future__ import annotations

import pytest

# pg_cluster (one throwaway PostgreSQL server per session) comes from tests/conftest.py

@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A URL of an empty database: a new SQLite file, or a new schema on the test server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/vulnwatch.db"
    return request.getfixturevalue("pg_cluster").create_schema()


@pytest.fixture
def store(store_url):
    from vulnwatch.store.sql import SQLStore

    s = SQLStore(store_url)
    yield s
    s.close()
