"""Version 4: indexes for the dashboard's reads (``vulnwatch serve``).

* ``events (registry, repository, digest, created_at)``: an image's timeline, a repository's
  events (mean time to remediate);
* ``events (created_at)``: recent events;
* ``tag_history (registry, repository, digest)``: whether a digest is superseded (every tag of
  it moved on).

Indexes only: no data changes, nothing to convert.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    conn.execute(text("CREATE INDEX ix_events_image ON events (registry, repository, digest, created_at)"))
    conn.execute(text("CREATE INDEX ix_events_created ON events (created_at)"))
    conn.execute(text("CREATE INDEX ix_tag_history_digest ON tag_history (registry, repository, digest)"))


MIGRATION = Migration(4, "indexes for the dashboard: events by image and time, tag history by digest", _apply)
