"""ECR test helpers: manifests, pushing images to moto, scan-finding responses, a fake clock."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone


OCI = "application/vnd.oci.image.manifest.v1+json"


def manifest(seed: str) -> str:
    """An OCI manifest whose layer digest (and so moto's image digest) depends on ``seed``."""
    layer = hashlib.sha256(seed.encode()).hexdigest()
    config = hashlib.sha256(("cfg" + seed).encode()).hexdigest()
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{config}",
                   "size": 100},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{layer}",
                    "size": 1000}],
    })


def push_images(url: str, repos: dict[str, list[str]]) -> None:
    """Create each repository on the ECR endpoint ``url`` (moto) and put an image per tag, four at
    a time; the manifests come from :func:`manifest` of ``repo:tag``, so the digests are the
    same every time (the benchmarks' fleets)."""
    import boto3
    from concurrent.futures import ThreadPoolExecutor

    ecr = boto3.client("ecr", endpoint_url=url)
    for repo in repos:
        ecr.create_repository(repositoryName=repo)

    def push(repo: str, tag: str) -> None:
        ecr.put_image(repositoryName=repo, imageManifest=manifest(f"{repo}:{tag}"), imageTag=tag,
                      imageManifestMediaType=OCI)

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(push, repo, tag) for repo, tags in repos.items() for tag in tags]:
            f.result()
    ecr.close()


class Pusher:
    def __init__(self, client) -> None:
        self.client = client
        self.repos: set[str] = set()

    def push(self, repo: str, tag: str, seed: str | None = None) -> str:
        """Push an image (creating the repository), return its digest."""
        if repo not in self.repos:
            try:
                self.client.create_repository(repositoryName=repo)
            except self.client.exceptions.RepositoryAlreadyExistsException:
                pass
            self.repos.add(repo)
        resp = self.client.put_image(repositoryName=repo, imageManifest=manifest(seed or f"{repo}:{tag}"),
                                     imageTag=tag, imageManifestMediaType=OCI)
        return resp["image"]["imageId"]["imageDigest"]


def ts(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def basic_result(repo: str, digest: str, findings: list[dict], *, completed: datetime,
                 source_updated: datetime | None = None) -> dict:
    """A whole DescribeImageScanFindings response (basic scanning) for moto's injection API."""
    return {
        "registryId": "123456789012",
        "repositoryName": repo,
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
        "imageScanFindings": {
            "imageScanCompletedAt": ts(completed),
            "vulnerabilitySourceUpdatedAt": ts(source_updated or completed - timedelta(hours=1)),
            "findings": findings,
            "findingSeverityCounts": {},
        },
    }


class FakeClock:
    """A clock advanced only by its own ``sleep``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(timezone.utc)
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
