"""Every message says why findings moved: the reasons of an event in Slack, Teams, email, console
and CloudEvents, per image and in digests."""

from __future__ import annotations

import json
from dataclasses import replace

from tests.support.events import event, finding
from vulnwatch.model import ChangeReason, DataSource, EventKind, ReasonKind, Severity

WHY = (ChangeReason(ReasonKind.IGNORE_RULE_EXPIRED, "ignore rule expired on 2026-12-01: CVE-2024-1 in openssl "
                    "(CVE-2024-1 (vulnwatch.yaml:12))"),
       ChangeReason(ReasonKind.ADVISORY_DATA_CHANGED, "advisory data changed: Debian (version Tue, 01 Dec 2026 "
                    "06:00:00 GMT, imported 2026-12-01 06:05 UTC)",
                    data=(DataSource("advisory", "Debian", "Tue, 01 Dec 2026 06:00:00 GMT"),)))


def ev(repo="team/app"):
    e = event(EventKind.FINDINGS_CHANGED, added=(finding("CVE-2024-1", Severity.HIGH), finding("CVE-2024-2")))
    return replace(e, reasons=WHY, image=replace(e.image, repository=repo))


def test_slack_teams_email_console_say_why():
    from vulnwatch.notify import console, slack, teams
    from vulnwatch.notify.email import EmailNotifier

    for text in (json.dumps(slack.render([ev()])), json.dumps(teams.render([ev()])),
                 EmailNotifier("m", host="h", sender="a@b.c", recipients=["d@e.f"]).message([ev()])
                 .get_body(("plain",)).get_content(), console.render(ev())):
        text = text.replace("\\\\", "").replace("\\", "")      # Teams' markdown escapes
        assert "ignore rule expired on 2026-12-01" in text, text[:400]
        assert "advisory data changed: Debian (version Tue, 01 Dec 2026 06:00:00 GMT" in text
    plain = event(EventKind.FINDINGS_CHANGED, added=(finding("CVE-2024-1"),))     # stored before reasons
    assert "Why" not in json.dumps(slack.render([plain])) and "why" not in console.render(plain)


def test_digests_name_the_reasons_of_each_image():
    from vulnwatch.notify import slack, teams

    many = [ev(f"team/app{i}") for i in range(30)]
    for text in (json.dumps(slack.render(many)), json.dumps(teams.render(many))):
        detailed, short = text.count("ignore rule expired on"), text.count("ignore rule expired, advisory data changed")
        assert detailed and short and detailed + short == 30          # images in detail, then one line each


def test_cloudevents_carry_the_reasons_with_the_data_version():
    from vulnwatch.notify.webhook import cloudevent

    data = cloudevent(ev())["data"]
    assert [r["kind"] for r in data["reasons"]] == ["ignore_rule_expired", "advisory_data_changed"]
    assert data["reasons"][1]["data"][0]["version"] == "Tue, 01 Dec 2026 06:00:00 GMT"
