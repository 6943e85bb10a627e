"""Replay what the ``notify`` function could not deliver:

    python -m vulnwatch.aws_lambda.replay --dlq QUEUE_URL [--table TABLE ...]

The DynamoDB stream's on-failure destination (an SQS queue) receives, for each batch that
failed every retry, a description of it (``DDBStreamBatchInfo``: stream, shard, first and last
sequence number), not the records. For each message this reads those records back from the
stream (it keeps them 24 hours), runs the ``notify`` handler over them, and deletes the message
once they were delivered. Deliveries still pending in the outbox are sent too, so after the
stream's retention has passed, a replay still delivers what the outbox holds. Run it with the
same environment as the function (``VULNWATCH_*``; ``docs/deploy-aws.md`` shows how).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import _runtime
from .notify import handler as notify


def stream_records(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The records one ``DDBStreamBatchInfo`` names (oldest first)."""
    streams = _runtime.client("dynamodbstreams")
    it = streams.get_shard_iterator(StreamArn=info["streamArn"], ShardId=info["shardId"],
                                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                                    SequenceNumber=info["startSequenceNumber"])["ShardIterator"]
    last = int(info["endSequenceNumber"])
    out: list[dict[str, Any]] = []
    while it:
        page = streams.get_records(ShardIterator=it, Limit=1000)
        for r in page.get("Records") or ():
            if int(r["dynamodb"]["SequenceNumber"]) > last:
                return out
            out.append(r)
        if not page.get("Records"):
            break
        it = page.get("NextShardIterator")
    return out


def replay(dlq_url: str, *, max_messages: int = 1000) -> dict[str, int]:
    sqs = _runtime.client("sqs")
    done = failed = records = 0
    while done + failed < max_messages:
        msgs = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages") or []
        if not msgs:
            break
        for m in msgs:
            body = json.loads(m["Body"])
            info = body.get("DDBStreamBatchInfo") or {}
            batch = stream_records(info) if info else []
            records += len(batch)
            result = notify({"Records": batch})
            if result["batchItemFailures"]:
                failed += 1
                continue          # stays in the DLQ (visible again after its timeout)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            done += 1
    delivery = _runtime.pipeline(with_watches=False).deliver()
    return {"replayed": done, "still_failing": failed, "records": records, "delivered": delivery.delivered}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vulnwatch.aws_lambda.replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dlq", required=True, help="URL of the notify function's on-failure queue")
    args = ap.parse_args(argv)
    out = replay(args.dlq)
    print(json.dumps(out))
    return 0 if out["still_failing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
