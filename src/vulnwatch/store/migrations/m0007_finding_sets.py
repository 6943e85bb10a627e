"""Version 7: findings stored per distinct package (``finding_sets``), not copied per image.

* table ``finding_sets``: ``id`` (the hash of the set's JSON text) -> ``findings``, the JSON
  array of one package's findings (see :mod:`vulnwatch.store._finding_sets`);
* ``snapshots.finding_sets``: the ids of the snapshot's sets, in order (its findings are theirs;
  ``findings`` then holds ``[]``). NULL: the findings are inline in ``findings`` (as before);
* ``scan_history.finding_sets``: the same for a history entry (``finding_keys`` then ``[]``);
  entries written before keep their ``finding_keys``;
* table ``store_meta`` (name -> value): markers a store keeps for the pipeline, e.g. the
  advisory data version the stored findings were last re-matched against.

Existing snapshots are converted here, a few hundred rows per statement (streamed by key, so
a large store is never held in memory): their inline findings become sets.
"""

from __future__ import annotations

import json

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, Text, bindparam, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from .._finding_sets import split_dicts
from . import Migration

_PAGE = 200


def _apply(conn: Connection) -> None:
    md = MetaData()
    sets = Table(
        "finding_sets", md,
        Column("id", String(32), nullable=False),
        Column("findings", Text, nullable=False),
        PrimaryKeyConstraint("id", name="pk_finding_sets"),
    )
    Table(
        "store_meta", md,
        Column("name", String(255), nullable=False),
        Column("value", Text, nullable=False),
        PrimaryKeyConstraint("name", name="pk_store_meta"),
    )
    md.create_all(conn)
    conn.execute(text("ALTER TABLE snapshots ADD COLUMN finding_sets TEXT"))
    conn.execute(text("ALTER TABLE scan_history ADD COLUMN finding_sets TEXT"))
    if conn.dialect.name == "sqlite":
        insert = sqlite_insert(sets)
    else:       # imported here: the PostgreSQL dialect costs every SQLite process ~30 ms to import
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        insert = pg_insert(sets)
    insert = insert.on_conflict_do_nothing(index_elements=["id"])
    convert = text("UPDATE snapshots SET findings = '[]', finding_sets = :refs "
                   "WHERE registry = :r AND repository = :p AND digest = :d")
    after = ("", "", "")
    while True:    # keyset pagination: each page one statement, nothing held but the page
        rows = conn.execute(text(
            "SELECT registry, repository, digest, findings FROM snapshots "
            "WHERE (registry > :r) OR (registry = :r AND repository > :p) "
            "OR (registry = :r AND repository = :p AND digest > :d) "
            "ORDER BY registry, repository, digest LIMIT :n"),
            {"r": after[0], "p": after[1], "d": after[2], "n": _PAGE}).all()
        if not rows:
            break
        after = (rows[-1][0], rows[-1][1], rows[-1][2])
        found: dict[str, str] = {}
        updates = []
        for registry, repository, digest, findings in rows:
            parts = split_dicts(json.loads(findings or "[]"))
            found.update(parts)
            updates.append({"r": registry, "p": repository, "d": digest,
                            "refs": json.dumps([sid for sid, _ in parts], separators=(",", ":"))})
        if found:
            conn.execute(insert, [{"id": k, "findings": v} for k, v in found.items()])
        conn.execute(convert, updates)


MIGRATION = Migration(7, "finding_sets: findings stored once per distinct package, snapshots refer to them; store_meta", _apply)
