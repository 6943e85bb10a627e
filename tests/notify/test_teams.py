"""Teams: Adaptive Cards that a Teams Workflows webhook accepts, within its 28 KB limit."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.events import OLD_DIGEST, big_event, change, enqueue, event, finding
from tests.support.teams import SIG, TEAMS_LIMIT, card_problems, message_problems, start_teams_workflow
from vulnwatch.delivery.outbox import Dispatcher
from vulnwatch.model import EventKind, Severity, utcnow
from vulnwatch.notify import NOTIFIERS
from vulnwatch.notify.interface import DeliveryError
from vulnwatch.notify.teams import CARD_VERSION, TeamsNotifier, render
from vulnwatch.store.interface import DeliveryStatus

USED_ELEMENTS = {"TextBlock", "FactSet", "Container"}


@pytest.fixture
def teams():
    wf = start_teams_workflow()
    yield wf
    wf.close()


def _elements(body):
    for el in body:
        yield el
        yield from _elements(el.get("items", []))


def _texts(card) -> list[str]:
    return [el["text"] for el in _elements(card["body"]) if el["type"] == "TextBlock"]


def _card(payload):
    assert payload["type"] == "message" and len(payload["attachments"]) == 1
    att = payload["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    return att["content"]


def _size(payload) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def test_card_structure_and_content():
    ev = event(added=[finding("CVE-2024-0001", Severity.MEDIUM, pkg="zlib1g", fixed=()),
                      finding("CVE-2024-0002", Severity.CRITICAL, pkg="lib_ssl*3", cvss=9.8,
                              links=("https://security-tracker.debian.org/CVE-2024-0002",)),
                      finding("CVE-2024-0003", Severity.HIGH, pkg="curl", links=("javascript:alert(1)",))],
               fixed=[finding("CVE-2023-9999", Severity.LOW, pkg="libc6", ver="2.36")],
               changed=[change("CVE-2023-5555", Severity.MEDIUM, Severity.CRITICAL, pkg="libssl3")],
               counts={"CRITICAL": 2, "HIGH": 1, "MEDIUM": 1}, previous_counts={"CRITICAL": 1, "HIGH": 1})
    payload = render([ev])
    card = _card(payload)
    assert card["type"] == "AdaptiveCard" and card["version"] == CARD_VERSION == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["msteams"] == {"width": "Full"}
    assert card_problems(card) == []  # the official 1.4 schema
    assert {el["type"] for el in _elements(card["body"])} == USED_ELEMENTS
    assert all(el["wrap"] is True and el["text"] for el in _elements(card["body"]) if el["type"] == "TextBlock")
    head, facts, counts = card["body"][:3]
    assert head["text"] == "team/app:1.4 — findings changed" and head["weight"] == "Bolder"
    assert facts["facts"] == [{"title": "Registry", "value": "prod"}, {"title": "Digest", "value": "abababababab"},
                              {"title": "Scanner", "value": "ecr-basic"}]
    assert counts["text"] == "**CRITICAL** 2 (+1) · **HIGH** 1 · **MEDIUM** 1 (+1)"
    new, fixed, changed = (c["items"] for c in card["body"][3:])
    assert new[0]["text"] == "**New findings (3)**"
    assert new[1]["text"] == ("🔴 **CRITICAL** [CVE-2024-0002](https://security-tracker.debian.org/CVE-2024-0002) "
                              "lib\\_ssl\\*3 3.0.11-1 → 3.0.13-1")  # markdown in names escaped
    assert new[2]["text"].startswith("🟠 **HIGH** CVE-2024-0003 curl")  # a javascript: link is not a link
    assert "[CVE-2024-0001](https://nvd.nist.gov/vuln/detail/CVE-2024-0001)" in new[3]["text"]
    assert new[3]["text"].endswith("→ no fix yet")
    assert fixed[0]["text"] == "**Fixed (1)**" and "(was LOW)" in fixed[1]["text"]
    assert changed[0]["text"] == "**Changed (1)**" and "MEDIUM → **CRITICAL**" in changed[1]["text"]
    assert card["fallbackText"] == "vulnwatch: team/app:1.4 — findings changed: 3 new, 1 fixed, 1 changed"


def test_rebuild_facts_and_long_repository_keeps_the_kind():
    repo = "org/" + "deeply-nested-group/" * 12 + "svc"
    rb = event(EventKind.REBUILD, added=[finding("CVE-1")], repository=repo, previous_digest=OLD_DIGEST,
               moved_tags=("1.4",), previous_counts={"HIGH": 0})
    card = _card(render([rb]))
    head = card["body"][0]["text"]
    assert len(head) == 150 and head.endswith("… — rebuild")
    assert {"title": "Rebuilt from", "value": "cdcdcdcdcdcd (1.4 moved)"} in card["body"][1]["facts"]


def test_lists_stop_at_max_listed_with_and_n_more():
    ev = event(added=[finding(f"CVE-2024-{i:04d}", Severity.HIGH, cvss=10 - i / 100) for i in range(25)])
    new = _card(render([ev], max_listed=10))["body"][3]["items"]
    assert len(new) == 1 + 10 + 1 and new[-1]["text"] == "_…and 15 more_"
    assert "CVE-2024-0000" in new[1]["text"] and "CVE-2024-0009" in new[10]["text"]


def test_largest_event_and_56_image_digest_stay_under_teams_limit(teams):
    n = TeamsNotifier("sec", teams.url, max_listed=100)
    assert n.max_payload_bytes == 27 * 1024 < TEAMS_LIMIT
    huge = big_event(1850, kind=EventKind.REBUILD, fixed=400, changed=300)
    payload = n.render([huge])
    assert _size(payload) <= n.max_payload_bytes
    texts = _texts(_card(payload))
    assert "**New findings (1850)**" in texts and "**Fixed (400)**" in texts and "**Changed (300)**" in texts
    assert sum(t.startswith("_…and ") for t in texts) == 3
    digest = [big_event(1850, repository=f"svc/{i:02d}", digest="sha256:" + f"{i:064x}") for i in range(56)]
    assert _size(n.render(digest)) <= n.max_payload_bytes
    n.send([huge])
    n.send(digest)
    assert teams.refused == [] and len(teams.accepted) == 2
    head = _texts(teams.cards()[1])
    assert head[0] == "vulnwatch digest: 56 images changed"
    joined = "\n".join(head)
    shown = sum(f"svc/{i:02d}:1.4 — new image" in joined for i in range(56))
    more = [t for t in head if t.endswith("more images_")]
    assert shown + (int(more[0].split()[1]) if more else 0) == 56 and shown >= 40


def test_send_to_the_workflow_is_accepted_and_the_url_stays_secret(teams):
    n = TeamsNotifier("sec", teams.url)
    ev = event(added=[finding("CVE-1")])
    n.send([ev])
    (req,) = teams.requests
    assert req.headers["Content-Type"].startswith("application/json")
    assert json.loads(req.body) == n.render([ev]) and teams.accepted == [json.loads(req.body)]
    assert SIG not in repr(n) and "sec" in repr(n)


def test_the_fake_workflow_refuses_what_teams_refuses(teams):
    import httpx
    good = render([event(added=[finding("CVE-1")])])
    bad_weight = json.loads(json.dumps(good))
    bad_weight["attachments"][0]["content"]["body"][0]["weight"] = "heavy"
    too_new = json.loads(json.dumps(good))
    too_new["attachments"][0]["content"]["version"] = "1.6"
    no_card = {"type": "message", "attachments": [{"contentType": "text/plain", "content": "hi"}]}
    oversize = json.loads(json.dumps(good))
    oversize["attachments"][0]["content"]["body"].append({"type": "TextBlock", "text": "x" * TEAMS_LIMIT})
    for body, status in ((bad_weight, 400), (too_new, 400), (no_card, 400), (oversize, 413), (good, 202)):
        r = httpx.post(teams.url, json=body)
        assert r.status_code == status, (status, r.text)
    assert message_problems(json.dumps(bad_weight).encode()) and not message_problems(json.dumps(good).encode())
    assert httpx.post(teams.url.replace(SIG, "forged"), json=good).status_code == 401


def test_errors_are_classified_and_never_show_the_signature(teams):
    teams.responses.append((429, {"Retry-After": "12"}, b'{"error":{"code":"TooManyRequests"}}'))
    n = TeamsNotifier("sec", teams.url)
    with pytest.raises(DeliveryError) as ei:
        n.send([event(added=[finding("CVE-1")])])
    assert ei.value.retryable and ei.value.retry_after == 12.0
    wrong = TeamsNotifier("sec", teams.url.replace(SIG, "revoked-signature"))
    with pytest.raises(DeliveryError) as ei:
        wrong.send([event(added=[finding("CVE-1")])])
    assert not ei.value.retryable and "HTTP 401" in str(ei.value)
    for msg in (str(ei.value),):
        assert "revoked-signature" not in msg and SIG not in msg and "127.0.0.1" not in msg


@pytest.mark.parametrize("status,retryable", [(429, True), (502, True), (413, False), (400, False)])
def test_a_legacy_connector_error_in_a_200_answer_is_a_failure(teams, status, retryable):
    text = (f"Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
            f"{status} with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef").encode()
    teams.responses.append((200, {}, text))
    with pytest.raises(DeliveryError) as ei:
        TeamsNotifier("sec", teams.url).send([event(added=[finding("CVE-1")])])
    assert ei.value.retryable is retryable and f"HTTP {status}" in str(ei.value)
    teams.responses.append((200, {}, b"1"))  # the connector's success answer
    TeamsNotifier("sec", teams.url).send([event(added=[finding("CVE-1")])])


def test_through_the_outbox_429_then_delivered_and_digest_is_one_card(store, teams):
    teams.responses.append((429, {"Retry-After": "30"}, b""))
    events = [event(added=[finding(f"CVE-{i}", Severity.HIGH)], repository=f"svc/{i}") for i in range(3)]
    for ev in events:
        enqueue(store, ev, ["teams", "teams-daily"])
    d = Dispatcher(store, {"teams": TeamsNotifier("teams", teams.url),
                           "teams-daily": TeamsNotifier("teams-daily", teams.url)},
                   modes={"teams-daily": "digest"}, rng=lambda: 0.0)
    now = utcnow() + timedelta(seconds=1)
    r1 = d.dispatch(now)
    assert r1.failed >= 1 and "429" in next(iter(r1.errors.values()))
    assert all(SIG not in (row.last_error or "") for row in store.deliveries())
    r2 = d.dispatch(now + timedelta(seconds=30))
    assert r1.delivered + r2.delivered == 6
    assert all(row.status is DeliveryStatus.DELIVERED for row in store.deliveries())
    heads = [_texts(c)[0] for c in teams.cards()]
    assert sorted(heads) == sorted(["vulnwatch digest: 3 images changed"] +
                                   [f"svc/{i}:1.4 — findings changed" for i in range(3)])


def test_built_from_config():
    from vulnwatch.config import Config
    from vulnwatch.logs import redact
    url = "https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=t0pS3cretSig"
    sink = Config.model_validate({"notifications": [{"name": "t", "type": "teams", "url": url,
                                                     "max_listed": 5}]}).notifications[0]
    n = NOTIFIERS["teams"].from_config(sink)
    assert isinstance(n, TeamsNotifier) and n.max_listed == 5 and n.max_payload_bytes == 27 * 1024
    assert redact(f"posting to {url}") == "posting to ***"
    assert "t0pS3cretSig" not in repr(sink) and "t0pS3cretSig" not in repr(n)
