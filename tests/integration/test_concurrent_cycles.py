"""Overlapping cycles on one store, as separate processes (cron overlap, two instances): two and
four concurrent `vulnwatch run --wait` and `vulnwatch watch --once` on SQLite and PostgreSQL, and
four `run --worker` sharing a PostgreSQL store. Each change is recorded exactly once, no rebuild
or re-scan turns into a spurious new_image, and in worker mode no image is scanned or notified
twice."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.servers import start_receiver
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR
from vulnwatch.store import open_store

SRC = Path(__file__).resolve().parents[2] / "src"


def variant(tmp: Path, seed: int) -> Path:
    """A random half of the bundled OSV records, in a folder of its own."""
    rng = random.Random(seed)
    folder = tmp / f"osv-{seed}"
    for eco in ("Debian", "PyPI"):
        (folder / eco).mkdir(parents=True)
        for f in sorted((OSV_DIR / eco).glob("*.json")):
            if rng.random() < 0.5:
                shutil.copy(f, folder / eco / f.name)
    return folder


class Fleet:
    """``images`` archive registries (one image each) on one store, a webhook receiver, and the
    advisory data switched between rounds."""

    def __init__(self, tmp: Path, state: str, receiver, images: int = 3, service: str = "") -> None:
        self.tmp = tmp
        self.osv = tmp / "osv"
        self.receiver = receiver
        self.images = images
        self.cfg = tmp / "vulnwatch.yaml"
        regs = "".join(f"  - {{name: r{i}, type: archive, path: {IMAGE_ARCHIVE}}}\n" for i in range(images))
        self.cfg.write_text(f"""
state: {state}
vulndb: {{path: {tmp / 'osv.db'}, imports: [{self.osv}]}}
layer_cache: {{path: {tmp / 'layers'}}}
registries:
{regs}
notifications:
  - {{name: hook, type: webhook, url: '{receiver.url}/hook', max_payload_bytes: 8388608}}
service: {{lease_ttl: 10s, health_port: 0, run_at_start: true, interval: 1h{service}}}
""")
        self.env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CACHE_HOME": str(tmp / "cache")}

    def data(self, seed: int) -> None:
        folder = variant(self.tmp, seed)
        later = time.time() + 1
        for p in [folder, *folder.rglob("*")]:
            os.utime(p, (later, later))
        link = self.tmp / "osv.link"
        link.unlink(missing_ok=True)
        link.symlink_to(folder)
        os.replace(link, self.osv)

    def together(self, *commands: list[str]) -> list[subprocess.CompletedProcess]:
        """Start every command at once; wait for all."""
        procs = [subprocess.Popen([sys.executable, "-m", "vulnwatch.cli.main", "--config", str(self.cfg), *c],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
                 for c in commands]
        out = []
        for p, c in zip(procs, commands):
            stdout, stderr = p.communicate(timeout=120)
            out.append(subprocess.CompletedProcess(c, p.returncode, stdout, stderr))
        for r in out:
            assert r.returncode == 0, (r.args, r.stdout, r.stderr[-3000:])
        return out


def recorded(store) -> list[tuple[str, tuple, str]]:
    """(kind, image key, event id) of every recorded change, oldest first."""
    rows = sorted(store.deliveries(limit=100000), key=lambda d: d.id)
    return [(d.event.kind.value, d.event.image.key, d.event.id) for d in rows]


@pytest.mark.parametrize("backend,n", [("sqlite", 2), ("postgresql", 4)])
def test_overlapping_runs_and_watches_record_each_change_once(tmp_path, backend, n, request):
    receiver = start_receiver()
    url = (request.getfixturevalue("pg_cluster").create_schema() if backend == "postgresql"
           else f"sqlite:///{tmp_path / 'state.db'}")
    fleet = Fleet(tmp_path, f"{{url: '{url}'}}", receiver)
    commands = [["run", "--wait"], ["watch", "--once"]] * (n // 2)
    store = open_store(url)
    try:
        fleet.data(1)
        fleet.together(*commands)
        first = recorded(store)
        assert Counter(kind for kind, _, _ in first) == {"new_image": fleet.images}
        fleet.data(2)                                  # the data moves: one change per image
        fleet.together(*commands)
        second = recorded(store)[len(first):]
        assert all(kind == "findings_changed" for kind, _, _ in second)
        assert Counter(key for _, key, _ in second) == {key: 1 for _, key, _ in first}
        if n == 2:                                     # nothing moved: nothing recorded (once is enough)
            fleet.together(*commands)
            assert recorded(store)[len(first) + len(second):] == []
        ids = [i for _, _, i in recorded(store)]
        assert len(ids) == len(set(ids))
        delivered = Counter(body["id"] for body in receiver.bodies("/hook"))
        assert set(delivered) == set(ids) and set(delivered.values()) == {1}   # each once
        for st in store.images():
            assert len(store.history(*st.image.key[:2], digest=st.image.digest)) == 2   # two scans that moved
    finally:
        store.close()
        receiver.close()


def test_workers_share_a_postgresql_store_and_scan_each_image_once(tmp_path, pg_cluster):
    receiver = start_receiver()
    url = pg_cluster.create_schema()
    fleet = Fleet(tmp_path, f"{{url: '{url}'}}", receiver, images=8, service=", workers: true")
    store = open_store(url)
    try:
        fleet.data(1)
        runs = fleet.together(*[["run", "--worker"]] * 4)
        assert sum(int(r.stdout.split(" scanned")[0].split()[-1]) for r in runs) == 8   # split, none twice
        for st in store.images():
            assert len(store.history(*st.image.key[:2], digest=st.image.digest)) == 1
        events = recorded(store)
        assert Counter(kind for kind, _, _ in events) == {"new_image": 8}
        delivered = Counter(body["id"] for body in receiver.bodies("/hook"))
        assert set(delivered) == {i for _, _, i in events} and set(delivered.values()) == {1}
        again = fleet.together(*[["run", "--worker"]] * 4)      # the same round: all done already
        assert all(" 0 scanned" in r.stdout for r in again)
        assert len(recorded(store)) == 8
    finally:
        store.close()
        receiver.close()
