"""Version 8: ``snapshots.suppressed``, the findings an ignore rule or VEX statement suppresses.

They are kept with the snapshot (JSON, like ``findings``, each with its ``suppression``) so
that a finding coming back when its rule expires or is removed is reported as such, and
``findings`` (what the dashboard and summaries read) holds only the findings that count.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE snapshots ADD COLUMN suppressed TEXT"))


MIGRATION = Migration(8, "snapshots.suppressed: findings suppressed by ignore rules and VEX", _apply)
