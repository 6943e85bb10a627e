"""boto3 clients built one way for every AWS-backed part (ECR, S3, DynamoDB).

Credentials come from boto3's standard chain (environment, profile, SSO, instance
role); nothing here reads, logs or stores them. Retries use botocore's ``adaptive``
mode (client-side rate limiting on throttling) unless told otherwise.

Two helpers matter beyond :func:`client`:

* :func:`without_retries` gives a sibling client that makes exactly one attempt.
  ECR's ``StartImageScan`` answers ``LimitExceededException`` when an image was
  already scanned in the last 24 h; botocore classes that code as throttling and
  would retry it (with growing back-off) for a long time. It is an expected answer,
  so that call is made with retries off.
* :class:`CallCounter` counts API calls per operation (thread-safe), for the
  benchmark's "calls per cycle".
* Every client comes from one botocore session per process (per ``AWS_*`` environment: tests
  and callers that change it get a new one), so the service models (large JSON files) are read
  once and credentials resolved once per process, not once per client: a Lambda cold start or
  a cycle that opens a dozen clients saves seconds. The clients are botocore's (boto3's client
  is the same class; boto3 itself is imported only for S3, whose clients it gives transfer
  methods such as ``download_file``).
* :func:`log_calls` logs every call at ``DEBUG`` on the ``vulnwatch.aws`` logger (operation,
  method, host, path, status, time; never parameters, headers or bodies). Every client made
  here has it.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

__all__ = ["client", "without_retries", "CallCounter", "error_code", "log_calls"]

_log = logging.getLogger("vulnwatch.aws")


def __getattr__(name: str) -> Any:
    """``aws.exceptions`` is ``botocore.exceptions``, imported on first use: vulnwatch loads no AWS
    library until an AWS part is used (a ``scan`` of a local archive starts faster)."""
    if name == "exceptions":
        import botocore.exceptions
        return botocore.exceptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_sessions: dict[str, Any] = {}
_sessions_lock = threading.Lock()
_MAX_SESSIONS = 8


def _environment_key() -> str:
    """What a session's credentials and defaults come from: the ``AWS_*`` environment variables
    (hashed: the key holds no secret)."""
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    return hashlib.sha256(repr(env).encode()).hexdigest()


def _session() -> Any:
    """This process's botocore session: one per ``AWS_*`` environment (a changed environment gets
    a new one), so credentials are resolved once and every client shares one data loader (the
    service models, large JSON files, are read once per process, not once per client)."""
    key = _environment_key()
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            import botocore.session

            session = botocore.session.get_session()
            if _sessions:   # the loader of the first session (models already read) for every other
                session.register_component("data_loader", next(iter(_sessions.values()))
                                           .get_component("data_loader"))
            while len(_sessions) >= _MAX_SESSIONS:
                _sessions.pop(next(iter(_sessions)))
            _sessions[key] = session
        return session


def _new_client(session: Any, service: str, **kwargs: Any) -> Any:
    with _sessions_lock:       # a session is not thread-safe; the client it makes is
        if service == "s3":    # boto3 adds the transfer methods (download_file ...) to its S3 clients
            boto3_session = getattr(session, "_vulnwatch_boto3", None)
            if boto3_session is None:
                import boto3.session

                boto3_session = session._vulnwatch_boto3 = boto3.session.Session(botocore_session=session)
            made = boto3_session.client(service, **kwargs)
        else:                  # botocore's own client (the same class; boto3 costs ~25 ms to import)
            made = session.create_client(service, **kwargs)
    made._vulnwatch_session = session
    return log_calls(made)


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None,
           max_pool_connections: int = 10, retries: str = "adaptive", max_attempts: int = 5) -> Any:
    """A boto3 client for ``service`` from the standard credential chain.

    ``retries`` is a botocore retry mode (``adaptive``, ``standard``, ``legacy``);
    ``max_attempts`` counts the first attempt too, so ``1`` means no retries.
    ``max_pool_connections`` should be at least the number of threads sharing the client.
    """
    import botocore.config

    config = botocore.config.Config(
        retries={"mode": retries, "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
    )
    return _new_client(_session(), service, region_name=region, endpoint_url=endpoint_url, config=config)


def without_retries(existing: Any) -> Any:
    """A client for the same service, region, endpoint and credentials as ``existing``,
    making exactly one attempt per call (see the module docstring)."""
    import botocore.config

    meta = existing.meta
    config = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=meta.config.max_pool_connections,
    )
    kwargs: dict[str, Any] = {}
    session = getattr(existing, "_vulnwatch_session", None)
    if session is None:         # a client made elsewhere: its own credentials, passed on
        creds = existing._get_credentials()  # botocore's own accessor; never logged
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            kwargs = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key,
                      "aws_session_token": frozen.token}
        session = _session()
    return _new_client(session, meta.service_model.service_name, region_name=meta.region_name,
                       endpoint_url=meta.endpoint_url, config=config, **kwargs)


def log_calls(boto_client: Any) -> Any:
    """Log each API call made through ``boto_client`` at ``DEBUG`` (``vulnwatch.aws``): the
    operation, HTTP method, host, path, status and time, retries included in the time. No
    parameters, headers or bodies: they may hold secrets. Returns the client."""
    endpoint = urlsplit(boto_client.meta.endpoint_url or "")

    def before(model: Any = None, context: Any = None, **_: Any) -> None:
        if context is not None:
            context["vulnwatch_started"] = time.monotonic()

    def after(http_response: Any = None, model: Any = None, context: Any = None, **_: Any) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            url = urlsplit(getattr(http_response, "url", "") or "")
            _emit(model, context, url.netloc or endpoint.netloc, url.path or endpoint.path or "/",
                  getattr(http_response, "status_code", None), None)

    def failed(exception: Any = None, model: Any = None, context: Any = None, **_: Any) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            _emit(model, context, endpoint.netloc, endpoint.path or "/", None, type(exception).__name__)

    events = boto_client.meta.events
    events.register("before-call", before)
    events.register("after-call", after)
    events.register("after-call-error", failed)
    boto_client._vulnwatch_log_handlers = (before, after, failed)  # registered weakly: keep them alive
    return boto_client


def _emit(model: Any, context: Any, host: str, path: str, status: int | None, error: str | None) -> None:
    started = (context or {}).get("vulnwatch_started")
    ms = round((time.monotonic() - started) * 1000, 1) if started is not None else None
    operation = getattr(model, "name", "?")
    method = (getattr(model, "http", None) or {}).get("method", "POST")
    outcome = str(status) if status is not None else f"failed ({error})"
    _log.debug("%s %s %s%s -> %s (%s ms)", operation, method, host, path, outcome, ms,
               extra={"event": "aws_request", "operation": operation, "method": method, "host": host,
                      "path": path, "status": status, "error": error, "duration_ms": ms})


class CallCounter(collections.Counter):
    """A ``Counter`` of API calls per operation name (``DescribeImages``: 3, ...).

    :meth:`attach` hooks it to a client (each page of a paginator is one call;
    retries of one call are not counted again). Updates are thread-safe.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    def attach(self, boto_client: Any) -> Any:
        """Count every call made through ``boto_client``; returns the client."""
        boto_client.meta.events.register("before-call", self._on_call)
        return boto_client

    def _on_call(self, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "unknown")
        with self._lock:
            self[name] += 1

    def snapshot(self) -> dict[str, int]:
        """A plain copy, taken under the lock."""
        with self._lock:
            return dict(self)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``ImageNotFoundException``), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return (response.get("Error") or {}).get("Code")
    return None
