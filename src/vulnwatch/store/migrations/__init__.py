"""Versioned schema migrations of the SQL store, applied in order when a store is opened.

Each migration is a :class:`Migration` with a version number (increasing; gaps are allowed,
so work in progress on several branches can reserve numbers) and a function that changes the
schema through a SQLAlchemy connection that is already inside a transaction. Applied versions
are recorded in the ``schema_migrations`` table; opening a store applies every known version
not recorded yet, in order (so a migration that lands after a higher-numbered one is still
applied: a database at 8 without 7 gets 7 when it is opened), and refuses a database that
records a version this code does not know. Migrations must therefore not depend on one
another's data except through released ones.

To change the schema: add a module ``m000N_<what>.py`` defining ``MIGRATION``, append it
to :data:`MIGRATIONS`, and update the table definitions in :mod:`vulnwatch.store.sql`.
Never edit a migration that has been released: databases out there already ran it.
Migrations describe tables with SQLAlchemy Core so one definition serves SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Migration:
    """One step of the schema."""

    version: int
    """Position in the sequence, starting at 1."""
    description: str
    """What the step does, recorded in ``schema_migrations``."""
    apply: Callable[[Connection], None]
    """Changes the schema; called inside the transaction that records the version."""


from . import (m0001_initial, m0002_last_checked, m0003_inventory_rows,  # noqa: E402  (needs Migration above)
               m0004_dashboard_indexes, m0005_leases, m0006_coverage_kev, m0007_finding_sets,
               m0008_suppressed, m0009_name_index, m0010_postings_repeat, m0011_packed_inventories, m0013_event_lists)

MIGRATIONS: tuple[Migration, ...] = (m0001_initial.MIGRATION, m0002_last_checked.MIGRATION,
                                     m0003_inventory_rows.MIGRATION, m0004_dashboard_indexes.MIGRATION,
                                     m0005_leases.MIGRATION, m0006_coverage_kev.MIGRATION, m0007_finding_sets.MIGRATION,
                                     m0008_suppressed.MIGRATION, m0009_name_index.MIGRATION,
                                     m0010_postings_repeat.MIGRATION, m0011_packed_inventories.MIGRATION,
                                     m0013_event_lists.MIGRATION)
"""Every migration, in order."""

LATEST_VERSION: int = MIGRATIONS[-1].version
"""The schema version this code reads and writes."""

assert all(a.version < b.version for a, b in zip(MIGRATIONS, MIGRATIONS[1:])), "migrations out of order"
