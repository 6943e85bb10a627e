"""KEV and EPSS in chat messages: each line of a finding in KEV says ``[KEV]`` and its EPSS, and the
lists run by priority (in KEV, then severity, then EPSS), in Slack and Teams alike."""

from __future__ import annotations

from tests.support.events import change, event, finding
from vulnwatch.model import FindingChange, KevListing, Severity
from vulnwatch.notify.slack import render as slack_render
from vulnwatch.notify.teams import render as teams_render


def _event():
    return event(added=[finding("CVE-2024-0001", Severity.CRITICAL, epss=0.01),
                        finding("CVE-2024-0002", Severity.HIGH, pkg="zlib1g", kev=KevListing("2026-11-30"), epss=0.45),
                        finding("CVE-2024-0003", Severity.CRITICAL, pkg="curl", epss=0.90)],
                 changed=[FindingChange(finding("CVE-2024-0009", Severity.LOW, pkg="libc6"),
                                        finding("CVE-2024-0009", Severity.LOW, pkg="libc6", kev=KevListing("2026-12-01")))])


def _order(text: str) -> list[str]:
    ids = ["CVE-2024-0002", "CVE-2024-0003", "CVE-2024-0001"]
    return sorted(ids, key=text.index)


def test_slack_and_teams_lines_carry_kev_and_epss_in_priority_order():
    for text in (str(slack_render([_event()])), str(teams_render([_event()]))):
        assert _order(text) == ["CVE-2024-0002", "CVE-2024-0003", "CVE-2024-0001"]   # KEV, then CRITICAL by EPSS
        assert "[KEV]" in text and "EPSS 0.45" in text and "EPSS 0.90" in text
        assert "listed in KEV" in text                                                 # the re-scored finding
    plain = str(slack_render([event(added=[finding("CVE-2024-0001")], changed=[change("CVE-2024-0005",
                                                                                     Severity.LOW, Severity.HIGH)])]))
    assert "[KEV]" not in plain and "EPSS" not in plain


def test_email_text_and_html_carry_kev_and_epss_in_priority_order():
    from vulnwatch.notify.email import _event_parts

    for text in _event_parts(_event(), 10, digest=False):
        assert _order(text) == ["CVE-2024-0002", "CVE-2024-0003", "CVE-2024-0001"]
        assert "[KEV]" in text and "EPSS 0.45" in text and "listed in KEV" in text
