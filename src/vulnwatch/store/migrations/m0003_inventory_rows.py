"""Version 3: ``snapshots.findings_signature``, a fingerprint of the findings (see
:func:`vulnwatch.model.findings_signature`), so that re-matching every stored inventory after a
data update can tell "nothing moved" without reading the findings back.

Packages are now written as compact rows (``{"v": 2, "fields": [...], "rows": [[...], ...]}``);
rows written by version 1 (a list of objects) are still read.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE snapshots ADD COLUMN findings_signature VARCHAR(64)"))


MIGRATION = Migration(3, "snapshots.findings_signature; packages as compact rows", _apply)
