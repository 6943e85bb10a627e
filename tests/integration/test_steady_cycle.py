"""A steady `vulnwatch run` cycle against a real Registry v2 (docker-registry on 127.0.0.1) with the
built-in scanner: a digest the last cycle confirmed, under data and rules that did not move since,
costs its tag's HEAD request and a share of one stamp, and nothing else (no snapshot read, no
re-match, no row but `last_checked_at`); whatever could change its result — its tag moving, a tag
added, the advisory data, an ignore rule expiring, an error — makes the cycle scan it again."""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.registry import start_registry
from vulnwatch.build import build_pipeline
from vulnwatch.config import load_config
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR, OSV_OLDER_DIR
from vulnwatch.vulndb.index import VulnIndex
from vulnwatch.vulndb.sync import import_path

# in osv/ and not in osv-older/ (examples/README.md)
NEWER = {"CVE-2023-32681", "CVE-2023-45803", "CVE-2023-23916"}


@pytest.fixture
def registry(tmp_path):
    reg = start_registry(tmp_path / "registry")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "webapp", "1.0")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "webapp", "latest")      # the same digest, a second tag
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "team/api", "2.0")
    yield reg
    reg.stop()


def make_pipeline(tmp_path, registry, repositories: str = "", rules: str = "", state: str | None = None):
    index = VulnIndex(tmp_path / "osv.db")
    for eco in ("Debian", "PyPI"):
        import_path(index, OSV_OLDER_DIR / eco)
    index.close()
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {state or f"{{path: {tmp_path / 'state.db'}}}"}
vulndb: {{path: {tmp_path / 'osv.db'}, auto_update: false}}
layer_cache: {{path: {tmp_path / 'layers'}}}
registries:
  - name: lab
    type: oci
    url: {registry.url}
    insecure: true
{repositories}
{rules}
notifications:
  - name: out
    type: console
""")
    return build_pipeline(load_config(cfg))


class Reads:
    """How often the cycle read a stored snapshot (the real store's reads, counted)."""

    def __init__(self, monkeypatch, store) -> None:
        self.n = 0
        for name in ("snapshot", "snapshots_of"):
            real = getattr(store, name)

            def counted(*a, _real=real, **kw):
                self.n += 1
                return _real(*a, **kw)
            monkeypatch.setattr(store, name, counted)


def requests(caplog) -> list[str]:
    return sorted(f"{r.method} {r.path}" for r in caplog.records if getattr(r, "event", None) == "http_request")


def rows(tmp_path) -> tuple[list, int, list]:
    with sqlite3.connect(tmp_path / "state.db") as db:
        checked = db.execute("SELECT repository, digest, last_checked_at FROM images ORDER BY repository").fetchall()
        history = db.execute("SELECT count(*) FROM scan_history").fetchone()[0]
        snaps = db.execute("SELECT repository, scanned_at FROM snapshots ORDER BY repository").fetchall()
    return checked, history, snaps


HEADS = ["HEAD /v2/team/api/manifests/2.0", "HEAD /v2/webapp/manifests/1.0", "HEAD /v2/webapp/manifests/latest"]
TAGS = ["GET /v2/team/api/tags/list?n=100", "GET /v2/webapp/tags/list?n=100"]


@pytest.mark.parametrize("repositories,listing", [
    ("", ["GET /v2/_catalog?n=100"]),                                          # a glob: the catalog lists them
    ("    repositories: [{name: webapp}, {name: team/api}]", []),              # named: no catalog needed
], ids=["catalog", "named"])
@pytest.mark.parametrize("stoppable", [False, True], ids=["run", "daemon"])
def test_a_steady_cycle_asks_only_for_the_tags_and_stamps_in_one_write(tmp_path, registry, monkeypatch, caplog,
                                                                        repositories, listing, stoppable):
    pipeline = make_pipeline(tmp_path, registry, repositories)
    try:
        first = pipeline.run_cycle(deliver=False)
        assert (first.images, first.scanned, len(first.events), first.failures) == (2, 2, 2, ())
        before = rows(tmp_path)

        reads = Reads(monkeypatch, pipeline.store)
        stamps = []
        real_mark = pipeline.store.mark_checked
        monkeypatch.setattr(pipeline.store, "mark_checked", lambda keys, at: (stamps.append(len(keys)),
                                                                               real_mark(keys, at)))
        caplog.set_level(logging.DEBUG, logger="vulnwatch.http")
        steady = pipeline.run_cycle(deliver=False, stop=threading.Event() if stoppable else None)
    finally:
        pipeline.close()

    assert (steady.images, steady.scanned, steady.events, steady.failures) == (2, 2, (), ())
    # a tag's digest: the tags list and a HEAD per tag (with the manifest media types accepted);
    # no manifest read, no blob
    assert requests(caplog) == sorted(listing + TAGS + HEADS)
    assert reads.n == 0                                     # no stored snapshot read, nothing re-matched
    assert stamps == [2]                                    # both stamped in one statement
    checked, history, snaps = rows(tmp_path)
    assert (history, snaps) == before[1:]                   # no history row, no snapshot rewritten
    assert [c[:2] for c in checked] == [c[:2] for c in before[0]]
    assert len({c[2] for c in checked}) == 1 and checked[0][2] > max(c[2] for c in before[0])


def test_what_a_steady_cycle_still_notices(tmp_path, registry, monkeypatch):
    pipeline = make_pipeline(tmp_path, registry)
    try:
        pipeline.run_cycle(deliver=False)
        reads = Reads(monkeypatch, pipeline.store)
        assert pipeline.run_cycle(deliver=False).events == () and reads.n == 0

        # the advisory data changed under the store (no re-match ran): every image is matched again
        index = VulnIndex(tmp_path / "osv.db")
        for eco in ("Debian", "PyPI"):
            import_path(index, OSV_DIR / eco)
        index.close()
        report = pipeline.run_cycle(deliver=False)
        assert reads.n >= 2
        assert sorted(ev.image.repository for ev in report.events) == ["team/api", "webapp"]
        assert all(NEWER <= {f.vulnerability_id for f in ev.added} for ev in report.events)
        reads.n = 0
        assert pipeline.run_cycle(deliver=False).events == () and reads.n == 0     # steady again

        # a tag added to a digest: recorded (its tags are part of the snapshot)
        registry.push(f"docker-archive:{IMAGE_ARCHIVE}", "webapp", "1.1")
        report = pipeline.run_cycle(deliver=False)
        assert report.failures == ()
        [st] = [s for s in pipeline.store.images() if s.image.repository == "webapp"]
        assert st.image.tags == ("1.0", "1.1", "latest")

        # a tag moved to a new digest (the same content as an OCI manifest): that one is scanned
        [old] = [s.image.digest for s in pipeline.store.images() if s.image.repository == "team/api"]
        registry.push(f"docker-archive:{IMAGE_ARCHIVE}", "team/api", "2.0", fmt="oci")
        report = pipeline.run_cycle(deliver=False)
        assert (report.images, report.scanned, report.failures) == (2, 2, ())
        [new] = [s for s in pipeline.store.images() if s.image.repository == "team/api" and s.image.digest != old]
        assert new.image.tags == ("2.0",) and new.last_scanned_at is not None
        assert pipeline.store.tag_digest(new.image.registry, "team/api", "2.0") == new.image.digest

        # a failure recorded for an image: the next cycle scans it again (and clears the error)
        [st] = [s for s in pipeline.store.images() if s.image.repository == "webapp"]
        pipeline.store.record_failure(st.image, "builtin", "boom", datetime.now(timezone.utc))
        reads.n = 0
        pipeline.run_cycle(deliver=False)
        assert reads.n >= 1
        assert not [s for s in pipeline.store.images() if s.last_error]
    finally:
        pipeline.close()


def test_data_changing_during_a_cycle_leaves_the_next_one_to_match_again(tmp_path, registry, monkeypatch):
    pipeline = make_pipeline(tmp_path, registry)
    try:
        pipeline.run_cycle(deliver=False)
        seen = []

        def progress(stage, done, total):      # the data moves while this cycle checks the images
            if not seen:
                seen.append(stage)
                index = VulnIndex(tmp_path / "osv.db")
                for eco in ("Debian", "PyPI"):
                    import_path(index, OSV_DIR / eco)
                index.close()
        pipeline.progress = progress
        pipeline.run_cycle(deliver=False)   # skipped its images: their stamp is not a confirmation
        pipeline.progress = lambda *a: None
        reads = Reads(monkeypatch, pipeline.store)
        report = pipeline.run_cycle(deliver=False)
        assert reads.n >= 2 and len(report.events) == 2
    finally:
        pipeline.close()


def test_an_ignore_rule_expiring_makes_the_cycle_apply_the_rules_again(tmp_path, registry, monkeypatch):
    import vulnwatch.diff
    import vulnwatch.policy._match

    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date()
    rules = f"""ignore:
  rules:
    - id: CVE-2018-18074
      reason: tracked in SEC-1
      expires: {tomorrow.isoformat()}"""
    pipeline = make_pipeline(tmp_path, registry, rules=rules)
    try:
        pipeline.run_cycle(deliver=False)
        reads = Reads(monkeypatch, pipeline.store)
        assert pipeline.run_cycle(deliver=False).events == () and reads.n == 0
        later = datetime.combine(tomorrow, datetime.min.time(), timezone.utc) + timedelta(seconds=1)
        monkeypatch.setattr(vulnwatch.policy._match, "utcnow", lambda: later)
        monkeypatch.setattr(vulnwatch.diff, "utcnow", lambda: later)
        report = pipeline.run_cycle(deliver=False)
    finally:
        pipeline.close()
    assert len(report.events) == 2
    assert all(any(r.kind == "ignore_rule_expired" for r in ev.reasons) for ev in report.events)


def test_on_postgresql_too_a_steady_cycle_reads_no_snapshot(tmp_path, registry, monkeypatch, pg_cluster):
    # the stamp kept in the marker and the one read back from the image rows must be one instant
    pipeline = make_pipeline(tmp_path, registry, state=f"{{url: '{pg_cluster.create_schema()}'}}")
    try:
        assert pipeline.run_cycle(deliver=False).scanned == 2
        reads = Reads(monkeypatch, pipeline.store)
        steady = pipeline.run_cycle(deliver=False)
        stamped = {st.last_checked_at for st in pipeline.store.images()}
    finally:
        pipeline.close()
    assert (steady.scanned, steady.events, reads.n) == (2, (), 0)
    assert len(stamped) == 1
