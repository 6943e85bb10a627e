"""Version 5: leases (one cycle at a time, workers' claims, fencing) and digest batches.

* table ``leases``: one row per lease name (``cycle``, ``dispatch``, ``image:<registry>/<repo>@<digest>``):
  who holds it, until when, and its fencing ``token`` (incremented on every takeover, never
  reset); ``done_at`` records when a claimed image's work was finished (a worker's round);
* ``deliveries.batch_id``: the digest batch a delivery was put in before it was first sent, so
  that a retry (after a crash) re-sends exactly that batch under the same id;
* index ``deliveries (sink, status)``: the outbox's per-sink, per-image order check.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, MetaData, PrimaryKeyConstraint, String, Table, text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    md = MetaData()
    Table(
        "leases", md,
        Column("name", String(700), nullable=False),
        Column("holder", String(255), nullable=False),
        Column("token", BigInteger, nullable=False),
        Column("acquired_at", DateTime(timezone=True)),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("done_at", DateTime(timezone=True)),
        PrimaryKeyConstraint("name", name="pk_leases"),
    )
    md.create_all(conn)
    conn.execute(text("ALTER TABLE deliveries ADD COLUMN batch_id VARCHAR(64)"))
    conn.execute(text("CREATE INDEX ix_deliveries_sink_status ON deliveries (sink, status)"))


MIGRATION = Migration(5, "leases with fencing tokens; deliveries.batch_id for digest batches", _apply)
