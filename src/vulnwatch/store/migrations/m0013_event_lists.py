"""Version 13: the finding lists inside events stored per distinct package, not copied per event.

* table ``event_lists``: ``id`` (the hash of the list's JSON text) -> ``items``, the JSON array
  of one package's findings added or fixed (or of its changed findings) inside events (see
  :func:`vulnwatch.store._finding_sets.event_parts`);
* ``events.body``: ``added``, ``fixed`` and ``changed`` give way to ``"lists": {"added": [ids],
  "fixed": [ids], "changed": [ids]}``; the rest of the body is unchanged.

Existing events are converted here, a few hundred rows per statement (keyset pagination by id,
so a large outbox is never held in memory). Bodies that are not JSON objects are left as they
are (reading them reports the event as unreadable, as before).
"""

from __future__ import annotations

import json

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, Text, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from .._finding_sets import split_event_lists
from . import Migration

_PAGE = 200


def _apply(conn: Connection) -> None:
    md = MetaData()
    lists = Table(
        "event_lists", md,
        Column("id", String(32), nullable=False),
        Column("items", Text, nullable=False),
        PrimaryKeyConstraint("id", name="pk_event_lists"),
    )
    md.create_all(conn)
    if conn.dialect.name == "sqlite":
        insert = sqlite_insert(lists)
    else:       # imported here: the PostgreSQL dialect costs every SQLite process ~30 ms to import
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        insert = pg_insert(lists)
    insert = insert.on_conflict_do_nothing(index_elements=["id"])
    convert = text("UPDATE events SET body = :body WHERE id = :id")
    after = ""
    while True:
        rows = conn.execute(text("SELECT id, body FROM events WHERE id > :a ORDER BY id LIMIT :n"),
                            {"a": after, "n": _PAGE}).all()
        if not rows:
            break
        after = rows[-1][0]
        found: dict[str, str] = {}
        updates = []
        for event_id, body in rows:
            try:
                d = json.loads(body)
            except (TypeError, ValueError):
                continue
            if not isinstance(d, dict) or "lists" in d:
                continue
            d, parts = split_event_lists(d)
            found.update(parts)
            updates.append({"id": event_id, "body": json.dumps(d, separators=(",", ":"))})
        if found:
            conn.execute(insert, [{"id": k, "items": v} for k, v in found.items()])
        if updates:
            conn.execute(convert, updates)


MIGRATION = Migration(13, "event_lists: the finding lists inside events stored once per distinct package", _apply)
