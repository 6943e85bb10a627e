"""``collect``: consumes the collect queue (one message per repository or slice of one).

For each message: :meth:`~vulnwatch.pipeline.Pipeline.collect` lists the repository's images
(paginated), starts scans where due (ECR's quota: one basic scan per image per 24 h), reads the
findings of finished scans and records each image's snapshot (diff + snapshot + outbox in one
conditional commit). Images whose scan is still running are put back on the queue as one
message naming them, with a delay (``VULNWATCH_REQUEUE_DELAY``): their findings are never read
unfinished. The other slices of a large repository are sent as messages of their own.

Answers SQS with ``batchItemFailures`` (the function's event source mapping reports them), so
only the messages that failed come back; a message failing ``maxReceiveCount`` times goes to
the queue's DLQ.

A registry configured for the built-in scanner (``scan.mode: builtin``) is read through its
Registry v2 API and matched against the OSV index of ``VULNWATCH_INDEX``, fetched into ``/tmp``
when its ETag changed (as ``rematch`` does).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from ..pipeline import WorkItem
from . import _runtime
from .rematch import fetch_index
from .schedule import send_items

log = logging.getLogger("vulnwatch.aws_lambda.collect")


def handle_message(body: str) -> dict[str, Any]:
    """One queue message (its body); raises on a failure worth retrying."""
    item = WorkItem.from_dict(json.loads(body))
    max_requeues = int(_runtime.env("VULNWATCH_MAX_REQUEUES", "10") or 10)
    result = _runtime.pipeline().collect(item, slice_size=int(_runtime.env("VULNWATCH_SLICE_SIZE", "200") or 200),
                                         give_up=item.attempt >= max_requeues)
    if result.more:
        send_items(list(result.more))
    if result.pending:
        again = replace(item, digests=tuple(img.digest for img in result.pending), attempt=item.attempt + 1)
        send_items([again], delay=min(int(_runtime.env("VULNWATCH_REQUEUE_DELAY", "120") or 120), 900))
    report = result.report
    retryable = [f for f in report.failures if f.code in ("RegistryError", "ThrottlingException",
                                                          "ServerException", "ServiceUnavailable")]
    summary = {"repository": item.repository, "slice": item.slice, "slices": item.slices,
               "images": report.images, "events": len(report.events), "pending": len(result.pending),
               "more": len(result.more), "failures": len(report.failures)}
    log.info("collected %s", item.repository, extra={"event": "collect", **summary})
    if retryable:
        raise RuntimeError(f"{item.repository}: {retryable[0].target}: {retryable[0].error}")
    return summary


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    _runtime.start()
    if _runtime.env("VULNWATCH_INDEX"):
        try:
            fetch_index()    # the built-in scanner's advisory data; a HEAD when unchanged
        except Exception as e:  # noqa: BLE001 - no index yet (or not readable): ECR's findings need none
            log.warning("OSV index %s not fetched (%s): the built-in scanner matches against what /tmp has",
                        _runtime.env("VULNWATCH_INDEX"), type(e).__name__, extra={"event": "index-not-fetched"})
    failures = []
    for record in event.get("Records") or ():
        try:
            handle_message(record["body"])
        except Exception as e:  # noqa: BLE001 - one message's failure must not fail the batch
            log.error("message %s failed: %s", record.get("messageId"), e,
                      extra={"event": "collect-failed", "message_id": record.get("messageId")})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
