"""``schedule``: an EventBridge scheduled event starts a cycle.

Reads the watch list (``VULNWATCH_WATCH_LIST``: a ``vulnwatch.yaml`` or a JSON array of
repository names), sends one message per repository to the collect queue (ten per
``SendMessageBatch``), and delivers what the outbox still owes (deliveries a stream retry
could not finish). A repository too large for one invocation is split by the first collector
that lists it (:meth:`~vulnwatch.pipeline.Pipeline.collect`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from . import _runtime

log = logging.getLogger("vulnwatch.aws_lambda.schedule")


def send_items(items: list, delay: int = 0) -> int:
    """Send work items to the collect queue, ten per call; returns how many were sent.
    Raises RuntimeError when SQS refused some."""
    sqs = _runtime.client("sqs")
    url = _runtime.queue_url()
    sent = 0
    for i in range(0, len(items), 10):
        chunk = items[i:i + 10]
        entries = [{"Id": str(n), "MessageBody": json.dumps(item.to_dict(), separators=(",", ":")),
                    **({"DelaySeconds": delay} if delay else {})} for n, item in enumerate(chunk)]
        resp = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if resp.get("Failed"):
            raise RuntimeError(f"SQS refused {len(resp['Failed'])} message(s): {resp['Failed'][0].get('Code')}")
        sent += len(chunk)
    return sent


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    _runtime.start()
    pipeline = _runtime.pipeline()
    failures: list = []
    items = pipeline.work_items(failures)
    sent = send_items(items)
    delivery = pipeline.deliver()
    out = {"repositories": sent, "failures": [f.__dict__ for f in failures],
           "delivered": delivery.delivered, "time": event.get("time")}
    log.info("cycle fanned out: %d repositories", sent, extra={"event": "schedule", **{k: v for k, v in out.items()
                                                                                       if k != "failures"}})
    return out
