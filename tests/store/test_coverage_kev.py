"""Coverage and the KEV count are kept per snapshot (migration 6 on SQL; the snapshot and status
items on DynamoDB), shown by ``images()``/``fleet()``/``stats()``, and migration 6 applies to a
store that already ran 7 and 8 (the runner accepts gaps), counting KEV findings already stored."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, text

from vulnwatch.model import (Coverage, CoverageSummary, EcosystemCoverage, Finding, Image, KevListing, ScanResult,
                             Severity, UnjudgedPackage)
from vulnwatch.store import sql as sqlmod
from vulnwatch.store.interface import FleetQuery
from vulnwatch.store.migrations import MIGRATIONS, LATEST_VERSION
from vulnwatch.store.sql import SQLStore

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
KEV = KevListing("2025-08-26", "2025-09-16", True)
COVERAGE = Coverage(
    ecosystems=(EcosystemCoverage("Alpine:v3.17", 14, False),
                EcosystemCoverage("PyPI", 3, True, records=120, updated_at=T0)),
    unjudged=(UnjudgedPackage("Alpine:v3.17", "musl", "1.2.3-r4", "no advisory data for Alpine:v3.17"),
              UnjudgedPackage("PyPI", "weird", "1.0-foo", "version refused")))


def _findings():
    a = Finding("CVE-2023-1", "musl", "1.2.3-r4", Severity.CRITICAL, "Alpine:v3.17", kev=KEV, scanner="builtin")
    b = Finding("CVE-2023-2", "requests", "2.0", Severity.HIGH, "PyPI", kev=KEV, scanner="builtin")
    c = Finding("CVE-2023-3", "requests", "2.0", Severity.LOW, "PyPI", scanner="builtin")
    return a, b, c


def test_coverage_and_kev_count_are_stored_and_shown(any_store):
    a, b, c = _findings()
    img = Image("prod", "team/app", "sha256:" + "a" * 64, tags=("1.0",))
    suppressed = replace(b, vulnerability_id="CVE-2023-9")
    res = ScanResult(img, "builtin", T0, findings=(a, b, c), coverage=COVERAGE, suppressed=(suppressed,))
    any_store.commit_scan(res, [])
    plain = Image("prod", "team/ecr", "sha256:" + "b" * 64, tags=("x",))
    any_store.commit_scan(ScanResult(plain, "ecr-basic", T0, findings=(c,)), [])

    snap = any_store.snapshot(*img.key)
    assert snap.coverage == COVERAGE                     # every ecosystem and package not judged, named
    assert any_store.snapshot(*plain.key).coverage is None
    status = {st.image.repository: st for st in any_store.images()}
    assert status["team/app"].kev == 2                   # the suppressed KEV finding does not count
    assert status["team/app"].coverage == CoverageSummary("missing", ("Alpine:v3.17",), 2)
    assert status["team/app"].coverage.text() == "missing: no advisory data for Alpine:v3.17; 2 packages not judged"
    assert status["team/ecr"].kev == 0 and status["team/ecr"].coverage is None
    page = any_store.fleet(FleetQuery(sort="kev"))
    assert [r.status.image.repository for r in page.images] == ["team/app", "team/ecr"]
    assert page.images[0].status.kev == 2 and page.images[0].status.coverage.state == "missing"
    assert any_store.stats().kev == 2
    assert [r.status.image.repository for r in any_store.fleet(FleetQuery(with_notes=True)).images] == ["team/app"]

    fixed = replace(res, scanned_at=T0.replace(hour=9), findings=(c,), coverage=Coverage(COVERAGE.ecosystems[1:]))
    any_store.commit_scan(fixed, [])
    st = next(s for s in any_store.images() if s.image.key == img.key)
    assert st.kev == 0 and st.coverage == CoverageSummary("complete")


def _store_without_6(url: str) -> None:
    """A database migrated as a store of the previous release was: every migration but 6."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    with engine.begin() as conn:
        sqlmod.schema_migrations.create(conn, checkfirst=True)
        for m in MIGRATIONS:
            if m.version == 6:
                continue
            m.apply(conn)
            conn.execute(sqlmod.schema_migrations.insert().values(version=m.version, description=m.description,
                                                                  applied_at=T0))
    engine.dispose()


def test_migration_6_applies_to_a_store_at_8_and_counts_stored_kev_findings(store_url):
    _store_without_6(store_url)
    engine = create_engine(store_url)
    a, b, c = _findings()
    with engine.begin() as conn:       # snapshots written by the previous release: findings in sets
        for n, (repo, findings) in enumerate((("one", (a, b, c)), ("two", (c,)))):
            sid = f"set{n}"
            conn.execute(text("INSERT INTO finding_sets (id, findings) VALUES (:i, :f)"),
                         {"i": sid, "f": json.dumps([f.to_dict() for f in findings])})
            conn.execute(text("INSERT INTO images (registry, repository, digest, tags, updated_at) "
                              "VALUES ('r', :p, 'sha256:1', '[\"1\"]', :t)"), {"p": repo, "t": T0})
            conn.execute(text("INSERT INTO snapshots (registry, repository, digest, scanner, scanned_at, "
                              "recorded_at, state, findings, packages, finding_sets, notes, counts) VALUES ('r', :p, "
                              "'sha256:1', 'builtin', :t, :t, 'COMPLETE', '[]', '[]', :refs, '[]', '{}')"),
                         {"p": repo, "t": T0, "refs": json.dumps([sid])})
    engine.dispose()
    store = SQLStore(store_url)
    try:
        assert store.schema_version() == LATEST_VERSION
        with store._engine.connect() as conn:
            versions = conn.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars().all()
        assert versions == [m.version for m in MIGRATIONS]          # 6 applied after 7 and 8
        kev = {st.image.repository: st.kev for st in store.images()}
        assert kev == {"one": 2, "two": 0}
        assert {r.status.image.repository: r.status.kev for r in store.fleet().images} == kev   # through the view
        assert store.snapshot("r", "one", "sha256:1").coverage is None        # never stored: not recorded
        assert store.stats().kev == 2
    finally:
        store.close()
