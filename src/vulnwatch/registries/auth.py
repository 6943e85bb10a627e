"""Credentials and the Registry v2 authentication handshake.

Where credentials come from:

* the configuration (``username``/``password``): :class:`Credentials`;
* ``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``): ``credHelpers`` per host,
  then ``auths`` (base64 ``auth``), then ``credsStore``; helpers are the real
  ``docker-credential-<name> get`` programs on ``PATH``: :func:`docker_config_credentials`;
* Amazon ECR via ``GetAuthorizationToken``: :func:`ecr_credentials`.

How they are used (:class:`RegistryAuth`): a request goes out with what is already
known for its scope; a ``401`` with a ``Www-Authenticate`` challenge selects Basic, or
Bearer: a token fetched from the challenge's ``realm`` for ``service`` and the scope
(``repository:<name>:pull``, ``registry:catalog:*``), cached per scope until it expires.
Credentials are bound to one registry host: :meth:`RegistryAuth.headers_for` returns
nothing for any other host (a blob redirect to storage gets no ``Authorization``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..aws import log_calls
from ..logs import register_secret
from .interface import RegistryError
from .reference import DOCKER_HUB, normalize_registry

CATALOG_SCOPE = "registry:catalog:*"
"""Scope a token needs for ``GET /v2/_catalog``."""


def repository_scope(repository: str, actions: str = "pull") -> str:
    """The token scope for reading ``repository``: ``repository:<name>:pull``."""
    return f"repository:{repository}:{actions}"


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with. ``repr()`` and ``str()`` never show the secret."""

    username: str | None = None
    """User name for Basic auth or for the token endpoint; None for a bare token."""
    password: str | None = field(default=None, repr=False)
    """Password (or ECR authorization password); secret."""
    identity_token: str | None = field(default=None, repr=False)
    """An OAuth2 refresh token (docker config ``identitytoken``, or a credential helper
    answering ``<token>`` as user name), exchanged at the token realm with
    ``grant_type=refresh_token``; secret."""
    source: str = "config"
    """Where they came from, for messages: ``config``, ``docker-config``, ``docker-credential-<x>``, ``ecr``."""

    def __repr__(self) -> str:
        secret = "***" if (self.password or self.identity_token) else None
        return f"Credentials(username={self.username!r}, secret={secret!r}, source={self.source!r})"

    __str__ = __repr__

    @property
    def basic_header(self) -> str | None:
        """``Basic <base64(user:password)>``, or None without a password."""
        if self.password is None:
            return None
        raw = f"{self.username or ''}:{self.password}".encode()
        encoded = base64.b64encode(raw).decode()
        register_secret(encoded)      # a server echoing the header must not put it in a log
        return "Basic " + encoded


# ---------------------------------------------------------------------------- docker config


def _config_key_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://h:5000/x`` -> ``h:5000``."""
    key = key.strip()
    if "://" in key:
        key = urlsplit(key).netloc
    else:
        key = key.split("/", 1)[0]
    return normalize_registry(key)


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def credential_helper(helper: str, host: str) -> Credentials | None:
    """Ask ``docker-credential-<helper> get`` for ``host``'s credentials.

    Returns None when the helper says it has none; raises :class:`RegistryError` when the
    helper is missing or fails otherwise (the helper's output is not quoted: it may hold secrets).
    """
    program = f"docker-credential-{helper}"
    exe = shutil.which(program)
    if exe is None:
        raise RegistryError(f"credential helper {program!r} (from the docker config) is not on PATH; "
                            "install it or remove it from the docker config", registry=host)
    server = "https://index.docker.io/v1/" if normalize_registry(host) == DOCKER_HUB else host
    try:
        proc = subprocess.run([exe, "get"], input=server.encode(), capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RegistryError(f"credential helper {program} failed to run: {type(e).__name__}",
                            registry=host) from None
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).decode(errors="replace").lower()
        if "not found" in out or "no credentials" in out:
            return None
        raise RegistryError(f"credential helper {program} exited with status {proc.returncode}",
                            registry=host)
    try:
        data = json.loads(proc.stdout)
        user, secret = data.get("Username"), data["Secret"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RegistryError(f"credential helper {program} answered something that is not "
                            "JSON with Username and Secret", registry=host) from None
    if user == "<token>":
        return Credentials(identity_token=secret, source=program)
    return Credentials(username=user, password=secret, source=program)


def docker_config_credentials(host: str, config_path: str | os.PathLike | None = None) -> Credentials | None:
    """Credentials for ``host`` (``host[:port]``) from a docker ``config.json``, or None.

    Order as Docker's: ``credHelpers[host]``, then ``auths[host].auth``, then ``credsStore``.
    """
    path = Path(config_path) if config_path else docker_config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RegistryError(f"cannot read docker config {path}: {type(e).__name__}: fix or remove the file",
                            registry=host) from None
    want = normalize_registry(host)
    for key, helper in (data.get("credHelpers") or {}).items():
        if _config_key_host(key) == want:
            return credential_helper(helper, host)
    for key, entry in (data.get("auths") or {}).items():
        if _config_key_host(key) != want or not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials(identity_token=entry["identitytoken"], source="docker-config")
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(f"docker config {path}: auths[{key!r}].auth is not base64 of "
                                    "user:password", registry=host) from None
            return Credentials(username=user, password=password, source="docker-config")
        if entry.get("username") and entry.get("password"):
            return Credentials(username=entry["username"], password=entry["password"], source="docker-config")
    if data.get("credsStore"):
        return credential_helper(data["credsStore"], host)
    return None


# ---------------------------------------------------------------------------- ECR

_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
"""A private ECR registry's host name (``<account>.dkr.ecr.<region>.amazonaws.com``)."""


def credentials_for(host: str, username: str | None = None, password: str | None = None) -> Credentials | None:
    """What to authenticate to ``host`` with: the configured user and password when given, else
    the docker ``config.json`` entry for the host, else (for an ECR host) an ECR token; None for
    anonymous access. Secrets found are registered for redaction."""
    if username:
        return Credentials(username=username, password=password)
    creds = docker_config_credentials(host)
    if creds is None and ECR_HOST.match(host.split(":", 1)[0]):
        creds = ecr_credentials(host)     # an ECR registry read with our own scanner
    if creds is not None:
        register_secret(creds.password)
    return creds


def ecr_credentials(host: str, *, region: str | None = None, registry_id: str | None = None,
                    session=None, endpoint_url: str | None = None) -> Credentials:
    """Basic credentials for an ECR registry from ``GetAuthorizationToken`` (valid 12 h).

    ``region`` and ``registry_id`` default to what ``host``
    (``<account>.dkr.ecr.<region>.amazonaws.com``) says.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    m = _ECR_HOST.match(host.split(":", 1)[0])
    if m:
        registry_id = registry_id or m.group(1)
        region = region or m.group(2)
    session = session or boto3.session.Session()
    client = log_calls(session.client("ecr", region_name=region, endpoint_url=endpoint_url))
    kwargs = {"registryIds": [registry_id]} if registry_id else {}
    try:
        resp = client.get_authorization_token(**kwargs)
        token = resp["authorizationData"][0]["authorizationToken"]
        user, _, password = base64.b64decode(token).decode().partition(":")
    except (ClientError, BotoCoreError) as e:
        raise RegistryError(f"ECR GetAuthorizationToken failed: {e}; check the AWS credentials and "
                            "ecr:GetAuthorizationToken permission", registry=host) from None
    except (KeyError, IndexError, ValueError):
        raise RegistryError("ECR GetAuthorizationToken answered without a usable token",
                            registry=host) from None
    return Credentials(username=user, password=password, source="ecr")


# ---------------------------------------------------------------------------- challenge / tokens

_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Challenge:
    """A parsed ``Www-Authenticate`` header."""

    scheme: str
    """``basic`` or ``bearer`` (lowercased)."""
    params: dict[str, str]
    """Parameters: ``realm``, ``service``, ``scope``, ``error``."""


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` (or ``Basic realm=...``)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return Challenge(scheme.lower(), params)


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryAuth:
    """Authentication state for one registry host: scheme learnt, tokens cached per scope.

    Thread-safe. ``token_requests`` counts calls to the token endpoint.
    """

    def __init__(self, registry_name: str, host: str, credentials: Credentials | None, client: httpx.Client,
                 *, allow_http_realm: bool = False) -> None:
        self.registry_name = registry_name
        self.host = host.lower()
        self.credentials = credentials
        self._client = client
        self._allow_http_realm = allow_http_realm
        self._scheme: str | None = None
        self._bearer: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"RegistryAuth(host={self.host!r}, scheme={self._scheme!r}, credentials={self.credentials!r})"

    def headers_for(self, url: str | httpx.URL, scope: str | None) -> dict[str, str]:
        """``Authorization`` for a request to ``url``: empty unless ``url`` is this registry's host."""
        if httpx.URL(str(url)).netloc.decode().lower() != self.host:
            return {}
        creds = self.credentials
        if self._scheme == "basic" and creds and creds.basic_header:
            return {"Authorization": creds.basic_header}
        if self._scheme == "bearer":
            token = self._cached(scope or "")
            if token is None and self._bearer is not None:
                token = self._fetch_token(scope)
            if token:
                return {"Authorization": f"Bearer {token}"}
        return {}

    def answer_challenge(self, response: httpx.Response, scope: str | None) -> bool:
        """Learn from a ``401``; True when a retry with :meth:`headers_for` may now succeed."""
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            if self._scheme == "basic" or not (self.credentials and self.credentials.basic_header):
                return False
            self._scheme = "basic"
            return True
        if challenge.scheme == "bearer":
            if "realm" not in challenge.params:
                return False
            with self._lock:
                had = self._scope_key(scope) in self._tokens
                self._scheme, self._bearer = "bearer", challenge
            if had and challenge.params.get("error") == "insufficient_scope":
                return False  # the token is fine, the scope was not granted
            # no token yet, or one refused for another reason (revoked, clock skew): one fresh try
            return self._fetch_token(scope) is not None
        return False

    def has_token(self, scope: str | None) -> bool:
        """Whether a token for ``scope`` is cached (so a 401 means the scope was not granted)."""
        return self._cached(self._scope_key(scope)) is not None

    @staticmethod
    def _scope_key(scope: str | None) -> str:
        return scope or ""

    def _cached(self, scope: str) -> str | None:
        with self._lock:
            tok = self._tokens.get(scope)
            if tok and tok.expires_at > time.monotonic():
                return tok.value
            return None

    def _fetch_token(self, scope: str | None) -> str | None:
        challenge = self._bearer
        assert challenge is not None
        realm = challenge.params["realm"]
        realm_url = httpx.URL(realm)
        if realm_url.scheme != "https" and not self._allow_http_realm:
            raise RegistryError(f"token realm {realm} is not https; refusing to send credentials "
                                "(set insecure: true only for a test registry)", registry=self.registry_name)
        params: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        if scope:
            params.append(("scope", scope))
        creds = self.credentials
        headers = {}
        with self._lock:
            self.token_requests += 1
        try:
            if creds and creds.identity_token:
                # OAuth2 refresh-token grant (Docker token spec, "oauth.md")
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": "vulnwatch", **dict(params)}
                resp = self._client.post(realm_url, data=form, follow_redirects=False)
            else:
                if creds and creds.basic_header:
                    headers["Authorization"] = creds.basic_header
                resp = self._client.get(realm_url, params=params, headers=headers, follow_redirects=False)
        except httpx.HTTPError as e:
            raise RegistryError(f"token endpoint {realm} unreachable: {type(e).__name__}",
                                registry=self.registry_name, retryable=True) from None
        if resp.status_code in (401, 403):
            raise RegistryError(f"token endpoint {realm} answered {resp.status_code} unauthorized for "
                                f"scope {scope or '(none)'}: check the username/password "
                                f"({self._creds_desc()})", registry=self.registry_name)
        if resp.status_code != 200:
            raise RegistryError(f"token endpoint {realm} answered HTTP {resp.status_code}",
                                registry=self.registry_name, retryable=resp.status_code >= 500)
        try:
            data = resp.json()
            token = data.get("token") or data.get("access_token")
            expires_in = int(data.get("expires_in") or 60)
        except (ValueError, TypeError, AttributeError):
            raise RegistryError(f"token endpoint {realm} answered something that is not a token",
                                registry=self.registry_name) from None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token endpoint {realm} answered without a token", registry=self.registry_name)
        register_secret(token)
        # expire a little early so a token is never used in its last seconds
        margin = min(10.0, expires_in / 4)
        with self._lock:
            self._tokens[self._scope_key(scope)] = _Token(token, time.monotonic() + expires_in - margin)
        return token

    def _creds_desc(self) -> str:
        c = self.credentials
        if c is None:
            return "no credentials configured"
        if c.username is None:
            return f"an identity token from {c.source}"
        return f"user {c.username!r} from {c.source}"
