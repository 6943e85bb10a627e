"""Version 11: inventories may be stored compressed (``snapshots.packages``).

An inventory's JSON text (compact rows, as since version 3) is written zstd-compressed and in
base64 behind the prefix ``zstd:`` (see ``vulnwatch.store.sql._pack``); the column stays text.
Existing rows are left as they are (both forms are read). No table changes on SQLite; this
version is recorded so that an older vulnwatch, which cannot read the new form, refuses the
store instead of failing on its inventories. On PostgreSQL the column's storage becomes
``EXTERNAL``: the text is compressed already, so TOAST's own compression is not tried on it.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE snapshots ALTER COLUMN packages SET STORAGE EXTERNAL"))


MIGRATION = Migration(11, "inventories stored zstd-compressed (snapshots.packages)", _apply)
