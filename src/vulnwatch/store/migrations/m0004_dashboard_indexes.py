"""Version 4: indexes for the dashboard's reads (``vulnwatch serve``).

* ``events (registry, repository, digest, created_at)``: an image's timeline, a repository's
  events (mean time to remediate);
* ``events (created_at)``: recent events;
* ``tag_history (registry, repository, digest)``: whether a digest is superseded (every tag of
  it moved on).

* the view ``snapshot_summary``: the small columns of ``snapshots`` (no findings, no packages).
  On SQLite it reads them from the covering index ``ix_snapshot_summary`` (``INDEXED BY``): a
  row of ``snapshots`` keeps ``counts`` and ``notes`` after the large findings and packages, so
  reading them from the table walks each row's overflow pages (a 10,000-image overview went
  from about 120 ms to 15 ms). On PostgreSQL the large values are TOASTed and the view is a
  plain projection.

No data changes, nothing to convert. A later migration that rebuilds ``snapshots`` must drop
and recreate the view.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    conn.execute(text("CREATE INDEX ix_events_image ON events (registry, repository, digest, created_at)"))
    conn.execute(text("CREATE INDEX ix_events_created ON events (created_at)"))
    conn.execute(text("CREATE INDEX ix_tag_history_digest ON tag_history (registry, repository, digest)"))
    columns = "registry, repository, digest, scanner, scanned_at, recorded_at, state, counts, notes"
    hint = ""
    if conn.dialect.name == "sqlite":
        conn.execute(text(f"CREATE INDEX ix_snapshot_summary ON snapshots ({columns})"))
        hint = " INDEXED BY ix_snapshot_summary"
    conn.execute(text(f"CREATE VIEW snapshot_summary AS SELECT {columns} FROM snapshots{hint}"))


MIGRATION = Migration(4, "for the dashboard: events and tag history indexes, snapshot_summary view", _apply)
