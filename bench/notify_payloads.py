"""Benchmark: how big notification payloads get, and the peak memory of a digest delivery.

The case of the issue: an image with 1,850 findings (a NEW_IMAGE event, every finding
``added``), and ``mode: digest`` over 56 such images. Findings look like the built-in
scanner's (CVE id, DSA/GHSA aliases, CVSS vector, a title, three links, a purl).

1. Size of what each sink would send for the one big event (webhook CloudEvent(s),
   Slack, Teams, email), and whether it stays within the sink's cap.
2. Peak RSS of ``Dispatcher.dispatch()`` delivering the 56-image digest from a real
   SQLite store to a receiver on 127.0.0.1, each in a fresh process (``ru_maxrss`` of
   that process), next to the peak of only reading the due deliveries from the store
   (what the store itself costs) and of the interpreter with the imports.

    python bench/notify_payloads.py [--images 56] [--findings 1850]

Run it with ``PYTHONPATH`` pointing at another checkout's ``src`` to compare before and
after; sinks that checkout lacks are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vulnwatch.model import (Event, EventKind, Finding, Image, ScanResult, Severity,  # noqa: E402
                             severity_counts, stable_id)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
MB = 1024 * 1024
SEVERITIES = [Severity.CRITICAL] * 2 + [Severity.HIGH] * 6 + [Severity.MEDIUM] * 8 + [Severity.LOW] * 4


def big_event(n: int, repo: str = "team/app", i_image: int = 0) -> Event:
    findings = []
    for i in range(n):
        pkg = f"lib{['ssl', 'curl', 'xml2', 'png', 'tiff', 'sqlite', 'krb5', 'gnutls'][i % 8]}{i // 8}"
        vid = f"CVE-20{20 + i % 5}-{10000 + i}"
        ver = f"{1 + i % 4}.{i % 17}.{i % 9}-{i % 5}+deb12u{i % 3}"
        findings.append(Finding(
            vulnerability_id=vid, package_name=pkg, package_version=ver,
            severity=SEVERITIES[i % len(SEVERITIES)], ecosystem="Debian:12",
            aliases=(f"DSA-{5000 + i}-1", f"GHSA-{i:04x}-abcd-efgh"),
            fixed_versions=(ver.replace("deb12u", "deb12u1"),) if i % 3 else (),
            cvss_score=round(4 + (i % 60) / 10, 1),
            cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            title=f"{pkg}: heap-based buffer overflow in the parser when handling crafted input "
                  f"(remote attackers may cause a denial of service or possibly execute arbitrary code via "
                  f"a crafted file, as exploited in the wild) #{i}",
            links=(f"https://nvd.nist.gov/vuln/detail/{vid}",
                   f"https://security-tracker.debian.org/tracker/{vid}",
                   f"https://osv.dev/vulnerability/DSA-{5000 + i}-1"),
            scanner="builtin", purl=f"pkg:deb/debian/{pkg}@{ver}?arch=amd64&distro=debian-12"))
    digest = "sha256:" + f"{i_image:064x}"
    img = Image("prod", repo, digest, ("1.4",))
    return Event(id=stable_id("bench", repo, digest), kind=EventKind.NEW_IMAGE, image=img,
                 scanner="builtin", occurred_at=T0, added=tuple(findings),
                 counts=severity_counts(findings))


class Sink:
    """A receiver that reads each body and keeps only its size."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        sizes = self.sizes

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                left = int(self.headers.get("Content-Length") or 0)
                total = 0
                while left:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    total += len(chunk)
                    left -= len(chunk)
                sizes.append(total)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def notifier(kind: str, url: str, smtp_port: int | None = None):
    if kind == "webhook":
        from vulnwatch.notify.webhook import WebhookNotifier
        return WebhookNotifier("bench", url, timeout=120)
    if kind == "slack":
        from vulnwatch.notify.slack import SlackNotifier
        return SlackNotifier("bench", url, timeout=120, min_interval=0)
    if kind == "teams":
        from vulnwatch.notify.teams import TeamsNotifier
        return TeamsNotifier("bench", url, timeout=120)
    if kind == "email":
        from vulnwatch.notify.email import EmailNotifier
        return EmailNotifier("bench", host="127.0.0.1", port=smtp_port, tls="none", insecure=True,
                             sender="vulnwatch@example.com", recipients=["sec@example.com"], timeout=120)
    raise ValueError(kind)


def kinds() -> list[str]:
    out = ["webhook", "slack"]
    out += ["teams"] if available("vulnwatch.notify.teams") else []
    out += ["email"] if available("vulnwatch.notify.email") and available("aiosmtpd") else []
    return out


def sizes_of_one_event(n: int) -> None:
    ev = big_event(n)
    print(f"one image, {n} findings (NEW_IMAGE, all added); Event.to_dict() is "
          f"{len(json.dumps(ev.to_dict(), separators=(',', ':'))) / MB:.2f} MB as JSON")
    from vulnwatch.notify.webhook import WebhookNotifier
    w = WebhookNotifier("bench", "http://127.0.0.1:9/x")
    if hasattr(w, "requests"):
        bodies = [b for b, _ in w.requests([ev])]
    else:  # before: one body
        bodies = [w.request([ev])[0]]
    cap = getattr(w, "max_payload_bytes", None)
    print(f"  webhook  {len(bodies):4d} request(s), largest {max(map(len, bodies)) / 1024:8.1f} KiB, "
          f"total {sum(map(len, bodies)) / 1024:8.1f} KiB"
          + (f"  cap {cap / 1024:.0f} KiB {'PASS' if max(map(len, bodies)) <= cap else 'MISS'}" if cap else ""))
    from vulnwatch.notify.slack import SlackNotifier
    s = SlackNotifier("bench", "http://127.0.0.1:9/x")
    body = json.dumps(s.render([ev]), ensure_ascii=False, separators=(",", ":")).encode()
    cap = getattr(s, "max_payload_bytes", None)
    print(f"  slack       1 request,    {len(body) / 1024:8.1f} KiB"
          + (f"  cap {cap / 1024:.1f} KiB {'PASS' if len(body) <= cap else 'MISS'}" if cap else ""))
    if "teams" in kinds():
        from vulnwatch.notify.teams import TeamsNotifier
        t = TeamsNotifier("bench", "http://127.0.0.1:9/x")
        body = t.body([ev])
        print(f"  teams       1 request,    {len(body) / 1024:8.1f} KiB  cap {t.max_payload_bytes / 1024:.1f} KiB "
              f"{'PASS' if len(body) <= t.max_payload_bytes else 'MISS'}")
    if available("vulnwatch.notify.email"):
        from vulnwatch.notify.email import EmailNotifier
        e = EmailNotifier("bench", host="127.0.0.1", port=25, tls="none", insecure=True,
                          sender="vulnwatch@example.com", recipients=["sec@example.com"])
        raw = e.message([ev]).as_bytes()
        print(f"  email       1 message,    {len(raw) / 1024:8.1f} KiB  cap {e.max_payload_bytes / 1024:.0f} KiB "
              f"{'PASS' if len(raw) <= e.max_payload_bytes else 'MISS'}")


def child(kind: str, db: str, url: str, smtp_port: int) -> None:
    """In a fresh process: deliver the digest (or only read it), print the peak RSS."""
    from vulnwatch.delivery.outbox import Dispatcher
    from vulnwatch.store.sql import SQLStore

    store = SQLStore.from_path(Path(db))
    now = datetime.now(timezone.utc) + timedelta(seconds=5)
    t = time.perf_counter()
    if kind == "read":
        due = store.due_deliveries(now)
        out = {"rows": len(due)}
    else:
        n = notifier(kind, url, smtp_port)
        report = Dispatcher(store, {"digest": n}, modes={"digest": "digest"}).dispatch(now)
        out = {"delivered": report.delivered, "failed": report.failed, "dead": report.dead,
               "errors": report.errors}
    out["seconds"] = time.perf_counter() - t
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run_child(*args: str) -> dict:
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def digest(images: int, n: int) -> None:
    from vulnwatch.store.sql import SQLStore

    with tempfile.TemporaryDirectory() as tmp:
        sinks = ["read", *kinds()]
        t = time.perf_counter()
        built = Path(tmp) / "built.db"
        store = SQLStore.from_path(built)
        for i in range(images):
            ev = big_event(n, repo=f"team/svc-{i:02d}", i_image=i)
            result = ScanResult(image=ev.image, scanner=ev.scanner, scanned_at=ev.occurred_at)
            store.commit_scan(result, [(ev, ["digest"])])
        store.close()
        db = Path(tmp) / "state.db"
        print(f"\ndigest: {images} images x {n} findings in a SQLite outbox "
              f"({built.stat().st_size / MB:.0f} MB file, built in {time.perf_counter() - t:.0f} s)")
        base = subprocess.run([sys.executable, "-c", "import resource, vulnwatch.delivery.outbox, "
                               "vulnwatch.store.sql, vulnwatch.notify; "
                               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                              capture_output=True, text=True, check=True)
        print(f"  baseline: interpreter + imports {float(base.stdout):.0f} MB peak RSS")
        smtp = None
        if "email" in sinks:
            from aiosmtpd.controller import Controller

            class Discard:
                sizes: list[int] = []

                async def handle_DATA(self, server, session, envelope):  # noqa: N802
                    self.sizes.append(len(envelope.content))
                    return "250 OK"

            handler = Discard()
            from tests.support.servers import free_port
            smtp = Controller(handler, hostname="127.0.0.1", port=free_port(), data_size_limit=None)
            smtp.start()
        for kind in sinks:
            shutil.copyfile(built, db)  # each sink gets the same 56 due deliveries
            receiver = Sink()
            port = smtp.port if smtp else 0
            r = run_child(kind, str(db), receiver.url, str(port))
            if kind == "read":
                print(f"  {'store.due_deliveries only':<26} {r['peak_rss_mb']:6.0f} MB peak RSS "
                      f"({r['rows']} rows, {r['seconds']:.1f} s)")
                continue
            sizes = handler.sizes if kind == "email" else receiver.sizes
            ok = "ok" if r["delivered"] == images else f"NOT delivered: {r['errors']}"
            print(f"  {kind + ' digest dispatch':<26} {r['peak_rss_mb']:6.0f} MB peak RSS, {len(sizes)} "
                  f"message(s), largest {max(sizes, default=0) / 1024:.1f} KiB, total "
                  f"{sum(sizes) / MB:.2f} MB, {r['seconds']:.1f} s, {ok}")
            receiver.server.shutdown()
            if kind == "email":
                handler.sizes.clear()
        if smtp:
            smtp.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=56)
    ap.add_argument("--findings", type=int, default=1850)
    ap.add_argument("--child", nargs=4, metavar=("KIND", "DB", "URL", "SMTP_PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, db, url, port = args.child
        child(kind, db, url, int(port))
        return
    sizes_of_one_event(args.findings)
    digest(args.images, args.findings)


if __name__ == "__main__":
    main()
