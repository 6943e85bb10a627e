import json

import pytest

from tests.support.events import OLD_DIGEST, change, event, finding
from vulnwatch.model import EventKind, Severity
from vulnwatch.notify.interface import DeliveryError
from vulnwatch.notify.slack import SlackNotifier, render


def _texts(payload) -> list[str]:
    out = []
    for b in payload["blocks"]:
        if "text" in b:
            out.append(b["text"]["text"])
        for el in b.get("elements", []):
            out.append(el["text"])
    return out


def _all_text(payload) -> str:
    return "\n".join(_texts(payload))


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def test_blocks_order_links_deltas_and_counts():
    ev = event(added=[finding("CVE-2024-0001", Severity.MEDIUM, pkg="zlib1g", ver="1:1.2.13", fixed=()),
                      finding("CVE-2024-0002", Severity.CRITICAL, pkg="openssl", ver="3.0.11-1",
                              fixed=("3.0.13-1",), links=("https://security-tracker.debian.org/CVE-2024-0002",)),
                      finding("CVE-2024-0003", Severity.HIGH, pkg="curl<x>", ver="7.88")],
               fixed=[finding("CVE-2023-9999", Severity.LOW, pkg="libc6", ver="2.36")],
               changed=[change("CVE-2023-5555", Severity.MEDIUM, Severity.CRITICAL, pkg="libssl3")],
               counts={"CRITICAL": 2, "HIGH": 1, "MEDIUM": 1, "LOW": 0},
               previous_counts={"CRITICAL": 1, "HIGH": 1, "LOW": 1, "MEDIUM": 0})
    p = render([ev])
    header = p["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "team/app:1.4 — findings changed"
    about = _texts(p)[1]
    assert "registry `prod`" in about and "digest `abababababab`" in about
    counts = _texts(p)[2]
    assert counts == "*CRITICAL* 2 (+1) · *HIGH* 1 · *MEDIUM* 1 (+1) · *LOW* 0 (-1)"
    new = _texts(p)[3]
    lines = new.splitlines()
    assert lines[0] == "*New findings (3)*"
    assert [ln.split("|")[1].split(">")[0] for ln in lines[1:]] == ["CVE-2024-0002", "CVE-2024-0003", "CVE-2024-0001"]
    assert "<https://security-tracker.debian.org/CVE-2024-0002|CVE-2024-0002>" in lines[1]
    assert "`openssl` 3.0.11-1 → 3.0.13-1" in lines[1]
    assert "<https://nvd.nist.gov/vuln/detail/CVE-2024-0003|CVE-2024-0003>" in lines[2]
    assert "`curl&lt;x&gt;`" in lines[2]  # mrkdwn control characters escaped
    assert "→ no fix yet" in lines[3]
    fixed = _texts(p)[4]
    assert fixed.startswith("*Fixed (1)*") and "CVE-2023-9999" in fixed and "(was LOW)" in fixed
    changed = _texts(p)[5]
    assert changed.startswith("*Changed (1)*") and "MEDIUM → *CRITICAL*" in changed
    assert p["text"] == "vulnwatch: team/app:1.4 — findings changed: 3 new, 1 fixed, 1 changed"


def test_new_image_has_no_deltas_and_rebuild_names_old_digest():
    ev = event(EventKind.NEW_IMAGE, added=[finding("CVE-1", Severity.HIGH)])
    assert _texts(render([ev]))[2] == "*HIGH* 1"
    rb = event(EventKind.REBUILD, added=[finding("CVE-1")], previous_digest=OLD_DIGEST, moved_tags=("1.4",),
               previous_counts={"HIGH": 0})
    p = render([rb])
    assert p["blocks"][0]["text"]["text"].endswith("— rebuild")
    assert "rebuilt from `cdcdcdcdcdcd` (1.4 moved)" in _texts(p)[1]


def test_and_n_more_beyond_max_listed_and_section_limit():
    many = [finding(f"CVE-2024-{i:04d}", Severity.HIGH, cvss=10 - i / 100) for i in range(25)]
    p = render([event(added=many)], max_listed=10)
    lines = _texts(p)[3].splitlines()
    assert len(lines) == 1 + 10 + 1 and lines[-1] == "_…and 15 more_"
    assert "CVE-2024-0000" in lines[1]  # highest CVSS first within a severity
    huge = [finding(f"CVE-2024-{i:04d}", Severity.HIGH, pkg="p" * 200) for i in range(40)]
    text = _texts(render([event(added=huge)], max_listed=40))[3]
    assert len(text) <= 3000 and text.splitlines()[-1].startswith("_…and ")
    shown = len(text.splitlines()) - 2
    assert text.splitlines()[-1] == f"_…and {40 - shown} more_"


def test_digest_mode_one_message_summarizing_each_image():
    events = [event(added=[finding("CVE-A", Severity.LOW)], repository="svc/low"),
              event(added=[finding("CVE-B", Severity.CRITICAL)], repository="svc/crit"),
              event(fixed=[finding("CVE-C")], repository="svc/fixed")]
    p = render(events)
    assert p["blocks"][0]["text"]["text"] == "vulnwatch digest: 3 images changed"
    sections = [t for t in _texts(p)[1:]]
    assert sections[0] == "2 new findings, 1 fixed across 3 images"
    assert [s.split(":")[0] for s in sections[1:]] == ["*svc/crit", "*svc/low", "*svc/fixed"]
    assert "CVE-B" in sections[1] and "CVE-C" in sections[3]
    assert p["text"].startswith("vulnwatch digest: 3 images changed")
    crowded = render([event(added=[finding(f"CVE-N{i}") for i in range(3)],
                            fixed=[finding(f"CVE-F{i}") for i in range(4)]), events[0]], max_listed=5)
    assert _texts(crowded)[2].splitlines()[-1] == "_…and 2 more_"
    forty = render([event(added=[finding("CVE-X")], repository=f"r/{i}") for i in range(40)])
    assert len(forty["blocks"]) <= 50
    text = _all_text(forty)
    assert all(f"r/{i}:1.4 — findings changed" in text for i in range(40)) and "more images" not in text
    big = render([event(added=[finding("CVE-X")], repository=f"r/{i}") for i in range(400)])
    assert len(big["blocks"]) <= 50 and _size(big) <= 12_000
    shown = sum(t.count(":1.4 — findings changed") for t in _texts(big))
    assert _texts(big)[-1] == f"_…and {400 - shown} more images_" and shown > 40


def test_send_posts_json_to_receiver_and_repr_hides_url(receiver):
    url = receiver.url + "/services/T000/B000/XXXXsecretXXXX"
    n = SlackNotifier("alerts", url)
    ev = event(added=[finding("CVE-1")])
    n.send([ev])
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    assert req.path == "/services/T000/B000/XXXXsecretXXXX"
    assert req.headers["Content-Type"].startswith("application/json")
    assert json.loads(req.body) == render([ev])
    assert "secret" not in repr(n) and "alerts" in repr(n)
    n.close()


def test_429_retry_after_is_raised_retryable(receiver):
    receiver.responses.append((429, {"Retry-After": "17"}, b"rate_limited"))
    n = SlackNotifier("alerts", receiver.url + "/services/SECRET")
    with pytest.raises(DeliveryError) as ei:
        n.send([event(added=[finding("CVE-1")])])
    assert ei.value.retryable and ei.value.retry_after == 17.0
    assert "SECRET" not in str(ei.value) and "127.0.0.1" not in str(ei.value)


@pytest.mark.parametrize("status,retryable", [(404, False), (400, False), (403, False), (500, True), (503, True)])
def test_status_classification(receiver, status, retryable):
    receiver.responses.append((status, {}, b"no_service"))
    n = SlackNotifier("alerts", receiver.url + "/services/SECRET")
    with pytest.raises(DeliveryError) as ei:
        n.send([event(added=[finding("CVE-1")])])
    assert ei.value.retryable is retryable
    assert f"HTTP {status}" in str(ei.value) and "'alerts'" in str(ei.value)
    assert "SECRET" not in str(ei.value) and receiver.url not in str(ei.value)


def test_closed_port_and_timeout_are_retryable_without_url():
    from tests.support.servers import free_port
    n = SlackNotifier("alerts", f"http://127.0.0.1:{free_port()}/services/SECRET", timeout=1)
    with pytest.raises(DeliveryError) as ei:
        n.send([event(added=[finding("CVE-1")])])
    assert ei.value.retryable and "SECRET" not in str(ei.value) and "127.0.0.1" not in str(ei.value)


def test_timeout_is_retryable():
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepts, never answers
    try:
        n = SlackNotifier("alerts", f"http://127.0.0.1:{srv.getsockname()[1]}/services/SECRET", timeout=0.3)
        with pytest.raises(DeliveryError) as ei:
            n.send([event(added=[finding("CVE-1")])])
        assert ei.value.retryable and "timed out" in str(ei.value) and "SECRET" not in str(ei.value)
    finally:
        srv.close()


def test_pacing_one_message_per_interval(receiver):
    t = FakeTime()
    n = SlackNotifier("alerts", receiver.url + "/hook", min_interval=1.0, clock=t.clock, sleep=t.sleep)
    ev = event(added=[finding("CVE-1")])
    n.send([ev])
    assert t.slept == []
    t.now += 0.25
    n.send([ev])
    assert t.slept == [pytest.approx(0.75)]
    t.now += 5
    n.send([ev])
    assert t.slept == [pytest.approx(0.75)]
    assert len(receiver.requests) == 3


def test_pacing_applies_after_a_failed_post_too(receiver):
    t = FakeTime()
    receiver.responses.append((500, {}, b"rollup_error"))
    n = SlackNotifier("alerts", receiver.url + "/hook", clock=t.clock, sleep=t.sleep)
    with pytest.raises(DeliveryError):
        n.send([event(added=[finding("CVE-1")])])
    n.send([event(added=[finding("CVE-1")])])
    assert t.slept == [pytest.approx(1.0)]


def _size(payload) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def test_a_long_repository_is_cut_in_the_header_never_the_kind():
    repo = "org/" + "very-long-component/" * 20 + "app"
    ev = event(EventKind.REBUILD, added=[finding("CVE-1")], repository=repo, previous_digest=OLD_DIGEST)
    p = render([ev])
    header = p["blocks"][0]["text"]["text"]
    assert len(header) == 150 and header.endswith("… — rebuild") and header.startswith("org/very-long")
    assert p["text"].startswith("vulnwatch: org/very-long") and "— rebuild: 1 new" in p["text"]
    d = render([ev, event(added=[finding("CVE-2")])])
    assert any("… — rebuild*" in t for t in _texts(d))


def test_largest_event_stays_within_slack_limits():
    from tests.support.events import big_event
    ev = big_event(1850, fixed=300, changed=200)
    n = SlackNotifier("alerts", "https://hooks.example/x")
    assert n.max_payload_bytes == 12_000
    p = n.render([ev])
    assert _size(p) <= 12_000 and len(p["blocks"]) <= 50
    texts = _texts(p)
    assert texts[3].startswith("*New findings (1850)*") and texts[3].splitlines()[-1] == "_…and 1840 more_"
    assert texts[4].startswith("*Fixed (300)*") and texts[5].startswith("*Changed (200)*")
    # the listed ones are the most severe: CRITICAL, highest CVSS first
    first = texts[3].splitlines()[1]
    assert "*CRITICAL*" in first
    small = SlackNotifier("alerts", "https://hooks.example/x", max_payload_bytes=5000).render([ev])
    assert _size(small) <= 5000 and _texts(small)[3].startswith("*New findings (1850)*")


def test_digest_of_56_large_images_names_each_within_the_cap():
    from tests.support.events import big_event
    from vulnwatch.model import Severity
    events = [big_event(200, repository=f"svc/{i:02d}", digest="sha256:" + f"{i:064x}") for i in range(56)]
    worst = event(added=[finding("CVE-2024-9", Severity.CRITICAL)], repository="svc/worst")
    events.append(worst)
    p = render(events)
    assert _size(p) <= 12_000 and len(p["blocks"]) <= 50
    texts = _texts(p)
    assert texts[0] == "vulnwatch digest: 57 images changed"
    assert texts[2].startswith("*svc/") and "· registry `prod`" in texts[2]  # the first image in detail
    text = "\n".join(texts)
    named = [i for i in range(56) if f"svc/{i:02d}:1.4" in text]
    more = texts[-1]
    left = int(more.split()[1]) if more.startswith("_…and") else 0
    assert len(named) + ("svc/worst" in text) + left == 57
    assert len(named) == 56 and left == 0  # one line each is 57 x ~110 bytes: they all fit
