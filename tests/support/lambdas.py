"""Runs the Lambda handlers the way AWS would, against moto_server over HTTP.

:class:`Deployment` makes what the template makes (the table with its stream, the spill
bucket, the collect queue, the watch-list object, a sink's URL in SSM Parameter Store) and
sets the functions' environment. Its methods invoke the handlers with real event shapes:

* :meth:`schedule`: an EventBridge ``Scheduled Event``;
* :meth:`collect`: SQS events built from the messages really on the queue (received from moto
  SQS, deleted unless reported in ``batchItemFailures``, as the event source mapping does);
* :meth:`notify`: stream records read back with ``dynamodbstreams.get_records`` after the
  writes, in batches, retried from the failed record as Lambda does.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"


def scheduled_event(at: datetime | None = None) -> dict[str, Any]:
    at = at or datetime.now(timezone.utc)
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/vulnwatch-schedule"], "detail": {}}


class Deployment:
    def __init__(self, moto_url: str, monkeypatch, tmp_path, *, ecr_url: str | None = None,
                 watch: Any = None, sinks: list[dict] | None = None, hook_url: str | None = None,
                 table: str = "vw-lambda", env: dict[str, str] | None = None, stream: bool = True) -> None:
        from vulnwatch.aws_lambda import _runtime
        from vulnwatch.store.dynamodb import table_definition

        self.moto_url = moto_url
        self.table = table
        kw = dict(region_name=REGION, endpoint_url=moto_url)
        self.s3 = boto3.client("s3", **kw)
        self.sqs = boto3.client("sqs", **kw)
        self.ddb = boto3.client("dynamodb", **kw)
        self.streams = boto3.client("dynamodbstreams", **kw)
        self.ssm = boto3.client("ssm", **kw)
        self.s3.create_bucket(Bucket="vw-config")
        self.s3.create_bucket(Bucket="vw-spill")
        definition = table_definition(table)
        if not stream:
            del definition["StreamSpecification"]
        self.ddb.create_table(**definition)
        self.queue_url = self.sqs.create_queue(QueueName="vw-collect")["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.stream_arn = self.ddb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
        self._iterators: dict[str, str] = {}
        self._seen_shards: set[str] = set()
        self.put_watch_list(watch if watch is not None else [])
        environ = {"VULNWATCH_TABLE": table, "VULNWATCH_BUCKET": "vw-spill", "VULNWATCH_QUEUE_URL": self.queue_url,
                   "VULNWATCH_WATCH_LIST": "s3://vw-config/watch.json", "VULNWATCH_ENDPOINT_URL": moto_url,
                   "VULNWATCH_SCAN_WAIT": "1ms", "VULNWATCH_REQUEUE_DELAY": "1", "VULNWATCH_TMP": str(tmp_path),
                   "VULNWATCH_LOG_LEVEL": "WARNING", "AWS_REGION": REGION}
        if ecr_url:
            environ["VULNWATCH_ECR_ENDPOINT_URL"] = ecr_url
        if hook_url:
            self.ssm.put_parameter(Name="/vulnwatch/hook-url", Value=hook_url, Type="SecureString")
            environ["VULNWATCH_SECRETS"] = json.dumps({"HOOK_URL": "ssm:/vulnwatch/hook-url"})
            sinks = sinks if sinks is not None else [{"name": "hook", "type": "webhook", "url": "${HOOK_URL}"}]
        environ["VULNWATCH_SINKS"] = json.dumps(sinks or [])
        environ.update(env or {})
        for k, v in environ.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(_runtime, "INDEX_PATH", tmp_path / "vulnwatch" / "osv.db")
        _runtime.reset()
        self._runtime = _runtime
        self.invocations: dict[str, int] = {"schedule": 0, "collect": 0, "notify": 0}

    def close(self) -> None:
        self._runtime.reset()

    def new_container(self) -> None:
        """What a cold start sees: nothing cached."""
        self._runtime.reset()

    def put_watch_list(self, watch: Any) -> None:
        body = watch if isinstance(watch, str) else json.dumps(watch)
        self.s3.put_object(Bucket="vw-config", Key="watch.json", Body=body.encode())
        if hasattr(self, "_runtime"):
            self._runtime.reset(pipelines_only=True)

    # -- the functions -----------------------------------------------------------------------
    def schedule(self) -> dict:
        from vulnwatch.aws_lambda import schedule

        self.invocations["schedule"] += 1
        return schedule.handler(scheduled_event(), None)

    def receive(self, wait: int = 0) -> list[dict]:
        """Up to 10 messages as an SQS event's ``Records`` (what the event source mapping hands over)."""
        msgs = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                        AttributeNames=["All"], VisibilityTimeout=30).get("Messages") or []
        return [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                 "attributes": m.get("Attributes") or {}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                 "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": REGION} for m in msgs]

    def collect_batch(self, records: list[dict]) -> dict:
        from vulnwatch.aws_lambda import collect

        self.invocations["collect"] += 1
        result = collect.handler({"Records": records}, None)
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for r in records:
            if r["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=r["receiptHandle"])
        return result

    def collect(self, rounds: int = 50) -> list[dict]:
        """Drain the queue (messages visible now) through collect; returns each invocation's answer."""
        out = []
        for _ in range(rounds):
            records = self.receive()
            if not records:
                break
            out.append(self.collect_batch(records))
        return out

    def queued(self) -> list[dict]:
        """Bodies of the messages on the queue (visible or delayed), without consuming them."""
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        return [attrs]

    def stream_records(self) -> list[dict]:
        """New stream records since the last call (every shard), as get_records returns them."""
        desc = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        out = []
        for shard in desc["Shards"]:
            sid = shard["ShardId"]
            it = self._iterators.get(sid)
            if it is None:
                it = self.streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=sid,
                                                     ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                page = self.streams.get_records(ShardIterator=it, Limit=1000)
                it = page.get("NextShardIterator")
                if not page.get("Records"):
                    break
                out.extend(page["Records"])
            self._iterators[sid] = it
        return out

    def notify(self, batch_size: int = 100, retries: int = 3, records: list[dict] | None = None) -> list[dict]:
        """Hand the new stream records to notify in batches; a batch reporting a failed record is
        handed over again from that record (up to ``retries`` times), as Lambda does."""
        from vulnwatch.aws_lambda import notify

        records = self.stream_records() if records is None else records
        answers = []
        for i in range(0, len(records), batch_size):
            batch = [lambda_record(r, self.stream_arn) for r in records[i:i + batch_size]]
            for _attempt in range(retries + 1):
                self.invocations["notify"] += 1
                answer = notify.handler({"Records": batch}, None)
                answers.append(answer)
                failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
                if not failed:
                    break
                batch = [r for r in batch if int(r["dynamodb"]["SequenceNumber"]) >= int(failed[0])]
        return answers

    def cycle(self) -> dict:
        """schedule -> collect until the queue is empty -> notify over the stream."""
        sched = self.schedule()
        collected = self.collect()
        answers = self.notify()
        return {"schedule": sched, "collect": collected, "notify": answers}


def lambda_record(record: dict, stream_arn: str) -> dict:
    """A get_records record as Lambda hands it over (binary as base64 text, the source ARN added)."""
    import base64

    def b64(av):
        (kind, v), = av.items()
        if kind == "B":
            return {"B": base64.b64encode(v).decode()}
        if kind == "M":
            return {"M": {k: b64(x) for k, x in v.items()}}
        if kind == "L":
            return {"L": [b64(x) for x in v]}
        return av

    data = dict(record["dynamodb"])
    for k in ("NewImage", "OldImage", "Keys"):
        if k in data:
            data[k] = {name: b64(av) for name, av in data[k].items()}
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = created.timestamp()
    return {"eventID": record["eventID"], "eventName": record["eventName"], "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": REGION, "dynamodb": data, "eventSourceARN": stream_arn}


def one_dynamodb_call_at_a_time(*stores) -> None:
    """Like ``tests.store.conftest.one_call_at_a_time``, with one lock across several stores
    (two collectors in two containers): moto is not atomic across concurrent transactions
    (a cancelled one puts back its copy of the table), real DynamoDB is."""
    import threading

    lock = threading.Lock()

    def acquire(**_kw):
        lock.acquire()

    def release(**_kw):
        if lock.locked():
            lock.release()

    for store in stores:
        events = store._ddb.meta.events
        events.register("before-call.dynamodb", acquire)
        events.register("after-call.dynamodb", release)
        events.register("after-call-error.dynamodb", release)
