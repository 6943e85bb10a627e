"""A digest re-sent after a crash carries the same events under the same id; a later event of an
image waits while an earlier one of the same image is pending for that sink (real store, real
HTTP receiver; the crash is a real SIGKILL of a dispatching process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.events import enqueue, event, finding
from vulnwatch.delivery.outbox import Dispatcher, batch_id_of
from vulnwatch.model import utcnow
from vulnwatch.notify.webhook import WebhookNotifier
from vulnwatch.store.interface import DeliveryStatus
from vulnwatch.store.sql import SQLStore

SRC = Path(__file__).resolve().parents[2] / "src"

DISPATCH = """
import sys
from vulnwatch.delivery.outbox import Dispatcher
from vulnwatch.notify.webhook import WebhookNotifier
from vulnwatch.store.sql import SQLStore
store = SQLStore.from_path(sys.argv[1])
Dispatcher(store, {"daily": WebhookNotifier("daily", sys.argv[2])}, modes={"daily": "digest"}).dispatch()
"""


class KillingReceiver:
    """Records each body; the first one it kills the sender (pid in ``victim``) before answering."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.victim: int | None = None
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                rec.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                if rec.victim is not None:
                    os.kill(rec.victim, signal.SIGKILL)
                    rec.victim = None
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/digest"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_digest_accepted_before_a_crash_is_resent_whole_under_its_id(tmp_path):
    import json

    path = tmp_path / "state.db"
    store = SQLStore.from_path(path)
    rec = KillingReceiver()
    try:
        first = [event(added=[finding(f"CVE-{i}")], repository=f"svc/{i}") for i in range(3)]
        for ev in first:
            enqueue(store, ev, ["daily"])
        proc = subprocess.Popen([sys.executable, "-c", DISPATCH, str(path), rec.url],
                                env={**os.environ, "PYTHONPATH": str(SRC)})
        rec.victim = proc.pid
        assert proc.wait(timeout=60) == -signal.SIGKILL            # accepted, never marked
        assert [d.status for d in store.deliveries()] == [DeliveryStatus.PENDING] * 3
        late = event(added=[finding("CVE-9")], repository="svc/late")
        enqueue(store, late, ["daily"])                            # a new change meanwhile
        report = Dispatcher(store, {"daily": WebhookNotifier("daily", rec.url)},
                            modes={"daily": "digest"}).dispatch(utcnow() + timedelta(seconds=1))
        assert report.delivered == 4
        sent = [json.loads(b) for b in rec.bodies]
        assert len(sent) == 3
        assert sent[1] == sent[0]                                  # the same message, the same id
        assert sorted(e["id"] for e in sent[0]["data"]["events"]) == sorted(e.id for e in first)
        assert sent[2]["id"] == late.id                            # alone in a new batch (one event: no digest)
        batches = {d.event.id: d.batch_id for d in store.deliveries()}
        assert {batches[e.id] for e in first} == {batch_id_of([d for d in store.deliveries()
                                                               if d.event.id != late.id])}
    finally:
        rec.close()
        store.close()


def test_a_later_event_of_an_image_waits_for_the_earlier_one_in_backoff(store, receiver):
    receiver.responses.append((503, {}, b"busy"))
    e1 = event(added=[finding("CVE-1")], repository="svc/a")
    enqueue(store, e1, ["hooks"])
    d = Dispatcher(store, {"hooks": WebhookNotifier("hooks", receiver.url)}, rng=lambda: 1.0)
    now = utcnow() + timedelta(seconds=1)
    assert d.dispatch(now).failed == 1                                 # e1 backs off for 30 s
    e2 = event(added=[finding("CVE-1"), finding("CVE-2")], repository="svc/a")   # a later change, same image
    other = event(added=[finding("CVE-3")], repository="svc/b")
    enqueue(store, e2, ["hooks"])
    enqueue(store, other, ["hooks"])
    report = d.dispatch(now + timedelta(seconds=2))
    assert report.delivered == 1                                       # svc/b goes; svc/a's e2 waits
    assert [r.json()["id"] for r in receiver.requests] == [e1.id, other.id]
    report = d.dispatch(now + timedelta(seconds=31))
    assert report.delivered == 2
    assert [r.json()["id"] for r in receiver.requests] == [e1.id, other.id, e1.id, e2.id]
