"""``rematch``: a new OSV index landed in S3 (an ``ObjectCreated`` notification of
``VULNWATCH_INDEX``), or the schedule asked.

The index (the SQLite file ``vulnwatch db update`` writes) is fetched into ``/tmp`` only when
its ETag differs from the copy this container has; then
:meth:`~vulnwatch.pipeline.Pipeline.rematch` matches every stored inventory against it and
writes only the images whose findings moved (diff + outbox, like a scan), which the stream
then delivers through ``notify``. No registry is touched: re-matching needs no ECR quota.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from . import _runtime

log = logging.getLogger("vulnwatch.aws_lambda.rematch")


def fetch_index() -> bool:
    """Bring the index into ``/tmp`` if it changed; True when a new copy was fetched."""
    bucket, key = _runtime.s3_location(_runtime.require("VULNWATCH_INDEX"))
    path = _runtime.INDEX_PATH
    etag_file = path.with_suffix(".etag")
    have = etag_file.read_text() if etag_file.exists() and path.exists() else None
    s3 = _runtime.client("s3")
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    if etag == have:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    s3.download_file(bucket, key, str(tmp))
    _runtime.reset(pipelines_only=True)     # the old index is closed with its pipeline, before the swap
    for stale in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)       # the old file's write-ahead log would be read into the new one
    os.replace(tmp, path)
    etag_file.write_text(etag)
    return True


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    _runtime.start()
    fetched = fetch_index()
    pipeline = _runtime.pipeline(with_watches=False)
    moved = sum(1 for _ in pipeline.rematch_events())     # counted as written, not held
    out = {"fetched": fetched, "events": moved}
    log.info("re-matched stored inventories: %d moved", moved, extra={"event": "rematch", **out})
    return out
