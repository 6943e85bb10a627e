"""The DynamoDB state store: one table, plus an S3 bucket for what outgrows an item. For the
serverless deployment (Lambda entry points), with the same behaviour as :class:`~vulnwatch.store.sql.SQLStore`.

Opening
-------
``DynamoDBStore.from_url("dynamodb://TABLE?region=us-east-1&bucket=SPILL_BUCKET")`` (``state.url``).
Query parameters, all optional:

``region``
    AWS region of the table and the bucket; default: the standard chain (``AWS_REGION``, profile).
``endpoint_url``
    DynamoDB endpoint (a VPC endpoint, DynamoDB Local, moto in tests); S3 uses it too unless
    ``s3_endpoint_url`` is given.
``s3_endpoint_url``
    S3 endpoint, when it is not ``endpoint_url``.
``bucket``
    S3 bucket for blobs too large for an item (see "400 KB" below). Without it, a scan whose
    compressed findings do not fit in an item is refused with an error naming the image.
``prefix``
    Key prefix of those blobs in the bucket; default ``vulnwatch/TABLE/``.
``create``
    ``true``: create the table (on-demand, streams on) and the bucket when missing: for tests
    and development. Production tables come from infrastructure code; :func:`table_definition`
    is the definition to give it.

Credentials come from boto3's standard chain (environment, profile, role); the URL holds none, and
neither does the table: sinks are referred to by their configured name, as in the SQL store.
boto3 is imported only when a store is opened.

Table design (single table)
---------------------------
Key ``pk`` (hash) + ``sk`` (range), strings. Two overloaded, sparse global secondary indexes:
``gsi1`` (``gsi1pk``/``gsi1sk``, projection ALL, only small items go in it) and ``gsi2``
(``gsi2pk``/``gsi2sk``, projection INCLUDE :data:`_GSI2_ATTRIBUTES`). Key components are escaped
(``%`` → ``%25``, ``#`` → ``%23``) so ``#`` only ever separates them; times in keys are UTC,
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (sorts as it reads).

==============  =====================  ====================================  ==================================  ==============================
item            pk                     sk                                    gsi1 (pk / sk)                      gsi2 (pk / sk)
==============  =====================  ====================================  ==================================  ==============================
image status    ``R#reg#repo``         ``D#digest#S``                        ``IMAGES`` / ``reg#repo#digest``    –
snapshot        ``R#reg#repo``         ``D#digest#V``                        –                                   –
scan history    ``R#reg#repo``         ``H#scanned_at#digest#scanner``       –                                   ``H#reg#repo#digest`` / ``scanned_at#scanner``
tag pointer     ``R#reg#repo``         ``T#tag``                             –                                   –
tag period      ``R#reg#repo``         ``P#tag#first_seen#digest``           –                                   –
event           ``E#event-id``         ``E``                                 –                                   –
delivery        ``L#id`` (20 digits)   ``L``                                 ``DUE`` / ``due#id`` (pending)      ``L#status`` / ``id``
id counter      ``COUNTER``            ``deliveries``                        –                                   –
journal part    ``JOURNAL``            ``created#journal-id#part``           –                                   –
layout version  ``META``               ``layout``                            –                                   –
lease           ``LEASE#name``         ``LEASE``                             –                                   –
==============  =====================  ====================================  ==================================  ==============================

* One **snapshot** item per image digest (scanner, times, state, notes, counts, the coverage
  as JSON (``coverage``, absent when the scanner says nothing about it), the findings signature, the compressed findings and, for the built-in scanner, the compressed inventory,
  plus the image's fields as scanned, and a ``version`` counted up by every commit). It is written
  only by :meth:`~DynamoDBStore.commit_scan`, so each of its stream records is one commit and carries
  what the future ``notify`` Lambda needs to diff old against new (see :func:`snapshot_change`).
* The small **image status** item of the same digest holds what changes between scans: the
  current tags, the last error, ``last_checked_at`` and a summary of the snapshot (scanner,
  ``scanned_at``, counts, ``kev``: findings listed in KEV, ``coverage_summary``: the coverage's
  state, missing ecosystems and packages not judged). Keeping it apart matters for cost: DynamoDB bills a write by the
  size of the whole item, and ``mark_checked`` stamps every unchanged image every cycle.
* A **tag pointer** says where a tag points now (``first_seen``); when it moves, the period that
  ended is kept as a **tag period** item (``first_seen``, ``last_seen``): the tag → digest
  history. A tag seen again on the same digest writes nothing (its ``last_seen`` is the image
  status's ``updated_at``).
* **Deliveries** have integer ids from the id counter (one atomic ``ADD`` per commit that has
  any). Pending ones are in ``gsi1`` under ``DUE`` keyed by when they are due (``0`` for "now",
  else ``next_attempt_at``); every delivery is in ``gsi2`` under its status, newest id first.
  An **event** item holds the event's body (compressed); an event id already there is not
  added again (a conditional put), which makes re-runs idempotent like the SQL outbox.

Reads are GetItem, Query and BatchGetItem only; nothing Scans the table.

* ``snapshot``: one Query of the digest's two items (``begins_with(sk, "D#digest#")``).
* ``snapshots``, ``inventories``, ``images``: a Query of ``gsi1`` ``IMAGES`` (``begins_with``
  the registry) lists the status items; snapshot items are then fetched 100 per BatchGetItem.
  The ``IMAGES`` partition is one index partition: about 1,000 image writes per second for the
  whole fleet, far beyond what a monitor does.
* ``tag_digest``: GetItem. ``history``: a Query of ``H#`` newest first, or of ``gsi2`` for one digest.
* ``due_deliveries``: a Query of ``gsi1`` ``DUE`` up to now (only due deliveries are read),
  sorted oldest first (created, id), then a consistent BatchGetItem of the chosen ones.
  ``deliveries``: a Query of ``gsi2`` per status (newest first), then a consistent BatchGetItem.
  Index reads are eventually consistent: the items are then read consistently and re-checked,
  and every write that depends on state is conditional, so a stale index entry cannot cause a
  wrong write. At worst a just-written image or delivery is missing from one listing (an image
  missed that way is diffed as new, and its commit's condition then refuses the write).

Writes to many independent items (``mark_checked``, ``mark_delivered``, ``mark_failed``,
``retry_dead``) are single conditional UpdateItems, a few in parallel: DynamoDB has no multi-item
update, and these need no atomicity (transactional writes would cost twice the capacity).

The 400 KB item limit
---------------------
Findings, inventory, finding keys and event bodies are JSON compressed with zstandard (a few
thousand findings are ~170 KB). A blob is kept inline (a Binary attribute) while the item stays
within :data:`_ITEM_BUDGET` (estimated with binary counted as base64, as DynamoDB Local and moto
count it, so it holds everywhere); otherwise it is put to S3 under a content-addressed key
(``prefix/<kind>/<sha256>.zst``, never overwritten) and the item holds a pointer
``{bucket, key, sha256, size}`` instead (``findings_ref``, ``packages_ref``...). Readers fetch and
verify it. Old pointers in stream records therefore stay valid. Blobs no longer referenced are
not deleted (no sweep yet); an age-based expiry of the prefix would break current snapshots that
refer to old objects.

Conditional writes and transactions
-----------------------------------
``commit_scan`` first reads (one BatchGetItem) the tag pointers of the image's tags, the event
ids it is to add and the stored inventory's size, then writes the snapshot, the image status,
the history entry, the moved tags and the outbox rows in one ``TransactWriteItems``. The
snapshot's update carries the ``expected`` condition (``scanned_at`` and findings signature, as
the interface says); when it fails, nothing was written and :class:`StoreConflict` is raised.
Tag pointers are conditional on what was read, new events on not being there yet; when one of
those loses a race the commit is read and made again (a few times).

A transaction holds at most 100 items and 4 MB. A pipeline's commit (one event to a few sinks,
a few moved tags) is 4 to 10 items. A commit that needs more (dozens of moved tags, many events
or sinks) writes in three steps: (1) the new event items, each marked ``staging`` (a staged
event counts as absent); (2) one transaction with the snapshot, status and history items (same
condition) and a **journal** (``JOURNAL`` items, split in parts of under 300 KB) listing the
remaining writes: the deliveries and the tag moves; (3) those writes, each idempotent (events
unstaged, deliveries put if absent, each tag's period and old image before its conditional
pointer), then the journal is deleted. The journal is the commit point: if (2) fails nothing is
visible (staged events are overwritten by the next attempt), and if the writer dies during (3),
:meth:`~DynamoDBStore.recover` finishes it once the journal is a minute old;
:meth:`~DynamoDBStore.due_deliveries` calls it at most every 30 seconds.

Leases and fencing
------------------
One **lease** item per name (``cycle``, ``dispatch``, ``image:...``): ``holder``, ``token`` (a
number, kept on the item when the lease is released or expires, so every grant to a new holder
counts it up: strictly increasing per name), ``expires_at`` and ``done_at`` (stored times, which
compare as strings; the clock is this process's UTC clock, so hosts sharing a table need NTP).
``acquire_lease`` is a conditional UpdateItem (first "held by me, not expired": extended, same
token; else "absent, expired, or held by ``take_over``": token + 1); when both conditions fail the
item is read and :class:`LeaseHeld` raised. ``renew_lease`` / ``release_lease`` are conditional on
holder and token (:class:`LeaseLost` / nothing). ``claim_leases`` reads the names' items (one
consistent BatchGetItem per 100) and makes one conditional UpdateItem per name that looked free,
in order, skipping those whose condition fails: two claimers never get the same name.

Under :meth:`~DynamoDBStore.fenced`, every write the thread makes carries a ``ConditionCheck`` of
each lease item's token: the commit's ``TransactWriteItems`` gets them as extra items (so a
commit leaves that many fewer of the 100 items for itself), and each single write
(``record_failure``, ``mark_checked``, the outbox updates, staged events) is sent as a
``TransactWriteItems`` of itself and the checks. A refused check raises :class:`LeaseLost` and
nothing of that write happens. Not fenced: the id counter (ids are only used up) and step (3) of a
journaled commit, which finishes a commit already made (as :meth:`~DynamoDBStore.recover` would).

Streams
-------
Create the table with ``StreamViewType=NEW_AND_OLD_IMAGES`` (:func:`table_definition` does).
:func:`snapshot_change` turns one stream record (as Lambda delivers it, or as
``dynamodbstreams.get_records`` returns it) into the old and new :class:`ScanResult`, fetching
spilled blobs from S3.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import zstandard

from ..model import (Coverage, CoverageSummary, Event, Finding, Image, Package, ScanResult, ScanState,
                     result_signature, utcnow)
from ._fences import FenceStack
from .interface import (UNCHECKED, Delivery, DeliveryStatus, HistoryEntry, ImageStatus, Lease, LeaseHeld, LeaseLost,
                        PackageRow, Store,
                        StoreConflict, StoredInventory, StoreError, stored_error)

__all__ = ["DynamoDBStore", "SnapshotChange", "snapshot_change", "snapshot_from_image", "table_definition",
           "LAYOUT_VERSION"]

log = logging.getLogger(__name__)
UTC = timezone.utc
LAYOUT_VERSION = 1
"""Version of the item layout above (kept in the ``META``/``layout`` item); a table written by a
newer layout is refused."""

_ITEM_BUDGET = 380_000
"""Largest estimated item written (DynamoDB: 400 KB = 409,600 bytes; binary counted as base64)."""
_TX_MAX_ITEMS = 100
"""Items per TransactWriteItems (DynamoDB's limit)."""
_TX_BUDGET = 3_500_000
"""Estimated bytes per TransactWriteItems (DynamoDB's limit: 4 MB)."""
_BATCH_GET = 100
"""Keys per BatchGetItem (DynamoDB's limit)."""
_COMMIT_ATTEMPTS = 6
"""Tries of one commit when a tag pointer or an event id lost a race (not for StoreConflict)."""
_JOURNAL_MIN_AGE = 60.0
"""Seconds a journal is left to its own writer before :meth:`DynamoDBStore.recover` finishes it."""
_JOURNAL_CHECK_INTERVAL = 30.0
"""Seconds between two looks for unfinished journals from :meth:`DynamoDBStore.due_deliveries`."""
_ZSTD_LEVEL = 3
_WORKERS = 8
"""Parallel single-item writes (mark_checked, mark_delivered, ...): DynamoDB has no multi-item update."""

_DUE_NOW = "0"
"""``gsi1sk`` prefix of a delivery due at once (sorts before every timestamp)."""
_GSI2_ATTRIBUTES = ("registry", "repository", "digest", "tags", "scanner", "scanned_at", "recorded_at",
                    "counts", "state", "id")
"""Non-key attributes projected into ``gsi2`` (history entries; deliveries need only their keys)."""
_ROW_FIELDS = list(PackageRow._fields)

_PARAMETERS = ("region", "endpoint_url", "s3_endpoint_url", "bucket", "prefix", "create")


# --- table definition ----------------------------------------------------------------------------

def table_definition(table: str) -> dict[str, Any]:
    """``CreateTable`` arguments of a table in this layout (on-demand, streams with old and new
    images). Infrastructure code should create the same."""
    def gsi(name: str, projection: dict[str, Any]) -> dict[str, Any]:
        return {"IndexName": name, "Projection": projection,
                "KeySchema": [{"AttributeName": f"{name}pk", "KeyType": "HASH"},
                              {"AttributeName": f"{name}sk", "KeyType": "RANGE"}]}
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"}
                                 for n in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            gsi("gsi1", {"ProjectionType": "ALL"}),
            gsi("gsi2", {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(_GSI2_ATTRIBUTES)}),
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


# --- values ----------------------------------------------------------------------------------------

def _esc(part: str) -> str:
    return str(part).replace("%", "%25").replace("#", "%23")


def _key(*parts: str) -> str:
    """Components joined by ``#`` (the first, a fixed item-type prefix, is not escaped)."""
    return "#".join([parts[0], *(_esc(p) for p in parts[1:])])


def _ts(value: datetime) -> str:
    """A datetime as stored: UTC, fixed width (naive datetimes are taken to be UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dt(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _S(value: str) -> dict:
    return {"S": value}


def _N(value: int) -> dict:
    return {"N": str(int(value))}


def _B(value: bytes) -> dict:
    return {"B": value}


def _SS(values: Iterable[str]) -> dict:
    return {"SS": sorted(set(values))}


def _M(value: Mapping[str, Any]) -> dict:
    return {"M": {k: _S(v) if isinstance(v, str) else _N(v) for k, v in value.items()}}


def _plain(av: Mapping[str, Any]) -> Any:
    """A DynamoDB JSON attribute value as plain Python. Binary may be bytes (boto3) or base64
    text (a Lambda event)."""
    (kind, v), = av.items()
    if kind == "S":
        return v
    if kind == "N":
        return int(v) if v.lstrip("-").isdigit() else float(v)
    if kind == "B":
        return v if isinstance(v, (bytes, bytearray)) else base64.b64decode(v)
    if kind in ("SS", "NS"):
        return sorted(_plain({kind[0]: x}) for x in v)
    if kind == "BS":
        return [_plain({"B": x}) for x in v]
    if kind == "BOOL":
        return bool(v)
    if kind == "NULL":
        return None
    if kind == "L":
        return [_plain(x) for x in v]
    if kind == "M":
        return {k: _plain(x) for k, x in v.items()}
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in raw.items()}


def _size(av: Mapping[str, Any]) -> int:
    """Estimated stored size of an attribute value (binary counted as base64: the stricter count)."""
    (kind, v), = av.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return len(v) // 2 + 2
    if kind == "B":
        return (len(v) + 2) // 3 * 4
    if kind in ("SS", "NS"):
        return sum(len(x.encode()) for x in v)
    if kind == "L":
        return 3 + sum(_size(x) + 1 for x in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _size(x) + 1 for k, x in v.items())
    return 1


def _item_size(values: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(len(k.encode()) + _size(v) for k, v in values.items())


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # key order kept: counts go most severe first


def _compress(value: Any) -> bytes:
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(_dumps(value).encode())


def _decompress(data: bytes) -> Any:
    return json.loads(zstandard.ZstdDecompressor().decompress(data))


def _finding_dicts(findings: Sequence[Finding]) -> list[dict]:
    return [f.to_dict() for f in findings]


def _package_doc(packages: Sequence[Package]) -> dict:
    """Compact rows: field names once, then one list per package (as the SQL store keeps them)."""
    return {"v": 2, "fields": _ROW_FIELDS, "rows": [[getattr(p, f) for f in _ROW_FIELDS] for p in packages]}


def _package_rows(doc: Any) -> list[list]:
    """Plain rows in PackageRow field order."""
    if not doc:
        return []
    names = doc.get("fields") or _ROW_FIELDS
    if names == _ROW_FIELDS:
        return doc.get("rows") or []
    known = set(_ROW_FIELDS)   # written by another version: by name, unknown fields dropped
    return [list(PackageRow(**{n: v for n, v in zip(names, r) if n in known})) for r in doc.get("rows") or ()]


# --- expressions -----------------------------------------------------------------------------------

class _Expr:
    """Placeholders for one request (every attribute name aliased: DynamoDB reserves hundreds of
    words, ``status`` and ``size`` among them)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, dict] = {}
        self._aliases: dict[str, str] = {}

    def n(self, name: str) -> str:
        alias = self._aliases.get(name)
        if alias is None:
            alias = self._aliases[name] = f"#n{len(self._aliases)}"
            self.names[alias] = name
        return alias

    def v(self, av: dict) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = av
        return key

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            out["ExpressionAttributeValues"] = dict(self.values)
        return out


class _Update(_Expr):
    """An UpdateExpression being built, with its condition."""

    def __init__(self) -> None:
        super().__init__()
        self._set: list[str] = []
        self._remove: list[str] = []
        self._delete: list[str] = []
        self.condition: str | None = None

    def set(self, name: str, av: dict | None) -> "_Update":
        """``SET name = value``; ``None`` removes the attribute."""
        if av is None:
            self._remove.append(self.n(name))
        else:
            self._set.append(f"{self.n(name)} = {self.v(av)}")
        return self

    def set_if_absent(self, name: str, av: dict) -> "_Update":
        n = self.n(name)
        self._set.append(f"{n} = if_not_exists({n}, {self.v(av)})")
        return self

    def set_raw(self, clause: str) -> "_Update":
        self._set.append(clause)
        return self

    def remove(self, *names: str) -> "_Update":
        self._remove.extend(self.n(x) for x in names)
        return self

    def delete(self, name: str, av: dict) -> "_Update":
        self._delete.append(f"{self.n(name)} {self.v(av)}")
        return self

    def expression(self) -> str:
        parts = []
        if self._set:
            parts.append("SET " + ", ".join(self._set))
        if self._remove:
            parts.append("REMOVE " + ", ".join(dict.fromkeys(self._remove)))
        if self._delete:
            parts.append("DELETE " + ", ".join(self._delete))
        return " ".join(parts)

    def request(self, table: str, key: dict) -> dict[str, Any]:
        req = {"TableName": table, "Key": key, "UpdateExpression": self.expression(), **self.params()}
        if self.condition:
            req["ConditionExpression"] = self.condition
        return req


def _pk_sk(pk: str, sk: str) -> dict:
    return {"pk": _S(pk), "sk": _S(sk)}


def _repo_pk(registry: str, repository: str) -> str:
    return _key("R", registry, repository)


def _delivery_pk(delivery_id: int) -> dict:
    return _pk_sk(f"L#{int(delivery_id):020d}", "L")


# --- blobs -----------------------------------------------------------------------------------------

class _Blobs:
    """Reads and writes blobs spilled to S3 (``s3`` is a boto3 client, created on first need)."""

    def __init__(self, s3: Any = None, factory: Callable[[], Any] | None = None) -> None:
        self._s3 = s3
        self._factory = factory
        self._lock = threading.Lock()

    @property
    def s3(self) -> Any:
        with self._lock:
            if self._s3 is None:
                if self._factory is None:
                    from .. import aws
                    self._factory = lambda: aws.client("s3")
                self._s3 = self._factory()
            return self._s3

    def get(self, ref: Mapping[str, Any]) -> bytes:
        try:
            data = self.s3.get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read()
        except Exception as e:  # botocore's errors, without importing botocore here
            raise StoreError(f"cannot read s3://{ref.get('bucket')}/{ref.get('key')} ({_reason(e)})") from None
        if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
            raise StoreError(f"s3://{ref['bucket']}/{ref['key']} does not match its checksum: "
                             "the object was changed or truncated")
        return data

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/zstd")


def _blob(item: Mapping[str, Any], name: str, blobs: _Blobs) -> Any:
    """The decoded blob ``name`` of an item: inline (``name``), in S3 (``name_ref``) or absent (None)."""
    data = item.get(name)
    if data is None:
        ref = item.get(f"{name}_ref")
        if ref is None:
            return None
        data = blobs.get(ref)
    return _decompress(bytes(data))


def _reason(e: BaseException) -> str:
    """An AWS error as ``Code: message`` (no request details; AWS messages hold no credentials)."""
    response = getattr(e, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', type(e).__name__)}: {err.get('Message', '')}".rstrip(": ")
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _code(e: BaseException) -> str | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


# --- reading items back ----------------------------------------------------------------------------

def _image_of(item: Mapping[str, Any]) -> Image:
    return Image(registry=item["registry"], repository=item["repository"], digest=item["digest"],
                 tags=tuple(sorted(item.get("tags") or ())), pushed_at=_dt(item.get("pushed_at")),
                 media_type=item.get("media_type"), size_bytes=item.get("size_bytes"))


def _result_of(snap: Mapping[str, Any], image: Image, blobs: _Blobs, *, with_inventory: bool = True) -> ScanResult:
    packages: tuple = ()
    if with_inventory:
        packages = tuple(Package(*r) for r in _package_rows(_blob(snap, "packages", blobs)))
    return ScanResult(
        image=image,
        scanner=snap["scanner"],
        scanned_at=_dt(snap["scanned_at"]),
        findings=tuple(Finding.from_dict(d) for d in _blob(snap, "findings", blobs) or ()),
        vulnerability_source_updated_at=_dt(snap.get("vulnerability_source_updated_at")),
        state=ScanState(snap["state"]),
        packages=packages,
        distro=snap.get("distro"),
        notes=tuple(json.loads(snap.get("notes") or "[]")),
        suppressed=tuple(Finding.from_dict(d) for d in json.loads(snap.get("suppressed") or "[]")),
        coverage=Coverage.from_dict(json.loads(snap["coverage"])) if snap.get("coverage") else None,
    )


def snapshot_from_image(image: Mapping[str, Any], *, s3: Any = None) -> ScanResult:
    """The :class:`ScanResult` held by a snapshot item, given as DynamoDB JSON (a stream record's
    ``NewImage`` or ``OldImage``; binary as bytes or base64 text). ``s3`` is a boto3 S3 client for
    spilled blobs (default: one from the standard chain, made only if needed). The image's tags
    are those it had when scanned."""
    item = _item(image)
    if not str(item.get("sk", "")).endswith("#V") or "scanned_at" not in item:
        raise StoreError(f"item {item.get('pk')!r}/{item.get('sk')!r} is not a vulnwatch snapshot")
    try:
        return _result_of(item, _image_of(item), _Blobs(s3))
    except (ValueError, KeyError, TypeError, zstandard.ZstdError) as e:
        raise StoreError(f"cannot read the snapshot {item.get('pk')}/{item.get('sk')} ({e})") from None


@dataclass(frozen=True)
class SnapshotChange:
    """What one stream record of a snapshot item says: one commit of one image."""

    event_name: str
    """``INSERT`` (first snapshot of the digest), ``MODIFY`` or ``REMOVE``."""
    old: ScanResult | None
    """The snapshot before the commit (None for ``INSERT``)."""
    new: ScanResult | None
    """The snapshot after it (None for ``REMOVE``)."""
    old_version: int | None
    """The snapshot item's ``version`` before (each commit adds one)."""
    new_version: int | None

    @property
    def image(self) -> Image:
        return (self.new or self.old).image  # type: ignore[union-attr]


def snapshot_change(record: Mapping[str, Any], *, s3: Any = None) -> SnapshotChange | None:
    """Decode one DynamoDB stream record of the state table: for a record of a snapshot item,
    the old and new :class:`ScanResult` (``diff(new, old)`` gives the event); None for any other
    item (image status, history, tags, outbox), which a consumer skips, and for an image that holds
    only the keys (moto records one when an update creates an item; DynamoDB does not).

    ``record`` is one element of a Lambda event's ``Records`` (binary values base64) or of
    ``dynamodbstreams.get_records()["Records"]`` (binary values bytes); the stream must be
    ``NEW_AND_OLD_IMAGES``. Spilled findings are fetched with ``s3`` (see :func:`snapshot_from_image`)."""
    data = record.get("dynamodb") or {}
    keys = data.get("Keys") or data.get("NewImage") or data.get("OldImage") or {}
    sk = keys.get("sk", {}).get("S", "")
    if not (sk.startswith("D#") and sk.endswith("#V")):
        return None
    old_raw, new_raw = data.get("OldImage"), data.get("NewImage")
    event_name = record.get("eventName") or ("INSERT" if old_raw is None else "REMOVE" if new_raw is None
                                             else "MODIFY")
    if event_name != "REMOVE" and new_raw is None or event_name == "MODIFY" and old_raw is None:
        raise StoreError(f"stream record of {sk!r} lacks its images: the stream must be NEW_AND_OLD_IMAGES")
    blobs = _Blobs(s3)

    def decode(raw):
        if raw is None or "scanned_at" not in raw:    # keys only: the item held no snapshot yet
            return None, None
        return snapshot_from_image(raw, s3=blobs.s3 if _needs_s3(raw) else None), _item(raw).get("version")

    old, old_version = decode(old_raw)
    new, new_version = decode(new_raw)
    if old is None and new is None:
        return None
    return SnapshotChange(event_name, old, new, old_version, new_version)


def _needs_s3(raw: Mapping[str, Any]) -> bool:
    return any(k.endswith("_ref") for k in raw)


# --- the store ---------------------------------------------------------------------------------------

@dataclass
class _Blob:
    """One blob of a commit: compressed once, kept inline or spilled."""

    name: str
    """Attribute name (``findings``...); a spilled blob is ``<name>_ref``."""
    data: bytes
    """The compressed JSON."""
    kind: str
    """Folder of its S3 key (``findings``, ``packages``, ``finding-keys``, ``events``)."""
    label: str
    """What it is, for errors (``findings``, ``inventory``...)."""
    ref: dict[str, Any] | None = None
    """Its S3 pointer, once spilled (a retried commit does not put it again)."""

    @property
    def inline_size(self) -> int:
        return len(self.name) + (len(self.data) + 2) // 3 * 4


class _Retry(Exception):
    """A commit lost a race on a tag pointer or an event id: read again and retry."""


class DynamoDBStore(FenceStack, Store):
    """State in one DynamoDB table (see the module docstring for the layout).

    ``client`` and ``s3`` are boto3 clients (built from the other arguments when not given).
    Datetimes are stored in UTC and come back timezone-aware; naive ones are taken to be UTC."""

    def __init__(self, table: str, *, region: str | None = None, endpoint_url: str | None = None,
                 s3_endpoint_url: str | None = None, bucket: str | None = None, prefix: str | None = None,
                 create: bool = False, client: Any = None, s3: Any = None) -> None:
        if not table or not all(c.isalnum() or c in "_.-" for c in table) or not 3 <= len(table) <= 255:
            raise StoreError(f"state store dynamodb://{table}: not a DynamoDB table name "
                             "(3-255 characters: letters, digits, '_', '-', '.')")
        self.table = table
        self.region = region
        self.bucket = bucket or None
        self.prefix = prefix if prefix is not None else f"vulnwatch/{table}/"
        self._display = f"dynamodb://{table}" + (f" ({region})" if region else "")
        from .. import aws   # boto3 is loaded here, when a store is opened, not on import
        self._aws_errors = (aws.exceptions.ClientError, aws.exceptions.BotoCoreError)
        self._ddb = client or aws.client("dynamodb", region=region, endpoint_url=endpoint_url,
                                         max_pool_connections=_WORKERS + 2)
        s3_endpoint = s3_endpoint_url or endpoint_url
        self._blobs = _Blobs(s3, lambda: aws.client("s3", region=region, endpoint_url=s3_endpoint,
                                                    max_pool_connections=_WORKERS + 2))
        self._pool: ThreadPoolExecutor | None = None
        self._next_recovery = 0.0
        self._pool_lock = threading.Lock()
        self._fences = threading.local()   # per thread: the leases its writes are fenced by
        self._open(create)

    @classmethod
    def from_url(cls, url: str) -> "DynamoDBStore":
        """``dynamodb://TABLE?region=...&endpoint_url=...&bucket=...&prefix=...&create=true``
        (parameters in the module docstring)."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "dynamodb" or not parts.netloc or parts.path not in ("", "/"):
            raise StoreError("state store URL is not a DynamoDB URL; use dynamodb://TABLE?region=REGION")
        table = parts.netloc
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - set(_PARAMETERS))
        if unknown:
            raise StoreError(f"state store dynamodb://{table}: unknown parameter {unknown[0]!r}; "
                             f"known: {', '.join(_PARAMETERS)}")
        one = {k: v[-1] for k, v in query.items()}
        create = one.pop("create", "false").lower()
        if create not in ("true", "false", "1", "0", "yes", "no"):
            raise StoreError(f"state store dynamodb://{table}: create={create!r}; use true or false")
        return cls(table, create=create in ("true", "1", "yes"), **{k: v or None for k, v in one.items()})

    def __repr__(self) -> str:
        return f"DynamoDBStore({self._display!r})"

    # --- plumbing ------------------------------------------------------------------------------------
    def _fail(self, what: str, e: BaseException) -> StoreError:
        if _code(e) == "ResourceNotFoundException":
            return StoreError(f"state store {self._display}: {what} failed: table {self.table!r} not found"
                              f"{' in ' + self.region if self.region else ''} (create it with "
                              "vulnwatch.store.dynamodb.table_definition, or add create=true to the URL)")
        return StoreError(f"state store {self._display}: {what} failed: {_reason(e)}")

    def _call(self, what: str, op: str, **kwargs: Any) -> dict:
        """One DynamoDB call on the table; AWS errors become :class:`StoreError` saying ``what`` failed."""
        if op not in ("batch_get_item", "transact_write_items"):
            kwargs["TableName"] = self.table
        try:
            return getattr(self._ddb, op)(**kwargs)
        except self._aws_errors as e:
            raise self._fail(what, e) from None

    def _open(self, create: bool) -> None:
        if create:
            self._create()
        item = self._call("reading the layout version", "get_item", Key=_pk_sk("META", "layout"),
                          ConsistentRead=True).get("Item")
        if item is None:
            try:
                self._ddb.put_item(TableName=self.table, Item={**_pk_sk("META", "layout"), "version": _N(LAYOUT_VERSION)},
                                   ConditionExpression="attribute_not_exists(pk)")
            except self._aws_errors as e:
                if _code(e) != "ConditionalCheckFailedException":
                    raise self._fail("writing the layout version", e) from None
            return
        version = int(_plain(item["version"]))
        if version > LAYOUT_VERSION:
            raise StoreError(f"state store {self._display} has layout version {version}, but this vulnwatch "
                             f"knows versions up to {LAYOUT_VERSION}: it was written by a newer vulnwatch. "
                             "Upgrade vulnwatch (or point state at another table).")

    def _create(self) -> None:
        try:
            self._ddb.describe_table(TableName=self.table)
        except self._aws_errors as e:
            if _code(e) != "ResourceNotFoundException":
                raise self._fail("looking up the table", e) from None
            try:
                self._ddb.create_table(**table_definition(self.table))
            except self._aws_errors as e2:
                if _code(e2) != "ResourceInUseException":  # created meanwhile
                    raise self._fail("creating the table", e2) from None
            try:
                self._ddb.get_waiter("table_exists").wait(TableName=self.table,
                                                          WaiterConfig={"Delay": 1, "MaxAttempts": 120})
            except Exception as e3:
                raise self._fail("waiting for the new table", e3) from None
        if self.bucket:
            s3 = self._blobs.s3
            try:
                s3.head_bucket(Bucket=self.bucket)
            except self._aws_errors:
                try:
                    kwargs: dict[str, Any] = {}
                    region = s3.meta.region_name
                    if region and region != "us-east-1":
                        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
                    s3.create_bucket(Bucket=self.bucket, **kwargs)
                except self._aws_errors as e:
                    if _code(e) not in ("BucketAlreadyOwnedByYou",):
                        raise StoreError(f"state store {self._display}: creating bucket {self.bucket!r} "
                                         f"failed: {_reason(e)}") from None

    def _each(self, fn: Callable[[Any], Any], items: Sequence[Any] | range) -> list[Any]:
        """``fn`` over ``items``, a few at a time (single-item writes)."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="vulnwatch-dynamodb")
            pool = self._pool
        return list(pool.map(fn, items))

    def _query(self, what: str, *, limit: int | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Items of a Query, page after page (``limit``: stop after that many)."""
        start = None
        seen = 0
        while True:
            page = self._call(what, "query", **kwargs, **({"ExclusiveStartKey": start} if start else {}),
                              **({"Limit": max(limit - seen, 1)} if limit is not None else {}))
            for raw in page.get("Items", ()):
                yield _item(raw)
                seen += 1
                if limit is not None and seen >= limit:
                    return
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def _batch_get(self, what: str, keys: Sequence[dict], *, projection: Sequence[str] | None = None,
                   consistent: bool = True) -> list[dict[str, Any]]:
        """Items of ``keys`` (BatchGetItem, 100 keys a request, unprocessed keys asked again);
        missing items are left out; order is not kept."""
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        unique = []
        for k in keys:
            ident = (k["pk"]["S"], k["sk"]["S"])
            if ident not in seen:
                seen.add(ident)
                unique.append(k)
        extra: dict[str, Any] = {"ConsistentRead": consistent}
        if projection:
            e = _Expr()
            extra["ProjectionExpression"] = ", ".join(e.n(x) for x in ("pk", "sk", *projection))
            extra.update(e.params())
        for i in range(0, len(unique), _BATCH_GET):
            pending: dict[str, Any] = {self.table: {"Keys": unique[i:i + _BATCH_GET], **extra}}
            delay = 0.05
            while pending:
                resp = self._call(what, "batch_get_item", RequestItems=pending)
                out.extend(_item(r) for r in resp.get("Responses", {}).get(self.table, ()))
                pending = resp.get("UnprocessedKeys") or {}
                if pending:
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
        return out

    def _write_each(self, requests: Sequence[dict], what: str) -> set[int]:
        """Make each write (``{"Put": {...}}`` or ``{"Update": {...}}``, as in TransactWriteItems) as
        a single conditional PutItem/UpdateItem, a few in parallel; a write whose condition fails
        is skipped. Returns the indexes of the writes made.

        Single-item writes, not transactions: these writes are independent (each is conditional
        on its own item), cost half the capacity of transactional ones and never conflict with a
        commit's transaction."""
        fences = self._fence_checks()   # read here: ``one`` runs on the pool's threads

        def one(i: int) -> int | None:
            (op, body), = requests[i].items()
            try:
                if fences:
                    self._ddb.transact_write_items(TransactItems=[requests[i], *fences])
                else:
                    (self._ddb.put_item if op == "Put" else self._ddb.update_item)(**body)
                return i
            except self._aws_errors as e:
                if _code(e) == "ConditionalCheckFailedException":
                    return None
                reasons = _cancellation_reasons(e) if fences else None
                if reasons is not None:
                    if any(code == "ConditionalCheckFailed" for code in reasons[1:]):
                        raise self._lost(what) from None
                    if reasons[:1] == ["ConditionalCheckFailed"]:
                        return None
                raise self._fail(what, e) from None
        return {i for i in self._each(one, range(len(requests))) if i is not None}

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    # --- snapshots -----------------------------------------------------------------------------------
    _WITHOUT_INVENTORY = ("registry", "repository", "digest", "tags", "pushed_at", "media_type", "size_bytes",
                          "scanner", "scanned_at", "vulnerability_source_updated_at", "state", "notes",
                          "findings", "findings_ref", "distro", "suppressed", "coverage")

    def _where(self, registry: str, repository: str, digest: str) -> str:
        return f"{registry}/{repository}@{digest}"

    def _result(self, snap: Mapping[str, Any], status: Mapping[str, Any] | None, *,
                with_inventory: bool = True) -> ScanResult:
        where = f"snapshot of {self._where(snap['registry'], snap['repository'], snap['digest'])}"
        try:
            return _result_of(snap, _image_of(status or snap), self._blobs, with_inventory=with_inventory)
        except (ValueError, KeyError, TypeError, zstandard.ZstdError) as e:
            raise StoreError(f"state store {self._display}: cannot read the {where} ({e}); "
                             "rescan the image to replace it") from None
        except StoreError as e:
            raise StoreError(f"state store {self._display}: cannot read the {where}: {e}") from None

    def snapshot(self, registry: str, repository: str, digest: str, *,
                 with_inventory: bool = True) -> ScanResult | None:
        e = _Expr()
        kwargs: dict[str, Any] = {}
        if not with_inventory:
            kwargs["ProjectionExpression"] = ", ".join(
                e.n(x) for x in ("pk", "sk", *self._WITHOUT_INVENTORY, "last_error"))
        cond = f"{e.n('pk')} = {e.v(_S(_repo_pk(registry, repository)))} AND " \
               f"begins_with({e.n('sk')}, {e.v(_S(_key('D', digest) + '#'))})"
        items = list(self._query(f"reading the snapshot of {self._where(registry, repository, digest)}",
                                 KeyConditionExpression=cond, ConsistentRead=True, **kwargs, **e.params()))
        snap = next((i for i in items if i["sk"].endswith("#V")), None)
        status = next((i for i in items if i["sk"].endswith("#S")), None)
        return self._result(snap, status, with_inventory=with_inventory) if snap is not None else None

    def _statuses(self, registry: str | None = None) -> list[dict[str, Any]]:
        """Every image status item (of one registry), by key."""
        e = _Expr()
        cond = f"{e.n('gsi1pk')} = {e.v(_S('IMAGES'))}"
        if registry is not None:
            cond += f" AND begins_with({e.n('gsi1sk')}, {e.v(_S(_esc(registry) + '#'))})"
        items = self._query("listing images", IndexName="gsi1", KeyConditionExpression=cond, **e.params())
        return sorted((i for i in items if registry is None or i["registry"] == registry),
                      key=lambda i: (i["registry"], i["repository"], i["digest"]))

    @staticmethod
    def _snap_key(registry: str, repository: str, digest: str) -> dict:
        return _pk_sk(_repo_pk(registry, repository), _key("D", digest) + "#V")

    @staticmethod
    def _status_key(registry: str, repository: str, digest: str) -> dict:
        return _pk_sk(_repo_pk(registry, repository), _key("D", digest) + "#S")

    def snapshots(self, registry: str | None = None) -> list[ScanResult]:
        statuses = [s for s in self._statuses(registry) if s.get("scanned_at")]
        by_key = {(s["registry"], s["repository"], s["digest"]): s for s in statuses}
        snaps = self._batch_get("reading snapshots", [self._snap_key(*k) for k in by_key])
        out = [self._result(v, by_key.get((v["registry"], v["repository"], v["digest"]))) for v in snaps]
        return sorted(out, key=lambda r: r.image.key)

    def current(self, keys: Sequence[tuple[str, str, str]]
                ) -> tuple[dict[tuple[str, str, str], ScanResult], set[tuple[str, str, str]]]:
        """One consistent BatchGetItem per 50 images (their snapshot and status items), the
        inventories left out: what a serverless collector reads before scanning a slice."""
        wanted = list(dict.fromkeys(tuple(k) for k in keys))
        request = [k for key in wanted for k in (self._snap_key(*key), self._status_key(*key))]
        items = self._batch_get("reading the snapshots of a slice", request,
                                projection=(*self._WITHOUT_INVENTORY, "last_error"))
        snaps = {(i["registry"], i["repository"], i["digest"]): i for i in items if i["sk"].endswith("#V")}
        statuses = {(i["registry"], i["repository"], i["digest"]): i for i in items if i["sk"].endswith("#S")}
        out = {key: self._result(snap, statuses.get(key), with_inventory=False) for key, snap in snaps.items()
               if snap.get("scanned_at")}
        failing = {key for key, st in statuses.items() if st.get("last_error")}
        return out, failing

    def inventories(self, registry: str | None = None,
                    keys: Sequence[tuple[str, str, str]] | None = None) -> Iterator[StoredInventory]:
        if keys is None:
            wanted = [(s["registry"], s["repository"], s["digest"]) for s in self._statuses(registry)
                      if s.get("inventory")]
        else:
            wanted = [tuple(k) for k in dict.fromkeys(tuple(k) for k in keys)
                      if registry is None or k[0] == registry]
        fields = ("registry", "repository", "digest", "scanner", "distro", "packages", "packages_ref",
                  "findings_signature", "coverage")
        for i in range(0, len(wanted), _BATCH_GET):
            chunk = wanted[i:i + _BATCH_GET]
            items = self._batch_get("reading inventories", [self._snap_key(*k) for k in chunk], projection=fields)
            for item in sorted(items, key=lambda x: (x["registry"], x["repository"], x["digest"])):
                key = (item["registry"], item["repository"], item["digest"])
                try:
                    rows = _package_rows(_blob(item, "packages", self._blobs))
                except (ValueError, TypeError, zstandard.ZstdError) as e:
                    raise StoreError(f"state store {self._display}: cannot read the inventory of "
                                     f"{self._where(*key)} ({e}); rescan the image") from None
                if not rows and not item.get("distro"):
                    continue
                try:
                    missing = tuple(json.loads(item["coverage"]).get("missing") or ()) if item.get("coverage") \
                        else None
                except (ValueError, AttributeError):
                    missing = None
                yield StoredInventory(key=key, scanner=item["scanner"], distro=item.get("distro"), rows=rows,
                                      findings_signature=item.get("findings_signature"), coverage_missing=missing)

    def tag_digest(self, registry: str, repository: str, tag: str) -> str | None:
        item = self._call(f"reading tag {registry}/{repository}:{tag}", "get_item",
                          Key=_pk_sk(_repo_pk(registry, repository), _key("T", tag)), ConsistentRead=True).get("Item")
        return _plain(item["digest"]) if item else None

    # --- commit_scan ---------------------------------------------------------------------------------
    def commit_scan(self, result: ScanResult, deliveries: Sequence[tuple[Event, Sequence[str]]], *,
                    keep_inventory: bool = False, expected: ScanResult | None = UNCHECKED) -> None:
        img = result.image
        what = f"recording the scan of {self._where(*img.key)}"
        wanted: dict[str, tuple[Event, list[str]]] = {}
        for ev, sinks in deliveries:
            bad = [s for s in sinks if not isinstance(s, str) or not s]
            if bad:
                raise StoreError(f"state store {self._display}: {what} failed: sink names must be "
                                 f"non-empty strings, got {bad[0]!r} for event {ev.id}")
            if ev.id not in wanted:           # the first mention of an event id counts, as in SQL
                wanted[ev.id] = (ev, list(dict.fromkeys(sinks)))
        blobs = self._commit_blobs(result, keep_inventory, wanted)
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                self._commit_once(result, wanted, blobs, what, keep_inventory=keep_inventory, expected=expected)
                return
            except _Retry:
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise StoreError(f"state store {self._display}: {what} failed: other writers kept changing this "
                         f"image's tags or events ({_COMMIT_ATTEMPTS} attempts)")

    def _commit_blobs(self, result: ScanResult, keep_inventory: bool,
                      wanted: Mapping[str, tuple[Event, list[str]]]) -> dict[str, _Blob]:
        """The commit's blobs, compressed once."""
        out = {"findings": _Blob("findings", _compress(_finding_dicts(result.findings)), "findings", "findings"),
               "finding_keys": _Blob("finding_keys", _compress(sorted(list(f.key) for f in result.findings)),
                                     "finding-keys", "finding keys")}
        if not keep_inventory:
            out["packages"] = _Blob("packages", _compress(_package_doc(result.packages)), "packages", "inventory")
        for event_id, (ev, _sinks) in wanted.items():
            out[f"event:{event_id}"] = _Blob("body", _compress(ev.to_dict()), "events", f"event {event_id}")
        return out

    def _place(self, values: dict[str, dict], blobs: Sequence[_Blob], what: str, *,
               reserved: int = 0) -> None:
        """Add ``blobs`` to the item ``values``: inline while it fits the budget, the biggest ones
        spilled to S3 otherwise. ``reserved``: bytes already taken (an inventory kept in place)."""
        inline = list(blobs)
        spill: list[_Blob] = []
        while inline and _item_size(values) + reserved + sum(b.inline_size for b in inline) > _ITEM_BUDGET:
            biggest = max(inline, key=lambda b: len(b.data))
            inline.remove(biggest)
            spill.append(biggest)
        for b in inline:
            values[b.name] = _B(b.data)
        for b in spill:
            values[f"{b.name}_ref"] = _M(self._spill(b, what))
        if _item_size(values) + reserved > _ITEM_BUDGET:
            raise StoreError(f"state store {self._display}: {what} failed: the item would exceed DynamoDB's "
                             "400 KB limit even with its blobs in S3 (too many tags or notes)")

    def _spill(self, blob: _Blob, what: str) -> dict[str, Any]:
        if blob.ref is not None:
            return blob.ref
        if not self.bucket:
            raise StoreError(f"state store {self._display}: {what} failed: its {blob.label} take "
                             f"{len(blob.data):,} bytes even compressed, too many for a DynamoDB item; "
                             "add bucket=S3_BUCKET to the state URL to keep large blobs in S3")
        digest = hashlib.sha256(blob.data).hexdigest()
        key = f"{self.prefix}{blob.kind}/{digest}.zst"
        try:
            self._blobs.put(self.bucket, key, blob.data)
        except self._aws_errors as e:
            raise StoreError(f"state store {self._display}: {what} failed: writing "
                             f"s3://{self.bucket}/{key}: {_reason(e)}") from None
        blob.ref = {"bucket": self.bucket, "key": key, "sha256": digest, "size": len(blob.data)}
        return blob.ref

    def _pre_read(self, img: Image, event_ids: Sequence[str], what: str) -> tuple[dict, set, int]:
        """(tag -> pointer item, event ids already in the outbox, stored inventory's inline size)."""
        pk = _repo_pk(img.registry, img.repository)
        keys = [_pk_sk(pk, _key("T", t)) for t in sorted(set(img.tags))]
        keys += [_pk_sk(_key("E", i), "E") for i in event_ids]
        keys.append(self._snap_key(*img.key))
        items = self._batch_get(what, keys, projection=("digest", "first_seen", "staging", "packages_size"))
        tags = {i["sk"]: i for i in items if i["pk"] == pk and i["sk"].startswith("T#")}
        present = {i["pk"] for i in items if i["pk"].startswith("E#") and "staging" not in i}
        snap = next((i for i in items if i["pk"] == pk and i["sk"].endswith("#V")), None)
        return ({t: tags[_key("T", t)] for t in set(img.tags) if _key("T", t) in tags},
                {i for i in event_ids if _key("E", i) in present},
                int(snap.get("packages_size") or 0) if snap else 0)

    def _allocate_ids(self, n: int, what: str) -> list[int]:
        if n == 0:
            return []
        e = _Update()
        e.set_raw(f"{e.n('n')} = if_not_exists({e.n('n')}, {e.v(_N(0))}) + {e.v(_N(n))}")
        last = int(_plain(self._call(what, "update_item", Key=_pk_sk("COUNTER", "deliveries"),
                                     UpdateExpression=e.expression(), ReturnValues="UPDATED_NEW",
                                     **e.params())["Attributes"]["n"]))
        return list(range(last - n + 1, last + 1))

    def _commit_once(self, result: ScanResult, wanted: Mapping[str, tuple[Event, list[str]]],
                     blobs: Mapping[str, _Blob], what: str, *, keep_inventory: bool, expected: Any) -> None:
        img = result.image
        now = utcnow()
        pointers, present, packages_size = self._pre_read(img, list(wanted), what)
        new_events = [(ev, sinks) for event_id, (ev, sinks) in wanted.items() if event_id not in present]

        snap_u = self._snapshot_update(result, now, blobs, what, keep_inventory=keep_inventory,
                                       expected=expected, stored_packages=packages_size)
        core = [("snapshot", {"Update": snap_u.request(self.table, self._snap_key(*img.key))}),
                ("status", {"Update": self._status_update(result, now, keep_inventory).request(
                    self.table, self._status_key(*img.key))}),
                ("history", {"Update": self._history_update(result, now, blobs, what).request(
                    self.table, self._history_key(result))})]
        tag_ops = [(t, p.get("digest"), p.get("first_seen")) for t, p in
                   ((t, pointers.get(t, {})) for t in sorted(set(img.tags))) if p.get("digest") != img.digest]
        tag_writes = self._tag_writes(img, tag_ops, now)
        n_deliveries = sum(len(s) for _ev, s in new_events)
        event_items = [(ev, self._event_item(ev, blobs[f"event:{ev.id}"], now, what)) for ev, _s in new_events]

        size = sum(_request_size(r) for _role, r in core) + sum(_request_size(r) for _r, r in tag_writes) \
            + sum(_item_size(i) for _ev, i in event_items) + 300 * n_deliveries
        room = _TX_MAX_ITEMS - len(self._fence_checks())
        if len(core) + len(tag_writes) + len(event_items) + n_deliveries <= room and size <= _TX_BUDGET:
            ids = iter(self._allocate_ids(n_deliveries, what))
            items = core + tag_writes
            for (ev, sinks), (_ev, item) in zip(new_events, event_items):
                items.append(("event", {"Put": {"TableName": self.table, "Item": item, **_EVENT_CONDITION}}))
                for sink in sinks:
                    items.append(("delivery", {"Put": {"TableName": self.table, **_NEW_ITEM,
                                                       "Item": self._delivery_item(next(ids), ev.id, sink, now)}}))
            self._transact(items, what, img, expected)
            return
        self._commit_journaled(img, core, tag_ops, new_events, event_items, now, what, expected)

    def _transact(self, items: list[tuple[str, dict]], what: str, img: Image, expected: Any) -> None:
        items = items + [("fence", check) for check in self._fence_checks()]
        assert len(items) <= _TX_MAX_ITEMS
        try:   # the token makes botocore's own retry of a commit that did happen a no-op, not a conflict
            self._ddb.transact_write_items(TransactItems=[r for _role, r in items],
                                           ClientRequestToken=uuid.uuid4().hex)
        except self._aws_errors as e:
            reasons = _cancellation_reasons(e)
            if reasons is None:
                raise self._fail(what, e) from None
            failed = {role for (role, _r), code in zip(items, reasons) if code == "ConditionalCheckFailed"}
            if "fence" in failed:
                raise self._lost(what) from None
            if "snapshot" in failed:
                raise StoreConflict(f"{img}: another writer recorded this image first" if expected is None
                                    else f"{img}: the stored snapshot changed since it was read") from None
            if failed or any(code in _TRANSIENT for code in reasons):
                raise _Retry() from None
            raise self._fail(what, e) from None

    # item builders
    def _snapshot_update(self, result: ScanResult, now: datetime, blobs: Mapping[str, _Blob], what: str, *,
                         keep_inventory: bool, expected: Any, stored_packages: int) -> _Update:
        img = result.image
        values: dict[str, dict] = {
            "kind": _S("snapshot"), "registry": _S(img.registry), "repository": _S(img.repository),
            "digest": _S(img.digest), "scanner": _S(result.scanner), "scanned_at": _S(_ts(result.scanned_at)),
            "recorded_at": _S(_ts(now)), "state": _S(ScanState(result.state).value),
            "notes": _S(_dumps(list(result.notes))), "counts": _S(_dumps(result.counts)),
            "findings_signature": _S(result_signature(result)),
        }
        if img.tags:
            values["tags"] = _SS(img.tags)
        for name in ("pushed_at", "media_type", "size_bytes"):
            v = getattr(img, name)
            if v is not None:
                values[name] = _S(_ts(v)) if name == "pushed_at" else _N(v) if name == "size_bytes" else _S(v)
        if result.vulnerability_source_updated_at is not None:
            values["vulnerability_source_updated_at"] = _S(_ts(result.vulnerability_source_updated_at))
        if result.suppressed:   # a few findings, with their reasons: kept inline
            values["suppressed"] = _S(_dumps(_finding_dicts(result.suppressed)))
        if result.coverage is not None:
            values["coverage"] = _S(_dumps(result.coverage.to_dict()))
        placed = [blobs["findings"]] + ([] if keep_inventory else [blobs["packages"]])
        self._place(values, placed, what, reserved=stored_packages if keep_inventory else 0)
        u = _Update()
        for name, av in values.items():
            u.set(name, av)
        if not img.tags:
            u.remove("tags")
        if result.vulnerability_source_updated_at is None:
            u.remove("vulnerability_source_updated_at")
        u.remove("findings_ref" if "findings" in values else "findings")
        if not result.suppressed:
            u.remove("suppressed")
        if result.coverage is None:
            u.remove("coverage")
        if keep_inventory:
            if result.distro is not None:
                u.set_if_absent("distro", _S(result.distro))
        else:
            u.remove("packages_ref" if "packages" in values else "packages")
            u.set("distro", _S(result.distro) if result.distro is not None else None)
            u.set("packages_size", _N(blobs["packages"].inline_size if "packages" in values else 0))
        u.set_raw(f"{u.n('version')} = if_not_exists({u.n('version')}, {u.v(_N(0))}) + {u.v(_N(1))}")
        if expected is not UNCHECKED:
            if expected is None:
                u.condition = f"attribute_not_exists({u.n('scanned_at')})"
            else:
                sig = u.n("findings_signature")
                u.condition = (f"{u.n('scanned_at')} = {u.v(_S(_ts(expected.scanned_at)))} AND "
                               f"(attribute_not_exists({sig}) OR {sig} = "
                               f"{u.v(_S(result_signature(expected)))})")
        return u

    def _status_update(self, result: ScanResult, now: datetime, keep_inventory: bool) -> _Update:
        img = result.image
        u = self._image_fields(img, now)
        u.set("scanner", _S(result.scanner)).set("scanned_at", _S(_ts(result.scanned_at)))
        u.set("counts", _S(_dumps(result.counts)))
        u.set("kev", _N(result.kev_count))
        u.set("coverage_summary", _S(_dumps(result.coverage.brief().to_dict())) if result.coverage is not None
              else None)
        has_inventory = _N(1 if result.packages or result.distro else 0)
        if keep_inventory:
            u.set_if_absent("inventory", has_inventory)
        else:
            u.set("inventory", has_inventory)
        u.remove("last_error", "last_error_at", "last_error_scanner")
        return u

    def _image_fields(self, img: Image, now: datetime) -> _Update:
        """The image status item's identity and image fields (``pushed_at``... kept when not known now)."""
        u = _Update()
        u.set("kind", _S("image")).set("registry", _S(img.registry)).set("repository", _S(img.repository))
        u.set("digest", _S(img.digest)).set("updated_at", _S(_ts(now)))
        u.set("tags", _SS(img.tags) if img.tags else None)
        if img.pushed_at is not None:
            u.set("pushed_at", _S(_ts(img.pushed_at)))
        if img.media_type is not None:
            u.set("media_type", _S(img.media_type))
        if img.size_bytes is not None:
            u.set("size_bytes", _N(img.size_bytes))
        u.set("gsi1pk", _S("IMAGES")).set("gsi1sk", _S("#".join(_esc(p) for p in img.key)))
        return u

    @staticmethod
    def _history_key(result: ScanResult) -> dict:
        img = result.image
        return _pk_sk(_repo_pk(img.registry, img.repository),
                      _key("H", _ts(result.scanned_at), img.digest, result.scanner))

    def _history_update(self, result: ScanResult, now: datetime, blobs: Mapping[str, _Blob], what: str) -> _Update:
        """The history entry; ``if_not_exists`` everywhere: the same scan seen again is one entry,
        as first recorded."""
        img = result.image
        values: dict[str, dict] = {
            "kind": _S("history"), "registry": _S(img.registry), "repository": _S(img.repository),
            "digest": _S(img.digest), "scanner": _S(result.scanner), "scanned_at": _S(_ts(result.scanned_at)),
            "recorded_at": _S(_ts(now)), "state": _S(ScanState(result.state).value),
            "counts": _S(_dumps(result.counts)),
            "gsi2pk": _S(_key("H", img.registry, img.repository, img.digest)),
            "gsi2sk": _S(_key(_ts(result.scanned_at), result.scanner)),
        }
        if img.tags:
            values["tags"] = _SS(img.tags)
        self._place(values, [blobs["finding_keys"]], what)
        u = _Update()
        for name, av in values.items():
            u.set_if_absent(name, av)
        return u

    def _tag_writes(self, img: Image, ops: Sequence[tuple[str, str | None, str | None]],
                    now: datetime) -> list[tuple[str, dict]]:
        """Writes recording that the tags of ``ops`` (tag, old digest, old first_seen) now point at
        ``img``: the pointer (conditional on the old digest), the ended period, and the moved
        tags taken off their old images."""
        pk = _repo_pk(img.registry, img.repository)
        out: list[tuple[str, dict]] = []
        moved_from: dict[str, list[str]] = {}
        for tag, old, first_seen in ops:
            item = {**_pk_sk(pk, _key("T", tag)), "kind": _S("tag"), "registry": _S(img.registry),
                    "repository": _S(img.repository), "tag": _S(tag), "digest": _S(img.digest),
                    "first_seen": _S(_ts(now))}
            e = _Expr()
            cond = (f"attribute_not_exists({e.n('pk')})" if old is None
                    else f"{e.n('digest')} = {e.v(_S(old))}")
            out.append(("tag", {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": cond,
                                        **e.params()}}))
            if old is not None:
                out.append(("tag-period", {"Put": {"TableName": self.table, "Item": {
                    **_pk_sk(pk, _key("P", tag, first_seen or "", old)), "kind": _S("tag-period"),
                    "tag": _S(tag), "digest": _S(old), "first_seen": _S(first_seen or _ts(now)),
                    "last_seen": _S(_ts(now))}}}))
                moved_from.setdefault(old, []).append(tag)
        for old, tags in sorted(moved_from.items()):
            # unconditional: were the old image's item gone, this leaves its keys only, which no
            # read returns (no snapshot, not in gsi1), rather than failing every commit of the tag
            u = _Update().delete("tags", _SS(tags))
            out.append(("old-image", {"Update": u.request(self.table, self._status_key(img.registry, img.repository,
                                                                                      old))}))
        return out

    def _event_item(self, ev: Event, blob: _Blob, now: datetime, what: str) -> dict[str, dict]:
        values = {**_pk_sk(_key("E", ev.id), "E"), "kind": _S("event"), "id": _S(ev.id),
                  "event_kind": _S(ev.kind.value), "registry": _S(ev.image.registry),
                  "repository": _S(ev.image.repository), "digest": _S(ev.image.digest),
                  "created_at": _S(_ts(now))}
        self._place(values, [blob], what)
        return values

    @staticmethod
    def _delivery_item(delivery_id: int, event_id: str, sink: str, now: datetime) -> dict[str, dict]:
        return {**_delivery_pk(delivery_id), "kind": _S("delivery"), "id": _N(delivery_id),
                "event_id": _S(event_id), "sink": _S(sink), "status": _S(DeliveryStatus.PENDING.value),
                "attempts": _N(0), "created_at": _S(_ts(now)),
                "gsi1pk": _S("DUE"), "gsi1sk": _S(f"{_DUE_NOW}#{delivery_id:020d}"),
                "gsi2pk": _S(f"L#{DeliveryStatus.PENDING.value}"), "gsi2sk": _S(f"{delivery_id:020d}")}

    # the journaled path (more than one transaction's worth)
    def _commit_journaled(self, img: Image, core: list[tuple[str, dict]],
                          tag_ops: Sequence[tuple[str, str | None, str | None]],
                          new_events: Sequence[tuple[Event, list[str]]],
                          event_items: Sequence[tuple[Event, dict]], now: datetime, what: str,
                          expected: Any) -> None:
        journal = uuid.uuid4().hex
        written = self._write_each([{"Put": {"TableName": self.table, "Item": {**item, "staging": _S(journal)},
                                                **_EVENT_CONDITION}} for _ev, item in event_items], what)
        staged = [x for n, x in enumerate(new_events) if n in written]   # the others are in the outbox already
        ids = iter(self._allocate_ids(sum(len(s) for _ev, s in staged), what))
        payload = {"image": list(img.key), "tags": sorted(img.tags), "now": _ts(now),
                   "events": [ev.id for ev, _s in staged],
                   "deliveries": [[next(ids), ev.id, sink] for ev, sinks in staged for sink in sinks],
                   "tag_ops": [list(op) for op in tag_ops]}
        data = _compress(payload)
        part_size = _ITEM_BUDGET * 3 // 4 - 1000
        parts = [data[i:i + part_size] for i in range(0, len(data), part_size)] or [b""]
        room = _TX_MAX_ITEMS - len(core) - len(self._fence_checks())
        budget = _TX_BUDGET - sum(_request_size(r) for _role, r in core)
        if len(parts) > room or len(data) * 4 // 3 > budget:
            raise StoreError(f"state store {self._display}: {what} failed: {len(payload['deliveries']):,} "
                             f"deliveries and {len(tag_ops):,} moved tags are more than one commit can hold")
        created = _ts(now)
        items = list(core)
        for n, part in enumerate(parts):
            items.append(("journal", {"Put": {"TableName": self.table, **_NEW_ITEM, "Item": {
                **_pk_sk("JOURNAL", f"{created}#{journal}#{n:03d}"), "kind": _S("journal"),
                "journal": _S(journal), "part": _N(n), "parts": _N(len(parts)), "created_at": _S(created),
                "data": _B(part)}}}))
        self._transact(items, what, img, expected)
        self._publish(journal, payload, what)
        self._delete_journal(created, journal, len(parts), what)

    def _publish(self, journal: str, payload: Mapping[str, Any], what: str) -> None:
        """Make the writes of a committed journal (idempotent: run again after a crash)."""
        registry, repository, digest = payload["image"]
        now = _dt(payload["now"])
        assert now is not None

        def unstage(event_id: str) -> dict:
            u = _Update().remove("staging").set("committed", _S(journal))
            u.condition = f"{u.n('staging')} = {u.v(_S(journal))} OR {u.n('committed')} = {u.v(_S(journal))}"
            return {"Update": u.request(self.table, _pk_sk(_key("E", event_id), "E"))}

        events = list(payload["events"])
        # an event whose condition fails belongs to another commit now: its deliveries are its own
        mine = {events[i] for i in self._write_each([unstage(x) for x in events], what)}
        rows = [r for r in payload["deliveries"] if r[1] in mine]
        self._write_each([{"Put": {"TableName": self.table, **_NEW_ITEM,   # fails if put by an earlier run
                                      "Item": self._delivery_item(d, event_id, sink, now)}}
                             for d, event_id, sink in rows], what)
        img = Image(registry, repository, digest, tuple(payload["tags"]))

        def move(op: list) -> None:
            """One tag move as single writes, the pointer last: the ended period and the tag's
            removal from its old image are idempotent, and the pointer's condition (still at the old
            digest) makes a second run, or a later move by another writer, win."""
            writes = self._tag_writes(img, [tuple(op)], now)
            for _role, request in sorted(writes, key=lambda w: w[0] == "tag"):
                self._write_each([request], what)

        self._each(move, payload["tag_ops"])

    def _delete_journal(self, created: str, journal: str, parts: int, what: str) -> None:
        for n in range(parts):
            self._call(what, "delete_item", Key=_pk_sk("JOURNAL", f"{created}#{journal}#{n:03d}"))

    def recover(self, min_age: float = _JOURNAL_MIN_AGE) -> int:
        """Finish the commits whose writer stopped after its journal was written (see the module
        docstring); journals younger than ``min_age`` seconds are left to their writer. Returns
        how many were finished. :meth:`due_deliveries` calls this."""
        e = _Expr()
        items = list(self._query("reading journals", KeyConditionExpression=f"{e.n('pk')} = {e.v(_S('JOURNAL'))}",
                                 ConsistentRead=True, **e.params()))
        journals: dict[str, list[dict]] = {}
        for item in items:
            journals.setdefault(item["journal"], []).append(item)
        done = 0
        cutoff = time.time() - min_age
        for journal, parts in journals.items():
            created = parts[0]["created_at"]
            if _dt(created).timestamp() > cutoff:  # type: ignore[union-attr]
                continue
            if len(parts) != parts[0]["parts"]:
                continue    # being deleted by its writer
            data = b"".join(bytes(p["data"]) for p in sorted(parts, key=lambda p: p["part"]))
            what = f"finishing commit {journal}"
            self._publish(journal, json.loads(zstandard.ZstdDecompressor().decompress(data)), what)
            self._delete_journal(created, journal, len(parts), what)
            done += 1
        return done

    # --- failures and checks -----------------------------------------------------------------------
    def record_failure(self, image: Image, scanner: str, error: str, at: datetime) -> None:
        u = self._image_fields(image, utcnow())
        u.set("last_error", _S(stored_error(error)))
        u.set("last_error_at", _S(_ts(at))).set("last_error_scanner", _S(scanner))
        what = f"recording the failure of {self._where(*image.key)}"
        request = u.request(self.table, self._status_key(*image.key))
        if self._fence_checks():
            self._write_each([{"Update": request}], what)   # unconditional: made unless a fence fails
        else:
            self._call(what, "update_item", **_without_table(request))

    def mark_checked(self, keys: Sequence[tuple[str, str, str]], at: datetime) -> None:
        def stamp(key: tuple[str, str, str]) -> dict:
            u = _Update().set("last_checked_at", _S(_ts(at)))
            u.condition = f"attribute_exists({u.n('pk')})"     # an image not stored: nothing to stamp
            return {"Update": u.request(self.table, self._status_key(*key))}
        self._write_each([stamp(k) for k in dict.fromkeys(tuple(k) for k in keys)], "stamping checked images")

    # --- status and history ------------------------------------------------------------------------
    def images(self) -> list[ImageStatus]:
        out = []
        for s in self._statuses():
            if "scanned_at" not in s and "last_error" not in s:
                continue
            scanned_at = _dt(s.get("scanned_at"))
            out.append(ImageStatus(
                image=_image_of(s), scanner=s.get("scanner") or s.get("last_error_scanner"),
                last_scanned_at=scanned_at, counts=json.loads(s["counts"]) if s.get("counts") else {},
                last_error=s.get("last_error"), last_error_at=_dt(s.get("last_error_at")),
                last_checked_at=_dt(s.get("last_checked_at")) or scanned_at,
                kev=int(s["kev"]) if s.get("kev") is not None else None,
                coverage=CoverageSummary.from_dict(json.loads(s["coverage_summary"]))
                if s.get("coverage_summary") else None))
        return out

    def history(self, registry: str, repository: str, digest: str | None = None,
                limit: int = 100) -> list[HistoryEntry]:
        if limit <= 0:
            return []
        e = _Expr()
        fields = ", ".join(e.n(x) for x in ("pk", "sk", "registry", "repository", "digest", "tags", "scanner",
                                             "scanned_at", "recorded_at", "counts"))
        if digest is None:
            cond = (f"{e.n('pk')} = {e.v(_S(_repo_pk(registry, repository)))} AND "
                    f"begins_with({e.n('sk')}, {e.v(_S('H#'))})")
            items = self._query(f"reading the history of {registry}/{repository}", limit=limit,
                                KeyConditionExpression=cond, ScanIndexForward=False, ConsistentRead=True,
                                ProjectionExpression=fields, **e.params())
        else:
            cond = f"{e.n('gsi2pk')} = {e.v(_S(_key('H', registry, repository, digest)))}"
            items = self._query(f"reading the history of {registry}/{repository}", limit=limit, IndexName="gsi2",
                                KeyConditionExpression=cond, ScanIndexForward=False,
                                ProjectionExpression=fields, **e.params())
        entries = list(items)
        statuses = {s["digest"]: s for s in self._batch_get(
            f"reading the history of {registry}/{repository}",
            [self._status_key(registry, repository, d) for d in dict.fromkeys(x["digest"] for x in entries)],
            projection=("digest", "pushed_at", "media_type", "size_bytes"), consistent=False)}
        out = []
        for x in entries:
            s = statuses.get(x["digest"], {})
            out.append(HistoryEntry(
                image=Image(registry, repository, x["digest"], tuple(sorted(x.get("tags") or ())),
                            pushed_at=_dt(s.get("pushed_at")), media_type=s.get("media_type"),
                            size_bytes=s.get("size_bytes")),
                scanner=x["scanner"], scanned_at=_dt(x["scanned_at"]), recorded_at=_dt(x["recorded_at"]),
                counts=json.loads(x["counts"])))
        return out

    # --- outbox ------------------------------------------------------------------------------------
    def _events(self, event_ids: Iterable[str]) -> dict[str, Event | StoreError]:
        items = self._batch_get("reading events", [_pk_sk(_key("E", i), "E") for i in dict.fromkeys(event_ids)],
                                consistent=False)     # an event item never changes once written
        out: dict[str, Event | StoreError] = {}
        for item in items:
            try:
                out[item["id"]] = Event.from_dict(_blob(item, "body", self._blobs))
            except (ValueError, KeyError, TypeError, zstandard.ZstdError, StoreError) as e:
                out[item["id"]] = StoreError(str(e))
        return out

    def _delivery(self, item: Mapping[str, Any], events: Mapping[str, Event | StoreError]) -> Delivery:
        ev = events.get(item["event_id"])
        if not isinstance(ev, Event):
            raise StoreError(f"state store {self._display}: cannot read event {item['event_id']} of delivery "
                             f"{item['id']} ({ev or 'the event item is missing'}); dead-letter or delete it")
        return Delivery(id=int(item["id"]), event=ev, sink=item["sink"], status=DeliveryStatus(item["status"]),
                        attempts=int(item["attempts"]), created_at=_dt(item["created_at"]),  # type: ignore[arg-type]
                        next_attempt_at=_dt(item.get("next_attempt_at")), last_error=item.get("last_error"),
                        delivered_at=_dt(item.get("delivered_at")))

    def _deliveries_of(self, ids: Sequence[int], what: str) -> dict[int, dict[str, Any]]:
        return {int(i["id"]): i for i in self._batch_get(what, [_delivery_pk(i) for i in ids])}

    def due_deliveries(self, now: datetime, limit: int | None = None) -> list[Delivery]:
        if time.monotonic() >= self._next_recovery:
            self._next_recovery = time.monotonic() + _JOURNAL_CHECK_INTERVAL
            try:
                self.recover()
            except StoreError as e:   # the due deliveries are still worth sending
                log.warning("finishing an interrupted commit failed (tried again later): %s", e)
        what = "reading due deliveries"
        e = _Expr()
        cond = f"{e.n('gsi1pk')} = {e.v(_S('DUE'))} AND {e.n('gsi1sk')} <= {e.v(_S(_ts(now) + '#~'))}"
        candidates = sorted(((c["created_at"], int(c["id"])) for c in self._query(
            what, IndexName="gsi1", KeyConditionExpression=cond,
            ProjectionExpression=", ".join(e.n(x) for x in ("id", "created_at")), **e.params())))
        now_s = _ts(now)
        chosen: list[dict[str, Any]] = []
        for i in range(0, len(candidates), _BATCH_GET):
            chunk = [d for _c, d in candidates[i:i + _BATCH_GET]]
            items = self._deliveries_of(chunk, what)
            for d in chunk:     # re-checked: the index may lag behind the items
                item = items.get(d)
                if item and item["status"] == DeliveryStatus.PENDING.value and (
                        item.get("next_attempt_at") is None or item["next_attempt_at"] <= now_s):
                    chosen.append(item)
                    if limit is not None and len(chosen) >= limit:
                        break
            if limit is not None and len(chosen) >= limit:
                break
        events = self._events(i["event_id"] for i in chosen)
        return [self._delivery(i, events) for i in chosen]

    def _set_status(self, delivery_ids: Sequence[int], what: str,
                    build: Callable[[int], _Update]) -> int:
        """Update each delivery (conditional: those whose condition fails are left alone); returns
        how many were updated."""
        ids = list(dict.fromkeys(int(i) for i in delivery_ids))
        return len(self._write_each([{"Update": build(d).request(self.table, _delivery_pk(d))} for d in ids], what))

    def mark_delivered(self, delivery_ids: Sequence[int], at: datetime) -> None:
        def build(_id: int) -> _Update:
            u = _Update().set("status", _S(DeliveryStatus.DELIVERED.value))
            u.set_raw(f"{u.n('attempts')} = {u.n('attempts')} + {u.v(_N(1))}")
            u.set("delivered_at", _S(_ts(at))).set("last_attempt_at", _S(_ts(at)))
            u.set("gsi2pk", _S(f"L#{DeliveryStatus.DELIVERED.value}")).remove("next_attempt_at", "gsi1pk", "gsi1sk")
            u.condition = f"attribute_exists({u.n('pk')})"
            return u
        self._set_status(delivery_ids, "marking deliveries delivered", build)

    def mark_failed(self, delivery_ids: Sequence[int], error: str, at: datetime,
                    next_attempt_at: datetime | None) -> None:
        status = DeliveryStatus.PENDING if next_attempt_at is not None else DeliveryStatus.DEAD

        def build(delivery_id: int) -> _Update:
            u = _Update().set("status", _S(status.value))
            u.set_raw(f"{u.n('attempts')} = {u.n('attempts')} + {u.v(_N(1))}")
            u.set("last_error", _S(stored_error(error))).set("last_attempt_at", _S(_ts(at)))
            u.set("gsi2pk", _S(f"L#{status.value}"))
            if next_attempt_at is not None:
                u.set("next_attempt_at", _S(_ts(next_attempt_at))).set("gsi1pk", _S("DUE"))
                u.set("gsi1sk", _S(f"{_ts(next_attempt_at)}#{delivery_id:020d}"))
            else:
                u.remove("next_attempt_at", "gsi1pk", "gsi1sk")
            u.condition = (f"attribute_exists({u.n('pk')}) AND "
                           f"{u.n('status')} <> {u.v(_S(DeliveryStatus.DELIVERED.value))}")
            return u
        self._set_status(delivery_ids, "marking deliveries failed", build)

    def _ids_with_status(self, status: DeliveryStatus, what: str, limit: int | None = None) -> list[int]:
        e = _Expr()
        return [int(i["gsi2sk"]) for i in self._query(
            what, IndexName="gsi2", KeyConditionExpression=f"{e.n('gsi2pk')} = {e.v(_S(f'L#{status.value}'))}",
            ScanIndexForward=False, limit=limit, ProjectionExpression=e.n("gsi2sk"), **e.params())]

    def deliveries(self, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]:
        what = "listing deliveries"
        if limit <= 0:
            return []
        statuses = [DeliveryStatus(status)] if status is not None else list(DeliveryStatus)
        ids = sorted({i for st in statuses for i in self._ids_with_status(st, what, limit)}, reverse=True)[:limit]
        items = self._deliveries_of(ids, what)
        chosen = [items[i] for i in ids if i in items and (status is None or items[i]["status"] == statuses[0].value)]
        events = self._events(i["event_id"] for i in chosen)
        return [self._delivery(i, events) for i in chosen]

    def retry_dead(self, delivery_ids: Sequence[int] | None = None, now: datetime | None = None) -> int:
        what = "retrying dead deliveries"
        if delivery_ids is None:
            delivery_ids = self._ids_with_status(DeliveryStatus.DEAD, what)

        def build(delivery_id: int) -> _Update:
            u = _Update().set("status", _S(DeliveryStatus.PENDING.value)).set("attempts", _N(0))
            u.set("next_attempt_at", _S(_ts(now)) if now is not None else None)
            u.set("gsi2pk", _S(f"L#{DeliveryStatus.PENDING.value}")).set("gsi1pk", _S("DUE"))
            u.set("gsi1sk", _S(f"{_ts(now) if now is not None else _DUE_NOW}#{delivery_id:020d}"))
            u.condition = f"{u.n('status')} = {u.v(_S(DeliveryStatus.DEAD.value))}"
            return u
        return self._set_status(delivery_ids, what, build)

    # --- leases --------------------------------------------------------------------------------------
    # One item per name (pk ``LEASE#name``, sk ``LEASE``): holder, token (kept when released or
    # expired, so the next grant's is greater), expires_at and done_at (``_ts`` strings, which
    # compare as the times do), on this process's UTC clock.
    @staticmethod
    def _lease_key(name: str) -> dict:
        return _pk_sk(_key("LEASE", name), "LEASE")

    def _lease_of(self, item: Mapping[str, Any]) -> Lease:
        return Lease(item["name"], item["holder"], int(item["token"]), _dt(item["expires_at"]))  # type: ignore[arg-type]

    def _lease_item(self, name: str) -> dict[str, Any] | None:
        raw = self._call(f"reading lease {name!r}", "get_item", Key=self._lease_key(name),
                         ConsistentRead=True).get("Item")
        return _item(raw) if raw else None

    def _lease_update(self, name: str, what: str, u: _Update) -> dict[str, Any] | None:
        """A conditional UpdateItem of lease ``name``: the item as written, or None if the condition failed."""
        try:
            out = self._ddb.update_item(**_without_table(u.request(self.table, self._lease_key(name))),
                                        TableName=self.table, ReturnValues="ALL_NEW")
        except self._aws_errors as e:
            if _code(e) == "ConditionalCheckFailedException":
                return None
            raise self._fail(what, e) from None
        return _item(out["Attributes"])

    def _grant(self, name: str, holder: str, until: datetime) -> _Update:
        """A grant to a new holder: the token counted up from the last one given for ``name``."""
        u = _Update().set("kind", _S("lease")).set("name", _S(name)).set("holder", _S(holder))
        u.set("expires_at", _S(_ts(until)))
        u.set_raw(f"{u.n('token')} = if_not_exists({u.n('token')}, {u.v(_N(0))}) + {u.v(_N(1))}")
        return u

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, *, take_over: str | None = None) -> Lease:
        what = f"taking lease {name!r}"
        for _attempt in range(20):   # another caller changed the item between a failed write and its read
            now = utcnow()
            until = now + ttl
            u = _Update().set("expires_at", _S(_ts(until)))     # held by this holder: extended, same token
            u.condition = f"{u.n('holder')} = {u.v(_S(holder))} AND {u.n('expires_at')} > {u.v(_S(_ts(now)))}"
            item = self._lease_update(name, what, u)
            if item is None:
                u = self._grant(name, holder, until)
                u.condition = (f"attribute_not_exists({u.n('pk')}) OR {u.n('expires_at')} <= {u.v(_S(_ts(now)))}"
                               + (f" OR {u.n('holder')} = {u.v(_S(take_over))}"
                                  if take_over not in (None, holder) else ""))
                item = self._lease_update(name, what, u)
            if item is not None:
                return self._lease_of(item)
            current = self._lease_item(name)
            if current is None:
                continue
            held = self._lease_of(current)
            if held.expires_at > utcnow() and held.holder not in (holder, take_over):
                raise LeaseHeld(f"lease {name!r} is held by {held.holder} until "
                                f"{held.expires_at.isoformat(timespec='seconds')} (token {held.token})",
                                name=name, holder=held.holder, expires_at=held.expires_at)
        raise StoreError(f"state store {self._display}: {what} failed: the lease kept changing")

    def _mine(self, lease: Lease) -> _Update:
        u = _Update()
        u.condition = f"{u.n('holder')} = {u.v(_S(lease.holder))} AND {u.n('token')} = {u.v(_N(lease.token))}"
        return u

    def renew_lease(self, lease: Lease, ttl: timedelta) -> Lease:
        until = utcnow() + ttl
        u = self._mine(lease).set("expires_at", _S(_ts(until)))
        if self._lease_update(lease.name, f"renewing lease {lease.name!r}", u) is None:
            raise LeaseLost(f"state store {self._display}: lease {lease.name!r} of {lease.holder} "
                            f"(token {lease.token}) was taken over; stop working under it")
        return Lease(lease.name, lease.holder, lease.token, until)

    def release_lease(self, lease: Lease, *, done: bool = False) -> None:
        now = _S(_ts(utcnow()))
        u = self._mine(lease).set("expires_at", now)
        if done:
            u.set("done_at", now)
        self._lease_update(lease.name, f"releasing lease {lease.name!r}", u)   # lost: nothing to do

    def lease(self, name: str) -> Lease | None:
        item = self._lease_item(name)
        return self._lease_of(item) if item is not None else None

    def claim_leases(self, names: Sequence[str], holder: str, ttl: timedelta, *, limit: int,
                     done_before: datetime | None = None) -> list[Lease]:
        """One conditional UpdateItem per name, in order, until ``limit`` are taken; a name held
        (or done) fails its condition and is skipped. Names already known to be held or done are
        left out first (one consistent BatchGetItem per 100), so a round costs about one write per
        image, not one per image per claim."""
        names = list(dict.fromkeys(names))
        taken: list[Lease] = []
        for i in range(0, len(names), 100):
            if len(taken) >= limit:
                break
            chunk = names[i:i + 100]
            now = utcnow()
            known = {item["name"]: item for item in self._batch_get(
                "reading leases", [self._lease_key(n) for n in chunk], consistent=True)}
            for name in chunk:
                if len(taken) >= limit:
                    break
                item = known.get(name)
                if item is not None and (_dt(item["expires_at"]) > now or (   # type: ignore[operator]
                        done_before is not None and "done_at" in item
                        and _dt(item["done_at"]) >= done_before)):        # type: ignore[operator]
                    continue
                now = utcnow()
                u = self._grant(name, holder, now + ttl).remove("done_at")
                u.condition = f"(attribute_not_exists({u.n('pk')}) OR {u.n('expires_at')} <= {u.v(_S(_ts(now)))})"
                if done_before is not None:
                    u.condition += (f" AND (attribute_not_exists({u.n('done_at')}) OR "
                                    f"{u.n('done_at')} < {u.v(_S(_ts(done_before)))})")
                got = self._lease_update(name, "claiming images", u)
                if got is not None:
                    taken.append(self._lease_of(got))
        return taken

    def _fence_checks(self) -> list[dict]:
        """The ConditionCheck items (one per lease name, the innermost fence's token) that this
        thread's writes carry (see :meth:`fenced`)."""
        wanted = {lease.name: lease for lease in self._fence_stack()}
        checks = []
        for lease in wanted.values():
            e = _Expr()
            checks.append({"ConditionCheck": {
                "TableName": self.table, "Key": self._lease_key(lease.name),
                "ConditionExpression": f"{e.n('token')} = {e.v(_N(lease.token))}", **e.params()}})
        return checks

    def _lost(self, what: str) -> LeaseLost:
        """The error for a write refused by a fence: which lease moved on, and to whom."""
        for lease in {lease.name: lease for lease in self._fence_stack()}.values():
            item = self._lease_item(lease.name)
            if item is None or int(item["token"]) != lease.token:
                now = (f"by {item['holder']} (token {int(item['token'])})" if item is not None
                       else "(the lease is gone)")
                return LeaseLost(f"state store {self._display}: {what} refused: lease {lease.name!r} held by "
                                 f"{lease.holder} with token {lease.token} was taken over {now}")
        return LeaseLost(f"state store {self._display}: {what} refused: a lease it was fenced by moved on")

    # --- streams -------------------------------------------------------------------------------------
    def snapshot_change(self, record: Mapping[str, Any]) -> SnapshotChange | None:
        """:func:`snapshot_change` with this store's S3 client (endpoint, region)."""
        data = record.get("dynamodb") or {}
        needs = any(_needs_s3(data.get(k) or {}) for k in ("OldImage", "NewImage"))
        return snapshot_change(record, s3=self._blobs.s3 if needs else None)


_EVENT_CONDITION = {"ConditionExpression": "attribute_not_exists(pk) OR attribute_exists(staging)"}
"""A new event item: not in the outbox yet (a staged one, of a commit that did not happen, is overwritten)."""
_NEW_ITEM = {"ConditionExpression": "attribute_not_exists(pk)"}
_TRANSIENT = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded",
                        "RequestLimitExceeded"})
"""Cancellation reasons worth another attempt."""


def _request_size(request: Mapping[str, Any]) -> int:
    (op, body), = request.items()
    size = 200
    if "Item" in body:
        size += _item_size(body["Item"])
    for v in (body.get("ExpressionAttributeValues") or {}).values():
        size += _size(v)
    return size


def _cancellation_reasons(e: BaseException) -> list[str | None] | None:
    """The per-item codes of a cancelled transaction (None: the error is something else)."""
    if _code(e) != "TransactionCanceledException":
        return None
    return [r.get("Code") for r in getattr(e, "response", {}).get("CancellationReasons") or ()]


def _without_table(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != "TableName"}
