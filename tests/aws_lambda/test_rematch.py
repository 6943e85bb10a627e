"""The ``rematch`` function: a new OSV index lands in S3; it is fetched into /tmp only when its
ETag changed, stored inventories are re-matched, only what moved is written and delivered."""

from __future__ import annotations

import shutil

from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR, OSV_OLDER_DIR

NEWER = {"CVE-2023-32681", "CVE-2023-45803", "CVE-2023-23916"}   # in osv/, not in osv-older/


def s3_event(bucket: str, key: str, etag: str) -> dict:
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                         "eventName": "ObjectCreated:Put",
                         "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                                "object": {"key": key, "size": 1, "eTag": etag.strip('"')}}}]}


def index_of(path, *folders):
    from vulnwatch.vulndb.index import VulnIndex
    from vulnwatch.vulndb.sync import import_path, local_source

    index = VulnIndex(path)
    for folder in folders:
        import_path(index, folder, source=local_source(folder), location=str(folder))
    index.close()
    return path


def test_a_new_index_in_s3_rematches_stored_inventories_and_delivers_what_moved(deploy, receiver, tmp_path,
                                                                                 monkeypatch):
    from vulnwatch.aws_lambda import rematch
    from vulnwatch.build import build_pipeline
    from vulnwatch.config import parse_config

    dep = deploy([], env={"VULNWATCH_INDEX": "s3://vw-spill/osv/osv.db"})
    # an image recorded by the built-in scanner against the older advisory data, into the table
    archive = tmp_path / "webapp.tar"
    shutil.copy(IMAGE_ARCHIVE, archive)
    older = index_of(tmp_path / "older.db", OSV_OLDER_DIR / "Debian", OSV_OLDER_DIR / "PyPI")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seed = build_pipeline(parse_config(f"""
state: {{url: "dynamodb://{dep.table}?region=us-east-1&endpoint_url={dep.moto_url}&bucket=vw-spill&prefix=spill/"}}
vulndb: {{path: {older}}}
registries: [{{name: local, type: archive, path: {archive}}}]
""", environ={}))
    report = seed.run_cycle(deliver=False)
    assert report.scanned == 1 and report.ok
    seed.close()
    dep.stream_records()                     # what the seeding wrote is not this test's

    newer = index_of(tmp_path / "newer.db", OSV_DIR / "Debian", OSV_DIR / "PyPI")
    dep.s3.upload_file(str(newer), "vw-spill", "osv/osv.db")
    etag = dep.s3.head_object(Bucket="vw-spill", Key="osv/osv.db")["ETag"]
    assert rematch.handler(s3_event("vw-spill", "osv/osv.db", etag), None) == {"fetched": True, "events": 1}
    dep.notify()
    (event,) = [r.json() for r in receiver.requests]
    assert event["data"]["kind"] == "findings_changed"
    assert {f["vulnerability_id"] for f in event["data"]["added"]} >= NEWER
    assert not event["data"]["fixed"]

    # the same index again: not fetched (same ETag), nothing moved, nothing written
    receiver.clear()
    assert rematch.handler(s3_event("vw-spill", "osv/osv.db", etag), None) == {"fetched": False, "events": 0}
    assert [r for r in dep.stream_records() if r["dynamodb"]["Keys"]["sk"]["S"].endswith("#V")] == []
