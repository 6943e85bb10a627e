"""Scans OCI layouts with the built-in scanner's inventory (no vulnerability data) under the
limits given, one JSON line per image (``ok`` / ``code`` / ``error`` / ``seconds``), then one
with this process's peak RSS (VmHWM). Run as ``python -m tests.scanners.hostile_worker SPEC.json``,
where SPEC is ``[{"path": ..., "catalog": {CatalogLimits fields}, "layers": {LayerLimits fields}}, ...]``."""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time

from vulnwatch.catalogers.interface import CatalogLimits
from vulnwatch.registries.archive import ArchiveRegistry
from vulnwatch.scanners.builtin import BuiltinScanner
from vulnwatch.scanners.interface import ScanError
from vulnwatch.walker.limits import LayerLimits

LAYERS = LayerLimits(max_kept_bytes=96 * 1024 * 1024)
"""The walker's bounds here: defaults, but at most 96 MiB of metadata kept per image."""
CATALOG = dict(max_cataloger_bytes=48 * 1024 * 1024, max_cataloger_packages=20_000, max_packages=40_000,
               zip_max_inflated_bytes=64 * 1024 * 1024)
"""The catalogers' bounds here (each image may override some)."""


def main(spec_path: str) -> None:
    for item in json.loads(open(spec_path).read()):
        registry = ArchiveRegistry("hostile", item["path"])
        scanner = BuiltinScanner(registry, None, limits=dataclasses.replace(LAYERS, **item.get("layers", {})),
                                 image_timeout=30,
                                 catalog_limits=CatalogLimits(**{**CATALOG, **item.get("catalog", {})}))
        started = time.monotonic()
        out = {"path": item["path"]}
        try:
            [image] = list(registry.images(next(iter(registry.repositories()))))
            result = scanner.sbom(image)
            out.update(ok=True, packages=len(result.packages), notes=list(result.notes)[:5])
        except ScanError as e:
            out.update(ok=False, code=e.code, error=str(e))
        except Exception as e:           # anything else is a defect the test reports
            out.update(ok=False, code="UNEXPECTED", error=f"{type(e).__name__}: {e}")
        out["seconds"] = round(time.monotonic() - started, 2)
        print(json.dumps(out), flush=True)
    print(json.dumps({"maxrss_mb": peak_rss_mb()}), flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set: ``VmHWM`` (reset by exec, so the parent's memory is not
    counted), else ``ru_maxrss`` (which can carry the forking parent's over)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main(sys.argv[1])
