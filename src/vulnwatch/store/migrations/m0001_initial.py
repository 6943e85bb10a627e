"""Version 1: images, current snapshots, scan history, tag history, events and the outbox.

The tables are defined here as they were at version 1 (a frozen copy, independent of
:mod:`vulnwatch.store.sql`, which describes the current schema). JSON is kept in TEXT
columns so that SQLite and PostgreSQL store it the same way.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Column, DateTime, ForeignKey, ForeignKeyConstraint, Index,
                        Integer, MetaData, PrimaryKeyConstraint, String, Table, Text,
                        UniqueConstraint)
from sqlalchemy.engine import Connection

from . import Migration

_ID = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite


def _tables() -> MetaData:
    md = MetaData()
    Table(
        "images", md,
        Column("registry", String(255), nullable=False),
        Column("repository", String(512), nullable=False),
        Column("digest", String(200), nullable=False),
        Column("tags", Text, nullable=False, default="[]"),
        Column("pushed_at", DateTime(timezone=True)),
        Column("media_type", String(255)),
        Column("size_bytes", BigInteger),
        Column("last_error", Text),
        Column("last_error_at", DateTime(timezone=True)),
        Column("last_error_scanner", String(100)),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("registry", "repository", "digest", name="pk_images"),
    )
    Table(
        "snapshots", md,
        Column("registry", String(255), nullable=False),
        Column("repository", String(512), nullable=False),
        Column("digest", String(200), nullable=False),
        Column("scanner", String(100), nullable=False),
        Column("scanned_at", DateTime(timezone=True), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("vulnerability_source_updated_at", DateTime(timezone=True)),
        Column("state", String(32), nullable=False),
        Column("findings", Text, nullable=False),
        Column("packages", Text, nullable=False),
        Column("distro", String(100)),
        Column("notes", Text, nullable=False),
        Column("counts", Text, nullable=False),
        PrimaryKeyConstraint("registry", "repository", "digest", name="pk_snapshots"),
        ForeignKeyConstraint(["registry", "repository", "digest"],
                             ["images.registry", "images.repository", "images.digest"],
                             name="fk_snapshots_images"),
    )
    Table(
        "scan_history", md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("registry", String(255), nullable=False),
        Column("repository", String(512), nullable=False),
        Column("digest", String(200), nullable=False),
        Column("tags", Text, nullable=False),
        Column("scanner", String(100), nullable=False),
        Column("scanned_at", DateTime(timezone=True), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("state", String(32), nullable=False),
        Column("counts", Text, nullable=False),
        Column("finding_keys", Text, nullable=False),
        Index("ix_scan_history_image", "registry", "repository", "digest", "scanned_at"),
        Index("ix_scan_history_repository", "registry", "repository", "scanned_at"),
    )
    Table(
        "tag_history", md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("registry", String(255), nullable=False),
        Column("repository", String(512), nullable=False),
        Column("tag", String(255), nullable=False),
        Column("digest", String(200), nullable=False),
        Column("first_seen", DateTime(timezone=True), nullable=False),
        Column("last_seen", DateTime(timezone=True), nullable=False),
        Index("ix_tag_history_tag", "registry", "repository", "tag", "last_seen"),
    )
    Table(
        "events", md,
        Column("id", String(64), primary_key=True),
        Column("kind", String(32), nullable=False),
        Column("registry", String(255), nullable=False),
        Column("repository", String(512), nullable=False),
        Column("digest", String(200), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "deliveries", md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("event_id", String(64), ForeignKey("events.id", name="fk_deliveries_events"),
               nullable=False),
        Column("sink", String(255), nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("last_error", Text),
        Column("last_attempt_at", DateTime(timezone=True)),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("delivered_at", DateTime(timezone=True)),
        UniqueConstraint("event_id", "sink", name="uq_deliveries_event_sink"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )
    return md


def _apply(conn: Connection) -> None:
    _tables().create_all(conn)


MIGRATION = Migration(1, "images, snapshots, scan and tag history, events, deliveries", _apply)
