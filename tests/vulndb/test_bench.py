"""The re-match benchmark runs (small) and finds what it should; its speed is the benchmark's
own business (a timed test fails on a loaded machine and proves nothing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .conftest import osv_zip


def test_rematch_bench_small(capsys):
    osv_zip("Debian")
    path = Path(__file__).resolve().parents[2] / "bench" / "rematch.py"
    spec = importlib.util.spec_from_file_location("rematch_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--inventories", "300", "--budget", "600"]) == 0
    out = capsys.readouterr().out
    assert "re-match:" in out and "OK" in out
    assert " 0 findings" not in out and "skipped records: 0, skipped packages: 0" in out
