"""Crash safety, for real: `vulnwatch run` in a subprocess, killed with SIGKILL at random points
(40 times), the advisory data changing between runs so that findings keep moving, a per-image and
a digest webhook sink against a real HTTP receiver that records every body it accepted and
sometimes answers 503 (so backoff and retries are part of it).

Then, after runs that are left to finish:

* every change the store recorded reached both sinks at least once, nothing else did;
* a repeat carries the same id and the same content (events and digest envelopes alike): a digest
  re-sent after a crash carries exactly the events it carried the first time;
* per image, the order in which changes first arrived is the order in which they were recorded;
* the recorded changes of each image, applied in order from nothing, give its current snapshot:
  none missing, none recorded twice;
* the database is intact: no delivery without its event, every snapshot complete, with its
  history entry and a signature that matches its findings.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR
from vulnwatch.model import Event, Finding, findings_signature
from vulnwatch.store._finding_sets import event_dict

SRC = Path(__file__).resolve().parents[2] / "src"
KILLS = 40
IMAGES = 3


class Recorder:
    """A real HTTP receiver: records each complete body it accepted (200), in arrival order;
    answers 503 to a share of requests (seeded). With ``victim`` set, it kills that process with
    SIGKILL right after accepting a body at ``victim_path``, before answering: the sink has the
    message, the sender never learns it (the window in which a retry must not re-bundle it)."""

    def __init__(self, fail_rate: float, seed: int) -> None:
        self.accepted: list[tuple[str, dict]] = []
        self.refused = 0
        self.victim: int | None = None
        self.victim_path: str | None = None
        """Kill on accepting a body at this path (None: at any)."""
        self.killed_on_accept = 0
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                want = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(want)
                if len(body) != want:          # the sender died mid-request: nothing was delivered
                    return
                with rec.lock:
                    fail = rec.rng.random() < rec.fail_rate
                    if fail:
                        rec.refused += 1
                    else:
                        rec.accepted.append((self.path, json.loads(body)))
                        if rec.victim is not None and rec.victim_path in (None, self.path):
                            os.kill(rec.victim, signal.SIGKILL)
                            rec.victim = None
                            rec.killed_on_accept += 1
                status, out = (503, b"busy") if fail else (200, b"ok")
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_variant(osv: Path, seed: int) -> None:
    """A random half of the bundled OSV records: each run sees different advisories. ``osv`` is a
    symbolic link swapped at once to a new folder (a run reading it never sees half a variant)."""
    rng = random.Random(seed)
    folder = osv.with_name(f"osv-{seed}")
    for eco in ("Debian", "PyPI"):
        (folder / eco).mkdir(parents=True)
        for f in sorted((OSV_DIR / eco).glob("*.json")):
            if rng.random() < 0.5:
                shutil.copy(f, folder / eco / f.name)
    later = time.time() + 1
    for p in [folder, *folder.rglob("*")]:
        os.utime(p, (later, later))
    link = osv.with_name("osv.link")
    link.unlink(missing_ok=True)
    link.symlink_to(folder)
    os.replace(link, osv)


def test_killed_runs_lose_nothing_repeat_under_the_same_ids_and_keep_order(tmp_path):
    rng = random.Random(20260301)
    rec = Recorder(fail_rate=0.2, seed=7)
    osv = tmp_path / "osv"
    write_variant(osv, 0)
    registries = "".join(f"  - {{name: r{i}, type: archive, path: {IMAGE_ARCHIVE}}}\n" for i in range(IMAGES))
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {{path: {tmp_path / 'osv.db'}, imports: [{osv}]}}
layer_cache: {{path: {tmp_path / 'layers'}}}
registries:
{registries}
notifications:
  - {{name: each, type: webhook, url: '{rec.url}/each', max_payload_bytes: 8388608}}
  - {{name: daily, type: webhook, url: '{rec.url}/digest', mode: digest, max_payload_bytes: 8388608}}
delivery: {{max_attempts: 100, backoff_base: 200ms, backoff_max: 1s}}
service: {{lease_ttl: 5s}}
""")
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "vulnwatch.cli.main", "--config", str(cfg), "run", "--wait"]
    kills = finished = 0
    started = time.monotonic()
    seed = 0

    def start():
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)

    nxt = start()
    typical = 1.5      # seconds a run takes once it is the current one (learnt from finished runs)
    try:
        # Two processes at a time, as overlapping cron runs: the next one starts (and waits for
        # the store's lease) while the current one works; when that is killed, the next takes
        # its lease over at once (a dead process of this machine), with new advisory data.
        while kills < KILLS:
            seed += 1
            write_variant(osv, seed)
            proc, nxt = nxt, None
            nxt = start()
            became_current = time.monotonic()
            how = rng.random()
            if how < 0.06:                    # now and then a run is left to finish
                timeout = 60.0
            elif how < 0.5:                   # killed as a sink accepts a message
                rec.victim, rec.victim_path = proc.pid, rng.choice(["/each", "/digest", None])
                timeout = 60.0
            else:                             # killed at a random point of its run
                timeout = rng.uniform(0.1, 1.0) * typical
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            rec.victim = None
            if proc.returncode == -signal.SIGKILL:
                kills += 1
            else:
                assert proc.returncode in (0, 1), proc.stderr.read().decode()[-2000:]
                finished += 1
                typical = 0.7 * typical + 0.3 * (time.monotonic() - became_current)
            proc.stderr.close()
        nxt.send_signal(signal.SIGKILL)
        nxt.wait()
        nxt.stderr.close()
        crash_time = time.monotonic() - started
        rec.fail_rate = 0.0                   # the receiver recovers; runs finish the outbox
        for _ in range(10):
            out = subprocess.run(argv, capture_output=True, env=env, timeout=60)
            assert out.returncode in (0, 1), out.stderr.decode()[-2000:]
            db = sqlite3.connect(tmp_path / "state.db")
            pending = db.execute("select count(*) from deliveries where status != 'delivered'").fetchone()[0]
            db.close()
            if not pending:
                break
            time.sleep(1.0)
        assert pending == 0
    finally:
        if nxt is not None and nxt.poll() is None:
            nxt.kill()
        rec.close()

    db = sqlite3.connect(tmp_path / "state.db")
    db.row_factory = sqlite3.Row
    # -- integrity ------------------------------------------------------------------------------
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert db.execute("pragma foreign_key_check").fetchall() == []
    assert db.execute("select count(*) from deliveries d left join events e on e.id = d.event_id "
                      "where e.id is null").fetchone()[0] == 0
    snapshots = db.execute("select s.*, i.digest as image_digest from snapshots s left join images i on "
                           "i.registry = s.registry and i.repository = s.repository and i.digest = s.digest"
                           ).fetchall()
    assert len(snapshots) == IMAGES
    current: dict[tuple, set] = {}
    for s in snapshots:
        assert s["image_digest"] is not None and s["state"] == "COMPLETE"
        found = [Finding.from_dict(d) for d in json.loads(s["findings"])]    # inline, then its sets
        for sid in json.loads(s["finding_sets"] or "[]"):
            body = db.execute("select findings from finding_sets where id = ?", (sid,)).fetchone()
            assert body is not None, f"finding set {sid} of {s['digest']} is missing"
            found += [Finding.from_dict(d) for d in json.loads(body[0])]
        assert s["findings_signature"] == findings_signature(found)
        assert db.execute("select count(*) from scan_history where registry = ? and repository = ? and "
                          "digest = ? and scanned_at = ?", (s["registry"], s["repository"], s["digest"],
                                                            s["scanned_at"])).fetchone()[0] == 1
        current[(s["registry"], s["repository"], s["digest"])] = {f.key for f in found}

    # -- what was recorded: one chain of changes per image ---------------------------------------
    rows = db.execute("select e.body from deliveries d join events e on e.id = d.event_id "
                      "where d.sink = 'each' order by d.id").fetchall()
    lists = {r["id"]: json.loads(r["items"]) for r in db.execute("select id, items from event_lists")}
    recorded = [Event.from_dict(event_dict(json.loads(r["body"]), lists)) for r in rows]
    assert len({e.id for e in recorded}) == len(recorded)
    assert db.execute("select count(*) from events").fetchone()[0] == len(recorded)
    assert db.execute("select count(*) from deliveries where sink = 'daily'").fetchone()[0] == len(recorded)
    per_image: dict[tuple, list[Event]] = defaultdict(list)
    for e in recorded:
        per_image[e.image.key].append(e)
    for key, chain in per_image.items():
        have: set = set()
        for e in chain:
            added, fixed = {f.key for f in e.added}, {f.key for f in e.fixed}
            assert not added & have and fixed <= have, f"{key}: {e.kind.value} does not follow from the one before"
            have = (have - fixed) | added
        assert have == current[key], f"{key}: the changes recorded do not add up to the snapshot"
    assert {e.kind.value for e in recorded} >= {"new_image", "findings_changed"}
    assert sum(e.kind.value == "new_image" for e in recorded) == IMAGES

    # -- what was delivered ----------------------------------------------------------------------
    by_id = {e.id: e for e in recorded}
    order = {e.id: i for i, e in enumerate(recorded)}
    each = [body for path, body in rec.accepted if path == "/each"]
    digests = [body for path, body in rec.accepted if path == "/digest"]
    seen_each: dict[str, dict] = {}
    first_each: list[str] = []
    for body in each:
        assert body["id"] == body["data"]["id"] and body["id"] in by_id
        if body["id"] in seen_each:
            assert body == seen_each[body["id"]], "a repeat with another content"
        else:
            seen_each[body["id"]] = body
            first_each.append(body["id"])
    assert set(seen_each) == set(by_id), "a change never reached the per-image sink"

    envelopes: dict[str, list[str]] = {}
    first_digest: list[str] = []
    home: dict[str, str] = {}
    for body in digests:
        # a digest of one event is that event's own CloudEvent
        ids = [e["id"] for e in body["data"]["events"]] if body["type"] == "io.vulnwatch.digest" else [body["id"]]
        if body["id"] in envelopes:
            assert ids == envelopes[body["id"]], "a digest re-sent under its id with other events"
            continue
        envelopes[body["id"]] = ids
        for i in ids:
            assert i in by_id
            assert home.setdefault(i, body["id"]) == body["id"], "an event re-sent inside a new digest"
            first_digest.append(i)
    assert set(home) == set(by_id), "a change never reached the digest sink"

    for arrivals in (first_each, first_digest):
        for key in per_image:
            got = [i for i in arrivals if by_id[i].image.key == key]
            assert got == sorted(got, key=order.__getitem__), f"{key}: changes arrived out of order"

    repeats_each = len(each) - len(seen_each)
    repeats_digest = len(digests) - len(envelopes)
    print(f"\ncrash test: {kills} kills ({rec.killed_on_accept} as a sink accepted), {finished} runs finished, {seed} runs in {crash_time:.0f} s; "
          f"{len(recorded)} changes recorded ({IMAGES} images); per-image sink: {len(each)} accepted, "
          f"{repeats_each} repeats by id; digest sink: {len(digests)} accepted in {len(envelopes)} digests, "
          f"{repeats_digest} repeats by id; {rec.refused} requests answered 503")
    assert kills == KILLS and len(recorded) > 2 * IMAGES
