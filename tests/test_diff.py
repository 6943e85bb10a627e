"""diff(): the cases of the issue, plus ordering, ids and summaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from vulnwatch.diff import diff, summarize
from vulnwatch.model import (EventKind, Finding, Image, ScanResult, ScanState, Severity,
                             severity_counts)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
NOW = datetime(2024, 5, 2, 8, 0, tzinfo=timezone.utc)
IMG = Image("prod", "team/app", "sha256:" + "a" * 64, tags=("latest",))
IMG2 = Image("prod", "team/app", "sha256:" + "b" * 64, tags=("latest",))


def f(vid: str, sev: Severity = Severity.HIGH, pkg: str = "openssl", ver: str = "3.0.11-1",
      **kw) -> Finding:
    return Finding(vulnerability_id=vid, package_name=pkg, package_version=ver, severity=sev,
                   ecosystem="Debian:12", scanner="ecr-basic", **kw)


def scan(findings, image=IMG, at=T0, state=ScanState.COMPLETE) -> ScanResult:
    return ScanResult(image=image, scanner="ecr-basic", scanned_at=at, findings=tuple(findings),
                      state=state)


def test_swap_one_cve_for_another_at_equal_counts():
    before = scan([f("CVE-2024-0001"), f("CVE-2024-0002")])
    after = scan([f("CVE-2024-0001"), f("CVE-2024-0003")], at=T0 + timedelta(hours=1))
    ev = diff(after, before, now=NOW)
    assert ev is not None
    assert ev.kind is EventKind.FINDINGS_CHANGED
    assert [x.vulnerability_id for x in ev.added] == ["CVE-2024-0003"]
    assert [x.vulnerability_id for x in ev.fixed] == ["CVE-2024-0002"]
    assert ev.changed == ()
    assert ev.counts == ev.previous_counts == severity_counts(after.findings)
    assert ev.occurred_at == NOW
    assert ev.previous_digest is None
    assert summarize(ev) == "findings changed: +1 new, -1 fixed"


def test_same_findings_gives_none():
    findings = [f("CVE-2024-0001"), f("CVE-2024-0002", Severity.LOW)]
    assert diff(scan(findings, at=T0 + timedelta(days=1)), scan(list(reversed(findings)))) is None


def test_title_or_link_change_alone_is_not_a_change():
    before = scan([f("CVE-2024-0001", title="old")])
    after = scan([f("CVE-2024-0001", title="new", links=("https://x",))])
    assert diff(after, before) is None


def test_rescore_is_changed():
    before = scan([f("CVE-2024-0001", Severity.MEDIUM, cvss_score=5.3)])
    after = scan([f("CVE-2024-0001", Severity.CRITICAL, cvss_score=9.8)])
    ev = diff(after, before)
    assert ev is not None and ev.added == () and ev.fixed == ()
    (ch,) = ev.changed
    assert ch.before.severity is Severity.MEDIUM and ch.after.severity is Severity.CRITICAL
    assert ch.what == ("severity", "cvss_score")
    assert ev.previous_counts["MEDIUM"] == 1 and ev.counts["CRITICAL"] == 1
    assert summarize(ev) == "findings changed: 1 changed"


def test_fix_became_available_is_changed():
    before = scan([f("CVE-2024-0001")])
    after = scan([f("CVE-2024-0001", fixed_versions=("3.0.13-1~deb12u1",))])
    ev = diff(after, before)
    assert ev is not None
    (ch,) = ev.changed
    assert ch.what == ("fix_available",)
    assert ch.after.fixable and not ch.before.fixable


def test_new_vulnerable_image_is_new_image_with_all_added():
    cur = scan([f("CVE-2024-0002", Severity.LOW), f("CVE-2024-0001", Severity.CRITICAL)])
    ev = diff(cur, None, now=NOW)
    assert ev is not None and ev.kind is EventKind.NEW_IMAGE
    assert [x.vulnerability_id for x in ev.added] == ["CVE-2024-0001", "CVE-2024-0002"]
    assert ev.fixed == () and ev.previous_counts == {}
    assert ev.counts["CRITICAL"] == 1 and ev.counts["LOW"] == 1
    assert summarize(ev) == "new image: +2 new"


def test_clean_new_image_gives_none():
    assert diff(scan([]), None) is None


def test_unsupported_results_give_none():
    unsupported = scan([], state=ScanState.UNSUPPORTED)
    assert diff(unsupported, None) is None
    assert diff(replace(unsupported, scanned_at=T0 + timedelta(days=1)), unsupported) is None
    # previous findings are not reported fixed because the scanner stopped being able to scan
    assert diff(unsupported, scan([f("CVE-2024-0001")])) is None


def test_first_complete_scan_after_unsupported_is_new_image():
    ev = diff(scan([f("CVE-2024-0001")]), scan([], state=ScanState.UNSUPPORTED))
    assert ev is not None and ev.kind is EventKind.NEW_IMAGE


def test_rebuild_against_tags_previous_digest():
    old = [f(f"CVE-2023-{i:04d}", Severity.MEDIUM) for i in range(10)] + [f("CVE-2024-9000")]
    new = [f("CVE-2024-9000"), f("CVE-2024-1111", Severity.CRITICAL, pkg="curl"),
           f("CVE-2024-2222", Severity.LOW, pkg="curl")]
    base = scan(old, image=IMG)
    ev = diff(scan(new, image=IMG2, at=T0 + timedelta(days=3)), None, tag_base=base,
              moved_tags=["latest", "1.2"])
    assert ev is not None and ev.kind is EventKind.REBUILD
    assert ev.previous_digest == IMG.digest
    assert ev.image.digest == IMG2.digest
    assert ev.moved_tags == ("1.2", "latest")
    assert summarize(ev) == "rebuild: +2 new, -10 fixed"
    assert ev.previous_counts["MEDIUM"] == 10


def test_tag_base_is_ignored_when_the_digest_has_a_snapshot():
    prev = scan([f("CVE-2024-0001")])
    base = scan([f("CVE-2024-0002")], image=IMG2)
    ev = diff(scan([f("CVE-2024-0001"), f("CVE-2024-0003")]), prev, tag_base=base)
    assert ev is not None and ev.kind is EventKind.FINDINGS_CHANGED
    assert [x.vulnerability_id for x in ev.added] == ["CVE-2024-0003"] and ev.fixed == ()


def test_rebuild_with_same_findings_gives_none():
    findings = [f("CVE-2024-0001")]
    assert diff(scan(findings, image=IMG2), None, tag_base=scan(findings)) is None


def test_order_most_severe_first_then_id():
    cur = scan([f("CVE-2024-0009", Severity.LOW), f("CVE-2024-0005", Severity.HIGH),
                f("CVE-2024-0001", Severity.LOW), f("CVE-2024-0007", Severity.CRITICAL),
                f("CVE-2024-0002", Severity.HIGH)])
    ev = diff(cur, None)
    assert [x.vulnerability_id for x in ev.added] == [
        "CVE-2024-0007", "CVE-2024-0002", "CVE-2024-0005", "CVE-2024-0001", "CVE-2024-0009"]


def test_identity_includes_package_version_and_ecosystem():
    before = scan([f("CVE-2024-0001", ver="1.0")])
    after = scan([f("CVE-2024-0001", ver="1.1")])
    ev = diff(after, before)
    assert ev is not None
    assert [x.package_version for x in ev.added] == ["1.1"]
    assert [x.package_version for x in ev.fixed] == ["1.0"]


def test_event_id_is_stable_and_content_dependent():
    before = scan([f("CVE-2024-0001")])
    after = scan([f("CVE-2024-0002")], at=T0 + timedelta(hours=1))
    a = diff(after, before, now=NOW)
    b = diff(after, before, now=NOW + timedelta(hours=5))
    assert a.id == b.id
    # the same change seen by a later scan (an overlapping cycle, a retry after a crash) keeps
    # its id: ids derive from the change and the snapshot it is measured from, not the scan time
    later_scan = diff(replace(after, scanned_at=T0 + timedelta(hours=2)), before)
    assert later_scan.id == a.id
    from_other_snapshot = diff(after, replace(before, scanned_at=T0 - timedelta(hours=1)))
    assert from_other_snapshot.id != a.id
    rebuild = diff(replace(after, image=IMG2), None, before, ("latest",))
    assert rebuild.id != a.id and rebuild.id == diff(replace(after, image=IMG2, scanned_at=NOW), None,
                                                     before, ("latest",)).id
    different_change = diff(scan([f("CVE-2024-0003")], at=after.scanned_at), before)
    assert different_change.id != a.id
    assert diff(after, None).id != a.id  # NEW_IMAGE differs from FINDINGS_CHANGED


def test_event_id_is_event_id_of_its_change_keys():
    # the id is encoded from cached pieces; it is the id of the change keys encoded whole
    from vulnwatch.diff import event_id_of
    before = scan([f("CVE-2024-0001", Severity.LOW, cvss_score=3.1), f("CVE-2024-0002", pkg="zlib"),
                   f("CVE-2024-0005", pkg="libé", ver="1:2.0")])
    after = scan([f("CVE-2024-0001", Severity.CRITICAL, cvss_score=9.8, fixed_versions=("3.0.12",)),
                  f("CVE-2024-0003", pkg="zlib"), f("CVE-2024-0004", pkg="curl", ver="8.0\"1")],
                 at=T0 + timedelta(hours=1))
    for current, previous, base, kind in ((after, before, None, EventKind.FINDINGS_CHANGED),
                                          (replace(after, image=IMG2), None, before, EventKind.REBUILD),
                                          (after, None, None, EventKind.NEW_IMAGE)):
        ev = diff(current, previous, base, ("latest",))
        keys = sorted([["+", *x.key] for x in ev.added] + [["-", *x.key] for x in ev.fixed]
                      + [["~", *c.after.key, *c.what] for c in ev.changed])
        assert ev.kind is kind and ev.id == event_id_of(current, previous, base, kind, keys)
    assert len(keys) == 3 and ev.added


def test_event_round_trips_through_dict():
    before = scan([f("CVE-2024-0001", Severity.MEDIUM, cvss_score=5.0)])
    after = scan([f("CVE-2024-0001", Severity.HIGH, cvss_score=7.5), f("CVE-2024-0004")])
    ev = diff(after, before, now=NOW)
    from vulnwatch.model import Event
    assert Event.from_dict(ev.to_dict()) == ev


def test_change_parts_is_the_one_count_behind_every_summary():
    from vulnwatch.diff import change_parts
    from vulnwatch.notify.slack import fallback_text

    before = scan([f("CVE-1"), f("CVE-2"), f("CVE-3", Severity.LOW)])
    after = scan([f("CVE-3", Severity.CRITICAL), f("CVE-4"), f("CVE-5")], at=T0 + timedelta(hours=1))
    ev = diff(after, before, now=NOW)
    assert change_parts(ev) == [("new", 2), ("fixed", 2), ("changed", 1)]
    assert summarize(ev) == "findings changed: +2 new, -2 fixed, 1 changed"
    assert fallback_text([ev]).endswith(": 2 new, 2 fixed, 1 changed")
    only_fixed = diff(scan([f("CVE-1")], at=T0 + timedelta(hours=1)), before, now=NOW)
    assert change_parts(only_fixed) == [("fixed", 2)]
    assert summarize(only_fixed) == "findings changed: -2 fixed"
    assert fallback_text([only_fixed]).endswith(": 2 fixed")


# --- suppression and reasons ------------------------------------------------------------------

def _suppressed(x: Finding, expires=None):
    from vulnwatch.model import Suppression

    return replace(x, suppression=Suppression(kind="ignore", reason="accepted", source="vw.yaml:7",
                                              rule=x.vulnerability_id, expires=expires))


def test_a_newly_suppressed_finding_makes_no_event_and_one_coming_back_says_why():
    from datetime import date

    from vulnwatch.model import ReasonKind

    before = scan([f("CVE-1"), f("CVE-2")])
    now_hidden = replace(scan([f("CVE-1")], at=T0 + timedelta(hours=1)), suppressed=(_suppressed(f("CVE-2")),))
    assert diff(now_hidden, before, now=NOW) is None                  # not "fixed": suppressed
    expired = replace(now_hidden, suppressed=(_suppressed(f("CVE-2"), date(2024, 5, 2)),))
    back = scan([f("CVE-1"), f("CVE-2")], at=T0 + timedelta(hours=2))
    ev = diff(back, expired, now=NOW)
    assert [x.vulnerability_id for x in ev.added] == ["CVE-2"] and not ev.fixed
    [why] = ev.reasons
    assert why.kind is ReasonKind.IGNORE_RULE_EXPIRED and "expired on 2024-05-02" in why.summary
    assert why.suppression.source == "vw.yaml:7" and why.findings == ()   # one reason: all findings
    ev = diff(back, now_hidden, now=NOW)                                   # no expiry: the rule went away
    assert [r.kind for r in ev.reasons] == [ReasonKind.IGNORE_RULE_REMOVED]


def test_reasons_split_rescores_from_data_changes_and_name_the_data():
    from vulnwatch.model import DataSource, ReasonKind

    data = (DataSource("advisory", "Debian", 'W/"etag-2"', T0, "https://osv/Debian/all.zip"),
            DataSource("advisory", "PyPI", None, T0), DataSource("enrichment", "kev", "2026.12.01", T0))
    before = scan([f("CVE-1", Severity.LOW), f("CVE-2")])
    after = scan([f("CVE-1", Severity.CRITICAL), f("CVE-2"), f("CVE-3")], at=T0 + timedelta(hours=1))
    ev = diff(after, before, now=NOW, data=data)
    rescore, moved = ev.reasons
    assert rescore.kind is ReasonKind.RESCORE and "CVE-1 LOW -> CRITICAL" in rescore.summary
    assert rescore.findings == (f("CVE-1").key,) and {d.name for d in rescore.data} == {"Debian", "kev"}
    assert moved.kind is ReasonKind.ADVISORY_DATA_CHANGED and moved.findings == (f("CVE-3").key,)
    assert [d.name for d in moved.data] == ["Debian"] and 'version W/"etag-2"' in moved.summary
    assert Event_round_trip(ev).reasons == ev.reasons


def test_new_image_and_rebuild_reasons():
    from vulnwatch.model import ReasonKind

    ev = diff(scan([f("CVE-1")]), None, now=NOW)
    assert [r.kind for r in ev.reasons] == [ReasonKind.NEW_IMAGE]
    rebuilt = diff(scan([f("CVE-2")], image=IMG2), None, scan([f("CVE-1")]), ["latest"], now=NOW)
    [why] = rebuilt.reasons
    assert why.kind is ReasonKind.IMAGE_CHANGED and "aaaaaaaaaaaa -> bbbbbbbbbbbb" in why.summary


def Event_round_trip(ev):
    from vulnwatch.model import Event

    return Event.from_dict(ev.to_dict())


def test_kev_listing_and_epss_jump_are_rescores_naming_the_enrichment_data():
    """An enrichment update (a KEV listing, an EPSS move over the threshold) re-scores findings:
    a ``rescore`` reason naming the enrichment data, not "advisory data changed"; an EPSS move under
    the threshold is no change at all."""
    from vulnwatch.model import DataSource, KevListing, ReasonKind

    data = (DataSource("advisory", "Debian", "e1", T0), DataSource("enrichment", "kev", "2026.12.01", T0),
            DataSource("enrichment", "epss", "2026-12-01", T0))
    before = scan([f("CVE-1"), f("CVE-2", epss=0.02), f("CVE-3", epss=0.30)])
    after = scan([f("CVE-1", kev=KevListing("2026-12-01")), f("CVE-2", epss=0.45), f("CVE-3", epss=0.35)],
                 at=T0 + timedelta(hours=1))
    ev = diff(after, before, now=NOW, data=data, epss_threshold=0.2)
    assert {c.after.vulnerability_id: c.what for c in ev.changed} == {"CVE-1": ("kev",), "CVE-2": ("epss",)}
    assert ev.changed[0].after.vulnerability_id == "CVE-1"              # in KEV first
    [why] = ev.reasons
    assert why.kind is ReasonKind.RESCORE
    assert "CVE-1 listed in KEV (2026-12-01)" in why.summary and "CVE-2 EPSS 0.02 -> 0.45" in why.summary
    assert {d.name for d in why.data} == {"Debian", "kev", "epss"}
    back = diff(before, after, now=NOW, data=data, epss_threshold=0.2)   # delisted, EPSS falls back
    assert [r.kind for r in back.reasons] == [ReasonKind.RESCORE] and "CVE-1 removed from KEV" in back.reasons[0].summary
    assert diff(after, before, now=NOW, epss_threshold=0.5) is not None  # the KEV listing alone still counts
    only_epss = diff(scan([f("CVE-2", epss=0.45)]), scan([f("CVE-2", epss=0.02)]), now=NOW, epss_threshold=0.5)
    assert only_epss is None                                             # 0.43 < 0.5: not a change
