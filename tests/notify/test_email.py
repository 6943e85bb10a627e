"""Email over SMTP against a real server on 127.0.0.1 (aiosmtpd): plain, STARTTLS and implicit
TLS with a CA made for this test session, AUTH, several recipients, refusals, and end to end
through the outbox with a real store."""

from __future__ import annotations

import dataclasses
import logging
import socket
import ssl
from datetime import timedelta

import pytest
import trustme

from tests.support.events import OLD_DIGEST, big_event, change, enqueue, event, finding
from tests.support.servers import free_port
from tests.support.smtp import SMTPServer
from vulnwatch.delivery.outbox import Dispatcher
from vulnwatch.model import EventKind, Severity, utcnow
from vulnwatch.notify import NOTIFIERS
from vulnwatch.notify.email import EmailNotifier
from vulnwatch.notify.interface import DeliveryError
from vulnwatch.store.interface import DeliveryStatus

PASSWORD = "smtp-S3CRET-pw"
TO = ["sec@example.com", "Ops Team <ops@example.org>"]


@pytest.fixture(scope="session")
def ca():
    return trustme.CA(organization_name="vulnwatch test CA")


@pytest.fixture(scope="session")
def ca_file(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _server_context(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


def _self_signed_context() -> ssl.SSLContext:
    """A certificate that signed itself (a CA's own certificate used as the server's)."""
    other = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with other.cert_pem.tempfile() as cert, other.private_key_pem.tempfile() as key:
        ctx.load_cert_chain(cert, key)
    return ctx


@pytest.fixture
def servers():
    started: list[SMTPServer] = []

    def start(*args, **kw) -> SMTPServer:
        s = SMTPServer(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def _plain(server: SMTPServer, **kw) -> EmailNotifier:
    return EmailNotifier("mail", host="127.0.0.1", port=server.port, tls="none", insecure=True,
                         sender="vulnwatch <vulnwatch@example.com>", recipients=TO, timeout=5, **kw)


def _sample():
    return event(added=[finding("CVE-2024-0002", Severity.CRITICAL, pkg="lib<script>alert(1)</script>",
                                links=("https://security-tracker.debian.org/CVE-2024-0002",)),
                        finding("CVE-2024-0003", Severity.HIGH, pkg="curl", links=("javascript:alert(1)",))],
                 fixed=[finding("CVE-2023-9999", Severity.LOW, pkg="libc6", ver="2.36")],
                 changed=[change("CVE-2023-5555", Severity.MEDIUM, Severity.CRITICAL, pkg="libssl3")],
                 counts={"CRITICAL": 2, "HIGH": 1}, previous_counts={"CRITICAL": 1, "HIGH": 1, "LOW": 1})


def test_plain_smtp_multipart_message_to_every_recipient(servers):
    server = servers("plain")
    ev = _sample()
    _plain(server).send([ev])
    (got,) = server.received
    assert got.mail_from == "vulnwatch@example.com"
    assert got.rcpt_tos == ["sec@example.com", "ops@example.org"]  # each recipient gets it
    msg = got.message
    assert msg["Subject"] == "[vulnwatch] team/app:1.4 — findings changed: 2 new, 1 fixed, 1 changed"
    assert msg["From"] == "vulnwatch <vulnwatch@example.com>"
    assert msg["To"] == "sec@example.com, Ops Team <ops@example.org>"
    assert msg["Message-ID"] == f"<{ev.id}@example.com>" and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    markup = msg.get_body(("html",)).get_content()
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    for needle in ("team/app:1.4 — findings changed", "Digest:       " + ev.image.digest,
                   "Counts:       CRITICAL 2 (+1) · HIGH 1 · LOW 0 (-1)", "New findings (2)", "Fixed (1)",
                   "Changed (1)", "MEDIUM → CRITICAL", "https://security-tracker.debian.org/CVE-2024-0002"):
        assert needle in text, needle
    assert text.index("CVE-2024-0002") < text.index("CVE-2024-0003")  # most severe first
    assert "<script>" not in markup and "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert '<a href="https://security-tracker.debian.org/CVE-2024-0002">CVE-2024-0002</a>' in markup
    assert "javascript:" not in markup and "javascript:" not in text
    assert text.rstrip().endswith(f"the state store keeps every finding of event {ev.id}.")


def test_starttls_with_the_session_ca_and_auth(servers, ca, ca_file):
    server = servers("starttls", cert_context=_server_context(ca), users={"bot": PASSWORD})
    n = EmailNotifier("mail", host="127.0.0.1", port=server.port, tls="starttls", username="bot",
                      password=PASSWORD, ca_file=ca_file, sender="vulnwatch@example.com", recipients=TO, timeout=5)
    n.send([_sample()])
    (got,) = server.received
    assert got.tls and got.login == "bot" and len(got.rcpt_tos) == 2
    wrong = EmailNotifier("mail", host="127.0.0.1", port=server.port, tls="starttls", username="bot",
                          password="not-the-password", ca_file=ca_file, sender="vulnwatch@example.com",
                          recipients=TO, timeout=5)
    with pytest.raises(DeliveryError) as ei:
        wrong.send([_sample()])
    assert not ei.value.retryable and "SMTP 535" in str(ei.value) and "authentication failed" in str(ei.value)
    assert "not-the-password" not in str(ei.value)


def test_implicit_tls_with_the_session_ca(servers, ca, ca_file):
    server = servers("implicit", cert_context=_server_context(ca), users={"bot": PASSWORD})
    n = EmailNotifier("mail", host="127.0.0.1", port=server.port, tls="implicit", username="bot",
                      password=PASSWORD, ca_file=ca_file, sender="vulnwatch@example.com", recipients=TO[:1])
    n.send([_sample()])
    (got,) = server.received
    assert got.tls and got.login == "bot" and got.rcpt_tos == ["sec@example.com"]


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_self_signed_certificate_without_the_ca_is_a_permanent_tls_error(servers, ca_file, mode):
    server = servers(mode, cert_context=_self_signed_context())
    common = dict(host="127.0.0.1", port=server.port, tls=mode, sender="vulnwatch@example.com", recipients=TO,
                  timeout=5)
    for kw in ({}, {"ca_file": ca_file}):  # the system's CAs, then the session CA: neither signed it
        with pytest.raises(DeliveryError) as ei:
            EmailNotifier("mail", **common, **kw).send([_sample()])
        assert not ei.value.retryable
        assert "TLS certificate verification failed" in str(ei.value) and "self-signed" in str(ei.value)
    assert server.received == []
    EmailNotifier("mail", **common, verify_tls=False).send([_sample()])  # turned off for this sink only
    assert len(server.received) == 1


def test_wrong_host_name_in_the_certificate_is_a_tls_error(servers, ca, ca_file):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("smtp.elsewhere.example").configure_cert(ctx)
    server = servers("implicit", cert_context=ctx)
    with pytest.raises(DeliveryError) as ei:
        EmailNotifier("mail", host="127.0.0.1", port=server.port, tls="implicit", ca_file=ca_file,
                      sender="vulnwatch@example.com", recipients=TO).send([_sample()])
    assert not ei.value.retryable and "TLS" in str(ei.value)


def test_starttls_required_but_not_offered_is_permanent(servers):
    server = servers("plain")
    with pytest.raises(DeliveryError) as ei:
        EmailNotifier("mail", host="127.0.0.1", port=server.port, tls="starttls", sender="vulnwatch@example.com",
                      recipients=TO).send([_sample()])
    assert not ei.value.retryable and "does not offer STARTTLS" in str(ei.value)
    assert server.received == []


def test_implicit_tls_against_a_plain_port_is_a_permanent_tls_error(servers):
    server = servers("plain")
    with pytest.raises(DeliveryError) as ei:
        EmailNotifier("mail", host="127.0.0.1", port=server.port, tls="implicit", sender="vulnwatch@example.com",
                      recipients=TO, timeout=5).send([_sample()])
    assert not ei.value.retryable and "TLS handshake" in str(ei.value)


def test_connection_refused_and_timeout_are_retryable():
    n = EmailNotifier("mail", host="127.0.0.1", port=free_port(), tls="none", insecure=True,
                      sender="vulnwatch@example.com", recipients=TO, timeout=2)
    with pytest.raises(DeliveryError) as ei:
        n.send([_sample()])
    assert ei.value.retryable and "connection refused" in str(ei.value)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never greets
    try:
        n = EmailNotifier("mail", host="127.0.0.1", port=silent.getsockname()[1], tls="none", insecure=True,
                          sender="vulnwatch@example.com", recipients=TO, timeout=0.5)
        with pytest.raises(DeliveryError) as ei:
            n.send([_sample()])
        assert ei.value.retryable and "timed out" in str(ei.value)
    finally:
        silent.close()


def test_some_recipients_refused_is_delivered_to_the_others(servers, caplog):
    server = servers("plain")
    server.handler.rcpt_replies["ops@example.org"] = ["550 5.1.1 no such user"]
    with caplog.at_level(logging.WARNING, logger="vulnwatch.notify.email"):
        _plain(server).send([_sample()])
    (got,) = server.received
    assert got.rcpt_tos == ["sec@example.com"]
    assert "refused ops@example.org (550)" in caplog.text
    for addr in ("sec@example.com", "ops@example.org"):
        server.handler.rcpt_replies[addr] = ["550 5.1.1 no such user"]
    with pytest.raises(DeliveryError) as ei:
        _plain(server).send([_sample()])
    assert not ei.value.retryable and "every recipient refused" in str(ei.value) and "SMTP 550" in str(ei.value)


def _dispatcher(store, notifier, **kw):
    return Dispatcher(store, {"mail": notifier}, rng=lambda: 1.0, **kw)


def test_outbox_450_is_retried_then_delivered_once(store, servers):
    server = servers("plain")
    server.handler.data_replies.append("450 4.3.2 mailbox busy, try again later")
    ev = _sample()
    enqueue(store, ev, ["mail"])
    d = _dispatcher(store, _plain(server))
    now = utcnow() + timedelta(seconds=1)
    r1 = d.dispatch(now)
    assert (r1.delivered, r1.failed, r1.dead) == (0, 1, 0)
    (row,) = store.deliveries()
    assert row.status is DeliveryStatus.PENDING and row.attempts == 1
    assert "SMTP 450" in row.last_error and row.next_attempt_at == now + timedelta(seconds=30)
    assert d.dispatch(now + timedelta(seconds=10)).delivered == 0  # not due yet
    r2 = d.dispatch(row.next_attempt_at)
    assert r2.delivered == 1
    assert len(server.received) == 1 and server.received[0].message["X-Vulnwatch-Event"] == ev.id
    assert store.deliveries()[0].status is DeliveryStatus.DELIVERED
    assert d.dispatch(now + timedelta(hours=1)).delivered == 0


def test_outbox_550_is_dead_at_once(store, servers):
    server = servers("plain")
    server.handler.data_replies.append("550 5.7.1 message rejected as spam")
    enqueue(store, _sample(), ["mail"])
    report = _dispatcher(store, _plain(server)).dispatch(utcnow() + timedelta(seconds=1))
    assert (report.delivered, report.failed, report.dead) == (0, 0, 1)
    (row,) = store.deliveries(DeliveryStatus.DEAD)
    assert row.attempts == 1 and "SMTP 550" in row.last_error and "rejected as spam" in row.last_error


def test_outbox_server_down_then_up(store, servers):
    port = free_port()
    enqueue(store, _sample(), ["mail"])
    n = EmailNotifier("mail", host="127.0.0.1", port=port, tls="none", insecure=True,
                      sender="vulnwatch@example.com", recipients=TO, timeout=2)
    d = _dispatcher(store, n)
    now = utcnow() + timedelta(seconds=1)
    assert d.dispatch(now).failed == 1
    (row,) = store.deliveries()
    assert row.status is DeliveryStatus.PENDING and "connection refused" in row.last_error
    up = servers("plain", port=port)
    assert d.dispatch(now + timedelta(seconds=30)).delivered == 1
    assert len(up.received) == 1


def test_the_password_is_never_logged_stored_or_in_errors(store, servers, ca, ca_file, caplog):
    server = servers("starttls", cert_context=_server_context(ca), users={"bot": "the-right-one"})
    server.handler.data_replies.append(f"451 4.7.0 temporary failure for password {PASSWORD}")
    from vulnwatch.config import Config
    cfg = Config.model_validate({"notifications": [{
        "name": "mail", "type": "email", "host": "127.0.0.1", "port": server.port, "tls": "starttls",
        "username": "bot", "password": PASSWORD, "from": "vulnwatch@example.com", "to": TO,
        "ca_file": str(ca_file)}]})
    sink = cfg.notifications[0]
    n = NOTIFIERS["email"].from_config(sink)
    assert PASSWORD not in repr(n) and PASSWORD not in repr(sink)
    enqueue(store, _sample(), ["mail"])
    with caplog.at_level(logging.DEBUG):
        report = _dispatcher(store, n).dispatch(utcnow() + timedelta(seconds=1))
    assert report.dead == 1  # wrong password: 535, permanent
    (row,) = store.deliveries()
    assert "SMTP 535" in row.last_error
    # the right password, and a server that echoes it back in a temporary refusal
    n._password = "the-right-one"
    from vulnwatch.logs import register_secret
    register_secret("the-right-one")
    server.handler.data_replies[:] = ["451 4.7.0 temporary failure for password the-right-one"]
    store.retry_dead()
    with caplog.at_level(logging.DEBUG):
        report = _dispatcher(store, n).dispatch(utcnow() + timedelta(seconds=2))
    assert report.failed == 1
    (row,) = store.deliveries()
    assert "SMTP 451" in row.last_error and "***" in row.last_error
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("vulnwatch"))
    assert "SMTP 451" in ours  # the retry was logged, scrubbed
    for secret in (PASSWORD, "the-right-one"):
        assert secret not in row.last_error and secret not in ours
        assert secret not in "".join(report.errors.values())
    import sqlite3
    db = sqlite3.connect(store._engine.url.database)
    dump = "\n".join(db.iterdump())
    assert PASSWORD not in dump and "the-right-one" not in dump


def test_digest_one_message_within_the_cap_naming_every_image(servers):
    server = servers("plain")
    events = [big_event(1850, repository=f"svc/{i:02d}", digest="sha256:" + f"{i:064x}") for i in range(56)]
    n = _plain(server)
    n.send(events)
    (got,) = server.received
    assert len(got.content) <= n.max_payload_bytes == 1024 * 1024
    msg = got.message
    assert msg["Subject"] == "[vulnwatch] digest: 56 images changed, 103600 new findings, 0 fixed"
    text = msg.get_body(("plain",)).get_content()
    named = sum(f"svc/{i:02d}:1.4 — new image" in text for i in range(56))
    assert named == 56 and "New findings (1850)" in text and "…and 1825 more" in text
    assert "the state store keeps every finding of each of these events (vulnwatch events lists them)" in text
    small = _plain(server, max_payload_bytes=64 * 1024)
    assert len(small.message(events).as_bytes()) <= 64 * 1024
    small_text = small.message(events).get_body(("plain",)).get_content()
    assert "more images" in small_text or "Other images" in small_text


def test_one_event_with_many_findings_is_cut_to_max_listed(servers):
    server = servers("plain")
    ev = big_event(1850, kind=EventKind.REBUILD, fixed=300, changed=200)
    ev = dataclasses.replace(ev, previous_digest=OLD_DIGEST)
    _plain(server, max_listed=5).send([ev])
    text = server.received[0].message.get_body(("plain",)).get_content()
    assert "New findings (1850)" in text and "…and 1845 more" in text and "…and 295 more" in text
    assert "Rebuilt from: " + OLD_DIGEST in text


def test_config_section_and_check_config():
    from vulnwatch.config import Config, ConfigError, config_summary, parse_config
    cfg = Config.model_validate({"notifications": [{
        "name": "mail", "type": "email", "host": "smtp.example.com", "username": "bot", "password": PASSWORD,
        "from": "vulnwatch@example.com", "to": TO}]})
    sink = cfg.notifications[0]
    assert (sink.smtp_port, sink.tls, sink.verify_tls, sink.max_listed) == (587, "starttls", True, 25)
    n = EmailNotifier.from_config(sink)
    assert (n.port, n.recipients, n.sender) == (587, TO, "vulnwatch@example.com")
    (line,) = [x for x in config_summary(cfg) if x.startswith("notification mail")]
    assert "smtp smtp.example.com:587 starttls, user bot, from vulnwatch@example.com to sec@example.com, " \
           "Ops Team <ops@example.org>" in line and PASSWORD not in line
    with pytest.raises(ConfigError, match="insecure: true"):
        parse_config("notifications: [{name: m, type: email, host: h, tls: none, from: a@b.c, to: [x@y.z]}]")
    ok = parse_config("notifications: [{name: m, type: email, host: h, tls: none, insecure: true, "
                      "from: a@b.c, to: [x@y.z]}]").notifications[0]
    assert ok.smtp_port == 25 and "TLS NOT USED" in "\n".join(config_summary(parse_config(
        "notifications: [{name: m, type: email, host: h, tls: none, insecure: true, from: a@b.c, to: [x@y.z]}]")))
    with pytest.raises(ConfigError, match="bad email address"):
        parse_config("notifications: [{name: m, type: email, host: h, from: nobody, to: [x@y.z]}]")
    with pytest.raises(ValueError, match="insecure"):
        EmailNotifier("m", host="h", tls="none", sender="a@b.c", recipients=["x@y.z"])
