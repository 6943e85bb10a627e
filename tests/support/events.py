"""Sample events, findings and an outbox writer, and a receiver that comes up late: shared by the
notify and delivery tests."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.servers import ReceivedRequest, Receiver, free_port
from vulnwatch.model import (Event, EventKind, Finding, FindingChange, Image, ScanResult, Severity,
                             severity_counts, stable_id)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
DIGEST = "sha256:" + "ab" * 32
OLD_DIGEST = "sha256:" + "cd" * 32


def finding(vid: str, sev: Severity = Severity.HIGH, pkg: str = "openssl", ver: str = "3.0.11-1",
            fixed: tuple[str, ...] = ("3.0.13-1",), cvss: float | None = None, **kw) -> Finding:
    return Finding(vid, pkg, ver, sev, ecosystem="Debian:12", fixed_versions=fixed, cvss_score=cvss, **kw)


def event(kind: EventKind = EventKind.FINDINGS_CHANGED, *, added=(), fixed=(), changed=(),
          repository: str = "team/app", registry: str = "prod", tags=("1.4",), digest: str = DIGEST,
          counts=None, previous_counts=None, previous_digest=None, moved_tags=(), at=T0) -> Event:
    added, fixed, changed = tuple(added), tuple(fixed), tuple(changed)
    now = list(added) + [c.after for c in changed]
    return Event(
        id=stable_id(kind.value, registry, repository, digest, [f.key for f in added], [f.key for f in fixed]),
        kind=kind, image=Image(registry, repository, digest, tuple(tags)), scanner="ecr-basic",
        occurred_at=at, added=added, fixed=fixed, changed=changed,
        counts=counts if counts is not None else severity_counts(now),
        previous_counts=previous_counts if previous_counts is not None else {},
        previous_digest=previous_digest, moved_tags=tuple(moved_tags))


def change(vid: str, before: Severity, after: Severity, **kw) -> FindingChange:
    return FindingChange(finding(vid, before, **kw), finding(vid, after, **kw))


def enqueue(store, ev: Event, sinks) -> None:
    """Put ``ev`` in the outbox for ``sinks`` through the Store API."""
    result = ScanResult(image=ev.image, scanner=ev.scanner, scanned_at=ev.occurred_at, findings=ev.added)
    store.commit_scan(result, [(ev, list(sinks))])


class LateReceiver:
    """A port that refuses connections until :meth:`start` puts a recording server on it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.receiver: Receiver | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        holder: dict[str, Receiver] = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec = holder["r"]
                with rec.lock:
                    rec.requests.append(ReceivedRequest("POST", self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.receiver = holder["r"] = Receiver(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self.receiver

    def close(self) -> None:
        if self.receiver:
            self.receiver.close()


def many_findings(n: int, prefix: str = "CVE-2024-") -> list[Finding]:
    """``n`` findings shaped like the built-in scanner's (aliases, CVSS, title, links, purl),
    severities mixed: about 800 bytes each as JSON."""
    sevs = [Severity.CRITICAL, Severity.HIGH, Severity.HIGH, Severity.MEDIUM, Severity.MEDIUM, Severity.LOW]
    out = []
    for i in range(n):
        vid, pkg, ver = f"{prefix}{10000 + i}", f"lib{i % 40}-pkg", f"{1 + i % 4}.{i % 17}-{i % 5}+deb12u1"
        out.append(Finding(vid, pkg, ver, sevs[i % len(sevs)], ecosystem="Debian:12",
                           aliases=(f"DSA-{5000 + i}-1", f"GHSA-{i:04x}-abcd-efgh"),
                           fixed_versions=(ver + "a",) if i % 3 else (), cvss_score=round(4 + (i % 60) / 10, 1),
                           cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                           title=f"{pkg}: heap-based buffer overflow in the parser when handling crafted input #{i}",
                           links=(f"https://nvd.nist.gov/vuln/detail/{vid}",
                                  f"https://security-tracker.debian.org/tracker/{vid}"),
                           scanner="builtin", purl=f"pkg:deb/debian/{pkg}@{ver}?arch=amd64&distro=debian-12"))
    return out


def big_event(n: int, *, kind: EventKind = EventKind.NEW_IMAGE, repository: str = "team/app",
              digest: str = DIGEST, fixed: int = 0, changed: int = 0) -> Event:
    """An event with ``n`` new findings (and ``fixed`` fixed, ``changed`` changed ones)."""
    added = many_findings(n)
    gone = many_findings(fixed, prefix="CVE-2019-")
    moved = [FindingChange(f, dataclasses.replace(f, severity=Severity.CRITICAL, cvss_score=9.8))
             for f in many_findings(changed, prefix="CVE-2021-")]
    return event(kind, added=added, fixed=gone, changed=moved, repository=repository, digest=digest,
                 previous_counts={"HIGH": fixed} if kind is not EventKind.NEW_IMAGE else {})
