"""ECR with the built-in scanner (``scan.mode: builtin``): moto is the ECR API, a real
docker-registry with htpasswd user ``AWS`` and the password moto's ``GetAuthorizationToken``
hands out is the registry's v2 endpoint (``registry_url``). The example image is pushed to both
(to moto with the same manifest and digest, as ECR stores it). A cycle records the image's
own findings (the same as ``vulnwatch scan docker-archive:...``), and so does the Lambda
``collect`` path with the OSV index fetched from S3."""

from __future__ import annotations

import base64
import json
import logging

import boto3
import httpx
import pytest

from tests.support.registry import start_registry
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR

REPO = "team/webapp"
ACCEPT = ", ".join(["application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])


def moto_password(moto_url: str) -> str:
    ecr = boto3.client("ecr", region_name="us-east-1", endpoint_url=moto_url, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert user == "AWS" and password
    return password


@pytest.fixture(scope="module")
def ecr_v2(moto_server, tmp_path_factory):
    password = moto_password(moto_server.url)
    reg = start_registry(tmp_path_factory.mktemp("ecr-v2"), users={"AWS": password}, push_creds=f"AWS:{password}")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", REPO, "1.0")
    resp = httpx.get(f"{reg.url}/v2/{REPO}/manifests/1.0", auth=("AWS", password), headers={"Accept": ACCEPT})
    resp.raise_for_status()
    reg.manifest = (resp.content, resp.headers["content-type"].split(";")[0], resp.headers["docker-content-digest"])
    reg.password = password
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def osv_index(tmp_path_factory):
    from vulnwatch.vulndb.index import VulnIndex
    from vulnwatch.vulndb.sync import import_path, local_source

    path = tmp_path_factory.mktemp("osv") / "osv.db"
    index = VulnIndex(path)
    for folder in (OSV_DIR / "Debian", OSV_DIR / "PyPI"):
        import_path(index, folder, source=local_source(folder), location=str(folder))
    index.close()
    return path


@pytest.fixture(scope="module")
def expected(osv_index, tmp_path_factory):
    """The findings ``vulnwatch scan docker-archive:IMAGE_ARCHIVE`` reports."""
    from vulnwatch.build import image_scan
    from vulnwatch.config import parse_config

    cfg = parse_config(f"vulndb: {{path: {osv_index}}}\nlayer_cache: {{enabled: false}}\n", environ={})
    scan = image_scan(cfg, f"docker-archive:{IMAGE_ARCHIVE}")
    try:
        result = scan.scanner.scan(scan.image)
    finally:
        scan.close()
    keys = {f.key for f in result.findings}
    assert len(keys) >= 5          # the example image has known-vulnerable packages
    return keys


def push_to_moto(ecr, reg) -> str:
    raw, media_type, digest = reg.manifest
    ecr.create_repository(repositoryName=REPO)
    got = ecr.put_image(repositoryName=REPO, imageManifest=raw.decode(), imageManifestMediaType=media_type,
                        imageTag="1.0", imageDigest=digest)
    assert got["image"]["imageId"]["imageDigest"] == digest     # as ECR names it: the manifest's digest
    return digest


def test_a_cycle_with_the_builtin_scanner_records_the_images_own_findings(moto, ecr, ecr_v2, osv_index, expected,
                                                                         tmp_path, caplog):
    from vulnwatch.build import build_pipeline
    from vulnwatch.config import parse_config

    digest = push_to_moto(ecr, ecr_v2)
    cfg = parse_config(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {{path: {osv_index}}}
layer_cache: {{enabled: false}}
registries:
  - name: prod
    type: ecr
    region: us-east-1
    endpoint_url: {moto.url}
    registry_url: {ecr_v2.url}
    insecure: true
    scan: {{mode: builtin}}
""", environ={})
    caplog.set_level(logging.DEBUG)
    pipeline = build_pipeline(cfg)
    try:
        (watch,) = pipeline.watches
        assert watch.scanner.name == "builtin"
        report = pipeline.run_cycle(deliver=False)
        assert report.ok and report.scanned == 1, report.failures
        (snap,) = pipeline.store.snapshots("prod")
        assert (snap.image.repository, snap.image.digest, snap.scanner) == (REPO, digest, "builtin")
        assert {f.key for f in snap.findings} == expected
        assert watch.registry.token_fetches == 1         # one token for the whole cycle (valid 12 h)
    finally:
        pipeline.close()
    from vulnwatch.logs import redact

    basic = base64.b64encode(f"AWS:{ecr_v2.password}".encode()).decode()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("vulnwatch"))
    assert "GET 127.0.0.1" in ours                            # the v2 requests were logged, the token not
    assert ecr_v2.password not in ours and basic not in ours
    assert ecr_v2.password not in redact(f"echoed {ecr_v2.password} and {basic}")      # registered as secrets
    assert basic not in redact(f"echoed {basic}")


def test_the_token_is_fetched_again_before_it_expires(moto, ecr, ecr_v2):
    from datetime import datetime, timezone

    from vulnwatch.registries.ecr import TOKEN_REFRESH_MARGIN, ECRRegistry

    digest = push_to_moto(ecr, ecr_v2)
    expires = datetime(2015, 1, 1, tzinfo=timezone.utc).timestamp()     # what moto says: long ago
    now = [expires - 12 * 3600]
    reg = ECRRegistry("prod", region="us-east-1", endpoint_url=moto.url, scanner="builtin",
                      registry_url=ecr_v2.url, insecure=True, clock=lambda: now[0])
    try:
        assert reg.manifest(REPO, digest).digest == digest
        assert reg.manifest(REPO, "1.0").digest == digest
        assert reg.token_fetches == 1
        now[0] = expires - TOKEN_REFRESH_MARGIN + 1                       # close to expiry: a new token
        layer = reg.manifest(REPO, digest).layers[0]
        assert reg.token_fetches == 2
        with reg.blob(REPO, layer.digest) as f:
            assert len(f.read()) == layer.size
        assert reg.token_fetches == 2
    finally:
        reg.close()


def test_a_plain_http_registry_url_needs_insecure(config_error):
    err = config_error("""
        registries:
          - {name: prod, type: ecr, region: us-east-1, registry_url: "http://127.0.0.1:5000", scan: {mode: builtin}}
    """)
    assert "registry_url" in str(err) and "insecure" in str(err)


def test_lambda_collect_with_the_builtin_scanner_records_the_images_own_findings(deploy, ecr, ecr_v2, osv_index,
                                                                                expected):
    digest = push_to_moto(ecr, ecr_v2)
    watch = f"""
registries:
  - name: prod
    type: ecr
    registry_url: {ecr_v2.url}
    insecure: true
    scan: {{mode: builtin}}
    repositories: [{{name: "{REPO}"}}]
"""
    dep = deploy(watch, env={"VULNWATCH_INDEX": "s3://vw-spill/osv/osv.db"})
    dep.s3.upload_file(str(osv_index), "vw-spill", "osv/osv.db")
    assert dep.schedule()          # builds the pipeline: an empty index in /tmp, replaced by collect's fetch
    answers = dep.collect()
    assert answers and all(a == {"batchItemFailures": []} for a in answers)
    from vulnwatch.store import open_store
    from vulnwatch.aws_lambda import _runtime

    store = open_store(_runtime.state_url())
    try:
        (snap,) = store.snapshots("prod")
    finally:
        store.close()
    assert (snap.image.digest, snap.scanner) == (digest, "builtin")
    assert {f.key for f in snap.findings} == expected
    (attrs,) = dep.queued()
    assert attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesDelayed"] == "0"   # none re-queued
