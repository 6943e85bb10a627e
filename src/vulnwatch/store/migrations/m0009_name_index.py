"""Version 9: the package index (which stored inventories hold a given package).

* table ``fleet_packages``: ``id`` -> ``name`` (folded), ``distro``, ``row`` (JSON: the fields
  matching depends on) and ``signature`` (findings signature when last re-matched; NULL: not
  known), one row per distinct package of the fleet (see :mod:`vulnwatch.store._name_index`);
* table ``name_index_chunks``: ``id`` -> ``keys``, the JSON list of a chunk's image keys;
* table ``name_postings``: (``package``, ``chunk``) -> ``members``, the positions (in the chunk's
  list, comma-separated) of the images holding the package;
* ``snapshots.names_chunk``: the index chunk the snapshot's inventory is in; NULL: not yet.

Nothing is converted here: existing snapshots have ``names_chunk`` NULL, so the first re-match
that uses the index indexes them (streamed, a chunk per transaction).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text, text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    md = MetaData()
    fp = Table("fleet_packages", md,
               Column("id", String(32), nullable=False),
               Column("name", String(255), nullable=False),
               Column("distro", String(255)),
               Column("row", Text, nullable=False),
               Column("signature", String(64)),
               PrimaryKeyConstraint("id", name="pk_fleet_packages"))
    Index("ix_fleet_packages_name", fp.c.name)
    Table("name_index_chunks", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("keys", Text, nullable=False))
    Table("name_postings", md,
          Column("package", String(32), nullable=False),
          Column("chunk", Integer, nullable=False),
          Column("members", Text, nullable=False),
          PrimaryKeyConstraint("package", "chunk", name="pk_name_postings"))
    md.create_all(conn)
    conn.execute(text("ALTER TABLE snapshots ADD COLUMN names_chunk INTEGER"))


MIGRATION = Migration(9, "package index: which inventories hold a given package", _apply)
