"""Who may read, who may write, and the headers every answer carries.

* Reading: open, or ``web.token`` (Bearer, or as a basic-auth password) / ``web.username`` +
  ``web.password`` (basic auth) on every route except ``/healthz`` and ``/readyz``.
* Writing: only with ``web.write_token`` configured, and then only with that token (API:
  ``X-Write-Token``; pages: a signed cookie set by ``POST /unlock``) **and** a CSRF token
  (signed double submit: the random ``vw_csrf`` cookie and an HMAC of it in the form field
  ``csrf_token`` or the ``X-CSRF-Token`` header), plus a same-origin check of ``Origin``.
* Headers: a CSP without inline script or style, ``frame-ancestors 'none'``, nosniff, no
  referrer, no caching of pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

from starlette.requests import Request

from ..config.web import WebConfig
from ..logs import reveal

CSRF_COOKIE = "vw_csrf"
WRITE_COOKIE = "vw_write"
WRITE_SESSION_SECONDS = 8 * 3600
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """The checks, from ``web`` config (secrets read once, registered for log redaction)."""

    def __init__(self, web: WebConfig) -> None:
        self.token = reveal(web.token)
        self.username = web.username
        self.password = reveal(web.password)
        self.write_token = reveal(web.write_token)
        self.key = (reveal(web.secret) or secrets.token_hex(32)).encode()

    # -- reading ---------------------------------------------------------------------------
    @property
    def auth_required(self) -> bool:
        return self.token is not None or self.username is not None

    def may_read(self, request: Request) -> bool:
        if not self.auth_required or request.url.path in PUBLIC_PATHS:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return _same(value.strip(), self.token)
        if scheme == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return False
            if self.username is not None and _same(user, self.username) and _same(password, self.password):
                return True
            return _same(password, self.token)
        return False

    # -- CSRF ----------------------------------------------------------------------------------
    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, cookie: str) -> str:
        return self._sign(f"csrf:{cookie}")

    def csrf_ok(self, request: Request, submitted: str | None) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not submitted:
            return False
        if not _same(submitted, self.csrf_token(cookie)):
            return False
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            host = request.headers.get("host", "")
            if origin.split("://", 1)[-1] != host:
                return False
        return True

    # -- writing -------------------------------------------------------------------------------
    @property
    def writable(self) -> bool:
        return self.write_token is not None

    def write_token_ok(self, value: str | None) -> bool:
        return self.writable and _same(value, self.write_token)

    def _write_mark(self) -> str:
        return hashlib.sha256(f"write:{self.write_token}".encode()).hexdigest()

    def write_cookie(self) -> str:
        expires = int(time.time()) + WRITE_SESSION_SECONDS
        return f"{expires}.{self._sign(f'{expires}:{self._write_mark()}')}"

    def write_cookie_ok(self, request: Request) -> bool:
        if not self.writable:
            return False
        value = request.cookies.get(WRITE_COOKIE, "")
        expires, _, sig = value.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return _same(sig, self._sign(f"{expires}:{self._write_mark()}"))
