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
    assert "abcd1234" in text and logs.redact(text) == text      # nothing registered: unchanged


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
