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


def test_overlapping_writers_record_one_change_once(tmp_path):
    """Two cycles read the same (absent) snapshot, both scan, both record: the second finds the
    first's write, diffs again against it and records no second new_image."""
    from datetime import timedelta

    from vulnwatch.model import EventKind, Finding, Severity
    from vulnwatch.pipeline import Pipeline
    from vulnwatch.store.interface import StoreConflict

    store = SQLStore.from_path(tmp_path / "s.db")
    img = Image("r", "app", "sha256:" + "a" * 64, ("1.0",))
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    found = (Finding("CVE-2024-1", "zlib", "1.2", Severity.HIGH, "Debian:12"),)
    first = ScanResult(img, "builtin", at, findings=found)
    second = ScanResult(img, "builtin", at + timedelta(seconds=5), findings=found)
    import io

    from vulnwatch.notify.console import ConsoleNotifier
    from vulnwatch.pipeline import Sink
    sinks = [Sink(ConsoleNotifier("c", stream=io.StringIO()))]
    a, b = Pipeline(store, [], sinks), Pipeline(store, [], sinks)
    assert a.record(first, None).kind is EventKind.NEW_IMAGE
    assert b.record(second, None) is None                      # the same change: not recorded again
    assert [d.event.kind for d in store.deliveries()] == [EventKind.NEW_IMAGE]
    history = store.history("r", "app")
    assert len(history) == 2                                    # both scans are in the history
    try:
        store.commit_scan(second, [], expected=None)
    except StoreConflict as e:
        assert "another writer" in str(e)
    else:
        raise AssertionError("a write expecting no snapshot must conflict")
    store.commit_scan(second, [], expected=store.snapshot(*img.key))   # the current one: fine


class _ListingRegistry:
    """A registry of four repositories whose listing of each waits until ``together`` of them
    are being listed at once (a serial listing breaks the barrier); ``missing`` is not there."""

    name = "r"
    default_scanner = "ecr"

    def __init__(self, listing_concurrency: int, together: int) -> None:
        import threading

        self.listing_concurrency = listing_concurrency
        self.barrier = threading.Barrier(together, timeout=10)

    def repositories(self):
        return iter(["a", "b", "missing", "c"])

    def images(self, repository):
        from vulnwatch.registries.interface import RepositoryNotFoundError

        self.barrier.wait()
        if repository == "missing":
            raise RepositoryNotFoundError("no such repository", registry=self.name, repository=repository)
        return iter([Image(self.name, repository, "sha256:%064x" % ord(repository[0]), ("v1",))])


def test_repositories_are_listed_at_once_up_to_the_registry_s_concurrency(tmp_path):
    """A cycle lists ``listing_concurrency`` repositories at once (ECR: 50 repositories were 51
    calls one after the other); the images come in the plan's order and a missing repository is
    still its own warning."""
    import threading

    from vulnwatch.pipeline import Pipeline, Watch
    from vulnwatch.targets import Selector

    store = SQLStore.from_path(tmp_path / "s.db")
    reg = _ListingRegistry(listing_concurrency=4, together=4)
    watch = Watch(registry=reg, scanner=None, selectors=(Selector(name="*"),))
    failures, warnings = [], []
    images = Pipeline(store, [], []).targets(watch, failures, warnings)
    assert [img.repository for img in images] == ["a", "b", "c"]
    assert failures == [] and [w.target for w in warnings] == ["r/missing"]
    # one at a time (the default): the same barrier can never fill
    serial = _ListingRegistry(listing_concurrency=1, together=2)
    serial.barrier = threading.Barrier(2, timeout=0.2)
    failures = []
    try:
        Pipeline(store, [], []).targets(Watch(registry=serial, scanner=None), failures, [])
    except threading.BrokenBarrierError:
        pass
    else:
        raise AssertionError("a registry of listing_concurrency 1 is listed one repository at a time")
