"""A small Docker token server (the registry's ``auth.token`` realm) for tests.

Issues RS256 JWTs whose ``x5c`` header holds a self-signed certificate; write
:attr:`TokenServer.cert_pem` to the registry's ``rootcertbundle``. Users and what they
may do come from a table: ``{"alice": ("pw", {"repo-a": "pull", "*": "pull,push"}, catalog)}``.
Bad passwords get 401; scopes not granted are left out of the token (the registry then
refuses), as the Docker token spec says. ``public`` repositories (globs) may be pulled
without credentials, as on Docker Hub and GHCR: an anonymous request gets a token granting
``pull`` on them (and nothing on the others). ``requests`` records (user, scopes) per call.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ISSUER = "vulnwatch-test-issuer"
SERVICE = "vulnwatch-test-registry"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class User:
    password: str
    repositories: dict[str, str]
    """Repository glob -> comma-separated actions (``pull``, ``push``)."""
    catalog: bool = False
    """Whether ``registry:catalog:*`` is granted."""


@dataclass
class TokenServer:
    users: dict[str, User]
    expires_in: int = 300
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    """OAuth2 refresh token -> user name (the ``grant_type=refresh_token`` POST)."""
    requests: list[tuple[str | None, tuple[str, ...]]] = field(default_factory=list)
    public: tuple[str, ...] = ()
    """Repository globs anyone may pull (anonymous tokens, as Docker Hub's for public images)."""

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vulnwatch test token signer")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                status, body = server.handle(self.path, self.headers.get("Authorization"))
                out = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="token"')
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(n).decode())
                status, body = server.handle_refresh(form)
                out = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ token logic

    def handle(self, path: str, authorization: str | None) -> tuple[int, dict]:
        query = parse_qs(urlsplit(path).query)
        scopes = tuple(s for raw in query.get("scope", []) for s in raw.split(" ") if s)
        user_name = None
        if authorization and authorization.startswith("Basic "):
            user_name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            user = self.users.get(user_name)
            if user is None or not secrets.compare_digest(user.password, password):
                with self._lock:
                    self.requests.append((user_name, scopes))
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
        else:
            user = None
        with self._lock:
            self.requests.append((user_name, scopes))
        access = [a for a in (self._grant(user, s) for s in scopes) if a]
        token = self.sign(user_name or "", access, query.get("service", [SERVICE])[0])
        return 200, {"token": token, "access_token": token, "expires_in": self.expires_in,
                     "issued_at": dt.datetime.now(dt.timezone.utc).isoformat()}

    def handle_refresh(self, form: dict[str, list[str]]) -> tuple[int, dict]:
        scopes = tuple(s for raw in form.get("scope", []) for s in raw.split(" ") if s)
        user_name = self.refresh_tokens.get(form.get("refresh_token", [""])[0])
        with self._lock:
            self.requests.append((user_name, scopes))
        if form.get("grant_type") != ["refresh_token"] or user_name is None:
            return 401, {"error": "invalid_grant"}
        access = [a for a in (self._grant(self.users[user_name], s) for s in scopes) if a]
        token = self.sign(user_name, access, form.get("service", [SERVICE])[0])
        return 200, {"access_token": token, "expires_in": self.expires_in}

    def _grant(self, user: User | None, scope: str) -> dict | None:
        parts = scope.split(":")
        if len(parts) < 3:
            return None
        typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
        public = typ == "repository" and "pull" in actions and any(fnmatch.fnmatchcase(name, p) for p in self.public)
        if user is None:
            return {"type": typ, "name": name, "actions": ["pull"]} if public else None
        if typ == "registry" and name == "catalog":
            return {"type": typ, "name": name, "actions": ["*"]} if user.catalog else None
        if typ != "repository":
            return None
        allowed: set[str] = set()
        for pattern, acts in user.repositories.items():
            if fnmatch.fnmatchcase(name, pattern):
                allowed |= set(acts.split(","))
        granted = [a for a in actions if a in allowed or "*" in allowed or (a == "pull" and public)]
        return {"type": typ, "name": name, "actions": granted} if granted else None

    def sign(self, subject: str, access: list[dict], service: str = SERVICE) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": service, "exp": now + self.expires_in,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(sig)}"
