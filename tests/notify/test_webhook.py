import hashlib
import hmac
import json

import pytest

from tests.support.events import OLD_DIGEST, T0, change, event, finding
from vulnwatch.model import Event, EventKind, Severity
from vulnwatch.notify.interface import DeliveryError
from vulnwatch.notify import NOTIFIERS
from vulnwatch.notify.slack import SlackNotifier
from vulnwatch.notify._http import parse_retry_after
from vulnwatch.notify.webhook import WebhookNotifier, verify

SECRET = "s3cr3t-signing-key"


def _sample():
    return event(EventKind.REBUILD, added=[finding("CVE-2024-0002", Severity.CRITICAL)],
                 fixed=[finding("CVE-2023-1", Severity.LOW, pkg="libc6")],
                 changed=[change("CVE-2023-2", Severity.MEDIUM, Severity.HIGH)],
                 previous_digest=OLD_DIGEST, moved_tags=("1.4",), previous_counts={"HIGH": 1})


def test_cloudevent_fields_signature_and_exact_body(receiver):
    ev = _sample()
    n = WebhookNotifier("hooks", receiver.url + "/in", secret=SECRET, headers={"Authorization": "Bearer tok"})
    n.send([ev])
    (req,) = receiver.requests
    assert req.headers["Content-Type"] == "application/cloudevents+json"
    assert req.headers["Authorization"] == "Bearer tok"
    ce = req.json()
    assert ce["specversion"] == "1.0"
    assert ce["id"] == ev.id
    assert ce["source"] == "vulnwatch/prod/team/app"
    assert ce["type"] == "io.vulnwatch.image.rebuild"
    assert ce["subject"] == f"team/app@{ev.image.digest}"
    assert ce["time"] == "2026-03-01T12:00:00Z"
    assert ce["datacontenttype"] == "application/json"
    assert ce["data"] == ev.to_dict()
    assert Event.from_dict(ce["data"]) == ev  # full lists, lossless
    # the signature is HMAC-SHA256 over the exact bytes received
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Vulnwatch-Signature"] == expected
    assert verify(req.body, SECRET, req.headers["X-Vulnwatch-Signature"])
    assert not verify(req.body + b" ", SECRET, req.headers["X-Vulnwatch-Signature"])
    body, _ = n.request([ev])
    assert req.body == body
    # the same event gives the same body (retries are byte-identical, same id)
    n.send([ev])
    assert receiver.requests[1].body == req.body
    assert "tok" not in repr(n) and SECRET not in repr(n) and receiver.url not in repr(n)


def test_kind_types_and_no_signature_without_secret(receiver):
    n = WebhookNotifier("hooks", receiver.url)
    n.send([event(EventKind.NEW_IMAGE, added=[finding("CVE-1")])])
    n.send([event(EventKind.FINDINGS_CHANGED, added=[finding("CVE-2")])])
    assert [r.json()["type"] for r in receiver.requests] == ["io.vulnwatch.image.new_image",
                                                             "io.vulnwatch.image.findings_changed"]
    assert "X-Vulnwatch-Signature" not in receiver.requests[0].headers


def test_digest_cloudevent(receiver):
    a = event(added=[finding("CVE-A")], repository="svc/a")
    b = event(added=[finding("CVE-B")], repository="svc/b", at=T0.replace(hour=13))
    n = WebhookNotifier("hooks", receiver.url, secret=SECRET)
    n.send([a, b])
    (req,) = receiver.requests
    ce = req.json()
    assert ce["type"] == "io.vulnwatch.digest"
    assert ce["data"]["events"] == [a.to_dict(), b.to_dict()]
    assert ce["data"]["count"] == 2
    assert ce["time"] == "2026-03-01T13:00:00Z"
    assert ce["id"] not in (a.id, b.id)
    assert ce["id"] == n.envelope([b, a])["id"]  # derived from the set of event ids
    assert ce["id"] != n.envelope([a, event(added=[finding("CVE-Z")], repository="svc/z")])["id"]
    assert verify(req.body, SECRET, req.headers["X-Vulnwatch-Signature"])


@pytest.mark.parametrize("status,retryable", [(404, False), (410, False), (301, False), (429, True),
                                              (502, True), (408, True)])
def test_error_classification_and_no_secrets(receiver, status, retryable):
    receiver.responses.append((status, {"Retry-After": "5"} if status == 429 else {},
                               f"denied for {receiver.url}/in?token=abc".encode()))
    n = WebhookNotifier("hooks", receiver.url + "/in?token=abc", secret=SECRET, headers={"X-Api-Key": "k3y-value"})
    with pytest.raises(DeliveryError) as ei:
        n.send([event(added=[finding("CVE-1")])])
    err = ei.value
    assert err.retryable is retryable
    assert (err.retry_after == 5.0) if status == 429 else True
    msg = str(err)
    assert "'hooks'" in msg and f"HTTP {status}" in msg
    for s in ("token=abc", "127.0.0.1", SECRET, "k3y-value"):
        assert s not in msg


def test_parse_retry_after_forms():
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    from datetime import datetime, timezone
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:42 GMT", now) == 42.0


def test_registry_by_name():
    from vulnwatch.config import Config, ConfigError, parse_config
    from vulnwatch.logs import redact
    assert NOTIFIERS["slack"] is SlackNotifier
    assert NOTIFIERS["webhook"] is WebhookNotifier
    with pytest.raises(ConfigError, match="unknown type 'pagerduty'"):
        parse_config("notifications: [{name: t, type: pagerduty, url: 'https://example.invalid/x'}]")
    sink = Config.model_validate({"notifications": [
        {"name": "w", "type": "webhook", "url": "https://example.invalid/x", "secret": "abcdef"}]}).notifications[0]
    n = NOTIFIERS[sink.type].from_config(sink)
    assert isinstance(n, WebhookNotifier) and n.name == "w"
    assert redact("key abcdef and https://example.invalid/x") == "key *** and ***"   # registered on the way
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        parse_config("notifications: [{name: w, type: webhook, url: 'https://example.invalid/x', colour: red}]")
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookNotifier("w", "ftp://example.invalid/x")


@pytest.fixture
def https_receiver(tmp_path):
    """The recording receiver behind TLS, with a certificate from a CA nobody trusts."""
    import ssl
    import trustme
    from tests.support.servers import start_receiver
    rec = start_receiver()
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    rec.server.socket = ctx.wrap_socket(rec.server.socket, server_side=True)
    yield rec
    rec.close()


def test_tls_is_verified_unless_turned_off_per_sink(https_receiver):
    from vulnwatch.config import Config
    url = f"https://127.0.0.1:{https_receiver.server.server_address[1]}/in?token=abc"
    ev = event(added=[finding("CVE-1")])
    for kind, n in (("webhook", WebhookNotifier("hooks", url, timeout=5)),
                    ("slack", SlackNotifier("alerts", url, timeout=5, min_interval=0))):
        with pytest.raises(DeliveryError) as ei:
            n.send([ev])
        assert not ei.value.retryable and "TLS certificate verification failed" in str(ei.value)
        assert "token=abc" not in str(ei.value) and "verify_tls" in str(ei.value)
    assert https_receiver.requests == []
    cfg = Config.model_validate({"notifications": [
        {"name": "w", "type": "webhook", "url": url, "verify_tls": False},
        {"name": "s", "type": "slack", "url": url, "verify_tls": False}]})
    for sink in cfg.notifications:
        NOTIFIERS[sink.type].from_config(sink).send([ev])
    assert len(https_receiver.requests) == 2
