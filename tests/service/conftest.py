"""``store_url``: SQLite and a real PostgreSQL, as in tests/store."""

from tests.store.conftest import store_url  # noqa: F401  (a fixture)
