"""Fixtures: a store with an outbox and a receiver that comes up late (helpers in tests/support/events.py)."""

from __future__ import annotations

import pytest

from tests.support.events import LateReceiver
from vulnwatch.store.sql import SQLStore


@pytest.fixture
def store(tmp_path):
    """The real SQLStore on a fresh SQLite file."""
    s = SQLStore.from_path(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def late_receiver():
    lr = LateReceiver()
    yield lr
    lr.close()
