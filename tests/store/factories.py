"""Values the store tests build scans from (shared by the contract suite and the per-backend tests)."""

from __future__ import annotations

from datetime import datetime, timezone

from vulnwatch.model import Event, EventKind, Finding, Image, ScanResult, Severity, stable_id

UTC = timezone.utc
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def image(digest: str = A, tags=("latest",), repo="team/app", registry="prod", **kw) -> Image:
    return Image(registry, repo, digest, tags=tuple(tags), **kw)


def finding(vid: str = "CVE-2024-0001", sev: Severity = Severity.HIGH, **kw) -> Finding:
    return Finding(vulnerability_id=vid, package_name=kw.pop("package_name", "openssl"),
                   package_version=kw.pop("package_version", "3.0.11-1~deb12u2"), severity=sev,
                   ecosystem="Debian:12", scanner="ecr-basic", **kw)


def result(img: Image | None = None, at: datetime = T0, findings=(finding(),), **kw) -> ScanResult:
    return ScanResult(image=img or image(), scanner=kw.pop("scanner", "ecr-basic"), scanned_at=at,
                      findings=tuple(findings), **kw)


def make_event(res: ScanResult, n: int = 0, kind=EventKind.FINDINGS_CHANGED) -> Event:
    return Event(id=stable_id("test", res.image.digest, n), kind=kind, image=res.image,
                 scanner=res.scanner, occurred_at=res.scanned_at, added=res.findings,
                 counts=res.counts)
