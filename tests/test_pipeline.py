from datetime import datetime, timezone

from vulnwatch.model import Image, Package, ScanResult
from vulnwatch.pipeline import StoredSnapshots
from vulnwatch.store.sql import SQLStore


def test_stored_snapshots_are_read_one_at_a_time(tmp_path):
    store = SQLStore.from_path(tmp_path / "s.db")
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    imgs = [Image("r", "app", "sha256:%064x" % i, (f"v{i}",)) for i in range(3)]
    for img in imgs:
        store.commit_scan(ScanResult(img, "builtin", at, packages=(Package("zlib", "1", "Debian:12"),),
                                     distro="Debian:12"), [])
    reads = []
    real = store.snapshot
    store.snapshot = lambda *key: reads.append(key) or real(*key)
    lazy = StoredSnapshots(store, {i.key for i in imgs}, keep=1)
    assert reads == [] and len(lazy) == 3 and imgs[0].key in lazy
    assert lazy.get(imgs[0].key).packages[0].name == "zlib"
    assert lazy.get(imgs[0].key) is not None and len(reads) == 1          # kept: not read again
    lazy.get(imgs[1].key)
    lazy.get(imgs[0].key)                                                 # evicted (keep=1): read again
    assert len(reads) == 3
    assert lazy.get(("r", "app", "sha256:unknown")) is None and len(reads) == 3


def test_notes_said_of_many_images_are_grouped():
    from vulnwatch.pipeline import _grouped

    assert _grouped({"quota reached": ["a", "b", "c"], "stale data": ["d"]}) == (
        "quota reached (3 images, e.g. a)", "d: stale data")


def test_sink_kinds_from_config_reach_the_route(tmp_path):
    from vulnwatch.config import parse_config
    from vulnwatch.model import EventKind
    from vulnwatch.build import build_sinks

    cfg = parse_config("notifications:\n  - name: only-rebuilds\n    type: console\n    kinds: [rebuild]\n"
                       "  - name: all\n    type: console\n")
    rebuilds, everything = build_sinks(cfg)
    assert rebuilds.route.kinds == frozenset({EventKind.REBUILD})
    assert everything.route.kinds == frozenset(EventKind)
