"""logs.redact (the one redaction function), secret registration, and the log handler that uses them."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import SecretStr

from vulnwatch import logs


@pytest.fixture(autouse=True)
def clean_secrets(monkeypatch):
    monkeypatch.setattr(logs, "_SECRETS", set())


def test_registered_secrets_are_replaced_longest_first():
    logs.register_secret("hunter22")
    logs.register_secret("hunter22-and-more")
    assert logs.redact("a hunter22-and-more b hunter22 c") == "a *** b *** c"


def test_short_values_are_not_registered():
    logs.register_secret("abc")          # would redact every "abc" in every message
    logs.register_secret("")
    logs.register_secret(None)
    assert logs.redact("abc abc") == "abc abc"


def test_url_credentials_are_redacted_without_registration():
    assert logs.redact("postgresql://vw:s3cret@db:5432/x failed") == "postgresql://***@db:5432/x failed"
    assert logs.redact("https://user:tok@ghcr.io/v2/") == "https://***@ghcr.io/v2/"
    assert logs.redact("plain https://ghcr.io/v2/") == "plain https://ghcr.io/v2/"


def test_whole_urls_go_when_asked_and_extra_secrets_are_honoured():
    text = "POST https://hooks.slack.com/services/T0/B0/XyZ failed: token=abcd1234 echoed"
    out = logs.redact(text, "abcd1234", urls=True)
    assert out == "POST <redacted> failed: token=*** echoed"
    # nothing registered: only what looks like a credential goes (the Slack URL's token path)
    assert logs.redact(text) == "POST https://hooks.slack.com/services/*** failed: token=abcd1234 echoed"


def test_reveal_registers_what_it_reveals():
    assert logs.reveal(SecretStr("webhook-token-1")) == "webhook-token-1"
    assert logs.reveal("plain-token-2") == "plain-token-2"
    assert logs.reveal(None) is None
    assert logs.redact("webhook-token-1 / plain-token-2") == "*** / ***"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_handler_scrubs_messages_arguments_and_extra_fields(fmt):
    stream = io.StringIO()
    logs.setup(fmt, "INFO", stream=stream)
    try:
        logs.register_secret("pa55word!")
        log = logging.getLogger("vulnwatch.test")
        log.warning("login with %s failed", "pa55word!", extra={"url": "https://u:pa55word!@h/x", "n": 3})
        try:
            raise RuntimeError("boom pa55word!")
        except RuntimeError:
            log.exception("crashed")
    finally:
        logging.getLogger().handlers[:] = []
    out = stream.getvalue()
    assert "pa55word!" not in out
    assert "login with *** failed" in out
    if fmt == "json":
        first, second = (json.loads(line) for line in out.splitlines() if line.startswith("{"))
        assert first["url"] == "https://***@h/x" and first["n"] == 3 and first["level"] == "warning"
        assert "boom ***" in second["exception"]


@pytest.mark.parametrize("text,secret", [
    ('echo {"headers": {"Authorization": "Bearer abcdefgh12345678"}}', "abcdefgh12345678"),
    ("you sent Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ('{"X-Api-Key": "k-123456789"}', "k-123456789"),
    ("POST https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX failed", "XXXXsecretXXXX"),
    ("https://acme.webhook.office.com/webhookb2/abc-def@ghi/IncomingWebhook/123/456", "abc-def@ghi"),
    ("https://x.logic.azure.com/workflows/1/invoke?api-version=1&sig=s1gnature-v4lue", "s1gnature-v4lue"),
    ("GET /hook?token=t0ken-value&x=1", "t0ken-value"),
    ("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA%2F", "abcdef0123"),
])
def test_what_looks_like_a_credential_is_redacted_without_being_registered(text, secret):
    from vulnwatch.logs import redact

    out = redact(text)
    assert secret not in out and "***" in out, out


def test_plain_words_are_left_alone():
    from vulnwatch.logs import redact

    text = "a basic image with a bearer of news; key: the layer cache"
    assert redact(text) == text
