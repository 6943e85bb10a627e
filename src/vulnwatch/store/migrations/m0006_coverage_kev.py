"""Version 6: coverage and the KEV count stored per snapshot.

* ``snapshots.coverage``: the snapshot's :class:`~vulnwatch.model.Coverage` as JSON (per
  ecosystem and release, the packages not judged, each named); NULL when the scanner says
  nothing about coverage (ECR) or the snapshot was written before this migration;
* ``snapshots.coverage_summary``: its :class:`~vulnwatch.model.CoverageSummary` (state, missing
  ecosystems, how many packages were not judged), small enough for the overview's view;
* ``snapshots.kev``: how many of the snapshot's findings (suppressed ones not counted) are listed
  in CISA's KEV catalog. A column of its own rather than a key of ``counts``: ``counts`` is read
  as "findings per severity" everywhere (totals, sorting, trends), and a KEV finding is also
  counted under its severity.

The view ``snapshot_summary`` (migration 4) gets ``kev`` and ``coverage_summary``: it is dropped
and created again (on SQLite with its covering index ``ix_snapshot_summary``, rebuilt with the
two columns).

Existing snapshots get their KEV count from their findings (inline, or from their finding sets
when migration 7 ran before this one: the runner accepts gaps, so a store already at 7 or 8
gets 6 when it is opened), a few hundred rows per statement. Their coverage was never stored:
it stays NULL (shown as "not recorded") until the image is next scanned or re-matched.
"""

from __future__ import annotations

import json

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from . import Migration

_PAGE = 200

_SUMMARY_COLUMNS = ("registry, repository, digest, scanner, scanned_at, recorded_at, state, counts, notes, "
                    "kev, coverage_summary")


def _kev_of(dicts) -> int:
    return sum(1 for d in dicts if isinstance(d, dict) and isinstance(d.get("kev"), dict))


def _apply(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE snapshots ADD COLUMN coverage TEXT"))
    conn.execute(text("ALTER TABLE snapshots ADD COLUMN coverage_summary TEXT"))
    conn.execute(text("ALTER TABLE snapshots ADD COLUMN kev INTEGER"))
    sqlite = conn.dialect.name == "sqlite"
    conn.execute(text("DROP VIEW IF EXISTS snapshot_summary"))
    hint = ""
    if sqlite:
        conn.execute(text("DROP INDEX IF EXISTS ix_snapshot_summary"))
        conn.execute(text(f"CREATE INDEX ix_snapshot_summary ON snapshots ({_SUMMARY_COLUMNS})"))
        hint = " INDEXED BY ix_snapshot_summary"
    conn.execute(text(f"CREATE VIEW snapshot_summary AS SELECT {_SUMMARY_COLUMNS} FROM snapshots{hint}"))

    with_sets = "finding_sets" in {c["name"] for c in inspect(conn).get_columns("snapshots")}
    per_set: dict[str, int] = {}
    update = text("UPDATE snapshots SET kev = :k WHERE registry = :r AND repository = :p AND digest = :d")
    refs_col = ", finding_sets" if with_sets else ""
    after = ("", "", "")
    while True:    # keyset pagination, as migration 7: nothing held but the page
        rows = conn.execute(text(
            f"SELECT registry, repository, digest, findings{refs_col} FROM snapshots "
            "WHERE (registry > :r) OR (registry = :r AND repository > :p) "
            "OR (registry = :r AND repository = :p AND digest > :d) "
            "ORDER BY registry, repository, digest LIMIT :n"),
            {"r": after[0], "p": after[1], "d": after[2], "n": _PAGE}).all()
        if not rows:
            break
        after = (rows[-1][0], rows[-1][1], rows[-1][2])
        refs = [json.loads(r[4] or "[]") if with_sets else [] for r in rows]
        wanted = sorted({sid for ids in refs for sid in ids if sid not in per_set})
        for i in range(0, len(wanted), _PAGE):
            chunk = wanted[i:i + _PAGE]
            params = {f"s{n}": sid for n, sid in enumerate(chunk)}
            got = conn.execute(text("SELECT id, findings FROM finding_sets WHERE id IN ("
                                    + ", ".join(f":{k}" for k in params) + ")"), params).all()
            for sid, body in got:
                per_set[sid] = _kev_of(json.loads(body or "[]"))
        if len(per_set) > 1 << 16:
            keep = {sid for ids in refs for sid in ids}
            per_set = {k: v for k, v in per_set.items() if k in keep}
        conn.execute(update, [{"r": r[0], "p": r[1], "d": r[2],
                               "k": _kev_of(json.loads(r[3] or "[]")) + sum(per_set.get(sid, 0) for sid in ids)}
                              for r, ids in zip(rows, refs)])


MIGRATION = Migration(6, "snapshots.coverage, coverage_summary and kev (KEV findings); snapshot_summary view with them",
                      _apply)
