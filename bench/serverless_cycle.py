"""Benchmark: the serverless deployment's hourly cycle against the existing serverless loop, on moto.

    python bench/serverless_cycle.py [--images 1000] [--repos 50] [--containers 10]

Starts its own ``moto_server``, pushes ``--images`` images over ``--repos`` repositories, and
runs, each on its own DynamoDB table with a ``NEW_AND_OLD_IMAGES`` stream:

* **the existing loop** (a faithful small model of it): one scheduled Lambda that, for every
  repository of the JSON watch list, lists the images (``ListImages``, first page) and, per
  image, calls ``StartImageScan`` (errors swallowed) and ``DescribeImageScanFindings`` and
  rewrites the image's item (``PutItem`` of the severity counts), every hour; a stream Lambda
  reads every record and compares the old and new counts. Its stream fires once per image per
  hour.
* **ours**: ``schedule`` (one EventBridge event) -> one SQS message per repository ->
  ``collect`` invocations run as parallel invocations would (``--containers`` threads, each a
  cold container with its own clients, batches of up to 10 messages) -> ``notify`` over what the
  stream got (batches of 100, read back with ``get_records``).

Two cycles of each: the first (cold: nothing scanned yet) and one hour later (steady: the
images' last scans are less than ``scan.interval`` = 24 h old, nothing changed). Per cycle:
wall time, API calls per service (``before-parameter-build`` hooks on every boto3 client),
DynamoDB write requests (PutItem,
UpdateItem, DeleteItem, one per item of a TransactWriteItems) and stream records.

Target (issue 10): in steady hourly cycles <= 1/20 of the existing loop's calls and writes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                  AWS_REGION="us-east-1")
os.environ.pop("AWS_PROFILE", None)

import boto3  # noqa: E402
import botocore.exceptions  # noqa: E402

from tests.support.ecr import push_images  # noqa: E402
from tests.support.lambdas import lambda_record, scheduled_event  # noqa: E402
from tests.support.servers import free_port, wait_http  # noqa: E402
from vulnwatch import aws  # noqa: E402
from vulnwatch.store.dynamodb import table_definition  # noqa: E402

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


class Meter:
    """API calls per (service, operation) over every client it is attached to; DynamoDB write
    requests (a TransactWriteItems counts its items)."""

    def __init__(self) -> None:
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self.writes = 0
        self.lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        service = client.meta.service_model.service_name

        def on_call(event_name: str = "", params: Any = None, **_: Any) -> None:
            op = event_name.rsplit(".", 1)[-1]
            with self.lock:
                self.calls[(service, op)] += 1
                if service == "dynamodb":
                    if op in WRITES:
                        self.writes += 1
                    elif op == "TransactWriteItems":
                        self.writes += len((params or {}).get("TransactItems") or ())

        client.meta.events.register("before-parameter-build", on_call)
        return client

    def total(self) -> int:
        return sum(self.calls.values())

    def by_service(self) -> dict[str, int]:
        out: collections.Counter[str] = collections.Counter()
        for (svc, _op), n in self.calls.items():
            out[svc] += n
        return dict(out)


class FastMoto:
    """moto_server in its own process, with transactions backed up once per table
    (``bench/_moto_server_fast.py``)."""

    def __init__(self) -> None:
        import subprocess

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_moto_server_fast.py"), "-H", "127.0.0.1",
                                      "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/moto-api/")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def layout(images: int, repos: int) -> dict[str, list[str]]:
    per, extra = divmod(images, repos)
    return {f"team{r:02d}/service": [f"v{t}" for t in range(per + (1 if r < extra else 0))] for r in range(repos)}


def stream_reader(url: str, table: str, meter: Meter):
    streams = meter.attach(boto3.client("dynamodbstreams", endpoint_url=url))
    ddb = boto3.client("dynamodb", endpoint_url=url)
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    iterators: dict[str, Any] = {}

    def read() -> list[dict]:
        out = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            sid = shard["ShardId"]
            it = iterators.get(sid) or streams.get_shard_iterator(StreamArn=arn, ShardId=sid,
                                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                page = streams.get_records(ShardIterator=it, Limit=1000)
                it = page.get("NextShardIterator")
                if not page.get("Records"):
                    break
                out.extend(page["Records"])
            iterators[sid] = it
        return out
    return read, arn


# -- the existing loop -------------------------------------------------------------------------

def legacy_cycle(url: str, table: str, watch: list[str], read_stream) -> dict[str, Any]:
    meter = Meter()
    started = time.perf_counter()
    ecr = meter.attach(boto3.client("ecr", endpoint_url=url))
    ddb = meter.attach(boto3.client("dynamodb", endpoint_url=url))
    for repo in watch:
        try:
            ids = ecr.list_images(repositoryName=repo)["imageIds"]
        except botocore.exceptions.ClientError:
            continue
        for image_id in ids:
            try:
                ecr.start_image_scan(repositoryName=repo, imageId=image_id)
            except Exception:  # noqa: BLE001 - the existing Lambda swallows every error here
                pass
            try:
                resp = ecr.describe_image_scan_findings(repositoryName=repo, imageId=image_id)
            except botocore.exceptions.ClientError:
                continue
            counts = (resp.get("imageScanFindings") or {}).get("findingSeverityCounts") or {}
            ddb.put_item(TableName=table, Item={"pk": {"S": f"{repo}@{image_id.get('imageDigest')}"},
                                                "sk": {"S": "counts"}, "counts": {"S": json.dumps(counts)}})
    records = read_stream()          # the stream Lambda: one record per image, compared by counts
    changed = sum(1 for r in records
                  if (r["dynamodb"].get("OldImage") or {}).get("counts") != r["dynamodb"]["NewImage"].get("counts"))
    return {"seconds": time.perf_counter() - started, "meter": meter, "stream": len(records), "changed": changed}


# -- ours ----------------------------------------------------------------------------------------

def our_cycle(url: str, table: str, containers: int, read_stream, stream_arn: str) -> dict[str, Any]:
    from vulnwatch.aws_lambda import _runtime, collect, notify, schedule

    meter = Meter()
    real_client = aws.client

    def counted_client(*a: Any, **kw: Any) -> Any:
        return meter.attach(real_client(*a, **kw))

    real_without = aws.without_retries

    def counted_without(existing: Any) -> Any:
        return meter.attach(real_without(existing))

    aws.client = counted_client        # every client the handlers and the pipeline make is counted
    aws.without_retries = counted_without
    try:
        started = time.perf_counter()
        _runtime.reset()
        schedule.handler(scheduled_event(), None)
        sqs = meter.attach(boto3.client("sqs", endpoint_url=url))   # the event source mapping's polls
        queue = os.environ["VULNWATCH_QUEUE_URL"]
        lock = threading.Lock()
        invocations = 0

        def container() -> None:
            nonlocal invocations
            while True:
                with lock:
                    msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                               VisibilityTimeout=300).get("Messages") or []
                if not msgs:
                    return
                records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                            "eventSource": "aws:sqs"} for m in msgs]
                answer = collect.handler({"Records": records}, None)
                with lock:
                    invocations += 1
                failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
                done = [{"Id": str(n), "ReceiptHandle": r["receiptHandle"]} for n, r in enumerate(records)
                        if r["messageId"] not in failed]
                if done:         # as the event source mapping does: one DeleteMessageBatch per batch
                    sqs.delete_message_batch(QueueUrl=queue, Entries=done)

        # parallel invocations: each thread a container of its own (nothing cached between them)
        _runtime.reset()
        with ThreadPoolExecutor(containers) as pool:
            for f in [pool.submit(container) for _ in range(containers)]:
                f.result()
        collected = time.perf_counter()
        records = read_stream()
        for i in range(0, len(records), 100):
            notify.handler({"Records": [lambda_record(r, stream_arn) for r in records[i:i + 100]]}, None)
        return {"seconds": time.perf_counter() - started, "collect_seconds": collected - started, "meter": meter,
                "stream": len(records), "invocations": invocations}
    finally:
        aws.client = real_client
        aws.without_retries = real_without


def row(name: str, legacy: dict, ours: dict) -> list[str]:
    lc, oc = legacy["meter"].total(), ours["meter"].total()
    lw, ow = legacy["meter"].writes, ours["meter"].writes
    return [name, f"{legacy['seconds']:.1f}", f"{ours['seconds']:.1f}", str(lc), str(oc),
            f"1/{lc / oc:.0f}" if oc else "-", str(lw), str(ow), f"1/{lw / ow:.0f}" if ow else "0",
            str(legacy["stream"]), str(ours["stream"])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repos", type=int, default=50)
    ap.add_argument("--containers", type=int, default=10)
    args = ap.parse_args(argv)
    repos = layout(args.images, args.repos)
    server = FastMoto()
    tmp = tempfile.mkdtemp(prefix="vw-bench-")
    try:
        t0 = time.perf_counter()
        push_images(server.url, repos)
        print(f"moto_server {server.url}: {args.images} images in {args.repos} repositories pushed in "
              f"{time.perf_counter() - t0:.1f} s")
        boot = boto3.client("dynamodb", endpoint_url=server.url)
        boot.create_table(TableName="legacy", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                {"AttributeName": "sk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                     {"AttributeName": "sk", "KeyType": "RANGE"}],
                          StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        boot.create_table(**table_definition("vulnwatch"))
        s3 = boto3.client("s3", endpoint_url=server.url)
        s3.create_bucket(Bucket="config")
        s3.create_bucket(Bucket="spill")
        s3.put_object(Bucket="config", Key="watch.json", Body=json.dumps(list(repos)).encode())
        queue = boto3.client("sqs", endpoint_url=server.url).create_queue(QueueName="collect")["QueueUrl"]
        os.environ.update(VULNWATCH_TABLE="vulnwatch", VULNWATCH_BUCKET="spill", VULNWATCH_QUEUE_URL=queue,
                          VULNWATCH_WATCH_LIST="s3://config/watch.json", VULNWATCH_ENDPOINT_URL=server.url,
                          VULNWATCH_SCAN_WAIT="1ms", VULNWATCH_SINKS="[]", VULNWATCH_LOG_LEVEL="ERROR",
                          VULNWATCH_SLICE_SIZE="200", VULNWATCH_TMP=tmp)
        legacy_read, _ = stream_reader(server.url, "legacy", Meter())
        ours_meter_stream = Meter()
        ours_read, arn = stream_reader(server.url, "vulnwatch", ours_meter_stream)

        results = []
        for name in ("cold cycle", "steady cycle (+1 h)"):
            legacy = legacy_cycle(server.url, "legacy", list(repos), legacy_read)
            ours = our_cycle(server.url, "vulnwatch", args.containers, ours_read, arn)
            ours_meter_stream.calls.clear()    # stream reads by a Lambda trigger are not billed: left out on both sides
            results.append((name, legacy, ours))

        print(f"\n{args.images} images, {args.repos} repositories, {args.containers} parallel collect containers; "
              "API calls include the SQS polls, not the stream reads")
        head = ["cycle", "legacy s", "ours s", "legacy calls", "ours calls", "ratio", "legacy writes",
                "ours writes", "ratio", "legacy stream", "ours stream"]
        table = [head] + [row(n, lg, o) for n, lg, o in results]
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        for r in table:
            print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))
        for name, legacy, ours in results:
            print(f"\n{name}: legacy calls by service {legacy['meter'].by_service()}; "
                  f"ours {ours['meter'].by_service()}, {ours['invocations']} collect invocations")
            top = sorted(ours["meter"].calls.items(), key=lambda kv: -kv[1])[:12]
            print("  ours by operation: " + ", ".join(f"{s}.{o} {n}" for (s, o), n in top))
        _, legacy, ours = results[-1]
        ok_calls = ours["meter"].total() * 20 <= legacy["meter"].total()
        ok_writes = ours["meter"].writes * 20 <= legacy["meter"].writes
        print(f"\ntarget, steady: calls <= 1/20 of the legacy loop's: {'PASS' if ok_calls else 'MISS'} "
              f"({ours['meter'].total()} vs {legacy['meter'].total()}); writes <= 1/20: "
              f"{'PASS' if ok_writes else 'MISS'} ({ours['meter'].writes} vs {legacy['meter'].writes}); "
              f"stream records {ours['stream']} vs {legacy['stream']}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
