"""Logging set-up shared by every entry point: human or JSON lines, secrets redacted.

Secrets are registered with :func:`register_secret` as the config is loaded; every log record's
message and extra fields are scrubbed of them before any handler sees the record.

With ``DEBUG``, every request to a registry is logged by the ``vulnwatch.http`` logger (method,
host, path, status, time; :func:`httpx_event_hooks` on the registry's httpx client) and every AWS
call by ``vulnwatch.aws`` (:func:`vulnwatch.aws.log_calls`). Headers and bodies are never logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any

_SECRETS: set[str] = set()
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_ANY_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_URL_CREDS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.I)
# what looks like a credential wherever it is written (a server echoing a request, an error
# quoting a URL): header values, URL query parameters, the token part of webhook URLs
_CREDENTIAL_PARTS = [
    (re.compile(r"(?i)\b(authorization|proxy-authorization|x-api-key|api-key|x-auth-token|private-token|cookie)"
                r"(\\?[\"']?\s*[:=]\s*\\?[\"']?)(?:(bearer|basic|token|digest)\s+)?[^\s\"',;}\\]+"),
     lambda m: f"{m.group(1)}{m.group(2)}{(m.group(3) + ' ') if m.group(3) else ''}***"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), lambda m: f"{m.group(1)} ***"),
    (re.compile(r"(?i)([?&;](?:access_token|token|api[_-]?key|apikey|key|sig|signature|secret|password|passwd|pwd|"
                r"auth|code|client_secret|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s\"'#]+"),
     lambda m: f"{m.group(1)}***"),
    (re.compile(r"(?i)(hooks\.slack\.com/(?:services|workflows|triggers))/[^\s\"'<>]+"), lambda m: f"{m.group(1)}/***"),
    (re.compile(r"(?i)(\.webhook\.office\.com/webhookb2)/[^\s\"'<>]+"), lambda m: f"{m.group(1)}/***"),
]


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
    and whatever looks like a credential too: ``user:password@`` URL parts (``***@``), the
    values of ``Authorization``-like headers and of ``Bearer``/``Basic`` credentials, secret-named
    URL query parameters (``?token=``, ``sig=``, ``X-Amz-Signature=`` ...) and the token path of
    Slack and Teams webhook URLs, wherever they are written (a server's answer echoing the request). With ``urls``, anything URL-shaped is replaced
    by ``<redacted>`` as a whole (for text a server or an HTTP library wrote about a request to a
    secret URL). The one redaction function: everything that can reach a log, the state
    database or an event goes through it."""
    for s in sorted({*_SECRETS, *(s for s in secrets if s)}, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    for pattern, repl in _CREDENTIAL_PARTS:
        text = pattern.sub(repl, text)
    if urls:
        return _ANY_URL.sub("<redacted>", text)
    return _URL_CREDS.sub(r"\g<scheme>***@", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        for k, v in list(vars(record).items()):
            if k not in _STANDARD and isinstance(v, (str, list, tuple, dict)):
                setattr(record, k, _redact_value(v))
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
                out[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The log levels a user may ask for (any case)."""
FORMATS = ("text", "json")
"""Log formats: lines for people, or one JSON object per line for machines."""


def parse_level(value: str) -> str:
    """``value`` as a level name (``debug`` -> ``DEBUG``); ``ValueError`` naming the levels otherwise."""
    name = str(value).strip().upper()
    if name == "WARN":
        name = "WARNING"
    if name not in LEVELS:
        raise ValueError(f"unknown log level {value!r}: use one of {', '.join(LEVELS)}")
    return name


def setup(fmt: str = "text", level: str = "WARNING", stream=None) -> None:
    """Configure the root logger once: ``fmt`` is ``text`` or ``json``; ``level`` a name of
    :data:`LEVELS` (any case). Raises ``ValueError`` naming the bad value."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    level = parse_level(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


_http_log = logging.getLogger("vulnwatch.http")


def httpx_event_hooks() -> dict[str, list]:
    """``event_hooks`` for an httpx client: at ``DEBUG``, one record per request on the
    ``vulnwatch.http`` logger with its method, host, path (query included; registered secrets
    redacted), status and time to the response headers. Headers and bodies are never logged."""

    def on_request(request) -> None:
        request.extensions["vulnwatch_started"] = time.monotonic()

    def on_response(response) -> None:
        if not _http_log.isEnabledFor(logging.DEBUG):
            return
        request = response.request
        started = request.extensions.get("vulnwatch_started")
        ms = round((time.monotonic() - started) * 1000, 1) if started is not None else None
        path = redact(request.url.raw_path.decode("ascii", "replace"))
        host = request.url.netloc.decode("ascii", "replace")
        _http_log.debug("%s %s%s -> %d (%s ms)", request.method, host, path, response.status_code, ms,
                        extra={"event": "http_request", "method": request.method, "host": host, "path": path,
                               "status": response.status_code, "duration_ms": ms})

    return {"request": [on_request], "response": [on_response]}
