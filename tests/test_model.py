from datetime import datetime, timezone

from vulnwatch.model import Event, EventKind, Finding, FindingChange, Image, Severity, severity_counts, stable_id


def test_severity_parse_spellings():
    assert Severity.parse("INFORMATIONAL") is Severity.NEGLIGIBLE
    assert Severity.parse("untriaged") is Severity.UNKNOWN
    assert Severity.parse("moderate") is Severity.MEDIUM
    assert Severity.parse("nonsense") is Severity.UNKNOWN
    assert Severity.CRITICAL > Severity.HIGH


def test_event_roundtrip_and_stable_id():
    f = Finding("CVE-1", "openssl", "1.0", Severity.HIGH, ecosystem="Debian:12", fixed_versions=("1.1",))
    g = Finding("CVE-1", "openssl", "1.0", Severity.CRITICAL, ecosystem="Debian:12")
    e = Event(id=stable_id("a", 1), kind=EventKind.FINDINGS_CHANGED,
              image=Image("r", "repo", "sha256:" + "a" * 64, ("v1",)), scanner="ecr-basic",
              occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc), added=(f,),
              changed=(FindingChange(f, g),), counts=severity_counts([g]))
    assert Event.from_dict(e.to_dict()) == e
    assert stable_id("a", 1) == stable_id("a", 1) != stable_id("a", 2)
    assert FindingChange(f, g).what == ("severity", "fix_available")
    assert f.fixable and not g.fixable


def test_findings_signature_tracks_what_diff_compares():
    from dataclasses import replace

    from vulnwatch.model import findings_signature

    a = Finding("CVE-1", "openssl", "1.0", Severity.HIGH, ecosystem="Debian:12", fixed_versions=("1.1",))
    b = Finding("CVE-2", "zlib", "1.2", Severity.LOW, ecosystem="Debian:12")
    assert findings_signature([a, b]) == findings_signature([b, a])                # order does not matter
    assert findings_signature([a, b]) != findings_signature([a])
    assert findings_signature([a]) == findings_signature([replace(a, title="new words", links=("x",))])
    for changed in (replace(a, severity=Severity.CRITICAL), replace(a, cvss_score=9.8),
                    replace(a, fixed_versions=("1.2",)), replace(a, fix_available=False),
                    replace(a, package_version="1.0-1")):
        assert findings_signature([changed]) != findings_signature([a])
    assert findings_signature([]) == findings_signature(())
