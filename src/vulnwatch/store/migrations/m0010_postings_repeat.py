"""Version 10: the package index says when an image holds a package twice.

A posting (``name_postings.members``) lists an image's position once per copy of the package it
holds (``3,3``: the image at position 3 holds it twice, e.g. one Python distribution installed
in two places). A re-match that makes an image's findings from its snapshot alone
(:meth:`vulnwatch.store.interface.Store.holdings`) must know that: a package newly vulnerable
has its findings once per copy. Postings written before this version listed each image once,
so the index is emptied here and rebuilt on first use, a chunk of images per transaction; the
distinct packages and their signatures (``fleet_packages``) are kept.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import Migration


def _apply(conn: Connection) -> None:
    conn.execute(text("DELETE FROM name_postings"))
    conn.execute(text("DELETE FROM name_index_chunks"))
    conn.execute(text("UPDATE snapshots SET names_chunk = NULL WHERE names_chunk IS NOT NULL"))


MIGRATION = Migration(10, "package index: postings repeat an image holding a package twice", _apply)
