"""Version 2: ``images.last_checked_at``, when a cycle last confirmed the image's snapshot.

A cycle that finds an image unchanged no longer rewrites its snapshot (that was one write
transaction per image per cycle); it only stamps this column, for all such images at once.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    kind = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text(f"ALTER TABLE images ADD COLUMN last_checked_at {kind}"))


MIGRATION = Migration(2, "images.last_checked_at: when a cycle last confirmed the snapshot", _apply)
