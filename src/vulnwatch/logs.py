"""Logging set-up shared by every entry point: human or JSON lines, secrets redacted.

Secrets are registered with :func:`register_secret` as the config is loaded; every log record's
message and extra fields are scrubbed of them before any handler sees the record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any

_SECRETS: set[str] = set()
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_ANY_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_URL_CREDS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.I)


def register_secret(value: str | None) -> None:
    """Never print ``value`` again (values shorter than 4 characters are ignored)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def reveal(value: Any) -> str | None:
    """The plain value of a pydantic ``SecretStr`` (or a plain string), registered with
    :func:`register_secret` on the way: a secret is never used without being redacted after."""
    if value is None:
        return None
    plain = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    register_secret(plain)
    return plain


def redact(text: str, *secrets: str | None, urls: bool = False) -> str:
    """``text`` with every registered secret and every one of ``secrets`` replaced by ``***``,
    and ``user:password@`` URL parts by ``***@``. With ``urls``, anything URL-shaped is replaced
    by ``<redacted>`` as a whole (for text a server or an HTTP library wrote about a request to a
    secret URL). The one redaction function: everything that can reach a log, the state
    database or an event goes through it."""
    for s in sorted({*_SECRETS, *(s for s in secrets if s)}, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    if urls:
        return _ANY_URL.sub("<redacted>", text)
    return _URL_CREDS.sub(r"\g<scheme>***@", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        for k, v in list(vars(record).items()):
            if k not in _STANDARD and isinstance(v, str):
                setattr(record, k, redact(v))
        return True


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``; the whole line (a traceback included) redacted."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out)


def setup(fmt: str = "text", level: str = "WARNING", stream=None) -> None:
    """Configure the root logger once: ``fmt`` is ``text`` or ``json``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
