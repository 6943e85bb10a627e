"""What every handler shares: its settings (environment variables the template sets), the
secrets (read from SSM Parameter Store or Secrets Manager at run time, cached per container),
the configuration (the watch-list object in S3) and the pipeline, built once per container
through :mod:`vulnwatch.build` like the CLI's.

Environment (non-secret values only; the template sets them):

``VULNWATCH_TABLE``           the state table (DynamoDB, with its stream)
``VULNWATCH_BUCKET``          bucket for findings too large for an item (optional)
``VULNWATCH_QUEUE_URL``       the collect queue (``schedule`` sends to it, ``collect`` re-queues)
``VULNWATCH_WATCH_LIST``      ``s3://bucket/key``: a ``vulnwatch.yaml`` or a JSON array of repository names
``VULNWATCH_REGISTRY``        registry name stored with the images of a JSON watch list (default ``ecr``)
``VULNWATCH_REGISTRY_ID``     ECR account id when it is not the function's own (optional)
``VULNWATCH_SCAN_INTERVAL``   rescan an image when its last scan is older (default ``24h``)
``VULNWATCH_SCAN_MODE``       ``basic``, ``enhanced`` or ``auto`` (default ``basic``)
``VULNWATCH_SCAN_WAIT``       how long ``collect`` waits for a scan it started before re-queuing (``20s``)
``VULNWATCH_REQUEUE_DELAY``   delay of a re-queued remainder, seconds (default 120, at most 900)
``VULNWATCH_MAX_REQUEUES``    re-queues before an unfinished scan counts as failed (default 10)
``VULNWATCH_SLICE_SIZE``      images per invocation of ``collect`` (default 200)
``VULNWATCH_SINKS``           JSON list of ``notifications`` entries; secret fields hold ``${NAME}``
``VULNWATCH_SECRETS``         JSON object ``NAME -> ssm:/parameter/name`` or ``secretsmanager:secret-id``
``VULNWATCH_INDEX``           ``s3://bucket/key`` of the OSV index (``rematch``; built-in scanner)
``VULNWATCH_ENDPOINT_URL``    one endpoint for every AWS service (tests against moto only)
``VULNWATCH_ECR_ENDPOINT_URL`` ECR's, when it is another (tests: a proxy that pages like ECR)
``VULNWATCH_LOG_LEVEL``       default ``INFO``

A ``vulnwatch.yaml`` watch list may name its own registries and notifications (with
``${NAME}`` references to the secrets above); its ``state`` is always the table.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import aws
from ..build import build_pipeline
from ..config import Config, parse_config
from ..logs import register_secret, setup

log = logging.getLogger("vulnwatch.aws_lambda")

_lock = threading.RLock()
_secrets: dict[str, str] = {}
_clients: dict[str, Any] = {}
_pipelines: dict[str, tuple[float, str, Any]] = {}
_CONFIG_TTL = 300.0
"""Seconds a container keeps its configuration before looking at the watch-list object again
(a conditional GET: unchanged costs one small request)."""
_configured_logging = False
INDEX_PATH = Path(os.environ.get("VULNWATCH_TMP", "/tmp")) / "vulnwatch" / "osv.db"
"""Where the OSV index fetched from S3 is kept between invocations of one container."""


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def require(name: str) -> str:
    value = env(name)
    if value is None:
        raise RuntimeError(f"environment variable {name} is not set (the template sets it)")
    return value


def start() -> None:
    """Logging as JSON lines (CloudWatch), once per container."""
    global _configured_logging
    if not _configured_logging:
        setup("json", env("VULNWATCH_LOG_LEVEL", "INFO") or "INFO")
        _configured_logging = True


def client(service: str) -> Any:
    """One boto3 client per service per container."""
    with _lock:
        if service not in _clients:
            _clients[service] = aws.client(service, region=env("AWS_REGION") or env("AWS_DEFAULT_REGION"),
                                           endpoint_url=env("VULNWATCH_ENDPOINT_URL"))
        return _clients[service]


def reset(*, pipelines_only: bool = False) -> None:
    """Forget everything cached (a new container; tests), or only the pipelines (new data)."""
    with _lock:
        for _at, _etag, p in _pipelines.values():
            p.close()
        _pipelines.clear()
        if not pipelines_only:
            _secrets.clear()
            _clients.clear()


# -- secrets -------------------------------------------------------------------------------------

def secret(name: str, ref: str) -> str:
    """The value of secret ``name`` (``ssm:/param`` or ``secretsmanager:id``), read once per
    container and registered for redaction before anything can log it."""
    with _lock:
        if name in _secrets:
            return _secrets[name]
        kind, _, ident = ref.partition(":")
        try:
            if kind == "ssm":
                value = client("ssm").get_parameter(Name=ident, WithDecryption=True)["Parameter"]["Value"]
            elif kind == "secretsmanager":
                value = client("secretsmanager").get_secret_value(SecretId=ident)["SecretString"]
            else:
                raise RuntimeError(f"secret {name}: {ref!r} is neither ssm:/NAME nor secretsmanager:ID")
        except aws.exceptions.ClientError as e:
            raise RuntimeError(f"secret {name}: cannot read {kind} {ident!r} ({aws.error_code(e)}); grant the "
                               "function read access to it") from None
        register_secret(value)
        _secrets[name] = value
        return value


def secrets() -> dict[str, str]:
    refs = json.loads(env("VULNWATCH_SECRETS", "{}") or "{}")
    if not isinstance(refs, dict):
        raise RuntimeError("VULNWATCH_SECRETS must be a JSON object NAME -> ssm:/... or secretsmanager:...")
    return {name: secret(name, str(ref)) for name, ref in refs.items()}


# -- configuration ---------------------------------------------------------------------------------

def s3_location(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise RuntimeError(f"{url!r} is not s3://bucket/key")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def state_url() -> str:
    table = require("VULNWATCH_TABLE")
    params = []
    region = env("AWS_REGION") or env("AWS_DEFAULT_REGION")
    if region:
        params.append(f"region={region}")
    if env("VULNWATCH_ENDPOINT_URL"):
        params.append(f"endpoint_url={env('VULNWATCH_ENDPOINT_URL')}")
    if env("VULNWATCH_BUCKET"):
        params.append(f"bucket={env('VULNWATCH_BUCKET')}&prefix=spill/")
    return f"dynamodb://{table}" + ("?" + "&".join(params) if params else "")


def config_document(raw: bytes, source: str) -> dict[str, Any]:
    """The configuration the watch-list object means: a ``vulnwatch.yaml`` as it is, or, for a
    JSON array of repository names, one ECR registry watching exactly those (with the
    settings' scan timings and the sinks of ``VULNWATCH_SINKS``). ``state`` is the table either way;
    delivery retries are left to the stream's retries (no backoff of our own)."""
    text = raw.decode("utf-8-sig")
    data = json.loads(text) if text.lstrip().startswith("[") else yaml.safe_load(text)
    scan = {"interval": env("VULNWATCH_SCAN_INTERVAL", "24h"), "mode": env("VULNWATCH_SCAN_MODE", "basic"),
            "wait_timeout": env("VULNWATCH_SCAN_WAIT", "20s")}
    endpoint = env("VULNWATCH_ECR_ENDPOINT_URL") or env("VULNWATCH_ENDPOINT_URL")
    if isinstance(data, list):
        names = [str(n).strip() for n in data if str(n).strip()]
        registry: dict[str, Any] = {"name": env("VULNWATCH_REGISTRY", "ecr"), "type": "ecr", "scan": scan,
                                    "repositories": [{"name": n} for n in dict.fromkeys(names)]}
        if env("VULNWATCH_REGISTRY_ID"):
            registry["registry_id"] = env("VULNWATCH_REGISTRY_ID")
        doc: dict[str, Any] = {"registries": [registry],
                               "notifications": json.loads(env("VULNWATCH_SINKS", "[]") or "[]")}
    elif isinstance(data, dict):
        doc = dict(data)
        doc.setdefault("notifications", json.loads(env("VULNWATCH_SINKS", "[]") or "[]"))
    else:
        raise RuntimeError(f"{source}: expected a vulnwatch.yaml mapping or a JSON array of repository names")
    for reg in doc.get("registries") or ():
        if isinstance(reg, dict) and reg.get("type") == "ecr":
            reg.setdefault("region", env("AWS_REGION") or env("AWS_DEFAULT_REGION"))
            if endpoint:
                reg.setdefault("endpoint_url", endpoint)
            reg.setdefault("scan", {})
            for k, v in scan.items():
                reg["scan"].setdefault(k, v)
    doc["state"] = {"url": "${VULNWATCH_STATE_URL}"}
    vulndb = dict(doc.get("vulndb") or {})
    vulndb["path"] = str(INDEX_PATH)          # the only writable place of a function: /tmp
    vulndb.pop("imports", None)
    doc["vulndb"] = vulndb
    doc["layer_cache"] = {"enabled": False}
    delivery = dict(doc.get("delivery") or {})
    delivery.setdefault("backoff_base", "1ms")     # Lambda's retries of the stream batch are the backoff
    delivery.setdefault("backoff_max", "1ms")
    delivery.setdefault("max_attempts", 20)
    doc["delivery"] = delivery
    return doc


def load_config(raw: bytes, source: str) -> Config:
    doc = config_document(raw, source)
    environ = {**secrets(), "VULNWATCH_STATE_URL": state_url()}
    return parse_config(yaml.safe_dump(doc, sort_keys=False), file=source, environ=environ)


@dataclass
class Loaded:
    pipeline: Any
    etag: str


def pipeline(*, with_watches: bool = True) -> Any:
    """The pipeline of this container: built from the watch-list object once, rebuilt when
    that object changed (looked at again after :data:`_CONFIG_TTL` seconds)."""
    source = require("VULNWATCH_WATCH_LIST")
    key = f"{source}|{with_watches}"
    with _lock:
        cached = _pipelines.get(key)
        if cached is not None and time.monotonic() - cached[0] < _CONFIG_TTL:
            return cached[2]
        bucket, obj = s3_location(source)
        s3 = client("s3")
        kwargs = {"IfNoneMatch": cached[1]} if cached else {}
        try:
            resp = s3.get_object(Bucket=bucket, Key=obj, **kwargs)
        except aws.exceptions.ClientError as e:
            if cached is not None and aws.error_code(e) in ("304", "NotModified"):
                _pipelines[key] = (time.monotonic(), cached[1], cached[2])
                return cached[2]
            raise RuntimeError(f"cannot read the watch list {source} ({aws.error_code(e)})") from None
        cfg = load_config(resp["Body"].read(), source)
        p = build_pipeline(cfg, with_watches=with_watches)
        if cached is not None:
            cached[2].close()
        _pipelines[key] = (time.monotonic(), resp.get("ETag", ""), p)
        return p


def queue_url() -> str:
    return require("VULNWATCH_QUEUE_URL")
