"""``notify``: consumes the state table's stream (``NEW_AND_OLD_IMAGES``).

Each record of a snapshot item is one commit of one image: ``INSERT`` is a new image,
``MODIFY`` the per-finding diff of the old snapshot against the new
(:meth:`~vulnwatch.pipeline.Pipeline.event_of_change`, the cycle's own diff, hence the same
event id). The commit put that event in the outbox, one delivery per sink its route accepts;
this function delivers the outbox (:meth:`~vulnwatch.pipeline.Pipeline.deliver_events`: the
same notifiers, formats and routing as the CLI) and answers ``batchItemFailures`` naming the
first record whose event still waits for a sink. Lambda then retries from that record; sinks
that already took an event are not sent it again (the outbox marks each delivery), so a
receiver that was down gets it once, with the same event id. After the event source mapping's
last retry the batch's description goes to the on-failure destination (an SQS DLQ); replay it
with ``python -m vulnwatch.aws_lambda.replay`` (see ``docs/deploy-aws.md``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..store.interface import StoreError
from . import _runtime

log = logging.getLogger("vulnwatch.aws_lambda.notify")


def _unescape(part: str) -> str:
    return part.replace("%23", "#").replace("%25", "%")


def events_of(pipeline: Any, records: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(sequence number, event id or None) per record: the event a snapshot change means, or
    the event item a commit added to the outbox."""
    out = []
    for record in records:
        data = record.get("dynamodb") or {}
        seq = data.get("SequenceNumber") or record.get("eventID") or ""
        pk = ((data.get("Keys") or {}).get("pk") or {}).get("S", "")
        event_id = None
        if pk.startswith("E#") and record.get("eventName") == "INSERT":
            event_id = _unescape(pk[2:])
        else:
            change = pipeline.store.snapshot_change(record)
            if change is not None:
                ev = pipeline.event_of_change(change.old, change.new)
                event_id = ev.id if ev is not None else None
        out.append((seq, event_id))
    return out


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    _runtime.start()
    records = list(event.get("Records") or ())
    pipeline = _runtime.pipeline(with_watches=False)
    try:
        ids = events_of(pipeline, records)
    except StoreError as e:     # a record that cannot be read: retried, then the DLQ keeps it
        log.error("cannot read stream records: %s", e)
        return {"batchItemFailures": [{"itemIdentifier": (records[0].get("dynamodb") or {}).get("SequenceNumber")}]
                if records else []}
    report, pending = pipeline.deliver_events([i for _s, i in ids if i])
    failed = next((seq for seq, i in ids if i in pending), None)
    log.info("stream batch: %d records, %d delivered, %d events waiting", len(records), report.delivered,
             len(pending), extra={"event": "notify", "records": len(records), "delivered": report.delivered,
                                  "waiting": len(pending)})
    return {"batchItemFailures": [{"itemIdentifier": failed}] if failed else []}
