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
"""

from __future__ import annotations

import collections
import threading
from typing import Any

__all__ = ["client", "without_retries", "CallCounter", "error_code"]


def __getattr__(name: str) -> Any:
    """``aws.exceptions`` is ``botocore.exceptions``, imported on first use: vulnwatch loads no AWS
    library until an AWS part is used (a ``scan`` of a local archive starts faster)."""
    if name == "exceptions":
        import botocore.exceptions
        return botocore.exceptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None,
           max_pool_connections: int = 10, retries: str = "adaptive", max_attempts: int = 5) -> Any:
    """A boto3 client for ``service`` from the standard credential chain.

    ``retries`` is a botocore retry mode (``adaptive``, ``standard``, ``legacy``);
    ``max_attempts`` counts the first attempt too, so ``1`` means no retries.
    ``max_pool_connections`` should be at least the number of threads sharing the client.
    """
    import boto3
    import botocore.config

    config = botocore.config.Config(
        retries={"mode": retries, "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
    )
    session = boto3.session.Session()
    return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)


def without_retries(existing: Any) -> Any:
    """A client for the same service, region, endpoint and credentials as ``existing``,
    making exactly one attempt per call (see the module docstring)."""
    import boto3
    import botocore.config

    meta = existing.meta
    creds = existing._get_credentials()  # botocore's own accessor; never logged
    kwargs: dict[str, Any] = {}
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        kwargs = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key,
                  "aws_session_token": frozen.token}
    config = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=meta.config.max_pool_connections,
    )
    return boto3.session.Session().client(meta.service_model.service_name, region_name=meta.region_name,
                                          endpoint_url=meta.endpoint_url, config=config, **kwargs)


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
