from datetime import timedelta

import pytest

from tests.support.events import enqueue, event, finding
from tests.support.servers import free_port
from vulnwatch.model import Severity, utcnow
from vulnwatch.notify.interface import Notifier
from vulnwatch.delivery.outbox import Dispatcher
from vulnwatch.notify.slack import SlackNotifier
from vulnwatch.notify.webhook import WebhookNotifier
from vulnwatch.store.interface import DeliveryStatus

SECRET_PATH = "/services/T0/B0/SuperSecretToken"


def _start():
    # rows are created at the real current time by the store, so dispatch from just after it
    return utcnow() + timedelta(seconds=1)


def _rows(store, status=None):
    return {d.sink + ":" + d.event.image.repository: d for d in store.deliveries(status)}


def _fast_slack(name, url):
    return SlackNotifier(name, url, timeout=2, min_interval=0, sleep=lambda s: None)


def test_receiver_down_then_retried_later_and_delivered_once(store, late_receiver):
    ev = event(added=[finding("CVE-1")])
    enqueue(store, ev, ["hooks"])
    hooks = WebhookNotifier("hooks", late_receiver.url + "?token=SuperSecretToken", timeout=2)
    d = Dispatcher(store, {"hooks": hooks}, rng=lambda: 1.0)
    now = _start()
    r1 = d.dispatch(now)
    assert (r1.delivered, r1.failed, r1.dead) == (0, 1, 0)
    (row,) = store.deliveries()
    assert row.status is DeliveryStatus.PENDING and row.attempts == 1
    assert row.next_attempt_at == now + timedelta(seconds=30)
    assert "could not connect" in row.last_error
    assert "SuperSecretToken" not in row.last_error and str(late_receiver.port) not in row.last_error
    assert "SuperSecretToken" not in r1.errors["hooks"]
    # not due yet: nothing is attempted
    assert d.dispatch(now + timedelta(seconds=29)).delivered == 0
    rec = late_receiver.start()
    assert rec.requests == []
    r2 = d.dispatch(now + timedelta(seconds=30))
    assert (r2.delivered, r2.failed, r2.dead) == (1, 0, 0)
    assert d.dispatch(now + timedelta(hours=5)).delivered == 0
    assert len(rec.requests) == 1 and rec.requests[0].json()["id"] == ev.id
    (row,) = store.deliveries()
    assert row.status is DeliveryStatus.DELIVERED


def test_max_attempts_dead_letters_with_exponential_backoff(store, receiver):
    receiver.responses.extend([(503, {}, b"busy")] * 10)
    enqueue(store, event(added=[finding("CVE-1")]), ["hooks"])
    d = Dispatcher(store, {"hooks": WebhookNotifier("hooks", receiver.url + "/in")}, max_attempts=4,
                   backoff_base=10, backoff_max=25, rng=lambda: 1.0)
    now = _start()
    gaps = []
    for _ in range(4):
        report = d.dispatch(now)
        (row,) = store.deliveries()
        if row.next_attempt_at is None:
            break
        gaps.append((row.next_attempt_at - now).total_seconds())
        now = row.next_attempt_at
    assert gaps == [10, 20, 25]  # base * 2**(n-1), capped at backoff_max
    assert report.dead == 1 and report.failed == 0
    assert row.status is DeliveryStatus.DEAD and row.attempts == 4
    assert "HTTP 503" in row.last_error and "gave up after 4 attempts" in row.last_error
    assert len(receiver.requests) == 4
    assert d.dispatch(now + timedelta(days=1)).delivered == 0


def test_full_jitter_and_retry_after_floor(store, receiver):
    receiver.responses.append((429, {"Retry-After": "600"}, b"rate_limited"))
    enqueue(store, event(added=[finding("CVE-1")]), ["alerts"])
    d = Dispatcher(store, {"alerts": _fast_slack("alerts", receiver.url + SECRET_PATH)}, rng=lambda: 0.5)
    assert d.backoff(3) == 0.5 * 120
    now = _start()
    d.dispatch(now)
    (row,) = store.deliveries()
    assert row.next_attempt_at == now + timedelta(seconds=600)
    assert "429" in row.last_error and "SuperSecretToken" not in row.last_error


def test_non_retryable_404_dead_immediately(store, receiver):
    receiver.responses.append((404, {}, b"no_service"))
    enqueue(store, event(added=[finding("CVE-1")]), ["alerts"])
    d = Dispatcher(store, {"alerts": _fast_slack("alerts", receiver.url + SECRET_PATH)})
    report = d.dispatch(_start())
    assert (report.delivered, report.failed, report.dead) == (0, 0, 1)
    (row,) = store.deliveries(DeliveryStatus.DEAD)
    assert row.attempts == 1 and "HTTP 404" in row.last_error and "no_service" in row.last_error
    assert "SuperSecretToken" not in row.last_error and receiver.url not in row.last_error
    assert len(receiver.requests) == 1


def test_unconfigured_sink_is_dead_and_others_continue(store, receiver):
    enqueue(store, event(added=[finding("CVE-1")], repository="a"), ["gone", "hooks"])
    enqueue(store, event(added=[finding("CVE-2")], repository="b"), ["down"])
    down = WebhookNotifier("down", f"http://127.0.0.1:{free_port()}/x", timeout=2)
    d = Dispatcher(store, {"hooks": WebhookNotifier("hooks", receiver.url), "down": down})
    report = d.dispatch(_start())
    assert (report.delivered, report.failed, report.dead) == (1, 1, 1)
    rows = _rows(store)
    assert rows["gone:a"].status is DeliveryStatus.DEAD
    assert "'gone' is no longer configured" in rows["gone:a"].last_error
    assert rows["hooks:a"].status is DeliveryStatus.DELIVERED
    assert rows["down:b"].status is DeliveryStatus.PENDING
    assert set(report.errors) == {"gone", "down"}


def test_digest_sink_gets_one_message_per_image_sink_one_each(store, receiver):
    events = [event(added=[finding(f"CVE-{i}", Severity.HIGH)], repository=f"svc/{i}") for i in range(3)]
    for ev in events:
        enqueue(store, ev, ["daily", "each"])
    d = Dispatcher(store, {"daily": WebhookNotifier("daily", receiver.url + "/daily"),
                           "each": WebhookNotifier("each", receiver.url + "/each")},
                   modes={"daily": "digest"})
    report = d.dispatch(_start())
    assert report.delivered == 6
    digests = receiver.bodies("/daily")
    assert len(digests) == 1 and digests[0]["type"] == "io.vulnwatch.digest"
    assert sorted(e["id"] for e in digests[0]["data"]["events"]) == sorted(e.id for e in events)
    assert sorted(b["id"] for b in receiver.bodies("/each")) == sorted(e.id for e in events)
    with pytest.raises(ValueError, match="mode 'weekly'"):
        Dispatcher(store, {}, modes={"x": "weekly"})


def test_after_retryable_failure_rest_of_sink_is_skipped(store, receiver):
    receiver.responses.append((500, {}, b"oops"))
    for i in range(3):
        enqueue(store, event(added=[finding(f"CVE-{i}")], repository=f"svc/{i}"), ["hooks"])
    d = Dispatcher(store, {"hooks": WebhookNotifier("hooks", receiver.url)}, rng=lambda: 1.0)
    now = _start()
    report = d.dispatch(now)
    assert (report.failed, report.skipped, report.delivered) == (1, 2, 0)
    assert len(receiver.requests) == 1
    assert sorted(r.attempts for r in store.deliveries()) == [0, 0, 1]
    report = d.dispatch(now + timedelta(seconds=1))
    assert report.delivered == 2
    assert d.dispatch(now + timedelta(seconds=31)).delivered == 1
    assert len(receiver.requests) == 4


class Broken(Notifier):
    name = "broken"

    def send(self, events):
        raise RuntimeError("boom at https://hooks.example/T0/SuperSecretToken")


def test_unexpected_notifier_exception_is_retryable_and_scrubbed(store):
    enqueue(store, event(added=[finding("CVE-1")]), ["broken"])
    report = Dispatcher(store, {"broken": Broken()}).dispatch(_start())
    assert report.failed == 1
    (row,) = store.deliveries()
    assert "unexpected RuntimeError" in row.last_error and "SuperSecretToken" not in row.last_error


def test_failed_digest_is_retried_as_one_message(store, receiver):
    receiver.responses.append((502, {}, b"bad gateway"))
    events = [event(added=[finding(f"CVE-{i}")], repository=f"svc/{i}") for i in range(3)]
    for ev in events:
        enqueue(store, ev, ["daily"])
    jitter = iter([0.9, 0.1, 0.5])
    d = Dispatcher(store, {"daily": WebhookNotifier("daily", receiver.url)}, modes={"daily": "digest"},
                   rng=lambda: next(jitter))
    now = _start()
    report = d.dispatch(now)
    assert (report.failed, report.delivered) == (3, 0)
    assert len({r.next_attempt_at for r in store.deliveries()}) == 1
    report = d.dispatch(store.deliveries()[0].next_attempt_at)
    assert report.delivered == 3
    assert len(receiver.requests) == 2 and len(receiver.requests[1].json()["data"]["events"]) == 3


def test_delivery_stops_at_the_deadline_in_force_and_keeps_the_rest(store, receiver):
    """What is due when the cycle's deadline is reached stays in the outbox, said as such."""
    from tests.support.events import enqueue, event
    from vulnwatch.delivery.outbox import Dispatcher
    from vulnwatch.model import Deadline, deadline_scope
    from vulnwatch.notify.webhook import WebhookNotifier

    hook = WebhookNotifier("hook", f"{receiver.url}/hook")
    for i in range(3):
        enqueue(store, event(repository=f"team/app{i}"), ["hook"])
    d = Dispatcher(store, {"hook": hook})
    with deadline_scope(Deadline(0.0, "limits.cycle_timeout (1s)")):
        report = d.dispatch()
    assert report.delivered == 0 and report.skipped == 3 and receiver.requests == []
    assert "left in the outbox for the next cycle: limits.cycle_timeout (1s) reached" in report.errors["hook"]
    assert d.dispatch().delivered == 3          # the next cycle sends them
