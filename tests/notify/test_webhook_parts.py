"""CloudEvents larger than max_payload_bytes go in parts: each within the cap, "part n of m",
one group id, ids stable across retries, and the whole lists back when the parts are joined."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.events import big_event, enqueue, event, finding
from vulnwatch.delivery.outbox import Dispatcher
from vulnwatch.model import Event, EventKind, utcnow
from vulnwatch.notify.interface import DeliveryError
from vulnwatch.notify.webhook import (DEFAULT_MAX_PAYLOAD_BYTES, PART_ATTRIBUTES, WebhookNotifier, digest_id,
                                      encode, part_id, verify)
from vulnwatch.store.interface import DeliveryStatus

CAP = 64 * 1024
SECRET = "part-signing-key"


def _join_event(parts: list[dict]) -> dict:
    """What a receiver does: the first part's data, with every part's lists concatenated in order."""
    whole = dict(parts[0]["data"])
    for name in ("added", "fixed", "changed"):
        whole[name] = [x for p in parts for x in p["data"][name]]
    return whole


def _join_digest(parts: list[dict]) -> list[dict]:
    by_id: dict[str, dict] = {}
    for p in parts:
        for e in p["data"]["events"]:
            if e["id"] not in by_id:
                by_id[e["id"]] = dict(e)
            else:
                for name in ("added", "fixed", "changed"):
                    by_id[e["id"]][name] = by_id[e["id"]][name] + e[name]
    return list(by_id.values())


def test_default_cap_is_256_kib_and_small_events_are_one_unchanged_cloudevent(receiver):
    n = WebhookNotifier("hooks", receiver.url)
    assert n.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES["webhook"] == 256 * 1024
    ev = event(added=[finding("CVE-1")])
    n.send([ev])
    (req,) = receiver.requests
    ce = req.json()
    assert ce["id"] == ev.id and not set(PART_ATTRIBUTES) & set(ce)
    assert req.body == encode(n.envelope([ev]))


def test_big_event_is_split_into_signed_parts_within_the_cap(receiver):
    ev = big_event(400, kind=EventKind.REBUILD, fixed=120, changed=60)
    whole = encode(WebhookNotifier("x", receiver.url).envelope([ev]))
    assert len(whole) > 4 * CAP  # the case: one CloudEvent far over what receivers take
    n = WebhookNotifier("hooks", receiver.url, secret=SECRET, max_payload_bytes=CAP)
    n.send([ev])
    reqs = receiver.requests
    m = len(reqs)
    assert m >= 5
    bodies = [r.json() for r in reqs]
    for k, (req, ce) in enumerate(zip(reqs, bodies), 1):
        assert len(req.body) <= CAP
        assert verify(req.body, SECRET, req.headers["X-Vulnwatch-Signature"])
        assert (ce["groupid"], ce["part"], ce["parts"]) == (ev.id, k, m)
        assert ce["id"] == part_id(ev.id, k, m) != ev.id
        assert (ce["type"], ce["source"], ce["subject"]) == (
            "io.vulnwatch.image.rebuild", "vulnwatch/prod/team/app", f"team/app@{ev.image.digest}")
        assert ce["data"]["counts"] == ev.counts and ce["data"]["id"] == ev.id
    assert len({ce["id"] for ce in bodies}) == m
    # parts are full: all but the last carry more than half the cap
    assert all(len(r.body) > CAP // 2 for r in reqs[:-1])
    joined = _join_event(bodies)
    assert joined == ev.to_dict()
    assert Event.from_dict(joined) == ev
    # a retry sends the same bytes under the same ids
    receiver.clear()
    n.send([ev])
    assert [r.body for r in receiver.requests] == [r.body for r in reqs]


def test_digest_split_keeps_every_event_and_clean_ones_too(receiver):
    events = [big_event(250, repository=f"svc/{i}", digest="sha256:" + f"{i:064x}") for i in range(4)]
    clean = event(EventKind.NEW_IMAGE, repository="svc/clean", digest="sha256:" + "e" * 64)
    events.insert(2, clean)
    n = WebhookNotifier("daily", receiver.url, max_payload_bytes=CAP)
    n.send(events)
    bodies = receiver.bodies()
    assert len(bodies) > 5
    assert all(len(r.body) <= CAP for r in receiver.requests)
    gid = digest_id(events)
    assert [(b["type"], b["groupid"], b["part"], b["parts"]) for b in bodies] == [
        ("io.vulnwatch.digest", gid, k, len(bodies)) for k in range(1, len(bodies) + 1)]
    assert all(b["data"]["count"] == 5 for b in bodies)
    assert _join_digest(bodies) == [e.to_dict() for e in events]


def test_a_pathological_finding_is_shrunk_to_fit():
    ev = event(added=[finding("CVE-HUGE", title="x" * 50_000, links=tuple(f"https://e.x/{i}" for i in range(500))),
                      finding("CVE-2")])
    n = WebhookNotifier("hooks", "http://127.0.0.1:9/x", max_payload_bytes=8192)
    bodies = list(n.bodies([ev]))
    assert all(len(b) <= 8192 for b in bodies)
    import json
    parts = [json.loads(b) for b in bodies]
    ids = [f["vulnerability_id"] for p in parts for f in p["data"]["added"]]
    assert ids == ["CVE-HUGE", "CVE-2"]
    huge = parts[0]["data"]["added"][0]
    assert len(huge["title"]) <= 200 and huge["package_name"] == "openssl"


def test_cap_below_minimum_is_refused():
    with pytest.raises(ValueError, match="max_payload_bytes must be at least 4096"):
        WebhookNotifier("hooks", "https://example.invalid/x", max_payload_bytes=1000)


def test_failed_part_retries_the_whole_message_with_the_same_part_ids(store, receiver):
    ev = big_event(300)
    enqueue(store, ev, ["hooks"])
    receiver.responses.extend([(200, {}, b"ok"), (503, {}, b"busy")])
    d = Dispatcher(store, {"hooks": WebhookNotifier("hooks", receiver.url, max_payload_bytes=CAP)},
                   rng=lambda: 1.0)
    now = utcnow() + timedelta(seconds=1)
    r1 = d.dispatch(now)
    assert (r1.delivered, r1.failed) == (0, 1)
    first = [r.json() for r in receiver.requests]
    assert [b["part"] for b in first] == [1, 2]
    (row,) = store.deliveries()
    assert row.status is DeliveryStatus.PENDING and "HTTP 503" in row.last_error
    r2 = d.dispatch(row.next_attempt_at)
    assert r2.delivered == 1
    second = [r.json() for r in receiver.requests[2:]]
    assert [b["part"] for b in second] == list(range(1, second[0]["parts"] + 1))
    assert [b["id"] for b in second[:2]] == [b["id"] for b in first]  # receivers de-duplicate on these
    assert _join_event(second) == ev.to_dict()


def test_one_event_too_large_even_without_findings_is_a_permanent_error():
    ev = event(added=[finding("CVE-1")], tags=tuple(f"tag-{i:05d}" for i in range(600)))
    with pytest.raises(DeliveryError) as ei:
        list(WebhookNotifier("hooks", "http://127.0.0.1:9/x", max_payload_bytes=4096).bodies([ev]))
    assert not ei.value.retryable and "max_payload_bytes" in str(ei.value)


def test_config_defaults_are_the_notifiers_defaults():
    from vulnwatch.config import Config, config_summary
    from vulnwatch.config import notifications as cfg
    from vulnwatch.notify import _payload
    assert cfg.DEFAULT_MAX_PAYLOAD_BYTES == _payload.DEFAULT_MAX_PAYLOAD_BYTES
    assert cfg.MIN_PAYLOAD_BYTES == _payload.MIN_PAYLOAD_BYTES
    c = Config.model_validate({"notifications": [
        {"name": "w", "type": "webhook", "url": "https://example.invalid/x", "max_payload_bytes": 100_000,
         "verify_tls": False},
        {"name": "s", "type": "slack", "url": "https://example.invalid/s"}]})
    w = WebhookNotifier.from_config(c.notifications[0])
    assert w.max_payload_bytes == 100_000
    lines = config_summary(c)
    assert any("notification w (webhook" in x and "messages up to 100,000 bytes (larger ones in parts), TLS NOT "
               "VERIFIED" in x for x in lines)
    assert any("notification s (slack" in x and "up to 10 findings per list, messages up to 12,000 bytes" in x
               and "TLS" not in x for x in lines)
    from vulnwatch.config import ConfigError, parse_config
    with pytest.raises(ConfigError, match="max_payload_bytes"):
        parse_config("notifications: [{name: w, type: webhook, url: 'https://e.invalid/x', max_payload_bytes: 10}]")


def test_digest_messages_are_built_in_bounded_memory():
    """A digest whose single CloudEvent would be ~6.7 MB: each sink builds its request(s) with a
    peak far below the size of that body (the old code held every finding's dict, the text and
    the bytes at once: several times the body)."""
    import gc
    import tracemalloc

    from vulnwatch.notify.email import EmailNotifier
    from vulnwatch.notify.slack import SlackNotifier
    from vulnwatch.notify.teams import TeamsNotifier

    events = [big_event(1000, repository=f"svc/{i:02d}", digest="sha256:" + f"{i:064x}") for i in range(10)]
    whole = sum(len(encode(WebhookNotifier("x", "http://x/").envelope([e]))) for e in events)
    assert whole > 6_500_000
    builds = {
        "webhook": lambda: sum(len(b) for b in WebhookNotifier("w", "http://x/").bodies(events)),
        "slack": lambda: len(SlackNotifier("s", "http://x/").render(events)["blocks"]),
        "teams": lambda: len(TeamsNotifier("t", "http://x/").body(events)),
        "email": lambda: len(EmailNotifier("e", host="h", sender="a@b.c", recipients=["x@y.z"])
                             .message(events).as_bytes()),
    }
    peaks = {}
    for name, build in builds.items():
        gc.collect()
        tracemalloc.start()
        try:
            assert build()
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert all(peak < 4_000_000 for peak in peaks.values()), peaks
